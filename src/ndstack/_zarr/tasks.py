"""The write task: one Dask block in, its chunks (every level) and its done marker out.

Each chunk is encoded with Blosc through imagecodecs (which releases the GIL, so every
core compresses) and written atomically; lower pyramid levels are computed from the same
block in memory; a shard is written as one file with its index. A task first checks
that the store is still the one its run began (:func:`_check_marker`).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._grid import take_filled
from ..errors import DestinationError, NdstackError
from .files import atomic_write, atomic_write_all, read_json_object
from .layout import UNFINISHED
from .paths import is_url, use_options
from .plan import Plan


# ----------------------------------------------------------------------------- task
def _encode(plan: Plan, chunk: np.ndarray) -> bytes:
    data = np.ascontiguousarray(chunk, dtype=np.dtype(plan.dtype).newbyteorder("<"))
    if plan.codec == "none":
        return data.tobytes()
    import imagecodecs

    return imagecodecs.blosc_encode(
        data,
        plan.clevel,
        compressor=plan.codec,
        shuffle=2,  # bitshuffle
        typesize=data.dtype.itemsize,
        numthreads=1,  # Dask's threads give the parallelism; the codec releases the GIL
    )


def _downsample(block: np.ndarray, y: int, x: int) -> np.ndarray:
    """2x2 mean over Y and X; an odd edge repeats its last row or column."""
    b = block.astype(np.float32)
    for ax in (y, x):
        if b.shape[ax] % 2:
            last = np.take(b, [-1], axis=ax)
            b = np.concatenate([b, last], axis=ax)
        shape = list(b.shape)
        shape[ax : ax + 1] = [shape[ax] // 2, 2]
        b = b.reshape(shape).mean(axis=ax + 1)
    if np.dtype(block.dtype).kind in "iub":
        info = np.iinfo(block.dtype) if block.dtype.kind != "b" else None
        b = np.rint(b)
        if info is not None:
            b = np.clip(b, info.min, info.max)
    return b.astype(block.dtype)


_MISSING = np.uint64(2**64 - 1)


def _write_shard(
    plan: Plan, image: int, level: int, block: np.ndarray, offset: Sequence[int]
) -> int:
    """Write ``block`` (one whole shard) as a Zarr v3 ``sharding_indexed`` object.

    Inner chunks are concatenated in C order, then the index of (offset, nbytes) per inner
    chunk, little-endian uint64, with its CRC32C (zarr's default index codecs), at the end.
    """
    import google_crc32c

    lv = plan.levels[level]
    assert lv.shard is not None
    counts = [s // c for s, c in zip(lv.shard, lv.chunks)]
    index = np.full((*counts, 2), _MISSING, dtype="<u8")
    parts: list[bytes] = []
    pos = 0
    for rel in np.ndindex(*counts):
        start = [r * c for r, c in zip(rel, lv.chunks)]
        if any(st >= n for st, n in zip(start, block.shape)):
            continue  # beyond the array's edge: stays missing
        sl = tuple(slice(st, min(st + c, n)) for st, c, n in zip(start, lv.chunks, block.shape))
        payload = _encode(plan, _padded(block[sl], lv.chunks, plan.fill_value))
        index[rel] = (pos, len(payload))
        parts.append(payload)
        pos += len(payload)
    raw_index = index.tobytes()
    crc = google_crc32c.value(raw_index).to_bytes(4, "little")
    shard_idx = [o // s for o, s in zip(offset, lv.shard)]
    path = plan.chunk_path(image, level, shard_idx)
    atomic_write(path, b"".join(parts) + raw_index + crc)
    return pos + len(raw_index) + 4


def _padded(part: np.ndarray, shape: tuple[int, ...], fill: Any) -> np.ndarray:
    """Edge chunks are stored at full size, padded with the fill value."""
    if part.shape == shape:
        return part
    full = np.full(shape, fill, dtype=part.dtype)
    full[tuple(slice(0, n) for n in part.shape)] = part
    return full


def _write_level(
    plan: Plan, image: int, level: int, block: np.ndarray, offset: Sequence[int]
) -> int:
    lv = plan.levels[level]
    if lv.shard is not None:
        return _write_shard(plan, image, level, block, offset)
    first = [o // c for o, c in zip(offset, lv.chunks)]
    counts = [math.ceil(n / c) for n, c in zip(block.shape, lv.chunks)]
    written = 0
    batch: list[tuple[str, bytes]] = []  # on object storage: PUT together, not one by one
    remote = is_url(plan.dest)
    for rel in np.ndindex(*counts):
        idx = [f + r for f, r in zip(first, rel)]
        sl = tuple(
            slice(r * c, min((r + 1) * c, n)) for r, c, n in zip(rel, lv.chunks, block.shape)
        )
        payload = _encode(plan, _padded(block[sl], lv.chunks, plan.fill_value))
        written += len(payload)
        if remote:
            batch.append((plan.chunk_path(image, level, idx), payload))
        else:
            atomic_write(plan.chunk_path(image, level, idx), payload)
    atomic_write_all(batch)
    return written


def _marker_name(idx: tuple[int, ...], n_split: int, split_shape: tuple[int, ...]) -> str:
    image = int(np.ravel_multi_index(idx[:n_split], split_shape)) if n_split else 0
    return f"{image}-" + "-".join(map(str, idx[n_split:]))


def _write_mapped(
    block: np.ndarray,
    *,
    plan: Plan,
    split_shape: tuple[int, ...],
    done_dir: str,
    block_info: Any = None,
) -> np.ndarray:
    """``map_blocks`` adapter: where the block lies, then :func:`_write_block`."""
    info = block_info[0]
    idx = tuple(info["chunk-location"])
    n = plan.n_split
    image = int(np.ravel_multi_index(idx[:n], split_shape)) if n else 0
    offset = tuple(int(start) for start, _ in info["array-location"][n:])
    marker = os.path.join(done_dir, _marker_name(idx, n, split_shape))
    _, out = _write_block(block, plan, image, offset, marker, take_filled())
    return np.full((1,) * block.ndim, out, dtype=np.int64)


#: on object storage, the check before a task writes its chunks is skipped when this
#: process saw the marker within this many seconds: another run can replace the store
#: only after this run's lock went stale (5 minutes untouched), and a GET per check cost a
#: tenth of the throughput (bench/cloud.py). The check before the done marker is always made.
_RECHECK_SECONDS = 2.0
_checked: dict[tuple[str, str], float] = {}


def _now() -> float:
    """Seconds of a clock that goes on while the machine sleeps (a suspended laptop must
    not come back believing its last check was a moment ago)."""
    try:
        return time.clock_gettime(time.CLOCK_BOOTTIME)
    except (AttributeError, OSError):
        return time.time()


def _check_marker(plan: Plan, *, recent_is_enough: bool = False) -> None:
    """Stop a task whose store was replaced by another run since its own run began.

    Object storage that cannot be reached raises :class:`~ndstack.errors.StorageError`
    (the run stops and resumes later), never "replaced"."""
    if plan.store_id is None:
        return
    key = (plan.dest, plan.store_id)
    remote = is_url(plan.dest)
    if remote and recent_is_enough and _now() - _checked.get(key, -1e18) < _RECHECK_SECONDS:
        return
    try:
        same = read_json_object(os.path.join(plan.dest, UNFINISHED)).get("store") == plan.store_id
    except NdstackError:
        raise
    except (OSError, ValueError):
        same = False
    if same and remote:
        _checked[key] = _now()
    if not same:
        raise DestinationError(
            f"{plan.dest} is no longer the store this task was started for (another run "
            "replaced or completed it); the task wrote nothing more"
        )


def _write_block(
    block: np.ndarray,
    plan: Plan,
    image: int,
    offset: tuple[int, ...],
    marker: str,
    filled: Sequence[str] = (),
) -> tuple[int, int]:
    """Write one block at all levels, then its marker (with the files filled while reading
    the block). Returns (bytes in, bytes out)."""
    use_options(plan.dest, plan.options)  # where this runs: a worker, perhaps
    _check_marker(plan, recent_is_enough=True)
    block = block.reshape(block.shape[plan.n_split :])
    out = _write_level(plan, image, 0, block, offset)
    current, off = block, list(offset)
    for level in range(1, len(plan.levels)):
        assert plan.y_axis is not None and plan.x_axis is not None
        current = _downsample(current, plan.y_axis, plan.x_axis)
        off[plan.y_axis] //= 2
        off[plan.x_axis] //= 2
        out += _write_level(plan, image, level, current, off)
    _check_marker(plan)  # again before the done marker: never record a block for another store
    record: dict[str, Any] = {"in": int(block.nbytes), "out": out}
    if filled:
        record["filled"] = list(filled)
    atomic_write(marker, json.dumps(record).encode())
    return int(block.nbytes), out
