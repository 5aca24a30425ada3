"""Richardson-Lucy deconvolution with the PSF's transform computed once."""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

from ._apply import apply

__all__ = ["deconvolve", "richardson_lucy"]


@functools.lru_cache(maxsize=16)
def _otfs(psf_bytes: bytes, psf_shape: tuple[int, ...], fshape: tuple[int, ...]) -> tuple[Any, Any]:
    import scipy.fft

    psf = np.frombuffer(psf_bytes, dtype=np.float32).reshape(psf_shape)
    psf = psf / psf.sum()
    mirror = np.ascontiguousarray(psf[tuple(slice(None, None, -1) for _ in psf_shape)])
    return scipy.fft.rfftn(psf, fshape), scipy.fft.rfftn(mirror, fshape)


def richardson_lucy(
    image: Any, psf: Any, iterations: int = 10, *, background: float = 0.0,
    eps: float = 1e-12, workers: int | None = None,
) -> Any:  # fmt: skip
    """Richardson-Lucy deconvolution of one block (NumPy), float32.

    The same iteration as ``skimage.restoration.richardson_lucy(clip=False)``: start from
    0.5 everywhere, ``estimate *= conv(image / conv(estimate, psf), psf[::-1])``, each
    convolution zero-padded to its full linear size and cropped as ``mode="same"``, so
    edges are handled as there. The PSF is normalised to sum 1, and its transform (and
    its mirror's) is computed once per PSF and block shape, not per iteration.
    """
    import scipy.fft

    image = np.asarray(image, dtype=np.float32)
    psf = np.ascontiguousarray(psf, dtype=np.float32)
    if psf.ndim != image.ndim:
        raise ValueError(f"the PSF has {psf.ndim} dims, the image {image.ndim}")
    if any(p > s for p, s in zip(psf.shape, image.shape)):
        raise ValueError(f"the PSF {psf.shape} is larger than the block {image.shape}")
    if background:
        image = np.maximum(image - np.float32(background), 0)
    workers = workers or os.cpu_count() or 1
    full = [s + p - 1 for s, p in zip(image.shape, psf.shape)]
    fshape = tuple(scipy.fft.next_fast_len(n, real=True) for n in full)
    otf, otf_mirror = _otfs(psf.tobytes(), psf.shape, fshape)
    start = [(p - 1) // 2 for p in psf.shape]
    crop = tuple(slice(st, st + s) for st, s in zip(start, image.shape))
    axes = tuple(range(image.ndim))

    def conv(x: np.ndarray, transfer: Any) -> np.ndarray:
        spectrum = scipy.fft.rfftn(x, fshape, axes=axes, workers=workers)
        spectrum *= transfer
        return scipy.fft.irfftn(spectrum, fshape, axes=axes, workers=workers)[crop]

    estimate = np.full(image.shape, 0.5, dtype=np.float32)
    for _ in range(int(iterations)):
        blurred = conv(estimate, otf)
        ratio = np.divide(image, blurred, out=np.zeros_like(image), where=blurred >= eps)
        estimate *= conv(ratio, otf_mirror).astype(np.float32, copy=False)
    return estimate


def deconvolve(arr: Any, psf: Any, *, iterations: int = 10, background: float = 0.0) -> Any:
    """Richardson-Lucy deconvolution over ``Z, Y, X`` (or ``Y, X``), lazily, per block.

    Parameters
    ----------
    arr
        A DataArray with ``Y``, ``X`` (and ``Z``) dims; other dims are looped over.
    psf
        One PSF (ndarray with the same spatial dims), or a DataArray with dims
        ``(C, Z, Y, X)``: each channel gets its own PSF.
    iterations, background
        Number of iterations; a constant subtracted first (clipped at 0).
    """
    import xarray as xr

    core = tuple(d for d in ("Z", "Y", "X") if d in arr.dims)
    if isinstance(psf, xr.DataArray):
        spatial = tuple(d for d in psf.dims if d != "C")
        if sorted(spatial) != sorted(core):
            raise ValueError(f"the PSF's dims {psf.dims} do not match the image's {core} (plus C)")
        psf = psf.transpose(*(["C"] if "C" in psf.dims else []), *core)
        if "C" in psf.dims and psf.sizes["C"] != arr.sizes.get("C"):
            raise ValueError(f"{psf.sizes['C']} PSFs for {arr.sizes.get('C', 0)} channels")
        values = psf.values
    else:
        values = np.asarray(psf)
        if values.ndim != len(core):
            raise ValueError(f"the PSF has {values.ndim} dims, the image has {core}")
    if not np.all(np.isfinite(values)) or values.sum() <= 0:
        raise ValueError("the PSF must be finite with a positive sum")
    if any(p > arr.sizes[d] for p, d in zip(values.shape[-len(core) :], core)):
        raise ValueError(
            f"the PSF {values.shape} is larger than the block {tuple(arr.sizes[d] for d in core)}"
        )
    return apply(richardson_lucy, arr, psf, iterations, core_dims=core, dtype=np.float32,
                 output_sizes={d: arr.sizes[d] for d in core}, background=background)  # fmt: skip
