"""What an array reads, seen from the writer: its local folders and stores (never to be
written into) and a fingerprint of its files (to resume only from the same source)."""

from __future__ import annotations

import json
import os
from typing import Any

from .._redact import redact
from ..errors import DestinationError

__all__ = [
    "check_destination_against_source",
    "file_grid",
    "source_digest",
    "source_fingerprint",
    "source_paths",
]


def file_grid(arr: Any) -> Any:
    """The FileGrid behind an array opened by ndstack, if any (for source checks)."""
    from .._grid import FileGrid

    graph = getattr(arr.data, "dask", None)
    if graph is None:
        return None
    for layer in graph.layers.values():
        for v in dict(layer).values():
            v = getattr(v, "value", v)
            if isinstance(v, FileGrid):
                return v
    return None


def _local_path(root: str, fs: Any) -> str | None:
    """``root`` as a local path when its filesystem is the local disk (``file://``,
    ``local://`` and friends resolve there too); None for remote filesystems."""
    if fs is None:
        return root
    protocol = fs.protocol if isinstance(fs.protocol, (tuple, list)) else (fs.protocol,)
    if {"file", "local"} & set(protocol):
        return fs._strip_protocol(root)
    return None


def _zarr_root(store: Any) -> str | None:
    """The local folder of a zarr store object (LocalStore, or FsspecStore on disk)."""
    root = getattr(store, "root", None)
    if root is not None:
        return os.fspath(root)
    fs, path = getattr(store, "fs", None), getattr(store, "path", None)
    if fs is not None and isinstance(path, str):
        sync = getattr(fs, "sync_fs", None) or fs  # zarr wraps fsspec in an async filesystem
        try:
            return _local_path(path, sync)
        except AttributeError:
            return None
    return None


def source_paths(arr: Any) -> list[str]:
    """The local folders an array reads from: its file grid's root and its stores."""
    from .._grid import FileGrid
    from .read import StoredArray

    graph = getattr(arr.data, "dask", None)
    out = []
    for layer in graph.layers.values() if graph is not None else ():
        for v in dict(layer).values():
            v = getattr(v, "value", v)
            if isinstance(v, FileGrid):
                local = _local_path(v.root, v.fs)
                if local is not None:
                    out.append(local)
            elif isinstance(v, StoredArray):
                out.append(v.store or v.path)
            elif type(v).__module__.startswith("zarr") and hasattr(v, "store"):
                root = _zarr_root(v.store)  # a zarr array read by Dask (da.from_zarr)
                if root is not None:
                    out.append(os.path.join(root, getattr(v, "path", "") or ""))
    return out


def check_destination_against_source(dest: str, arr: Any) -> None:
    """Refuse a destination that is, holds, or lies inside anything the array reads."""
    real = os.path.realpath(dest)
    for src in source_paths(arr):
        src_real = os.path.realpath(src)
        inside = real == src_real or real.startswith(src_real.rstrip(os.sep) + os.sep)
        holds = src_real.startswith(real.rstrip(os.sep) + os.sep)
        if inside or holds:
            where = "is" if real == src_real else "lies inside" if inside else "holds"
            raise DestinationError(
                f"the destination {dest} {where} the source {src}; choose a folder apart "
                "from it (sources are only ever read, never replaced)"
            )


def source_fingerprint(grid: Any, arr: Any) -> dict[str, Any]:
    """Every source file with its size and modification stamp (ETag, version or mtime on
    fsspec filesystems), or the array's graph token when it reads no file grid."""
    if grid is None:
        return {"token": str(arr.data.name) if hasattr(arr.data, "name") else None}
    names = sorted(n for n in grid.files.ravel().tolist() if n is not None)
    files = []
    if grid.fs is None:
        for name in names:
            try:
                st = os.stat(grid.path(name))
                files.append([name, st.st_size, st.st_mtime_ns])
            except OSError:
                files.append([name, None, None])
    else:
        for name in names:
            try:
                info = grid.fs.info(grid.path(name))
            except (OSError, ValueError):
                files.append([name, None, None])
                continue
            files.append([name, info.get("size"), _stamp(info)])
    return {"root": redact(grid.root), "files": files}


def _stamp(info: dict[str, Any]) -> Any:
    """What changes when an object is rewritten: version, ETag, or a modification time."""
    for key in ("VersionId", "version_id", "generation", "ETag", "etag", "md5Hash",
                "Content-MD5", "Digest", "LastModified", "Last-Modified", "last_modified",
                "mtime", "updated", "created"):  # fmt: skip
        value = info.get(key)
        if value not in (None, ""):
            return f"{key}={value}"
    return None


def source_digest(fingerprint: dict[str, Any]) -> str:
    """One hash of a fingerprint: what a complete store remembers of its source."""
    import hashlib

    text = json.dumps(fingerprint, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _unstamped(fingerprint: dict[str, Any]) -> bool:
    """Whether some source file reports nothing that changes when it is rewritten."""
    return any(
        len(f) > 2 and f[2] is None and f[1] is not None for f in fingerprint.get("files", [])
    )
