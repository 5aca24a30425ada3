"""Recenter: crop a window around each plane's intensity centroid."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from . import _checks
from ._apply import apply
from ._xp import array_module

__all__ = ["centroid", "recenter", "recenter_plane"]


def centroid(plane: Any) -> tuple[float, float]:
    """Intensity centroid (y, x) of a 2-D plane; its centre when the plane sums to 0.

    Two weighted sums of the row and column profiles: vectorised, no Python loop. The
    same as ``scipy.ndimage.center_of_mass`` for a plane with a positive sum.

    Parameters
    ----------
    plane : numpy.ndarray or cupy.ndarray
        A 2-D plane of intensities, computed with its own array module (NumPy or CuPy).

    Returns
    -------
    (float, float)
        The centroid's row and column, in pixels (Python floats); the plane's centre,
        ``((ny - 1) / 2, (nx - 1) / 2)``, when its sum is not positive and finite.
    """
    xp = array_module(plane)
    p = xp.asarray(plane, dtype=xp.float64)
    rows, cols = p.sum(axis=1), p.sum(axis=0)
    total = float(rows.sum())
    if not math.isfinite(total) or total <= 0:
        return (p.shape[0] - 1) / 2, (p.shape[1] - 1) / 2
    cy = float(rows @ xp.arange(p.shape[0], dtype=xp.float64)) / total
    cx = float(cols @ xp.arange(p.shape[1], dtype=xp.float64)) / total
    return cy, cx


def recenter_plane(plane: Any, size: Sequence[int]) -> Any:
    """The ``size`` (h, w) window centred on the centroid, clamped inside the plane.

    Parameters
    ----------
    plane : numpy.ndarray or cupy.ndarray
        A 2-D plane.
    size : (int, int)
        The window's height and width, each at most the plane's.

    Returns
    -------
    numpy.ndarray or cupy.ndarray
        A view of ``plane``, ``size`` in shape, its dtype: the window whose centre is
        nearest :func:`centroid`, moved inside the plane where it would cross a border.
    """
    h, w = int(size[0]), int(size[1])
    ny, nx = plane.shape
    if h > ny or w > nx:
        raise ValueError(f"the window {h, w} is larger than the plane {ny, nx}")
    cy, cx = centroid(plane)
    y0 = min(max(round(cy - (h - 1) / 2), 0), ny - h)
    x0 = min(max(round(cx - (w - 1) / 2), 0), nx - w)
    return plane[y0 : y0 + h, x0 : x0 + w]


def recenter(arr: Any, size: Sequence[int]) -> Any:
    """Crop every (Y, X) plane to a ``size`` window around its intensity centroid.

    Each plane (every T, C, Z ...) is centred on its own centroid, as for tracking a
    drifting particle in electron or light microscopy; the window is clamped at the
    borders (:func:`~ndstack.ops.kernels.recenter_plane` per plane).

    Parameters
    ----------
    arr : xarray.DataArray
        An array with dims ``Y`` and ``X``; the others are looped over lazily.
    size : (int, int)
        The window's height and width in pixels, each from 1 and at most the plane's.

    Returns
    -------
    xarray.DataArray
        Lazy, the dims, dtype and attrs of ``arr``, ``Y`` and ``X`` now ``size`` long
        (those shortened lose their coordinates: each plane's window is elsewhere).
    """
    _checks.dims(arr, ["Y", "X"], "recenter")
    if len(size) != 2:
        raise _checks.ParameterError(f"size: expected (height, width), got {size!r}")
    for n in size:
        _checks.whole(n, "size")
    if arr.sizes["Y"] < size[0] or arr.sizes["X"] < size[1]:
        raise ValueError(f"the window {tuple(size)} is larger than the plane "
                         f"{arr.sizes['Y'], arr.sizes['X']}")  # fmt: skip
    return apply(recenter_plane, arr, tuple(size), core_dims=("Y", "X"), dtype=arr.dtype,
                 output_sizes={"Y": int(size[0]), "X": int(size[1])})  # fmt: skip
