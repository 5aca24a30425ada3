"""Crop, projections, background and flat-field correction, power spectra."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _checks
from ._apply import rechunked
from ._compat import keyword_only
from ._xp import array_module, on_device, use_gpu

__all__ = ["crop", "flatfield", "power_spectrum", "project", "subtract_background"]


def crop(arr: Any, **ranges: slice | tuple[int, int]) -> Any:
    """Crop by index ranges per dim, e.g. ``crop(arr, Y=(100, 400), X=slice(0, 256))``.

    Parameters
    ----------
    arr : xarray.DataArray
        The array to crop.
    **ranges : slice or (int, int)
        For each dim to crop, a ``slice`` or a ``(start, stop)`` pair of indices (negative
        ones count from the end, as in NumPy). Dims not named are kept whole.

    Returns
    -------
    xarray.DataArray
        A lazy view with the same dims, the cropped ones shorter; coords and attrs kept.

    Raises
    ------
    ParameterError
        A dim the array does not have, or a range that selects nothing.
    """
    unknown = [d for d in ranges if d not in arr.dims]
    if unknown:
        raise _checks.ParameterError(
            f"cannot crop unknown dims {', '.join(map(repr, unknown))}; the array's dims are "
            f"{', '.join(map(str, arr.dims))}"
        )
    sel = {d: r if isinstance(r, slice) else slice(*r) for d, r in ranges.items()}
    for d, sl in sel.items():  # a range that selects nothing (inverted, or past the end)
        if not range(*sl.indices(arr.sizes[d])):
            raise _checks.ParameterError(
                f"crop {d}={sl.start}:{sl.stop} selects nothing of {arr.sizes[d]} "
                "(start must be below stop, and inside the dim)"
            )
    return arr.isel(sel)


@keyword_only("how")
def project(arr: Any, dim: str, *, how: str = "max") -> Any:
    """Projection along ``dim``: the maximum, mean or sum; lazy, attrs kept.

    Parameters
    ----------
    arr : xarray.DataArray
        The array to project.
    dim : str
        The dim to project away, e.g. ``"Z"``.
    how : {"max", "mean", "sum"}, keyword-only
        The reduction (default ``"max"``). Passing it positionally,
        ``project(arr, "Z", "max")``, still works but is deprecated.

    Returns
    -------
    xarray.DataArray
        Lazy, with the dims of ``arr`` but ``dim``, in their order; attrs kept. The dtype
        is the reduction's (``max`` keeps the input's, ``mean`` gives float64).
    """
    _checks.dims(arr, [dim], "dim")
    _checks.choice(how, "how", ("max", "mean", "sum"))
    return getattr(arr, how)(dim, keep_attrs=True)


def subtract_background(arr: Any, value: float | None = None, *, percentile: float | None = None,
                        dims: tuple[str, ...] = ("Y", "X")) -> Any:  # fmt: skip
    """Subtract a constant, or each plane's ``percentile`` over ``dims``; clipped at 0, float32.

    Parameters
    ----------
    arr : xarray.DataArray
        The array to correct.
    value : float, optional
        A constant background. Give either ``value`` or ``percentile``.
    percentile : float, optional, keyword-only
        From 0 to 100: each plane (over ``dims``) loses its own percentile.
    dims : sequence of str, keyword-only
        The dims of a plane for ``percentile`` (default ``("Y", "X")``).

    Returns
    -------
    xarray.DataArray
        Lazy, float32, the dims of ``arr``, negative values clipped to 0.
    """
    if percentile is not None:
        _checks.number(percentile, "percentile", at_least=0, at_most=100)
    if value is not None:
        _checks.number(value, "value")
    _checks.dims(arr, dims, "dims")
    if (value is None) == (percentile is None):
        raise ValueError("give either value= or percentile=")
    data = arr.astype(np.float32)
    if value is not None:
        return (data - np.float32(value)).clip(min=0)
    level = data.quantile(percentile / 100, dim=list(dims)).drop_vars("quantile")
    return (data - level).clip(min=0)


def _by_dims(arr: Any, value: Any, name: str) -> Any:
    """``value`` as a float32 DataArray over some of ``arr``'s dims, at their sizes.

    A DataArray keeps its dims (each must be one of ``arr``'s, of the same size); a bare
    array (or a number) is aligned with the last dims of ``arr``, as NumPy broadcasts, and
    its length-1 axes are dropped (they broadcast).
    """
    import xarray as xr

    if isinstance(value, xr.DataArray):
        _checks.dims(arr, value.dims, name)
        wrong = [d for d in value.dims if value.sizes[d] != arr.sizes[d]]
        if wrong:
            raise _checks.ParameterError(
                f"{name}: its sizes {', '.join(f'{d}={value.sizes[d]}' for d in wrong)} differ "
                f"from the array's ({', '.join(f'{d}={arr.sizes[d]}' for d in wrong)})"
            )
        return value.astype(np.float32)
    a = np.asarray(value, dtype=np.float32)
    last = tuple(arr.shape[arr.ndim - a.ndim :]) if a.ndim else ()
    if a.ndim > arr.ndim or any(n not in (1, m) for n, m in zip(a.shape, last)):
        raise _checks.ParameterError(
            f"{name}: an array of shape {a.shape} does not broadcast against the last dims of "
            f"the array, {dict(arr.sizes)}; give a DataArray to broadcast by dim names"
        )
    dims = tuple(arr.dims[arr.ndim - a.ndim :]) if a.ndim else ()
    keep = [i for i, n in enumerate(a.shape) if n != 1]
    return xr.DataArray(a.reshape([a.shape[i] for i in keep]), dims=[dims[i] for i in keep])


@keyword_only("dark")
def flatfield(arr: Any, flat: Any, *, dark: Any = None) -> Any:
    """Flat-field correction: ``(arr - dark) / (flat - dark) * mean(flat - dark)``.

    Parameters
    ----------
    arr : xarray.DataArray
        The images to correct.
    flat : xarray.DataArray or array_like
        The flat field. A DataArray broadcasts by dim names: its dims must be dims of
        ``arr`` (of the same sizes), e.g. ``("C", "Y", "X")`` for a flat per channel; a
        bare array broadcasts against the last dims of ``arr``, as in NumPy (a 2-D flat is
        ``(Y, X)`` for an array ending in ``Y, X``).
    dark : xarray.DataArray or array_like or float, optional, keyword-only
        The dark image (or a constant), broadcast as ``flat`` is; default none (0).
        Passing it positionally, ``flatfield(arr, flat, dark)``, still works but is
        deprecated.

    Returns
    -------
    xarray.DataArray
        Lazy, float32, with the dims, coords, name and attrs of ``arr``. The mean of
        ``flat - dark`` is taken over all its values, so the result keeps the input's
        average intensity.

    Raises
    ------
    ParameterError
        ``flat`` or ``dark`` has a dim ``arr`` lacks, or sizes or coords that differ from
        its; ``flat - dark`` is not positive (and finite) everywhere.
    """
    import xarray as xr

    flat_da = _by_dims(arr, flat, "flat")
    dark_da = None if dark is None else _by_dims(arr, dark, "dark")
    try:
        with xr.set_options(arithmetic_join="exact"):  # coords that differ: no silent crop
            gain = (flat_da if dark_da is None else flat_da - dark_da).compute()
            if not bool((gain > 0).all()):
                raise _checks.ParameterError("flat - dark must be positive everywhere")
            data = arr.astype(np.float32)
            if dark_da is not None:
                data = data - dark_da
            out = data / gain * np.float32(float(gain.mean()))
    except _checks.ParameterError:
        raise
    except ValueError as exc:  # xarray's alignment error: index coords that differ
        raise _checks.ParameterError(
            f"flat, dark: their coords differ from the array's ({exc})"
        ) from None
    out.name = arr.name
    out.attrs = dict(arr.attrs)
    return out


def power_spectrum(arr: Any, dim: str = "T", *, device: str = "auto") -> Any:
    """``|FFT|^2`` of every pixel's series along ``dim`` (float32), one chunk along ``dim``.

    Parameters
    ----------
    arr : xarray.DataArray
        The array, e.g. a time series ``(T, Y, X)``.
    dim : str
        The dim to transform (default ``"T"``); it is made one chunk.
    device : {"auto", "cpu", "gpu"}, keyword-only
        ``"auto"`` (default) computes with ``cupy.fft`` on the GPU when CuPy sees one,
        else ``numpy.fft``; ``"cpu"``; ``"gpu"`` (an error without one). On the GPU each
        block moves there and back within its task, so the result is NumPy (CuPy blocks
        stay CuPy).

    Returns
    -------
    xarray.DataArray
        Lazy, float32: the other dims of ``arr`` in their order, then ``freq`` last
        (``(T, Y, X)`` gives ``(Y, X, freq)``), ``n // 2 + 1`` long for ``n`` samples,
        with coordinate ``freq`` in cycles per sample (``numpy.fft.rfftfreq(n)``); attrs
        kept.
    """
    _checks.dims(arr, [dim], "dim")
    import xarray as xr

    gpu = use_gpu(device)
    n = arr.sizes[dim]
    data = rechunked(arr, {dim: -1, **{d: "auto" for d in arr.dims if d != dim}})

    def spectrum(x: Any) -> Any:
        xp = array_module(x)
        return (xp.abs(xp.fft.rfft(x, axis=-1)) ** 2).astype(xp.float32)

    out = xr.apply_ufunc(
        on_device(spectrum, gpu), data, input_core_dims=[[dim]], output_core_dims=[["freq"]],
        dask="parallelized", output_dtypes=[np.float32],
        dask_gufunc_kwargs={"output_sizes": {"freq": n // 2 + 1}}, keep_attrs=True,
    )  # fmt: skip
    return out.assign_coords(freq=np.fft.rfftfreq(n))
