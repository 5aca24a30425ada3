"""Where things are in a store: metadata file names, chunk keys, the unfinished marker.

Pure names and paths, no I/O: the writer, the reader and verify share them.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["METADATA_FILES", "UNFINISHED", "chunk_path", "chunk_shape", "entry_names"]


#: the files that hold a Zarr node's metadata: v3, then v2
METADATA_FILES = ("zarr.json", ".zgroup", ".zarray", ".zattrs")


#: a file inside a store that ndstack is still writing (removed when it is complete)
UNFINISHED = ".ndstack-unfinished"


def chunk_shape(meta: dict[str, Any], zarr_format: int) -> list[int]:
    return (
        meta["chunk_grid"]["configuration"]["chunk_shape"] if zarr_format == 3 else meta["chunks"]
    )


def chunk_path(array_dir: str, idx: Any, zarr_format: int) -> str:
    """Where a chunk lives: ``c/0/1/2`` in Zarr v3, ``0/1/2`` in v2 with "/" separators."""
    return os.path.join(array_dir, *(("c",) if zarr_format == 3 else ()), *map(str, idx))


def entry_names(value: Any) -> bool:
    """Whether ``value`` lists plain names of entries of a store (what ``--overwrite`` may
    delete): strings with no ``/`` or ``\\``, not ``.`` or ``..``, and none of the pattern
    characters ``* ? [ ]`` (a deleting filesystem could expand them).

    >>> entry_names(["zarr.json", "0"]), entry_names(["0/../../x"]), entry_names("0")
    (True, False, False)
    >>> entry_names(["*"]), entry_names(["c[0]"])
    (False, False)
    """
    return isinstance(value, list) and all(
        isinstance(e, str) and e not in ("", ".", "..") and not set(e) & set("/\\*?[]")
        for e in value
    )
