"""Recenter: crop a window around each plane's intensity centroid."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _checks
from ._apply import apply

__all__ = ["centroid", "recenter"]


def centroid(plane: np.ndarray) -> tuple[float, float]:
    """Intensity centroid (y, x) of a 2-D plane; its centre when the plane sums to 0.

    Two weighted sums of the row and column profiles: vectorised, no Python loop.
    """
    p = np.asarray(plane, dtype=np.float64)
    rows, cols = p.sum(axis=1), p.sum(axis=0)
    total = rows.sum()
    if not np.isfinite(total) or total <= 0:
        return (p.shape[0] - 1) / 2, (p.shape[1] - 1) / 2
    return float(rows @ np.arange(p.shape[0]) / total), float(cols @ np.arange(p.shape[1]) / total)


def recenter_plane(plane: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """The ``size`` (h, w) window centred on the centroid, clamped inside the plane."""
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
    borders. Lazy; dims kept, Y and X shrink to ``size``.
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
