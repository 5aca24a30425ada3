"""What :func:`ndstack.to_zarr` and :func:`ndstack.verify` return: the dicts they always
were (``summary["tasks"]``, ``json.dumps(summary)``), with their keys also readable as
attributes (``summary.tasks``) and documented here."""

from __future__ import annotations

from .._util import AttrDict

__all__ = ["VerifyReport", "WriteSummary"]


class WriteSummary(AttrDict):
    """One conversion.

    Keys: ``dest``; ``bytes_in`` and ``bytes_out`` (all the store's blocks, earlier runs
    included) and their ``ratio``; ``seconds``; ``gb_per_s`` (the bytes this run read);
    ``tasks`` (blocks written by this run); ``skipped`` (blocks written by earlier runs);
    and ``complete_before: True`` only when the store was complete already (nothing done).
    """


class VerifyReport(AttrDict):
    """A verification that found nothing wrong: ``checked`` of ``blocks`` blocks compared.

    Any difference or missing chunk raises :class:`ndstack.errors.VerifyError` instead,
    so ``missing_chunks`` and ``differences`` are always empty lists here; they stay for
    code written against the earlier dict.
    """
