"""Planning a store: Zarr chunks, shards, pyramid levels, image paths (pure, no I/O).

:class:`Plan` is everything a write task needs: picklable, no open handles. It is made
once per conversion by :func:`make_plan` and travels in every task.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import numpy as np

from .._ngff import ImagePlan
from .._util import grown
from .layout import METADATA_FILES, chunk_path

#: Store layouts: OME-Zarr 0.5 (Zarr v3), OME-Zarr 0.4 (Zarr v2), one plain Zarr v3 array.
Format = Literal["ome-zarr", "ome-zarr-0.4", "zarr"]
#: Blosc compressors (with bit-shuffle), or none.
Codec = Literal["zstd", "lz4", "lz4hc", "zlib", "blosclz", "none"]
FORMATS: tuple[str, ...] = get_args(Format)
CODECS: tuple[str, ...] = get_args(Codec)
#: Blosc's compression levels
BLOSC_LEVELS = range(0, 10)


def check_codec(format: Any, codec: Any, clevel: Any, sharded: bool, *, flag: str = "") -> None:
    """The format and codec options together: one check for ``to_zarr`` and the command
    line, whose messages name the options as typed (``flag="--"``)."""
    from ..errors import ParameterError

    if format not in FORMATS:
        raise ParameterError(f"{flag}format must be one of {', '.join(FORMATS)}, not {format!r}")
    if codec not in CODECS:
        raise ParameterError(f"{flag}codec must be one of {', '.join(CODECS)}, not {codec!r}")
    whole = isinstance(clevel, (int, np.integer)) and not isinstance(clevel, bool)
    if codec != "none" and not (whole and clevel in BLOSC_LEVELS):
        raise ParameterError(
            f"{flag}clevel {clevel!r}: the {codec} codec takes levels "
            f"{BLOSC_LEVELS.start} to {BLOSC_LEVELS.stop - 1}"
        )
    if sharded and format == "ome-zarr-0.4":
        raise ParameterError(
            f"{flag}shards need Zarr v3, and {flag}format ome-zarr-0.4 is Zarr v2 (no "
            f"sharding): use {flag}format ome-zarr, or leave out {flag}shards"
        )


TARGET_CHUNK_BYTES = 4 << 20


PYRAMID_PLANE = 512


@dataclass(frozen=True)
class Level:
    path: str  # array path inside the store ("" for a root array)
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    shard: tuple[int, ...] | None = None  # shard shape (a multiple of chunks), or None


@dataclass(frozen=True)
class Plan:
    """Everything a write task needs: picklable, no open handles."""

    dest: str
    dtype: str
    codec: str
    clevel: int
    fill_value: Any
    image_paths: tuple[str, ...]
    levels: tuple[Level, ...]  # per level, relative to each image path
    y_axis: int | None  # positions of Y and X in the image dims (None: no pyramid)
    x_axis: int | None
    n_split: int = 0  # leading dims of each block that index the image (length 1 each)
    zarr_format: int = 3  # 2 for OME-NGFF 0.4
    #: the id of the store this run writes (its unfinished marker holds it): a task checks
    #: it before writing, so a task left running by a run that failed or lost its lock
    #: never writes into a store that another run has replaced since
    store_id: str | None = None
    #: storage options of a URL destination (credentials perhaps): they travel with the
    #: tasks to wherever they run, and are never shown (repr) nor written anywhere
    options: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def array_dir(self, image: int, level: int) -> str:
        parts = [self.dest, self.image_paths[image], self.levels[level].path]
        return os.path.join(*[p for p in parts if p])

    def chunk_path(self, image: int, level: int, idx: Sequence[int]) -> str:
        return chunk_path(self.array_dir(image, level), idx, self.zarr_format)


# ----------------------------------------------------------------------------- planning
def _regular(chunks: tuple[int, ...]) -> bool:
    return len(chunks) <= 1 or (len(set(chunks[:-1])) == 1 and chunks[-1] <= chunks[0])


def _zarr_chunks(
    dims: Sequence[str], block: Sequence[int], itemsize: int, user: Mapping[str, int]
) -> list[int]:
    """Zarr chunk per dim: a divisor of the Dask block, a few MB, whole planes first."""
    out = []
    for d, b in zip(dims, block):
        if d in user:
            out.append(min(int(user[d]), b))
        elif d in ("Z", "Y", "X"):
            out.append(b)
        else:
            out.append(1)
    for d in ("Z", "Y", "X"):  # halve Z first (planes stay whole), then Y, then X
        if d not in dims or d in user:
            continue
        i = list(dims).index(d)
        while math.prod(out) * itemsize > TARGET_CHUNK_BYTES and out[i] % 2 == 0 and out[i] > 1:
            out[i] //= 2
    return out


def _growth_order(dims: Sequence[str]) -> list[str]:
    """The dims chunks and shards grow along: Z, then T, then the others from the
    innermost out (never Y or X).

    >>> _growth_order("PTCZYX")
    ['Z', 'T', 'C', 'P']
    """
    rest = [d for d in reversed(dims) if d not in ("Z", "T", "Y", "X")]
    return [d for d in ("Z", "T") if d in dims] + rest


#: small chunks grow (several planes a chunk) only when there would be more than this many
GROUP_ABOVE = 256


def _grown_chunks(
    dims: Sequence[str],
    zchunks: Sequence[int],
    shape: Sequence[int],
    itemsize: int,
    user: Mapping[str, int],
    blocks: Sequence[int] | None = None,
) -> list[int]:
    """Small chunks grown to span several planes (files): Z first, then T, then the other
    dims from the innermost out, to about :data:`TARGET_CHUNK_BYTES`.

    A dataset of many small planes (16 x 16 pixels, say) would otherwise become one chunk
    file (and one write task) per plane. Chunks grow only when there would be more than
    :data:`GROUP_ABOVE` of them (a few are cheap, and keep a small store's tasks in
    parallel), or when the source's ``blocks`` already hold several along a dim (many
    small files opened several to a block). A dim grows only once the dims before it are
    whole, and only while a chunk is under half the target; its length is balanced so
    that the chunks along it are about equal. Dims the user chunked keep their size, and
    one they cut short stops the growth. Y and X never grow (the pyramid's tasks rely on
    them).

    >>> _grown_chunks("TCZYX", [1, 1, 1, 16, 16], [1000, 2, 50, 16, 16], 2, {})
    [143, 1, 50, 16, 16]
    >>> _grown_chunks("TZYX", [1, 32, 256, 256], [600, 64, 256, 256], 2, {})
    [1, 32, 256, 256]
    """
    out = list(zchunks)
    count = math.prod(math.ceil(n / c) for n, c in zip(shape, out))
    grouped = blocks is not None and any(
        b > c for d, b, c in zip(dims, blocks, out) if d not in ("Y", "X") and d not in user
    )
    if math.prod(out) * itemsize * 2 > TARGET_CHUNK_BYTES or (count <= GROUP_ABOVE and not grouped):
        return out
    order: list[int] = []
    for d in _growth_order(dims):
        i = list(dims).index(d)
        if d not in user:
            order.append(i)
        elif out[i] < shape[i]:
            break  # a dim the user cut short: the chunk grows no further
    return grown(out, shape, order, itemsize, TARGET_CHUNK_BYTES)


#: past this many chunks a store is sharded by default (Zarr v3): one file per shard
SHARD_ABOVE = 10_000
#: default shards grow to about this many bytes (one write task holds one shard)
SHARD_BYTES = 64 << 20


def _default_shards(
    dims: Sequence[str],
    zchunks: Sequence[int],
    shape: Sequence[int],
    itemsize: int,
    images: int = 1,
) -> dict[str, int]:
    """Shards for a store of very many chunks: whole planes (Y and X at their full length:
    a shard that cut a plane into parts would cut the pyramid's levels short), grown
    along Z, then T, then the other dims, to about :data:`SHARD_BYTES`. ``{}`` for a
    store of at most :data:`SHARD_ABOVE` chunks over its ``images`` (which keeps one file
    per chunk), or one whose plane alone is larger than a shard.

    >>> _default_shards("TZYX", [1, 1, 16, 16], [100000, 1, 16, 16], 2)
    {'T': 100000}
    >>> _default_shards("TCZYX", [1, 1, 32, 256, 256], [5000, 3, 64, 256, 256], 2)
    {'T': 8, 'Z': 64}
    >>> _default_shards("TZYX", [1, 32, 256, 256], [600, 64, 256, 256], 2)
    {}
    >>> _default_shards("ZYX", [1, 64, 64], [44, 1024, 1024], 2)  # whole planes
    {'Z': 32, 'Y': 1024, 'X': 1024}
    >>> _default_shards("ZYX", [1, 64, 64], [44, 8192, 8192], 2)  # a plane is 128 MiB
    {}
    """
    counts = [math.ceil(n / c) for n, c in zip(shape, zchunks)]
    if math.prod(counts) * images <= SHARD_ABOVE:
        return {}
    out = list(zchunks)
    for d in ("Y", "X"):
        if d in dims:
            i = list(dims).index(d)
            out[i] = counts[i] * zchunks[i]  # the whole length, in whole chunks
    if math.prod(out) * itemsize > SHARD_BYTES:
        return {}
    for d in _growth_order(dims):
        i = list(dims).index(d)
        room = SHARD_BYTES // (math.prod(out) // out[i] * itemsize)  # elements along d
        whole = max(1, room // zchunks[i]) * zchunks[i]  # a whole number of chunks
        if whole <= out[i]:
            break
        out[i] = min(whole, counts[i] * zchunks[i])
        if out[i] < shape[i]:
            break
    return {d: o for d, o, c in zip(dims, out, zchunks) if o != c}


def _auto_levels(shape_y: int, shape_x: int) -> int:
    n = 1
    while max(shape_y, shape_x) / 2 ** (n - 1) > PYRAMID_PLANE:
        n += 1
    return n


def _fits_levels(dim: int, block: int, levels: int) -> bool:
    """Each task can downsample its own block when it spans the dim or aligns."""
    return block >= dim or block % 2 ** (levels - 1) == 0


def _owned_entries(plan: Plan) -> list[str]:
    """The top-level entries of the store that this conversion writes (all it may delete)."""
    names = set(METADATA_FILES)
    for image in plan.image_paths:
        for lv in plan.levels:
            rel = "/".join(p for p in (image, lv.path) if p)
            names.add(rel.split("/")[0] if rel else ("c" if plan.zarr_format == 3 else ""))
    return sorted(n for n in names if n)


def _aligned(
    data: Any, dims: Sequence[str], user: dict[str, int], n_split: int, rechunk: Any = None
) -> Any:
    """A Dask array whose blocks are regular and hold whole Zarr chunks (made by
    ``rechunk(data, blocks)``, Dask's rechunk by default)."""
    import dask.array as da

    if not isinstance(data, da.Array):
        data = da.from_array(data)
    new = []
    changed = False
    for i, (d, c) in enumerate(zip(dims, data.chunks)):
        size = c[0]
        if i < n_split:
            size = 1
        elif d in user and size % int(user[d]):
            size = int(user[d]) * max(1, size // int(user[d]))
        elif not _regular(c):
            size = max(c)
        new.append(size)
        changed |= size != c[0] or not _regular(c)
    if not changed:
        return data
    return rechunk(data, tuple(new)) if rechunk is not None else data.rechunk(tuple(new))


def _shard_blocks(
    data: Any,
    dims: Sequence[str],
    zchunks: Sequence[int],
    shards: dict[str, int],
    n_split: int,
    rechunk: Any = None,
) -> tuple[Any, Any]:
    """Rechunk so that each Dask block is one shard: a whole number of Zarr chunks."""
    unknown = set(shards) - set(dims[n_split:])
    if unknown:
        # reachable for dims that split the data into images (write._check_options
        # checked that every named dim exists)
        raise ValueError(f"shards name unknown dims {sorted(unknown)}; dims are {list(dims)}")
    new = [1] * n_split
    for j, d in enumerate(dims[n_split:]):
        c = zchunks[j]
        new.append(-(-int(shards[d]) // c) * c if d in shards else data.chunks[n_split + j][0])
    if tuple(new) != tuple(c[0] for c in data.chunks) or any(not _regular(c) for c in data.chunks):
        data = rechunk(data, tuple(new)) if rechunk is not None else data.rechunk(tuple(new))
    return data, data.chunks[n_split:]


def _choose_levels(
    format: str, levels: int | str, plan: ImagePlan, shape: Sequence[int], blocks: Any
) -> int:
    if format == "zarr" or "Y" not in plan.image_dims:
        return 1
    y, x = plan.image_dims.index("Y"), plan.image_dims.index("X")
    n = _auto_levels(shape[y], shape[x]) if levels == "auto" else int(levels)
    while n > 1 and not (
        _fits_levels(shape[y], blocks[y][0], n) and _fits_levels(shape[x], blocks[x][0], n)
    ):
        n -= 1
    return n


def make_plan(
    *,
    dest: str,
    format: str,
    plan_img: ImagePlan,
    shape: Sequence[int],
    blocks: Any,
    zchunks: Sequence[int],
    n_levels: int,
    dtype: np.dtype,
    codec: str,
    clevel: int,
    arr: Any,
    sharded: bool = False,
) -> Plan:
    """The plan of a conversion: every level's shape, chunks and shards per image.

    ``shape`` and ``blocks`` are the image's (without the split dims), ``zchunks`` the Zarr
    chunks of level 0; lower levels halve Y and X and keep chunks that tile each task's
    block, so that every task writes its own chunks at every level.
    """
    n_images = (
        int(np.prod([arr.sizes[d] for d in plan_img.split_dims])) if plan_img.split_dims else 1
    )
    image_paths = tuple(str(i) for i in range(n_images)) if plan_img.split_dims else ("",)
    y = plan_img.image_dims.index("Y") if n_levels > 1 else None
    x = plan_img.image_dims.index("X") if n_levels > 1 else None
    levels = []
    for k in range(n_levels):
        lshape, lchunks = list(shape), list(zchunks)
        for ax in (y, x):
            if ax is None or k == 0:
                continue
            lshape[ax] = math.ceil(shape[ax] / 2**k)
            block = blocks[ax][0]
            if block >= shape[ax]:
                lchunks[ax] = min(zchunks[ax], lshape[ax])
            else:
                lchunks[ax] = math.gcd(max(1, zchunks[ax] >> k), block >> k)
        shard = None
        if sharded:  # one shard per task: the task's region at this level
            region = []
            for ax, (n, c) in enumerate(zip(lshape, lchunks)):
                b = (
                    blocks[ax][0]
                    if ax not in (y, x)
                    else (n if blocks[ax][0] >= shape[ax] else blocks[ax][0] >> k)
                )
                region.append(-(-b // c) * c)  # a whole number of inner chunks
            shard = tuple(region)
        path = "" if format == "zarr" else str(k)
        levels.append(Level(path, tuple(lshape), tuple(lchunks), shard))
    fill = arr.attrs.get("fill_value", 0)
    return Plan(
        dest=dest,
        dtype=dtype.name,
        codec=codec,
        clevel=int(clevel),
        fill_value=fill if np.isscalar(fill) else 0,
        image_paths=image_paths,
        levels=tuple(levels),
        y_axis=y,
        x_axis=x,
        n_split=len(plan_img.split_dims),
        zarr_format=2 if format == "ome-zarr-0.4" else 3,
    )
