"""Open a store written by :func:`ndstack.to_zarr` (or any OME-Zarr image) as a DataArray."""

from __future__ import annotations

import contextvars
import functools
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from .._redact import reason, redact
from ..errors import (
    CorruptFileError,
    DamagedStoreError,
    NdstackError,
    ParameterError,
    StorageError,
    UnfinishedStoreError,
)
from .layout import METADATA_FILES, UNFINISHED, chunk_path, chunk_shape
from .paths import (
    as_local,
    exists,
    files_exist,
    is_storage_error,
    is_url,
    join,
    options_of,
    parent,
    read_head,
    stamp,
    tail,
    use_options,
    zarr_store,
)
from .schema import StoredAttrs

__all__ = [
    "StoredArray",
    "array_meta",
    "check_finished",
    "is_store",
    "level_paths",
    "ome_attrs",
    "open_store",
    "read_node",
    "store_levels",
]


#: metadata files larger than this are refused (real ones are kilobytes)
_MAX_METADATA_BYTES = 64 << 20


class Node(NamedTuple):
    """A Zarr node's metadata: ``kind`` ("array" or "group"), its attributes, the whole
    metadata document and the Zarr format (2 or 3)."""

    kind: str
    attrs: dict[str, Any]
    meta: dict[str, Any]
    zarr_format: int


#: the nodes read during one :func:`open_store` (a store's metadata is read by several
#: checks; on object storage each read is a request), None outside one
_NODES: contextvars.ContextVar[dict[str, Node | None] | None] = contextvars.ContextVar(
    "ndstack_nodes", default=None
)


def read_node(path: str) -> Node | None:
    """A Zarr node (read once per :func:`open_store`); see :func:`_read_node`."""
    memo = _NODES.get()
    if memo is None:
        return _read_node(path)
    if path not in memo:
        memo[path] = _read_node(path)
    return memo[path]


def _read_node(path: str) -> Node | None:
    """A Zarr node: v3 ``zarr.json`` or v2 ``.zarray``/``.zgroup`` + ``.zattrs``; None when
    ``path`` holds no Zarr node.

    Raises
    ------
    DamagedStoreError
        When a metadata file is not a JSON object, or its node type or attributes are not
        what Zarr allows; the message names the file.
    """

    def load(name: str) -> dict[str, Any] | None:
        file = join(path, name)
        try:
            raw = read_head(file, _MAX_METADATA_BYTES)
        except IsADirectoryError:
            raise DamagedStoreError(f"{file}: a folder where Zarr metadata should be") from None
        if raw is None:
            return None
        if len(raw) > _MAX_METADATA_BYTES:
            raise DamagedStoreError(
                f"{file}: {len(raw)}+ bytes of metadata, more than the "
                f"{_MAX_METADATA_BYTES} ndstack reads"
            )
        try:
            value = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            why = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            raise DamagedStoreError(f"{file}: not valid JSON ({why[:120]})") from None
        if not isinstance(value, dict):
            raise DamagedStoreError(f"{file}: expected a JSON object, found {type(value).__name__}")
        return value

    meta = load("zarr.json")
    if meta is not None:
        kind, attrs = meta.get("node_type", "group"), meta.get("attributes", {})
        where, fmt = join(path, "zarr.json"), 3
    else:
        name, meta = ".zarray", load(".zarray")
        if meta is None:
            name, meta = ".zgroup", load(".zgroup")
        if meta is None:
            return None
        kind = "array" if name == ".zarray" else "group"
        attrs, where, fmt = load(".zattrs") or {}, join(path, name), 2
    if kind not in ("array", "group"):
        raise DamagedStoreError(f"{where}: node_type {kind!r}, expected 'array' or 'group'")
    if not isinstance(attrs, dict):
        raise DamagedStoreError(f"{where}: attributes are {type(attrs).__name__}, not an object")
    return Node(kind, attrs, meta, fmt)


def ome_attrs(attrs: dict[str, Any], zarr_format: int) -> dict[str, Any]:
    """The OME-NGFF part of a group's attributes: under ``ome`` in 0.5, top level in 0.4."""
    ome = attrs.get("ome", {}) if zarr_format == 3 else attrs
    return ome if isinstance(ome, dict) else {}


def _dataset_path(value: Any, where: str) -> str:
    """A multiscales dataset path, checked: relative, inside the image, no ``..``."""
    if not isinstance(value, str) or not value:
        raise DamagedStoreError(f"{where}: a dataset path is {value!r}, expected a folder name")
    parts = value.split("/")
    if value.startswith("/") or "\\" in value or any(p in ("", ".", "..") for p in parts):
        raise DamagedStoreError(
            f"{where}: the dataset path {value!r} leaves the image (absolute or '..'); "
            "only paths inside the store are read"
        )
    return value


def _ints(value: Any, where: str, what: str, minimum: int) -> list[int]:
    ok = isinstance(value, list) and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= minimum for v in value
    )
    if not ok:
        raise DamagedStoreError(f"{where}: {what} {value!r} is not a list of integers >= {minimum}")
    return list(value)


def array_meta(path: str) -> tuple[dict[str, Any], int, list[int], list[int]]:
    """An array's metadata, format, shape and chunk (or shard) shape, checked."""
    node = read_node(path)
    if node is None or node.kind != "array":
        raise DamagedStoreError(f"{path}: expected a Zarr array here, found none")
    meta, fmt = node.meta, node.zarr_format
    where = join(path, "zarr.json" if fmt == 3 else ".zarray")
    shape = _ints(meta.get("shape"), where, "shape", 0)
    try:
        chunks = chunk_shape(meta, fmt)
    except (KeyError, TypeError):
        raise DamagedStoreError(f"{where}: no regular chunk grid") from None
    chunks = _ints(chunks, where, "chunk shape", 1)
    if len(chunks) != len(shape):
        raise DamagedStoreError(f"{where}: chunk shape {chunks} does not fit shape {shape}")
    return meta, fmt, shape, chunks


def level_paths(path: str) -> list[str]:
    """Every array a store is made of (each level of each image), checked: dataset
    paths stay inside the store and no level is larger than level 0 of its image.

    A hostile ``zarr.json`` claiming a level of 10^12 chunks is refused here, before
    anything walks its chunk names.
    """
    node = read_node(path)
    if node is None:
        raise DamagedStoreError(f"{path} holds no Zarr metadata (zarr.json, .zgroup or .zarray)")
    if node.kind == "array":
        array_meta(path)
        return [path]
    images = [path]
    ome = ome_attrs(node.attrs, node.zarr_format)
    if isinstance(ome, dict) and "multiscales" not in ome and "bioformats2raw.layout" in ome:
        count = _layout_images(path)
        images = [join(path, str(i)) for i in range(count)]
    out = []
    for image in images:
        levels = [join(image, p) for p in _multiscale_paths(image)]
        _, _, shape0, _ = array_meta(levels[0])
        for level in levels[1:]:
            _, _, shape, _ = array_meta(level)
            if len(shape) != len(shape0) or any(a > b for a, b in zip(shape, shape0)):
                raise DamagedStoreError(
                    f"{level}: shape {shape} does not fit under level 0's {shape0}"
                )
        out += levels
    return out


def _multiscale_paths(image: str) -> list[str]:
    """The dataset paths of an image group's first multiscale, checked."""
    node = read_node(image)
    if node is None:
        raise DamagedStoreError(f"{image}: an image of the store is missing")
    where = join(image, "zarr.json" if node.zarr_format == 3 else ".zattrs")
    ome = ome_attrs(node.attrs, node.zarr_format)
    try:
        datasets = ome["multiscales"][0]["datasets"]
        paths = [d["path"] for d in datasets]
    except (KeyError, IndexError, TypeError):
        raise DamagedStoreError(
            f"{where}: no OME-Zarr multiscales with datasets: an unfinished conversion? "
            "Run the same conversion again to resume it"
        ) from None
    if not paths:
        raise DamagedStoreError(f"{where}: the multiscales list no dataset")
    return [_dataset_path(p, where) for p in paths]


def stored_attrs(path: str) -> StoredAttrs | None:
    """The checked ``ndstack`` attributes of the node at ``path``, if it has any."""
    node = read_node(path)
    if node is None or "ndstack" not in node.attrs:
        return None
    where = join(path, "zarr.json" if node.zarr_format == 3 else ".zattrs")
    return StoredAttrs.from_json(node.attrs["ndstack"], where)


def _layout_images(path: str) -> int:
    """How many images a bioformats2raw layout written by ndstack holds."""
    stored = stored_attrs(path)
    if stored is None:
        raise DamagedStoreError(
            f"{join(path, 'zarr.json')}: a bioformats2raw layout without ndstack's "
            "description of its images"
        )
    return stored.n_images


def store_levels(path: str) -> int:
    """How many pyramid levels the store's images have (1 for a plain array)."""
    node = read_node(path)
    if node is None or node.kind == "array":
        return 1
    ome = ome_attrs(node.attrs, node.zarr_format)
    if isinstance(ome, dict) and "multiscales" not in ome and "bioformats2raw.layout" in ome:
        return len(_multiscale_paths(join(path, "0")))  # every image alike
    return len(_multiscale_paths(path))


def _owning_store(path: str) -> str | None:
    """The ndstack store that ``path`` lies inside (an image or a level of it), if any;
    refuses it when that store is unfinished."""
    here = path if is_url(path) else os.path.abspath(path)
    for _ in range(3):
        above = parent(here)
        if above == here:
            return None
        here = above
        if exists(join(here, UNFINISHED)):
            check_finished(here)
        try:
            node = read_node(here)
        except NdstackError:
            return None
        if node is None:
            return None
        if isinstance(node.attrs.get("ndstack"), dict):
            return here
    return None


def check_finished(path: str) -> None:
    """Refuse a store that ndstack has not finished writing."""
    if exists(join(path, UNFINISHED)):
        raise UnfinishedStoreError(
            f"{path} is an unfinished conversion (it holds {UNFINISHED}): run the same "
            "conversion again to resume it before reading it"
        )


def is_store(source: Any) -> bool:
    """Whether ``source`` is a Zarr store (v3, or v2 for NGFF 0.4): a local folder, or a
    URL (``s3://``, ``http(s)://``, ...) whose ``zarr.json`` (or v2 metadata) exists."""
    if isinstance(source, (list, tuple)):
        return False
    path = as_local(os.fspath(source))
    if is_url(path):
        if set(path) & set("*?["):
            return False
        try:
            return any(files_exist([join(path, f) for f in METADATA_FILES]))
        except Exception:  # unreachable, invalid, or no such filesystem: not a store we
            return False  # can tell; listing it as files gives the error in its own words
    return os.path.isdir(path) and any(
        os.path.isfile(os.path.join(path, f)) for f in METADATA_FILES
    )


#: Dask chunks for reading a store hold whole storage chunks up to about this many bytes
READ_CHUNK_BYTES = 32 * 2**20


def read_chunks(shape: tuple[int, ...], unit: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """Dask chunks for reading a store: whole storage units, grown to ~32 MiB.

    ``unit`` is the store's chunk (or shard) shape. Axes grow from the innermost outwards,
    each to its full length while the block stays under :data:`READ_CHUNK_BYTES`, so a
    block is a few neighbouring chunks. Zarr decodes the chunks of one read concurrently,
    and Dask runs fewer, larger tasks: summing the 5 GB D1 store (4 MiB chunks) ran at
    1.0-1.2 GB/s this way, 0.65-0.8 with one task per chunk (2 cores, bench/convert.py).
    A selection made in one step still reads only the chunks it touches.

    >>> read_chunks((200, 3, 64, 256, 256), (1, 1, 32, 256, 256), 2)
    (1, 3, 64, 256, 256)
    >>> read_chunks((10, 4096, 4096), (1, 1024, 1024), 1)
    (2, 4096, 4096)
    """
    chunks = list(unit)
    for k in reversed(range(len(shape))):
        units = math.ceil(shape[k] / unit[k])
        factor = min(units, READ_CHUNK_BYTES // (math.prod(chunks) * itemsize))
        if units == 1:
            continue
        if factor <= 1:
            break
        chunks[k] = min(shape[k], unit[k] * factor)
        if chunks[k] < shape[k]:
            break
    return tuple(chunks)


@dataclass(frozen=True, eq=False)
class StoredArray:
    """One array of a store as a picklable array-like for Dask (a path, no handle).

    Reads go through zarr. In a store ndstack wrote (``require_chunks``), every chunk
    file exists, so a missing one is damage: it raises :class:`CorruptFileError` naming
    the file instead of reading as the fill value (``on_error="fill"``: read as the fill
    value, warned about and recorded like an unreadable source file). A chunk that cannot
    be decoded raises :class:`CorruptFileError` naming the array and the region.
    """

    path: str
    shape: tuple[int, ...]
    dtype: np.dtype
    unit: tuple[int, ...]  # the shape of one chunk file (a chunk, or a shard)
    zarr_format: int
    require_chunks: bool = True
    on_error: str = "raise"
    store: str = ""  # the root of the store this array belongs to
    #: inner chunk shape of a sharded array (index at the end), or None
    inner: tuple[int, ...] | None = None
    #: the mtime (or ETag) of the array's metadata when opened: a rewritten array is
    #: opened anew
    stamp: str = ""
    #: storage options of a store at a URL (never shown, never written)
    options: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        use_options(self.path, self.options)  # where this runs: a worker, perhaps
        missing: list[str] = []  # chunk keys zarr asked for and found missing
        try:
            z = _zarr_array(self.path, self.stamp)
            if self.require_chunks:
                z = _recording(z, missing)
            plain = all(isinstance(k, (slice, int, np.integer)) for k in key)
            data = np.asarray(z[key] if plain else z.oindex[key])
        except Exception as exc:
            if is_url(self.path) and is_storage_error(exc):  # not the data: the network
                raise StorageError(
                    f"{redact(self.path)}: cannot read {_region(key)}: {reason(exc)}"
                ) from None
            raise CorruptFileError(
                f"{self.path}: cannot read {_region(key)}: {reason(exc)}"
            ) from None
        if self.require_chunks:
            self._refuse_damage(key, sorted(missing))
        return data

    def _refuse_damage(self, key: tuple[Any, ...], missing: list[str]) -> None:
        """Missing chunk files (zarr read them as the fill value) or, in a sharded array,
        inner chunks a shard's index lists as missing: raise, or record the fill."""
        if missing:
            message = (
                f"{join(self.path, missing[0])}: chunk file missing ({len(missing)} in this "
                "block); ndstack writes every chunk, so the store is damaged"
            )
        else:
            holes = [] if self.inner is None else self._shard_holes(self._chunk_ranges(key))
            if not holes:
                return
            message = (
                f"{holes[0]}: the shard lists inner chunks as missing; ndstack writes every "
                "chunk, so the store is damaged"
            )
        if self.on_error != "fill":
            raise CorruptFileError(message)
        from .._grid import record_fill

        record_fill(message)

    def _chunk_ranges(self, key: tuple[Any, ...]) -> list[Any]:
        """The chunk (or shard) indices a selection touches, per dim."""
        ranges: list[Any] = []
        for k, u, n in zip(key, self.unit, self.shape):
            if isinstance(k, slice):
                start, stop, _ = k.indices(n)
                ranges.append(range(start // u, -(-stop // u)) if stop > start else range(0))
            else:  # an integer or an index array (Dask pushes selections into the read)
                idx = np.asarray(k).ravel()
                idx = np.where(idx < 0, idx + n, idx)
                ranges.append(np.unique(idx // u).tolist())
        return ranges

    def _shard_holes(self, ranges: list[Any]) -> list[str]:
        """Shards of the block whose index lists an inner chunk inside the array as missing."""
        import itertools

        assert self.inner is not None
        out = []
        for idx in itertools.product(*ranges):
            path = chunk_path(self.path, idx, self.zarr_format)
            if shard_has_holes(path, idx, self.shape, self.unit, self.inner):
                out.append(path)
        return out


def _recording(z: Any, missing: list[str]) -> Any:
    """``z`` over the same metadata, its store wrapped to record the keys of missing
    chunks in ``missing``: no request more than the read itself (a check per chunk
    before each read doubled the requests to object storage)."""
    import zarr
    from zarr.storage import StorePath

    a = z.async_array
    store = StorePath(_recording_store()(a.store_path.store, missing), a.store_path.path)
    return zarr.Array(zarr.AsyncArray(a.metadata, store, a.config))


@functools.cache
def _recording_store() -> type:
    """The store wrapper of :func:`_recording` (made once: zarr is imported lazily)."""
    from zarr.storage import WrapperStore

    class Recording(WrapperStore):  # type: ignore[type-arg]
        def __init__(self, store: Any, missing: list[str]) -> None:
            super().__init__(store)
            self.missing = missing

        def _with_store(self, store: Any) -> Any:
            return type(self)(store, self.missing)

        async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
            value = await self._store.get(key, prototype, byte_range)
            if value is None:
                self.missing.append(key)
            return value

    return Recording


@functools.lru_cache(maxsize=64)
def _zarr_array(path: str, stamp: str) -> Any:
    """The zarr array at ``path``, opened once per process (not once per block read: that
    cost 7% of the read speed), and again when its metadata changed (``stamp``)."""
    import zarr

    return zarr.open_array(store=zarr_store(path), mode="r")


def shard_has_holes(
    path: str, idx: Sequence[int], shape: Sequence[int], unit: Sequence[int],
    inner: Sequence[int],
) -> bool:  # fmt: skip
    """Whether shard ``idx`` (of ``unit`` elements, inner chunks of ``inner``) lists an
    inner chunk inside the array (``shape``) as missing in its index (at the end of the
    file: offset and size per inner chunk, then CRC32C)."""
    counts = [u // c for u, c in zip(unit, inner)]
    present = [  # inner chunks of this shard that lie inside the array
        min(k, -(-(n - i * u) // c)) for i, u, c, k, n in zip(idx, unit, inner, counts, shape)
    ]
    n = math.prod(counts)
    try:
        raw = tail(path, 16 * n + 4)[: 16 * n]
    except FileNotFoundError:
        return True
    except OSError:
        if is_url(path):
            raise  # object storage did not answer: that is no hole
        return True
    if len(raw) != 16 * n:
        return True
    index = np.frombuffer(raw, dtype="<u8").reshape((*counts, 2))
    inside = index[tuple(slice(0, p) for p in present)]
    return bool((inside == np.uint64(2**64 - 1)).all(axis=-1).any())


def _region(key: tuple[Any, ...]) -> str:
    parts = []
    for k in key:
        if isinstance(k, slice):
            parts.append(f"{k.start or 0}:{'' if k.stop is None else k.stop}")
        else:
            parts.append(str(k))
    return "[" + ", ".join(parts) + "]"


def _from_zarr(
    path: str, storage_chunks: bool, require_chunks: bool, on_error: str, store: str
) -> Any:
    import dask.array as da
    import zarr
    from dask.base import tokenize

    _, fmt, shape, unit = array_meta(path)
    where = join(path, "zarr.json" if fmt == 3 else ".zarray")
    try:
        z = zarr.open_array(store=zarr_store(path), mode="r")
        dtype = np.dtype(z.dtype)
    except Exception as exc:
        if is_url(path) and is_storage_error(exc):
            raise StorageError(f"{redact(where)}: {reason(exc)}") from None
        raise DamagedStoreError(f"{where}: zarr cannot open the array ({reason(exc)})") from None
    unit = list(getattr(z, "shards", None) or z.chunks)
    chunks = tuple(unit) if storage_chunks else read_chunks(tuple(shape), tuple(unit),
                                                            dtype.itemsize)  # fmt: skip
    inner = tuple(z.chunks) if getattr(z, "shards", None) else None
    when = stamp(where)
    stored = StoredArray(
        path, tuple(shape), dtype, tuple(unit), fmt, require_chunks, on_error, store, inner, when,
        options_of(path),
    )  # fmt: skip
    # not on_error: like ndstack.open's, so that a run that stopped on a missing chunk
    # resumes with on_error="fill" as the same array
    where_id = path if is_url(path) else os.path.abspath(path)
    name = "ndstack-store-" + tokenize(where_id, when, chunks, require_chunks)
    empty = np.empty((0,) * len(shape), dtype=dtype)
    return da.from_array(stored, chunks=chunks, name=name, asarray=False, fancy=True,
                         meta=empty, inline_array=False)  # fmt: skip


def open_store(
    path: str, *, level: int = 0, storage_chunks: bool = False, on_error: str = "raise"
) -> Any:
    """The full-resolution array of a store, with the dims, coords and attrs it was written with.

    Dask chunks hold several neighbouring storage chunks (:func:`read_chunks`), or exactly
    one with ``storage_chunks=True`` (what napari wants: it reads whole Dask chunks).
    Every field of the store's metadata is checked before use (:func:`level_paths`); a
    store ndstack has not finished is refused; in a store ndstack wrote, a missing chunk
    file raises when read (``on_error="fill"``: read as the fill value and recorded).

    Raises
    ------
    DamagedStoreError
        When the metadata is damaged or does not describe what the store holds.
    """
    token = _NODES.set({})
    try:
        return _open_store(path, level, storage_chunks, on_error)
    except NdstackError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        node = "zarr.json" if exists(join(path, "zarr.json")) else ".zattrs"
        raise DamagedStoreError(
            f"{join(path, node)}: metadata that ndstack cannot use "
            f"({type(exc).__name__}: {reason(exc, 120)})"
        ) from None
    finally:
        _NODES.reset(token)


def _open_store(path: str, level: int, storage_chunks: bool, on_error: str) -> Any:
    import dask.array as da
    import xarray as xr

    check_finished(path)
    owner = _owning_store(path)  # a level or image opened directly: its store's rules
    arrays = level_paths(path)  # checks every level of every image first
    node = read_node(path)
    if node is None:
        raise DamagedStoreError(f"{path} holds no Zarr metadata (zarr.json, .zgroup or .zarray)")
    kind, attrs, meta, fmt = node
    nd = stored_attrs(path)
    ome = ome_attrs(attrs, fmt)
    n_levels = 1 if kind == "array" else store_levels(path)
    if not 0 <= level < n_levels:
        raise ParameterError(f"{path}: level {level} asked for, the store has {n_levels}")
    ours = nd is not None or owner is not None

    def read(array_dir: str) -> Any:
        return _from_zarr(array_dir, storage_chunks, ours, on_error, path)

    if kind == "array":
        arr = read(path)
        if nd is None:
            names = meta.get("dimension_names") or [f"dim_{i}" for i in range(arr.ndim)]
            return xr.DataArray(arr, dims=[str(n) for n in names])
        return _rebuild(arr, nd, nd.dims)
    if "multiscales" in ome:
        ms = ome["multiscales"][0]
        arr = read(join(path, _multiscale_paths(path)[level]))
        if nd is None:
            dims = [a["name"].upper() if len(a["name"]) == 1 else a["name"] for a in ms["axes"]]
            return xr.DataArray(arr, dims=dims, attrs={"source": path})
        return _rebuild(arr, nd, nd.image_dims)
    # bioformats2raw layout: one image per index of the split dims
    if nd is None:
        raise DamagedStoreError(f"{path}: a bioformats2raw layout without ndstack attributes")
    split = nd.split_dims
    sizes = [nd.shape[nd.dims.index(d)] for d in split]
    per_image = len(arrays) // max(1, nd.n_images)
    images = [read(arrays[i * per_image + level]) for i in range(nd.n_images)]
    if any(im.shape != images[0].shape or im.dtype != images[0].dtype for im in images):
        raise DamagedStoreError(f"{path}: the images of the layout differ in shape or dtype")
    stacked = da.stack(images).reshape(tuple(sizes) + images[0].shape)
    return _rebuild(stacked, nd, (*split, *nd.image_dims))


def _rebuild(arr: Any, nd: StoredAttrs, stored_dims: tuple[str, ...]) -> Any:
    import xarray as xr

    if len(stored_dims) != arr.ndim or any(  # pyramid levels are smaller in Y and X only
        arr.shape[i] != nd.shape[nd.dims.index(d)]
        for i, d in enumerate(stored_dims)
        if d not in ("Y", "X")
    ):
        raise DamagedStoreError(
            f"the ndstack attributes describe dims {nd.dims} of shape {nd.shape}; the arrays "
            f"hold {arr.shape}"
        )
    coords = {name: (c.dims, c.array(), c.attrs) for name, c in nd.coords.items()}
    out = xr.DataArray(arr, dims=stored_dims, coords=coords, attrs=nd.attrs, name=nd.name)
    return out.transpose(*nd.dims)
