"""What an array reads, seen from the writer: its local folders and stores (never to be
written into) and a fingerprint of its files (to resume only from the same source)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from .._redact import redact
from ..errors import DestinationError
from .paths import is_url

__all__ = [
    "Sources",
    "check_destination_against_source",
    "file_grid",
    "regrouped",
    "source_digest",
    "source_fingerprint",
    "source_paths",
    "sources_of",
    "straight_from",
]


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


def _graph_values(arr: Any) -> Any:
    """The plain values in an array's graph (files grids, stores, arrays), unwrapped from
    xarray's lazy-indexing adapters (``xarray.open_zarr`` hides its zarr array 5 deep)."""
    from dask.blockwise import Blockwise

    graph = getattr(getattr(arr, "data", arr), "dask", None)
    for layer in graph.layers.values() if graph is not None else ():
        # a Blockwise layer's values are its tasks (one per block): its data are the
        # arguments it was made with, which a walk reads without making the tasks
        values = (
            [a for a, _ in layer.indices] if isinstance(layer, Blockwise) else dict(layer).values()
        )
        for v in values:
            v = getattr(v, "value", v)
            for _ in range(8):
                inner = getattr(v, "array", None)
                if inner is None:
                    inner = getattr(v, "_array", None)
                if inner is None or type(v).__module__.startswith("zarr"):
                    break
                v = inner
            yield v


class Sources(NamedTuple):
    """What an array reads: the file grids, and the local folders of the stores."""

    grids: list[Any]
    stores: list[str]

    @property
    def grid(self) -> Any:
        """The first file grid, or None."""
        return self.grids[0] if self.grids else None

    def paths(self) -> list[str]:
        """The local folders read: the grids' roots (those on the local disk), the stores."""
        local = [_local_path(g.root, g.fs) for g in self.grids]
        return [p for p in local if p is not None] + [s for s in self.stores if not is_url(s)]

    def urls(self) -> list[str]:
        """The remote locations read, as URLs: grids' roots elsewhere, stores at URLs."""
        remote = [g.fs.unstrip_protocol(g.root) for g in self.grids
                  if g.fs is not None and _local_path(g.root, g.fs) is None]  # fmt: skip
        return remote + [s for s in self.stores if is_url(s)]


def sources_of(arr: Any) -> Sources:
    """The file grids and local stores an array reads (one walk of its graph)."""
    from .._grid import FileGrid
    from .read import StoredArray

    grids, stores = [], []
    for v in _graph_values(arr):
        if isinstance(v, FileGrid):
            grids.append(v)
        elif isinstance(v, StoredArray):
            stores.append(v.store or v.path)
        elif type(v).__module__.startswith("zarr") and hasattr(v, "store"):
            root = _zarr_root(v.store)  # a zarr array read by Dask or xarray
            if root is not None:
                stores.append(os.path.join(root, getattr(v, "path", "") or ""))
    return Sources(grids, list(dict.fromkeys(stores)))


def straight_from(data: Any, grid: Any) -> bool:
    """Whether a Dask array is ``grid`` read as :func:`ndstack.open` made it (any block
    sizes), with nothing done to it since."""
    layers = data.dask.layers
    original = layers.get("original-" + data.name)
    return (
        grid is not None
        and original is not None
        and set(layers) == {data.name, "original-" + data.name}
        and any(v is grid for v in dict(original).values())
    )


def regrouped(data: Any, dims: Sequence[str], blocks: Mapping[str, int], grid: Any) -> Any:
    """``data`` in blocks of ``blocks[dim]`` elements (regular, the last one shorter).

    An array straight from :func:`ndstack.open` is opened again from its file grid in
    those blocks: one task reads the block's files (a graph of one task per write group,
    not one per file and another to join them). Anything else (a processed array, a
    selection) is rechunked by Dask.
    """
    from dask.base import tokenize

    from .._grid import grid_array

    new = tuple(blocks[d] if d in blocks else c for d, c in zip(dims, data.chunks))
    if straight_from(data, grid):
        return grid_array(grid, new, f"{data.name}-by-{tokenize(new)}")
    return data.rechunk(new)


def file_grid(arr: Any) -> Any:
    """The FileGrid behind an array opened by ndstack, if any."""
    return sources_of(arr).grid


def source_paths(arr: Any) -> list[str]:
    """The local folders an array reads from: its file grids' roots and its stores."""
    return sources_of(arr).paths()


def check_destination_against_source(dest: str, sources: Sources) -> None:
    """Refuse a destination that is, holds, or lies inside anything the array reads."""
    if is_url(dest):
        for src in sources.urls():
            _refuse_overlap(dest, src, dest.rstrip("/"), src.rstrip("/"), "/")
        return
    real = os.path.realpath(dest)
    for src in sources.paths():
        _refuse_overlap(dest, src, real, os.path.realpath(src), os.sep)


def _refuse_overlap(dest: str, src: str, real: str, src_real: str, sep: str) -> None:
    """Refuse ``dest`` when it is, lies inside or holds ``src`` (both already resolved)."""
    inside = real == src_real or real.startswith(src_real.rstrip(sep) + sep)
    holds = src_real.startswith(real.rstrip(sep) + sep)
    if inside or holds:
        where = "is" if real == src_real else "lies inside" if inside else "holds"
        raise DestinationError(
            f"the destination {dest} {where} the source {src}; choose a folder apart "
            "from it (sources are only ever read, never replaced)"
        )


def source_fingerprint(arr: Any, sources: Sources | None = None) -> dict[str, Any]:
    """What the array is read from, so that a resume or "all done before" is only ever
    granted to the same source: the first file grid's files with their sizes and
    modification stamps (ETag, version or mtime on fsspec filesystems), a digest of every
    other grid's and of every store's files (sizes, mtimes), or, for an array that reads
    nothing (NumPy, made in memory), Dask's name of it, a hash of its content."""
    grids, stores = sources if sources is not None else sources_of(arr)
    out: dict[str, Any] = {}
    if grids:
        out = {"root": redact(grids[0].root), "files": _grid_files(grids[0])}
    others = {redact(g.root): _digest(_grid_files(g)) for g in grids[1:]}
    others.update({redact(path): _digest(_store_files(path)) for path in stores})
    if others:
        out["others"] = others
    if not grids and not stores:
        data = getattr(arr, "data", arr)
        out["token"] = str(data.name) if hasattr(data, "name") else None
    return out


def _grid_files(grid: Any) -> list[list[Any]]:
    names = sorted(n for n in grid.files.ravel().tolist() if n is not None)
    files = []
    for name in names:
        try:
            if grid.fs is None:
                st = os.stat(grid.path(name))
                files.append([name, st.st_size, st.st_mtime_ns])
            else:
                info = grid.fs.info(grid.path(name))
                files.append([name, info.get("size"), _stamp(info)])
        except (OSError, ValueError):
            files.append([name, None, None])
    return files


def _store_files(path: str) -> list[list[Any]]:
    """Every file of a local store with its size and mtime (its record and lock aside)."""
    out = []
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for f in sorted(files):
            try:
                st = os.stat(os.path.join(root, f))
            except OSError:
                continue
            out.append([os.path.relpath(os.path.join(root, f), path), st.st_size,
                        st.st_mtime_ns])  # fmt: skip
    return out


def _digest(value: Any) -> str:
    import hashlib

    return hashlib.sha256(json.dumps(value, default=str).encode()).hexdigest()


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
