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

    Each block is filtered by the array module it is made of, as dask-image does:
    ``scipy.ndimage`` for NumPy blocks, ``cupyx.scipy.ndimage`` for CuPy blocks.

    Parameters
    ----------
    arr : xarray.DataArray
        The array to filter (Dask-backed or in memory).
    sigma : float or sequence of float
        The standard deviation in pixels, above 0: one for all ``dims``, or one per dim
        in the order of ``dims``.
    dims : sequence of str, keyword-only
        The dims to filter along (default ``("Y", "X")``); the others are not smoothed.
    truncate : float, keyword-only
        The kernel's radius in sigmas (default 4): the overlap between chunks is
        ``int(truncate * sigma + 0.5)`` per dim.
    device : {"auto", "cpu", "gpu"}, keyword-only
        ``"auto"`` (default) runs ``cupyx.scipy.ndimage.gaussian_filter`` on the GPU when
        CuPy sees one, else SciPy on the CPU; ``"cpu"``; ``"gpu"`` (an error without
        one). On the GPU each block moves there and back within its task, so the result
        is NumPy (CuPy blocks stay CuPy).

    Returns
    -------
    xarray.DataArray
        Lazy, the dims, coords, name and attrs of ``arr``; float32 (float64 input stays
        float64).

    Raises
    ------
    ParameterError
        A dim ``arr`` lacks (the message names it and the array's dims), a sigma not
        above 0, or a number of sigmas other than one or the number of ``dims``.
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

    Identical across chunk borders; each block is filtered by its own array module
    (``scipy.ndimage`` or ``cupyx.scipy.ndimage``).

    Parameters
    ----------
    arr : xarray.DataArray
        The array to filter (Dask-backed or in memory).
    size : int
        The window's length along each of ``dims``, from 1.
    dims : sequence of str, keyword-only
        The dims of the window (default ``("Y", "X")``); along the others it is 1 long.
    device : {"auto", "cpu", "gpu"}, keyword-only
        As for :func:`gaussian` (``cupyx.scipy.ndimage.median_filter`` on the GPU).

    Returns
    -------
    xarray.DataArray
        Lazy, the dims, coords, name, attrs and dtype of ``arr``.

    Raises
    ------
    ParameterError
        A dim ``arr`` lacks (the message names it and the array's dims), or a size that
        is not a whole number from 1.
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
