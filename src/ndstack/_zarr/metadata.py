"""Zarr arrays and OME-Zarr metadata of a store: created first, completed last."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

from .._ngff import (
    NGFF_VERSION,
    ImagePlan,
    axes_metadata,
    channel_colors,
    channel_labels,
    level_scale,
)
from .._util import version
from .paths import zarr_store
from .read import read_node
from .schema import StoredAttrs, StoredCoord

if TYPE_CHECKING:
    from .plan import Plan

__all__ = ["_create_arrays", "_write_metadata", "origin"]


def _create_arrays(plan: Plan, plan_img: ImagePlan) -> None:
    """Each level's array metadata (chunks are written by the tasks, not by zarr).

    Zarr v3: Blosc after the little-endian bytes codec, dimension names. Zarr v2 (NGFF
    0.4): the same Blosc bytes as the v2 ``compressor``, "/" chunk-key separators.
    """
    import zarr

    v2 = plan.zarr_format == 2
    compressors: Any = None
    if plan.codec != "none" and v2:
        from numcodecs import Blosc

        compressors = Blosc(cname=plan.codec, clevel=plan.clevel, shuffle=Blosc.BITSHUFFLE)
    elif plan.codec != "none":
        compressors = [
            zarr.codecs.BloscCodec(cname=plan.codec, clevel=plan.clevel, shuffle="bitshuffle")
        ]
    names = [d.lower() if d in ("T", "C", "Z", "Y", "X") else d for d in plan_img.image_dims]
    for img in range(len(plan.image_paths)):
        for level, lv in enumerate(plan.levels):
            if read_node(plan.array_dir(img, level)) is not None:
                continue
            name = "/".join(p for p in (plan.image_paths[img], lv.path) if p) or None
            by_format: dict[str, Any] = (
                {"chunk_key_encoding": {"name": "v2", "separator": "/"}}
                if v2
                else {"dimension_names": names, "shards": lv.shard}
            )
            zarr.create_array(
                store=zarr_store(plan.dest, read_only=False),
                name=name,
                shape=lv.shape,
                chunks=lv.chunks,
                dtype=np.dtype(plan.dtype).newbyteorder("<") if v2 else plan.dtype,
                compressors=compressors,
                fill_value=plan.fill_value,
                zarr_format=plan.zarr_format,
                overwrite=False,  # True would empty the folder: never delete beside us
                config={"write_empty_chunks": True},
                **by_format,
            )


def _ndstack_attrs(
    arr: Any, plan_img: ImagePlan, settings: dict[str, Any], provenance: dict[str, Any]
) -> dict[str, Any]:
    """The store's ``ndstack`` attributes (:class:`StoredAttrs`), as JSON."""
    return StoredAttrs(
        dims=tuple(map(str, arr.dims)),
        shape=tuple(int(n) for n in arr.shape),
        image_dims=tuple(plan_img.image_dims),
        split_dims=tuple(plan_img.split_dims),
        settings=settings,
        coords={str(k): StoredCoord.of(c) for k, c in arr.coords.items()},
        attrs=dict(arr.attrs),
        name=None if arr.name is None else str(arr.name),
        version=version(),
        store=provenance.get("store"),
        written=tuple(provenance["written"]) if "written" in provenance else None,
        source={**provenance["source"], **origin(arr, settings)}
        if "source" in provenance
        else None,
    ).to_json()


def origin(arr: Any, settings: dict[str, Any]) -> dict[str, Any]:
    """What the written array was made from, for ``ndstack info``: ``from`` (the files
    ndstack.open read, as it described them; ``store PATH``; or None: an array made in
    memory), ``pattern``, ``processed`` (False: exactly what ndstack.open gave) and
    ``steps`` (the changes the writer can tell: a deskew, the shape, the dtype)."""
    from .read import stored_attrs
    from .sources import sources_of

    sources = sources_of(arr)
    name = str(settings.get("array") or getattr(arr.data, "name", ""))
    before: dict[str, Any] = {}
    shape: tuple[int, ...] | None = None
    dtype: np.dtype[Any] | None = None
    if sources.grids:
        grid = sources.grids[0]
        out = {"from": arr.attrs.get("source") or grid.root, "pattern": arr.attrs.get("pattern")}
        as_read = name.startswith("ndstack-open-")
        shape, dtype = grid.shape, np.dtype(grid.dtype)
    elif sources.stores:
        out = {"from": f"store {sources.stores[0]}", "pattern": None}
        as_read = name.startswith("ndstack-store-")
        try:
            nd = stored_attrs(sources.stores[0])
            if nd is not None:
                shape, before = nd.shape, dict(nd.attrs)
                dtype = np.dtype(nd.settings["dtype"]) if "dtype" in nd.settings else None
        except Exception:  # the source store changed, is out of reach or is not ndstack's
            pass
    else:
        return {"from": None, "pattern": None, "processed": None, "steps": []}
    steps = []
    if not as_read:
        geometry = arr.attrs.get("deskew")
        if isinstance(geometry, dict) and geometry != before.get("deskew"):
            steps.append(f"deskew angle={geometry.get('angle')}")
        if shape is not None and tuple(shape) != tuple(arr.shape):
            steps.append(f"shape {_x(shape)} -> {_x(arr.shape)}")
        if dtype is not None and dtype != np.dtype(arr.dtype):
            steps.append(f"dtype {dtype} -> {np.dtype(arr.dtype)}")
    return {**out, "processed": not as_read, "steps": steps}


def _x(shape: Any) -> str:
    return "x".join(str(int(n)) for n in shape)


def _omero(plan_img: ImagePlan, arr: Any, plan: Plan, img: int) -> dict[str, Any] | None:
    """Channel labels, colours and contrast windows from a sample of the smallest level."""
    if "C" not in plan_img.image_dims:
        return None
    import zarr

    c_axis = plan_img.image_dims.index("C")
    n = arr.sizes["C"]
    labels, wavelengths = channel_labels(arr)
    small = zarr.open_array(store=zarr_store(plan.array_dir(img, len(plan.levels) - 1)), mode="r")
    index: list[Any] = [s // 2 for s in small.shape]  # the middle of every other axis
    channels = []
    colors = channel_colors(labels, wavelengths)
    dtype = np.dtype(plan.dtype)
    lo, hi = (np.iinfo(dtype).min, np.iinfo(dtype).max) if dtype.kind in "iu" else (0.0, 1.0)
    y, x = plan_img.image_dims.index("Y"), plan_img.image_dims.index("X")
    index[y] = index[x] = slice(None)  # whole planes
    for c in range(n):
        index[c_axis] = c
        sample = np.asarray(small[tuple(index)], dtype=np.float64)
        start, end = np.percentile(sample, (0.1, 99.9)) if sample.size else (lo, hi)
        window = {"min": float(lo), "max": float(hi), "start": float(start), "end": float(end)}
        channels.append({"label": labels[c], "color": colors[c], "active": True, "window": window})
    return {"channels": channels, "rdefs": {"model": "color"}}


def _write_metadata(
    plan: Plan,
    plan_img: ImagePlan,
    arr: Any,
    settings: dict[str, Any],
    provenance: dict[str, Any],
) -> None:
    """Write the metadata that makes the store complete: images first, root last."""
    import zarr

    pixel = dict(arr.attrs.get("pixel_size") or {})
    unit = arr.attrs.get("pixel_unit")
    nd = _ndstack_attrs(arr, plan_img, settings, provenance)
    if plan.levels[0].path == "":  # plain zarr: attributes on the root array
        z = zarr.open_array(store=zarr_store(plan.dest, read_only=False), mode="r+")
        z.attrs.update({"ndstack": nd})
        return
    axes = axes_metadata(plan_img, unit)
    v2 = plan.zarr_format == 2
    for img, path in enumerate(plan.image_paths):
        datasets = [
            {"path": lv.path, "coordinateTransformations": [
                {"type": "scale", "scale": level_scale(plan_img, pixel, 2**k)}]}
            for k, lv in enumerate(plan.levels)
        ]  # fmt: skip
        multiscale: dict[str, Any] = {
            "name": str(arr.name or "image"), "axes": axes, "datasets": datasets,
            "type": "mean" if len(plan.levels) > 1 else None,
            "metadata": {"method": "2x2 mean of Y and X per level, computed by ndstack"},
        }  # fmt: skip
        if multiscale["type"] is None:
            del multiscale["type"]
        omero = _omero(plan_img, arr, plan, img)
        if v2:  # NGFF 0.4: the version in each multiscale, everything at the top level
            ome: dict[str, Any] = {"multiscales": [{"version": "0.4", **multiscale}]}
        else:
            ome = {"version": NGFF_VERSION, "multiscales": [multiscale]}
        if omero:
            ome["omero"] = omero
        attrs: dict[str, Any] = dict(ome) if v2 else {"ome": ome}
        if not plan_img.split_dims:
            attrs["ndstack"] = nd
        where = os.path.join(plan.dest, path) if path else plan.dest
        zarr.open_group(store=zarr_store(where, read_only=False), mode="a",
                        zarr_format=plan.zarr_format).attrs.update(attrs)  # fmt: skip
    if plan_img.split_dims:
        root = zarr.open_group(
            store=zarr_store(plan.dest, read_only=False), mode="a", zarr_format=plan.zarr_format
        )
        layout: dict[str, Any] = {"bioformats2raw.layout": 3}
        root.attrs.update(
            {**layout, "ndstack": nd}
            if v2
            else {"ome": {"version": NGFF_VERSION, **layout}, "ndstack": nd}
        )
