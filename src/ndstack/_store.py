"""Open a store written by :func:`ndstack.to_zarr` (or any OME-Zarr image) as a DataArray."""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

from .errors import NdstackError

__all__ = [
    "METADATA_FILES",
    "chunk_path",
    "chunk_shape",
    "is_store",
    "ome_attrs",
    "open_store",
    "read_node",
    "store_levels",
]


#: the files that hold a Zarr node's metadata: v3, then v2
METADATA_FILES = ("zarr.json", ".zgroup", ".zarray", ".zattrs")


def read_node(path: str) -> tuple[str, dict[str, Any], dict[str, Any], int] | None:
    """A Zarr node's (type, attributes, metadata, format): v3 ``zarr.json`` or v2
    ``.zarray``/``.zgroup`` + ``.zattrs``. None when ``path`` holds no Zarr node."""

    def load(name: str) -> dict[str, Any] | None:
        try:
            with open(os.path.join(path, name)) as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    meta = load("zarr.json")
    if meta is not None:
        return meta.get("node_type", "group"), meta.get("attributes", {}), meta, 3
    for name, kind in ((".zarray", "array"), (".zgroup", "group")):
        meta = load(name)
        if meta is not None:
            return kind, load(".zattrs") or {}, meta, 2
    return None


def ome_attrs(attrs: dict[str, Any], zarr_format: int) -> dict[str, Any]:
    """The OME-NGFF part of a group's attributes: under ``ome`` in 0.5, top level in 0.4."""
    return attrs.get("ome", {}) if zarr_format == 3 else attrs


def chunk_shape(meta: dict[str, Any], zarr_format: int) -> list[int]:
    return (
        meta["chunk_grid"]["configuration"]["chunk_shape"] if zarr_format == 3 else meta["chunks"]
    )


def chunk_path(array_dir: str, idx: Any, zarr_format: int) -> str:
    """Where a chunk lives: ``c/0/1/2`` in Zarr v3, ``0/1/2`` in v2 with "/" separators."""
    return os.path.join(array_dir, *(("c",) if zarr_format == 3 else ()), *map(str, idx))


def store_levels(path: str) -> int:
    """How many pyramid levels the store's images have (1 for a plain array)."""
    node = read_node(path)
    if node is None or node[0] == "array":
        return 1
    ome = ome_attrs(node[1], node[3])
    if "multiscales" not in ome and "bioformats2raw.layout" in ome:
        node = read_node(os.path.join(path, "0"))  # every image has the same levels
        ome = ome_attrs(node[1], node[3]) if node is not None else {}
    return len(ome["multiscales"][0]["datasets"]) if "multiscales" in ome else 1


def is_store(source: Any) -> bool:
    """Whether ``source`` is a local folder holding a Zarr store (v3, or v2 for NGFF 0.4)."""
    if isinstance(source, (list, tuple)):
        return False
    path = os.fspath(source)
    return os.path.isdir(path) and any(
        os.path.isfile(os.path.join(path, f)) for f in METADATA_FILES
    )


def _coord_values(c: dict[str, Any]) -> np.ndarray:
    kind = c.get("kind")
    values = c["values"]
    if kind == "str":
        return np.asarray(values, dtype=str)
    if kind == "float":
        return np.asarray([np.nan if v is None else v for v in np.ravel(values).tolist()],
                          dtype=float).reshape(np.shape(values))  # fmt: skip
    return np.asarray(values, dtype=np.int64)


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


def _from_zarr(path: str, storage_chunks: bool) -> Any:
    import dask.array as da
    import zarr

    z = zarr.open_array(path, mode="r")
    unit = tuple(getattr(z, "shards", None) or z.chunks)
    chunks = unit if storage_chunks else read_chunks(z.shape, unit, z.dtype.itemsize)
    return da.from_zarr(z, chunks=chunks)


def open_store(path: str, *, level: int = 0, storage_chunks: bool = False) -> Any:
    """The full-resolution array of a store, with the dims, coords and attrs it was written with.

    Dask chunks hold several neighbouring storage chunks (:func:`read_chunks`), or exactly
    one with ``storage_chunks=True`` (what napari wants: it reads whole Dask chunks).
    """
    import dask.array as da
    import xarray as xr

    node = read_node(path)
    if node is None:
        raise NdstackError(f"{path} holds no Zarr metadata (zarr.json, .zgroup or .zarray)")
    kind, attrs, meta, fmt = node
    nd = attrs.get("ndstack")
    ome = ome_attrs(attrs, fmt)
    if kind == "array":
        arr = _from_zarr(path, storage_chunks)
        if nd is None:
            names = meta.get("dimension_names") or [f"dim_{i}" for i in range(arr.ndim)]
            return xr.DataArray(arr, dims=[str(n) for n in names])
        return _rebuild(arr, nd, nd["dims"])
    if "multiscales" not in ome and "bioformats2raw.layout" not in ome:
        raise NdstackError(
            f"{path} is a Zarr group without OME-Zarr metadata: an unfinished conversion? "
            "Run the same conversion again to resume it"
        )
    if "multiscales" in ome:
        ms = ome["multiscales"][0]
        arr = _from_zarr(os.path.join(path, ms["datasets"][level]["path"]), storage_chunks)
        if nd is None:
            dims = [a["name"].upper() if len(a["name"]) == 1 else a["name"] for a in ms["axes"]]
            return xr.DataArray(arr, dims=dims, attrs={"source": path})
        return _rebuild(arr, nd, nd["image_dims"])
    # bioformats2raw layout: one image per index of the split dims
    assert nd is not None, f"{path}: bioformats2raw layout without ndstack metadata"
    split = nd["split_dims"]
    sizes = [nd["shape"][nd["dims"].index(d)] for d in split]
    images = []
    for i in range(int(np.prod(sizes))):
        image = read_node(os.path.join(path, str(i)))
        if image is None:
            raise NdstackError(f"{path}: image {i} of the bioformats2raw layout is missing")
        ms = ome_attrs(image[1], image[3])["multiscales"][0]
        level_path = os.path.join(path, str(i), ms["datasets"][level]["path"])
        images.append(_from_zarr(level_path, storage_chunks))
    stacked = da.stack(images).reshape(tuple(sizes) + images[0].shape)
    return _rebuild(stacked, nd, list(split) + nd["image_dims"])


def _rebuild(arr: Any, nd: dict[str, Any], stored_dims: list[str]) -> Any:
    import xarray as xr

    coords = {}
    for name, c in nd.get("coords", {}).items():
        coords[name] = (tuple(c["dims"]), _coord_values(c), c.get("attrs", {}))
    out = xr.DataArray(
        arr, dims=stored_dims, coords=coords, attrs=nd.get("attrs", {}), name=nd.get("name")
    )
    return out.transpose(*nd["dims"])
