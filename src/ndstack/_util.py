"""Small helpers several modules share: dicts with attribute access, local paths of URLs."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

__all__ = ["AttrDict", "grown", "local_path", "url_scheme", "version"]


class AttrDict(dict[str, Any]):
    """A dict (``json.dumps`` as it is) whose keys also read as attributes."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def url_scheme(text: str) -> str | None:
    """The scheme of a URL (lower case), or None for a plain path.

    >>> url_scheme("S3://bucket/x"), url_scheme("/data/x")
    ('s3', None)
    """
    match = _SCHEME.match(text)
    return match.group(1).lower() if match else None


def local_path(text: str) -> str | None:
    """``text`` as a path on this machine: a plain path as it is, a ``file://`` or
    ``local://`` URL (on this host) as its path; None for any other URL.

    >>> local_path("file:///tmp/a%20b"), local_path("local:///x"), local_path("s3://b/k")
    ('/tmp/a b', '/x', None)
    >>> local_path("file://localhost/x"), local_path("file://elsewhere/x")
    ('/x', None)
    """
    from urllib.parse import unquote, urlsplit

    scheme = url_scheme(text)
    if scheme is None:
        return text
    if scheme not in ("file", "local"):
        return None
    parts = urlsplit(text)
    return unquote(parts.path) if parts.netloc in ("", "localhost") else None


def version() -> str:
    """ndstack's version (looked up when called: this module loads before the package)."""
    from . import __version__

    return __version__


def grown(
    sizes: list[int], shape: Sequence[int], order: Sequence[int], itemsize: int, target: int
) -> list[int]:
    """``sizes`` (a block's length per axis) grown along the axes of ``order``, each
    whole before the next, while the block is under ``target`` bytes; each grown
    length is balanced, so that the blocks along its axis are about equal. The opened
    array's blocks of small files and the writer's chunks of small planes grow alike.

    >>> grown([1, 1, 16, 16], [1000, 10, 16, 16], [1, 0], 2, 4 << 20)
    [500, 10, 16, 16]
    """
    out = list(sizes)
    for i in order:
        room = target // (math.prod(out) // out[i] * itemsize)  # elements along i
        if room <= out[i]:
            break
        count = math.ceil(shape[i] / min(shape[i], room))  # as many blocks, about equal
        out[i] = max(out[i], math.ceil(shape[i] / count))
        if out[i] < shape[i]:
            break
    return out
