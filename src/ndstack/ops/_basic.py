"""Crop, projections, background and flat-field correction, power spectra."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _checks
from ._xp import array_module, on_device, use_gpu

__all__ = ["crop", "flatfield", "power_spectrum", "project", "subtract_background"]


def crop(arr: Any, **ranges: slice | tuple[int, int]) -> Any:
    """Crop by index ranges per dim, e.g. ``crop(arr, Y=(100, 400), X=slice(0, 256))``."""
    for d, r in ranges.items():  # a range that selects nothing (inverted, or past the end)
        sl = r if isinstance(r, slice) else slice(*r)
        if d in arr.dims and not range(*sl.indices(arr.sizes[d])):
            raise _checks.ParameterError(
                f"crop {d}={sl.start}:{sl.stop} selects nothing of {arr.sizes[d]} "
                "(start must be below stop, and inside the dim)"
            )
    sel = {d: r if isinstance(r, slice) else slice(*r) for d, r in ranges.items()}
    unknown = set(sel) - set(arr.dims)
    if unknown:
        raise ValueError(f"cannot crop unknown dims {sorted(unknown)}; dims are {arr.dims}")
    return arr.isel(sel)


def project(arr: Any, dim: str, how: str = "max") -> Any:
    """Projection along ``dim``: ``"max"``, ``"mean"`` or ``"sum"``; lazy, attrs kept."""
    _checks.dims(arr, [dim], "dim")
    _checks.choice(how, "how", ("max", "mean", "sum"))
    if how not in ("max", "mean", "sum"):
        raise ValueError(f"how must be 'max', 'mean' or 'sum', not {how!r}")
    return getattr(arr, how)(dim, keep_attrs=True)


def subtract_background(arr: Any, value: float | None = None, *, percentile: float | None = None,
                        dims: tuple[str, ...] = ("Y", "X")) -> Any:  # fmt: skip
    """Subtract a constant, or each plane's ``percentile`` over ``dims``; clipped at 0, float32."""
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


def flatfield(arr: Any, flat: Any, dark: Any = None) -> Any:
    """``(arr - dark) / (flat - dark) * mean(flat - dark)``: the flat broadcasts by dims."""
    d = 0 if dark is None else dark
    gain = np.asarray(flat, dtype=np.float32) - np.asarray(d, dtype=np.float32)
    if np.any(gain <= 0):
        raise ValueError("flat - dark must be positive everywhere")
    return (arr.astype(np.float32) - np.float32(0) - d) / gain * np.float32(gain.mean())


def power_spectrum(arr: Any, dim: str = "T", *, device: str = "auto") -> Any:
    """``|FFT|^2`` of every pixel's series along ``dim`` (float32), one chunk along ``dim``.

    The result has a dim ``freq`` (cycles per sample) last, instead of ``dim``; the other dims
    keep their order (``(T, Y, X)`` gives ``(Y, X, freq)``). ``device``:
    ``"auto"`` (default) computes with ``cupy.fft`` on the GPU when CuPy sees one, else
    ``numpy.fft``; ``"cpu"``; ``"gpu"`` (an error without one). On the GPU each block
    moves there and back within its task, so the result is NumPy (CuPy blocks stay CuPy).
    """
    _checks.dims(arr, [dim], "dim")
    import xarray as xr

    gpu = use_gpu(device)
    n = arr.sizes[dim]
    data = arr.chunk({dim: -1, **{d: "auto" for d in arr.dims if d != dim}})

    def spectrum(x: Any) -> Any:
        xp = array_module(x)
        return (xp.abs(xp.fft.rfft(x, axis=-1)) ** 2).astype(xp.float32)

    out = xr.apply_ufunc(
        on_device(spectrum, gpu), data, input_core_dims=[[dim]], output_core_dims=[["freq"]],
        dask="parallelized", output_dtypes=[np.float32],
        dask_gufunc_kwargs={"output_sizes": {"freq": n // 2 + 1}}, keep_attrs=True,
    )  # fmt: skip
    return out.assign_coords(freq=np.fft.rfftfreq(n))
