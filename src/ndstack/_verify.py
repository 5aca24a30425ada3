"""Compare a store with its source: chunk by chunk, every level's chunk files present."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from ._store import chunk_path, chunk_shape, read_node
from .errors import VerifyError

__all__ = ["verify"]

#: blocks compared per Dask computation
_BATCH = 256


def _arrays(dest: str) -> list[tuple[str, dict[str, Any], int]]:
    """Every array of the store: (folder, metadata, Zarr format)."""
    out = []
    for root, dirs, _ in os.walk(dest):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "c"]
        node = read_node(root)
        if node is not None and node[0] == "array":
            out.append((root, node[2], node[3]))
            dirs[:] = []  # below an array: only chunks
    return sorted(out)


def missing_chunks(dest: str) -> list[str]:
    """Chunk files that every array of the store should have and does not.

    ndstack writes every chunk (fill-valued ones too), so a missing file is damage: zarr
    would read it back silently as the fill value.
    """
    missing = []
    for root, meta, fmt in _arrays(dest):
        shape = meta["shape"]
        chunks = chunk_shape(meta, fmt)
        counts = [math.ceil(s / c) for s, c in zip(shape, chunks)]
        for idx in np.ndindex(*counts):
            path = chunk_path(root, idx, fmt)
            if not os.path.isfile(path):
                missing.append(os.path.relpath(path, dest))
    return missing


def _region_text(dims: tuple[str, ...], region: tuple[slice, ...]) -> str:
    return ", ".join(
        f"{d}={s.start}" if s.stop - s.start == 1 else f"{d}={s.start}:{s.stop}"
        for d, s in zip(dims, region)
    )


def verify(source: Any, dest: str, *, sample: str | int = "auto", seed: int = 0) -> dict[str, Any]:
    """Re-read blocks from both sides and compare them; check that no chunk is missing.

    Parameters
    ----------
    source
        The source: a DataArray, or anything :func:`ndstack.open` takes.
    dest
        The store written by :func:`ndstack.to_zarr`.
    sample
        ``"auto"``: the first, the last and 16 random source blocks; ``"all"``: every
        block; an integer: that many random blocks besides the first and the last.

    Returns
    -------
    dict
        ``blocks``, ``checked``, ``missing_chunks`` and ``differences`` (empty when equal).

    Raises
    ------
    VerifyError
        When a chunk is missing, cannot be decoded, or differs; names the region.
    """
    import dask
    import xarray as xr

    from ._open import open as _open
    from ._store import open_store

    src = source if isinstance(source, xr.DataArray) else _open(source)
    out = open_store(os.fspath(dest))
    if tuple(out.dims) != tuple(src.dims) or out.shape != src.shape:
        raise VerifyError(
            f"{dest}: dims {tuple(out.dims)} shape {out.shape} differ from the source's "
            f"{tuple(src.dims)} {src.shape}"
        )
    missing = missing_chunks(os.fspath(dest))
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
    report = {
        "blocks": len(blocks),
        "checked": len(chosen),
        "missing_chunks": missing,
        "differences": differences,
    }
    if missing or differences:
        first = f"chunk {missing[0]} is missing" if missing else differences[0]
        raise VerifyError(
            f"{dest} differs from its source: {len(missing)} missing chunk(s), "
            f"{len(differences)} differing block(s) of {len(chosen)} checked; first: {first}"
        )
    return report


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
        return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
    return _differing(a, c)
