"""Open a store written by :func:`ndstack.to_zarr` (or any OME-Zarr image) as a DataArray."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from .errors import NdstackError

__all__ = ["is_store", "open_store"]


def is_store(source: Any) -> bool:
    """Whether ``source`` is a local folder holding a Zarr v3 store."""
    if isinstance(source, (list, tuple)):
        return False
    path = os.fspath(source)
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, "zarr.json"))


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

    with open(os.path.join(path, "zarr.json")) as f:
        meta = json.load(f)
    attrs = meta.get("attributes", {})
    nd = attrs.get("ndstack")
    ome = attrs.get("ome", {})
    if meta.get("node_type") == "array":
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
        with open(os.path.join(path, str(i), "zarr.json")) as f:
            ms = json.load(f)["attributes"]["ome"]["multiscales"][0]
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
