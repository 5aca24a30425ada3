"""Filters that need neighbours across chunk borders: Gaussian, median."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _checks

__all__ = ["gaussian", "median"]


def _overlap(arr: Any, dims: Sequence[str], depth: dict[str, int], kernel: Any, dtype: Any) -> Any:
    import xarray as xr

    data = arr.data
    axis_depth = {arr.dims.index(d): depth[d] for d in dims}
    for i in range(arr.ndim):
        axis_depth.setdefault(i, 0)
    out = data.map_overlap(kernel, depth=axis_depth, boundary="reflect", dtype=dtype,
                           meta=np.empty((0,) * data.ndim, dtype=dtype))  # fmt: skip
    return xr.DataArray(out, dims=arr.dims, coords=arr.coords, attrs=arr.attrs, name=arr.name)


def gaussian(arr: Any, sigma: float | Sequence[float], *, dims: Sequence[str] = ("Y", "X"),
             truncate: float = 4.0) -> Any:  # fmt: skip
    """``scipy.ndimage.gaussian_filter`` over ``dims``, identical across chunk borders.

    The overlap between chunks is the kernel's radius, ``int(truncate * sigma + 0.5)``.
    The output is float32 (float64 input stays float64).
    """
    _checks.dims(arr, dims, "dims")
    for s in [sigma] if np.isscalar(sigma) else list(sigma):  # type: ignore[arg-type]
        _checks.number(s, "sigma", above=0)
    _checks.number(truncate, "truncate", above=0)
    from scipy import ndimage

    if np.isscalar(sigma):
        sigmas = [float(sigma)] * len(dims)  # type: ignore[arg-type]
    else:
        sigmas = [float(s) for s in sigma]  # type: ignore[union-attr]
    depth = {d: int(truncate * s + 0.5) for d, s in zip(dims, sigmas)}
    axis_sigma = [0.0] * arr.ndim
    for d, s in zip(dims, sigmas):
        axis_sigma[arr.dims.index(d)] = s
    dtype = np.float64 if arr.dtype == np.float64 else np.float32

    def kernel(block: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(
            block.astype(dtype, copy=False), axis_sigma, truncate=truncate
        )

    return _overlap(arr, dims, depth, kernel, dtype)


def median(arr: Any, size: int, *, dims: Sequence[str] = ("Y", "X")) -> Any:
    """``scipy.ndimage.median_filter``, a ``size`` window over ``dims``; overlap ``size // 2``."""
    _checks.dims(arr, dims, "dims")
    _checks.whole(size, "size")
    from scipy import ndimage

    window = [1] * arr.ndim
    for d in dims:
        window[arr.dims.index(d)] = int(size)

    def kernel(block: np.ndarray) -> np.ndarray:
        return ndimage.median_filter(block, size=window)

    return _overlap(arr, dims, dict.fromkeys(dims, int(size) // 2), kernel, arr.dtype)
