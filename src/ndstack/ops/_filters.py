"""Filters that need neighbours across chunk borders: Gaussian, median."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import ParameterError
from . import _checks
from ._xp import array_module, ndimage_module, on_device, use_gpu

__all__ = ["gaussian", "median"]


def _overlap(arr: Any, dims: Sequence[str], depth: dict[str, int], kernel: Any, dtype: Any) -> Any:
    import dask.array as da
    import xarray as xr

    data = arr.data
    if not isinstance(data, da.Array):  # an array in memory: one block, computed lazily too
        data = da.from_array(data, chunks=data.shape)
    meta = array_module(getattr(data, "_meta", data)).empty((0,) * data.ndim, dtype=dtype)
    axis_depth = {arr.dims.index(d): depth[d] for d in dims}
    for i in range(arr.ndim):
        axis_depth.setdefault(i, 0)
    out = data.map_overlap(kernel, depth=axis_depth, boundary="reflect", dtype=dtype,
                           meta=meta)  # fmt: skip
    return xr.DataArray(out, dims=arr.dims, coords=arr.coords, attrs=arr.attrs, name=arr.name)


def gaussian(arr: Any, sigma: float | Sequence[float], *, dims: Sequence[str] = ("Y", "X"),
             truncate: float = 4.0, device: str = "auto") -> Any:  # fmt: skip
    """``scipy.ndimage.gaussian_filter`` over ``dims``, identical across chunk borders.

    The overlap between chunks is the kernel's radius, ``int(truncate * sigma + 0.5)``.
    The output is float32 (float64 input stays float64). ``device``: ``"auto"`` (default)
    runs ``cupyx.scipy.ndimage.gaussian_filter`` on the GPU when CuPy sees one, else
    SciPy on the CPU; ``"cpu"``; ``"gpu"`` (an error without one). On the GPU each block
    moves there and back within its task, so the result is NumPy (CuPy blocks stay CuPy).
    """
    _checks.dims(arr, dims, "dims")
    for s in [sigma] if np.isscalar(sigma) else list(sigma):  # type: ignore[arg-type]
        _checks.number(s, "sigma", above=0)
    _checks.number(truncate, "truncate", above=0)
    gpu = use_gpu(device)
    if np.isscalar(sigma):
        sigmas = [float(sigma)] * len(dims)  # type: ignore[arg-type]
    else:
        sigmas = [float(s) for s in sigma]  # type: ignore[union-attr]
        if len(sigmas) != len(dims):
            raise ParameterError(
                f"sigma: {len(sigmas)} values for {len(dims)} dims {tuple(dims)}; give one "
                "value per dim, or a single one for all"
            )
    depth = {d: int(truncate * s + 0.5) for d, s in zip(dims, sigmas)}
    axis_sigma = [0.0] * arr.ndim
    for d, s in zip(dims, sigmas):
        axis_sigma[arr.dims.index(d)] = s
    dtype = np.float64 if arr.dtype == np.float64 else np.float32

    def kernel(block: Any) -> Any:
        return ndimage_module(block).gaussian_filter(
            block.astype(dtype, copy=False), axis_sigma, truncate=truncate
        )

    return _overlap(arr, dims, depth, on_device(kernel, gpu), dtype)


def median(arr: Any, size: int, *, dims: Sequence[str] = ("Y", "X"), device: str = "auto") -> Any:
    """``scipy.ndimage.median_filter``, a ``size`` window over ``dims``; overlap ``size // 2``.

    ``device`` as for :func:`gaussian` (``cupyx.scipy.ndimage.median_filter`` on the GPU).
    """
    _checks.dims(arr, dims, "dims")
    _checks.whole(size, "size")
    gpu = use_gpu(device)
    window = [1] * arr.ndim
    for d in dims:
        window[arr.dims.index(d)] = int(size)

    def kernel(block: Any) -> Any:
        return ndimage_module(block).median_filter(block, size=window)

    return _overlap(
        arr, dims, dict.fromkeys(dims, int(size) // 2), on_device(kernel, gpu), arr.dtype
    )
