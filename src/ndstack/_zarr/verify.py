"""Compare a store with its source: chunk by chunk, every level's chunk files present."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._redact import reason
from ..errors import VerifyError
from .layout import chunk_path
from .paths import as_local, find, is_file, is_url, use_options
from .read import array_meta, level_paths, shard_has_holes
from .results import VerifyReport

__all__ = ["verify"]

#: blocks compared per Dask computation
_BATCH = 256


def independent_reads(arr: Any) -> Any:
    """The same array, its TIFF files read through tifffile's own readers only.

    The writer reads uncompressed files straight from their byte offsets; comparing the
    store with a second read along the same path would miss a wrong offset. Every file
    grid in the graph gets a reader with ``independent=True`` (processing steps stay).
    """
    import dataclasses

    import dask.array as da
    from dask.blockwise import Blockwise
    from dask.highlevelgraph import HighLevelGraph, MaterializedLayer

    from .._grid import FileGrid
    from .._tiff import TiffReader

    data = arr.data
    graph = getattr(data, "dask", None)
    if graph is None:
        return arr
    layers = dict(graph.layers)
    for name, layer in graph.layers.items():
        if isinstance(layer, Blockwise):
            continue  # its tasks (one per block) refer to the grid by key, never hold it
        tasks = dict(layer)
        grids = {}
        for key, value in tasks.items():
            grid = getattr(value, "value", value)
            if isinstance(grid, FileGrid) and isinstance(grid.reader, TiffReader):
                reader = dataclasses.replace(grid.reader, independent=True)
                grids[key] = dataclasses.replace(grid, reader=reader)
        if grids:
            layers[name] = MaterializedLayer({**tasks, **grids})
    if all(layers[n] is graph.layers[n] for n in layers):
        return arr
    new = da.Array(HighLevelGraph(layers, graph.dependencies), data.name, data.chunks,
                   meta=data._meta)  # fmt: skip
    return arr.copy(data=new)


def missing_chunks(dest: str, limit: int = 1000) -> list[str]:
    """Chunk files that the store's arrays should have and do not (the first ``limit``).

    ndstack writes every chunk (fill-valued ones too), so a missing file is damage: zarr
    would read it back silently as the fill value. The arrays come from the store's
    checked metadata (:func:`level_paths`); the files present are listed once, and the
    expected names are walked only until ``limit`` missing ones are found.
    """
    missing: list[str] = []
    for root in level_paths(dest):
        meta, fmt, shape, chunks = array_meta(root)
        counts = [math.ceil(s / c) for s, c in zip(shape, chunks)]
        expected = math.prod(counts)
        present = _chunk_files(root, fmt, counts)
        inner = _inner_chunks(meta)
        if inner is not None:  # a shard whose index lists an inner chunk as missing
            for idx in sorted(present):
                path = chunk_path(root, idx, fmt)
                if shard_has_holes(path, idx, shape, chunks, inner):
                    missing.append(_relative(path, dest) + " (inner chunks)")
        if len(present) >= expected:
            continue
        for idx in np.ndindex(*counts):
            if idx not in present:
                missing.append(_relative(chunk_path(root, idx, fmt), dest))
                if len(missing) >= limit:
                    return missing
    return missing


def _inner_chunks(meta: dict[str, Any]) -> list[int] | None:
    """The inner chunk shape of a sharded Zarr v3 array, or None."""
    codecs = meta.get("codecs") or []
    first = codecs[0] if codecs and isinstance(codecs[0], dict) else {}
    if first.get("name") != "sharding_indexed":
        return None
    inner = (first.get("configuration") or {}).get("chunk_shape")
    return list(inner) if isinstance(inner, list) else None


def _relative(path: str, dest: str) -> str:
    """``path`` relative to the store (``/``-separated for URLs)."""
    if is_url(dest):
        return path[len(dest.rstrip("/")) + 1 :]
    return os.path.relpath(path, dest)


def _chunk_keys(key_lists: Any, counts: list[int]) -> set[tuple[int, ...]]:
    """The chunk indices among lists of key parts, within the grid of ``counts``."""
    found: set[tuple[int, ...]] = set()
    for key in key_lists:
        if len(key) == len(counts) and all(p.isdigit() for p in key):
            idx = tuple(int(p) for p in key)
            if all(i < n for i, n in zip(idx, counts)):
                found.add(idx)
    return found


def _chunk_files(root: str, fmt: int, counts: list[int]) -> set[tuple[int, ...]]:
    """The chunk keys of an array that exist as files (or objects), within its grid."""
    if not counts:  # a 0-d array: one chunk named "0"... in v3 'c', in v2 '0'
        return {()} if is_file(chunk_path(root, (), fmt)) else set()
    top = os.path.join(root, "c") if fmt == 3 else root
    if is_url(top):  # one listing of every object under the prefix
        return _chunk_keys((key.split("/") for key in find(top)), counts)
    return _chunk_keys(_walk_keys(top, len(counts)), counts)


def _walk_keys(top: str, depth: int) -> Any:
    """Key parts of the files under ``top`` down to ``depth`` levels (numbered folders)."""
    for folder, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d.isdigit()]
        rel = os.path.relpath(folder, top)
        parts = [] if rel == "." else rel.split(os.sep)
        if len(parts) >= depth:
            dirs[:] = []
            continue
        for f in files:
            yield [*parts, f]


def _region_text(dims: tuple[str, ...], region: tuple[slice, ...]) -> str:
    return ", ".join(
        f"{d}={s.start}" if s.stop - s.start == 1 else f"{d}={s.start}:{s.stop}"
        for d, s in zip(dims, region)
    )


def verify(
    source: Any,
    dest: str,
    *,
    sample: str | int = "auto",
    seed: int = 0,
    storage_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Re-read blocks from both sides and compare them; check that no chunk is missing.

    Parameters
    ----------
    source
        The source: a DataArray, or anything :func:`ndstack.open` takes.
    dest
        The store written by :func:`ndstack.to_zarr`: a folder or a URL.
    sample
        ``"auto"``: the first, the last and 16 random source blocks; ``"all"``: every
        block; an integer: that many random blocks besides the first and the last.
    seed
        Of the random choice of blocks.
    storage_options
        For a store at a URL: fsspec options of its filesystem (see :func:`ndstack.open`).

    Returns
    -------
    VerifyReport
        ``blocks`` and ``checked`` (readable as a dict too; its ``missing_chunks`` and
        ``differences`` are always empty: a difference raises).

    Raises
    ------
    VerifyError
        When a chunk is missing, cannot be decoded, or differs; names the region.
    """
    import dask
    import xarray as xr

    from .._open import open as _open
    from .read import open_store

    use_options(os.fspath(dest), storage_options)  # the store's, when it is at a URL
    src = source if isinstance(source, xr.DataArray) else _open(source)
    out = open_store(as_local(os.fspath(dest)))
    if tuple(out.dims) != tuple(src.dims) or out.shape != src.shape:
        raise VerifyError(
            f"{dest}: dims {tuple(out.dims)} shape {out.shape} differ from the source's "
            f"{tuple(src.dims)} {src.shape}"
        )
    # a sample compares single files; "all" goes a store block at a time
    src = independent_reads(_in_blocks_of(src, out) if sample == "all" else _per_file(src))
    missing = missing_chunks(as_local(os.fspath(dest)))
    blocks = list(np.ndindex(*src.data.numblocks))
    if sample == "all":
        chosen = blocks
    else:
        n = 16 if sample == "auto" else int(sample)
        rng = np.random.default_rng(seed)
        picks = rng.choice(len(blocks), size=min(n, len(blocks)), replace=False).tolist()
        chosen = [blocks[i] for i in sorted({0, len(blocks) - 1, *picks})]
    starts = [np.cumsum((0, *c)) for c in src.data.chunks]
    regions = [
        tuple(slice(int(starts[k][i]), int(starts[k][i + 1])) for k, i in enumerate(b))
        for b in chosen
    ]
    counts: list[int | str] = []
    for i in range(0, len(regions), _BATCH):  # batches keep the graph small for huge stores
        batch = regions[i : i + _BATCH]
        try:  # the blocks of a batch in parallel: one small count per block comes back
            counts += dask.compute(
                *(dask.delayed(_differing)(src.data[r], out.data[r]) for r in batch)
            )
        except Exception:  # something cannot be read: block by block, to name each region
            counts += [_one_block(src, out, r) for r in batch]
    differences = [
        f"{_region_text(src.dims, r)}: "
        + (f"{n} values differ" if isinstance(n, int) else f"cannot read ({n})")
        for r, n in zip(regions, counts)
        if n != 0
    ]
    if missing or differences:
        first = f"chunk {missing[0]} is missing" if missing else differences[0]
        raise VerifyError(
            f"{dest} differs from its source: {len(missing)} missing chunk(s), "
            f"{len(differences)} differing block(s) of {len(chosen)} checked; first: {first}"
        )
    return VerifyReport(blocks=len(blocks), checked=len(chosen), missing_chunks=[], differences=[])


def _in_blocks_of(src: Any, out: Any) -> Any:
    """The source in the store's (read) blocks where those are fewer, and the source's
    many (more than :data:`~ndstack._zarr.plan.GROUP_ABOVE`): every block of a
    store of many small files grouped into large chunks is compared once, its part of the
    source read by one task from the files (not a task per file), and no chunk is decoded
    once for every file it holds."""
    from .plan import GROUP_ABOVE
    from .sources import file_grid, regrouped

    many = math.prod(src.data.numblocks)
    if many <= GROUP_ABOVE or math.prod(out.data.numblocks) >= many:
        return src  # a few blocks: each compared alone, a difference named to the file
    blocks = {d: max(c) for d, c in zip(out.dims, out.data.chunks)}
    return src.copy(data=regrouped(src.data, src.dims, blocks, file_grid(src)))


def _per_file(src: Any) -> Any:
    """The source in blocks of one file, where it comes straight from its files (open
    reads many small files several to a block): a sample then reads a few files."""
    from .._grid import GridAxis
    from .sources import file_grid, regrouped, straight_from

    grid = file_grid(src)
    if not straight_from(src.data, grid):
        return src
    blocks = {d: 1 for d, s in zip(src.dims, grid.sources) if isinstance(s, GridAxis)}
    return src.copy(data=regrouped(src.data, src.dims, blocks, grid))


def _differing(a: np.ndarray, c: np.ndarray) -> int:
    """How many values of two blocks differ (NaN equals NaN)."""
    nan = a.dtype.kind in "fc"
    if np.array_equal(a, c, equal_nan=nan):
        return 0
    same = (a == c) | (np.isnan(a) & np.isnan(c)) if nan else a == c
    return int(a.size - np.count_nonzero(same))


def _one_block(src: Any, out: Any, region: tuple[slice, ...]) -> int | str:
    """The count of differing values, or why the block cannot be read."""
    import dask

    try:
        a, c = dask.compute(src.data[region], out.data[region])
    except Exception as exc:
        return reason(exc)
    return _differing(a, c)
