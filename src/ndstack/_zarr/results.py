"""What :func:`ndstack.to_zarr` and :func:`ndstack.verify` return: typed, and still
readable as the dicts they used to be (``summary["tasks"]``, ``dict(report)``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["VerifyReport", "WriteSummary"]


class _Record(Mapping[str, Any]):
    """A frozen dataclass that also reads as a mapping of its fields."""

    def __getitem__(self, key: str) -> Any:
        if key in self._names():
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __len__(self) -> int:
        return len(self._names())

    def _names(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self))  # type: ignore[arg-type]


@dataclasses.dataclass(frozen=True)
class WriteSummary(_Record):
    """One conversion: bytes read and written, speed, and what was done before.

    ``tasks`` blocks were written by this run and ``skipped`` by earlier ones (a resumed
    run); ``complete_before`` means the store was already complete and nothing was done.
    ``gb_per_s`` counts the bytes this run read.
    """

    dest: str
    bytes_in: int
    bytes_out: int
    ratio: float
    seconds: float
    gb_per_s: float
    tasks: int
    skipped: int
    complete_before: bool = False


@dataclasses.dataclass(frozen=True)
class VerifyReport(_Record):
    """A verification that found nothing wrong: ``checked`` of ``blocks`` blocks compared.

    Any difference or missing chunk raises :class:`ndstack.errors.VerifyError` instead,
    so ``missing_chunks`` and ``differences`` are always empty here; they stay for code
    written against the dict this used to be.
    """

    blocks: int
    checked: int
    missing_chunks: list[str] = dataclasses.field(default_factory=list)
    differences: list[str] = dataclasses.field(default_factory=list)
