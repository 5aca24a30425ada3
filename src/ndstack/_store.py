"""Open a store written by :func:`ndstack.to_zarr` (or any OME-Zarr image) as a DataArray."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from .errors import NdstackError

__all__ = [
    "chunk_path",
    "chunk_shape",
    "is_store",
    "ome_attrs",
    "open_store",
    "read_node",
    "store_levels",
]


_V2_FILES = (".zgroup", ".zarray", ".zattrs")


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
        os.path.isfile(os.path.join(path, f)) for f in ("zarr.json", *_V2_FILES)
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


def open_store(path: str, *, level: int = 0) -> Any:
    """The full-resolution array of a store, with the dims, coords and attrs it was written with."""
    import dask.array as da
    import xarray as xr
    import zarr

    node = read_node(path)
    if node is None:
        raise NdstackError(f"{path} holds no Zarr metadata (zarr.json, .zgroup or .zarray)")
    kind, attrs, meta, fmt = node
    nd = attrs.get("ndstack")
    ome = ome_attrs(attrs, fmt)
    if kind == "array":
        arr = da.from_zarr(zarr.open_array(path, mode="r"))
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
        arr = da.from_zarr(
            zarr.open_array(os.path.join(path, ms["datasets"][level]["path"]), mode="r")
        )
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
        images.append(
            da.from_zarr(
                zarr.open_array(os.path.join(path, str(i), ms["datasets"][level]["path"]), mode="r")
            )
        )
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
