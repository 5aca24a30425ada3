"""The napari plugin: a reader (npe2) and ``ndstack view``. napari is imported only here,
and only by :func:`view` (and :func:`add_layers`, given a viewer); the reader returns
plain layer-data tuples.

npe2 has no reader priority: for a folder or a store napari offers its own reader and
ndstack's, and picks ndstack's only when asked to (``plugin="ndstack"``, what ``ndstack
view`` does) or told once in its settings (README, "napari")."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from ._axes import is_tiff_name
from ._ngff import channel_labels
from .errors import MissingDependencyError

__all__ = ["add_layers", "array_layers", "get_reader", "layer_data", "view"]

LayerData = tuple[Any, dict[str, Any], str]


def get_reader(path: str | list[str]) -> Callable[[Any], list[LayerData]] | None:
    """npe2 reader getter: a reader for folders, globs, TIFFs and stores; else ``None``."""
    from ._discover import discover
    from ._zarr.read import is_store
    from .errors import NdstackError as _Err

    if isinstance(path, list):
        return _read if all(is_tiff_name(str(p)) for p in path) else None
    if is_store(path):
        return _read
    try:
        discover(path)  # lists names only: cheap, and says whether any image is there
    except (_Err, OSError):
        return None
    return _read


def _read(path: Any) -> list[LayerData]:
    return layer_data(path)


def start_position(arr: Any, at: dict[str, int] | None = None) -> dict[str, int]:
    """Where the sliders start: ``at`` where it names a dim (clipped to it), else the
    first index of every slider dim and the middle of Z."""
    at = at or {}
    return {d: min(max(int(at[d]), 0), arr.sizes[d] - 1) if d in at
            else (arr.sizes[d] - 1) // 2 if d == "Z" else 0
            for d in arr.dims if d not in ("Y", "X", "C")}  # fmt: skip


def _limits(plane: np.ndarray) -> list[float]:
    plane = np.asarray(plane, dtype=np.float64)
    lo, hi = np.percentile(plane, (0.5, 99.8)) if plane.size else (0.0, 1.0)
    return [float(lo), float(hi if hi > lo else lo + 1)]


def _contrast(arr: Any, channel: int | None, at: dict[str, int] | None = None) -> list[float]:
    """Contrast limits from the plane the sliders start at (one plane read)."""
    sel: dict[str, int] = dict(start_position(arr, at))
    if channel is not None:
        sel["C"] = channel
    return _limits(arr.isel(sel).values)  # one indexing step: one plane read


def layer_data(path: Any, pattern: str | None = None) -> list[LayerData]:
    """One image layer per channel: names from channel coords, scale, contrast, pyramid."""
    from ._open import open as _open
    from ._zarr.paths import as_local
    from ._zarr.read import is_store, open_store, store_levels

    if not isinstance(path, list) and is_store(path):
        # napari reads whole Dask chunks: the storage chunks, not ndstack.open's larger blocks
        store = as_local(os.fspath(path))  # a folder or a URL (s3://, https://, ...)
        arr = open_store(store, storage_chunks=True)
        levels = [arr.data] + [
            open_store(store, level=k, storage_chunks=True).transpose(*arr.dims).data
            for k in range(1, store_levels(store))
        ]
    else:
        arr = _open(path, pattern)
        levels = [_plane_chunks(arr)]
    return _layers(arr, levels, _base_name(path))


def array_layers(
    arr: Any, name: str | None = None, at: dict[str, int] | None = None
) -> list[LayerData]:
    """The layers of any DataArray (opened, processed by ``ndstack.ops`` or the user's
    own ``ops.apply``), laid out as the reader lays out a source: one per channel.

    Processed data (whose chunks hold whole stacks) is computed once at the position
    the sliders start at (:func:`start_position`), for every channel together: that
    block is handed to napari in memory, and the contrast limits come from it, so
    opening computes one timepoint, once. Arrays that read planes straight from their
    files (``ndstack.open`` as it is) read one plane per channel instead. ``at`` puts
    the sliders elsewhere (where they stood before a re-render).
    """
    import dask.array as da

    name = name or str(arr.name or "image")
    data = _plane_chunks(arr)
    start = start_position(arr, at)
    sliders = [d for d in start if d != "Z"]
    if not isinstance(data, da.Array):  # NumPy behind it: in memory already
        return _layers(arr, [data], name, at=start)
    if data is not arr.data or len(sliders) != 1:  # planes are cheap, or no single slider
        return _layers(arr, [data], name, at=start)
    dim = sliders[0]
    head = np.asarray(arr.isel({dim: start[dim]}).values)  # one compute: every channel
    inner = [d for d in arr.dims if d != dim]
    at = {d: start[d] for d in inner if d == "Z"}
    if "C" in arr.dims:
        limits = [_limits(_index(head, inner, {**at, "C": c})) for c in range(arr.sizes["C"])]
    else:
        limits = [_limits(_index(head, inner, at))]
    spliced = _spliced(data, arr.get_axis_num(dim), start[dim], head)
    return _layers(arr, [spliced], name, limits, at=start)


def _index(values: np.ndarray, dims: list[str], at: dict[str, int]) -> np.ndarray:
    return values[tuple(at.get(d, slice(None)) for d in dims)]


def _spliced(data: Any, axis: int, i: int, values: np.ndarray) -> Any:
    """``data`` with its index ``i`` along ``axis`` replaced by ``values`` (computed)."""
    import dask.array as da

    chunks = [(1,) if k == axis else c for k, c in enumerate(data.chunks)]
    piece = da.from_array(np.expand_dims(values, axis).astype(data.dtype, copy=False),
                          chunks=chunks, name=f"{data.name}-shown-{axis}-{i}")  # fmt: skip
    before = data[(slice(None),) * axis + (slice(0, i),)]
    after = data[(slice(None),) * axis + (slice(i + 1, None),)]
    parts = [p for p in (before, piece, after) if p.shape[axis]]
    return da.concatenate(parts, axis=axis) if len(parts) > 1 else parts[0]


def _layers(
    arr: Any,
    levels: list[Any],
    name: str,
    limits: list[list[float]] | None = None,
    at: dict[str, int] | None = None,
) -> list[LayerData]:
    """One layer description for every reader and view: channel axis and names, scale
    from the pixel sizes, axis labels, contrast limits from one plane per channel."""
    px = dict(arr.attrs.get("pixel_size") or {})
    dims = [d for d in arr.dims if d != "C"]
    meta: dict[str, Any] = {
        "scale": [float(px.get(d, 1.0)) for d in dims],
        "axis_labels": dims,
        "multiscale": len(levels) > 1,
        "metadata": {"ndstack": {k: v for k, v in arr.attrs.items() if k != "missing"}},
    }
    if "C" in arr.dims:
        n = arr.sizes["C"]
        meta["channel_axis"] = arr.dims.index("C")
        meta["name"] = channel_labels(arr)[0]  # as the store's OMERO metadata labels them
        meta["contrast_limits"] = limits or [_contrast(arr, c, at) for c in range(n)]
    else:
        meta["name"] = name
        meta["contrast_limits"] = limits[0] if limits else _contrast(arr, None, at)
    data = levels if len(levels) > 1 else levels[0]
    return [(data, meta, "image")]


def _base_name(path: Any) -> str:
    """The layer name of a source without channels: its last path part (``"cells/"``
    gives ``"cells"``, not napari's fallback name for an empty one)."""
    first = os.fspath(path[0] if isinstance(path, list) else path)
    return os.path.basename(first.rstrip("/" + os.sep)) or first


def _plane_chunks(arr: Any) -> Any:
    """The opened array with one plane per chunk (a file per chunk where the reader reads
    whole files), for napari.

    napari turns Dask's task fusion off while it slices (so that its cache keeps whole
    chunks), which also keeps a selection from reaching the read: every chunk a slice
    touches is read whole. With a file per chunk, each step of the time slider read every
    channel's whole stack (hundreds of MB for large light-sheet stacks); with a plane per
    chunk it reads one plane per channel, and napari's cache keeps the planes seen.
    """
    from ._grid import GridAxis, grid_array
    from ._tiff import TiffReader
    from ._zarr.sources import file_grid, straight_from

    grid = file_grid(arr)
    if not straight_from(arr.data, grid):  # only the array exactly as ndstack.open made it
        return arr.data
    if isinstance(grid.reader, TiffReader):  # it reads a plane by itself
        chunks = tuple(
            c if d in ("Y", "X", "S") else (1,) * n
            for d, c, n in zip(arr.dims, arr.data.chunks, arr.shape)
        )
    else:  # other readers read whole files: a file per chunk (not a block of small files)
        chunks = tuple(
            (1,) * n if isinstance(s, GridAxis) else c
            for s, c, n in zip(grid.sources, arr.data.chunks, arr.shape)
        )
        if chunks == tuple(arr.data.chunks):
            return arr.data
    return grid_array(grid, chunks, arr.data.name.replace("ndstack-open-", "ndstack-planes-"))


def view(
    data: Any,
    *,
    pattern: str | None = None,
    viewer: Any = None,
    block: bool = True,
    **layer_options: Any,
) -> Any:
    """Show ``data`` in napari, laid out as ndstack's reader lays out a source.

    Parameters
    ----------
    data
        A source (folder, glob, list, URL, store) or any DataArray: opened, processed by
        :mod:`ndstack.ops` or by your own ``ops.apply``. Nothing is computed but what is
        shown: one layer per channel (named from the channel coordinates), the scale from
        the pixel sizes (the deskewed Z spacing after ``deskew``, ...), axis labels,
        contrast limits from one plane per channel (never a pass over the data), a
        pyramid for stores that have one.
    pattern
        For a source: as :func:`ndstack.open`'s.
    viewer
        A napari viewer to add the layers to; default: a new one.
    block
        Run napari's event loop until the window closes (a script); ``False`` returns at
        once (notebooks, tests).
    **layer_options
        Passed to ``viewer.add_image`` over ndstack's choices (``colormap=``,
        ``contrast_limits=``, ``blending=`` ...).

    Returns
    -------
    napari.Viewer
    """
    try:
        import napari
    except ImportError:
        raise MissingDependencyError(
            "ndstack view needs napari: pip install 'ndstack[viewer]'"
        ) from None
    viewer = viewer if viewer is not None else napari.Viewer()
    add_layers(viewer, data, pattern, **layer_options)
    if block:  # pragma: no cover - needs a person at the window
        napari.run()
    return viewer


def add_layers(
    viewer: Any,
    source: Any,
    pattern: str | None = None,
    *,
    at: dict[str, int] | None = None,
    **layer_options: Any,
) -> list[Any]:
    """Add ndstack's layers of ``source`` (a source, or a DataArray) to a napari viewer
    as napari adds a reader plugin's: each layer's ``source`` records the path and
    ``reader_plugin="ndstack"``. The sliders are put at ``at`` (dim -> index; default
    :func:`start_position`)."""
    from contextlib import nullcontext

    import xarray as xr

    try:
        from napari.layers._source import layer_source
    except ImportError:  # pragma: no cover - a napari without it: the layers, unlabelled
        layer_source = None
    if isinstance(source, xr.DataArray):
        path, described = None, array_layers(source, at=at)
    else:
        path = None if isinstance(source, list) else os.fspath(source)
        described = layer_data(source, pattern)
    added: list[Any] = []
    shown = layer_options.pop("visible", True)
    for data, meta, _ in described:
        labelled = layer_source(path=path, reader_plugin="ndstack") if layer_source else None
        with labelled or nullcontext():  # hidden until the sliders stand where they start
            layers = viewer.add_image(data, **{**meta, **layer_options, "visible": False})
        added.extend(layers if isinstance(layers, list) else [layers])
    _to_start(viewer, added[0], described[0], at)
    for layer in added:
        layer.visible = shown  # napari slices a layer once it is visible: here, once
    return added


def _to_start(viewer: Any, layer: Any, described: LayerData, at: dict[str, int] | None) -> None:
    """Put the sliders where the layers were prepared for (:func:`start_position`, or
    ``at``): set in world coordinates through the layer's own transform, so that other
    layers of other scales do not shift it. napari's own start (the middle of every dim)
    would compute another timepoint first."""
    data, meta, _ = described
    shape = list((data[0] if meta.get("multiscale") else data).shape)
    if "channel_axis" in meta:
        del shape[meta["channel_axis"]]
    labels = list(meta["axis_labels"])
    at = at or {}
    index = [
        min(max(int(at[d]), 0), n - 1) if d in at else (n - 1) // 2 if d in ("Z", "Y", "X") else 0
        for d, n in zip(labels, shape)
    ]
    world = layer.data_to_world(index)
    offset = viewer.dims.ndim - len(labels)
    for k, d in enumerate(labels):
        if d not in ("Y", "X") and offset + k >= 0:
            viewer.dims.set_point(offset + k, world[k])
