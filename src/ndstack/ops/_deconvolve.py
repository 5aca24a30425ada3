"""Richardson-Lucy deconvolution with the PSF's transform computed once."""

from __future__ import annotations

import functools
import os
from typing import Any

import numpy as np

from . import _checks
from ._apply import apply
from ._xp import array_module

__all__ = ["deconvolve", "richardson_lucy", "richardson_lucy_gpu", "richardson_lucy_tiled"]


@functools.lru_cache(maxsize=16)
def _otfs(psf_bytes: bytes, psf_shape: tuple[int, ...], fshape: tuple[int, ...]) -> tuple[Any, Any]:
    import scipy.fft

    psf = np.frombuffer(psf_bytes, dtype=np.float32).reshape(psf_shape)
    psf = psf / psf.sum()
    mirror = np.ascontiguousarray(psf[tuple(slice(None, None, -1) for _ in psf_shape)])
    return scipy.fft.rfftn(psf, fshape), scipy.fft.rfftn(mirror, fshape)


def richardson_lucy_tiled(
    image: Any, psf: Any, iterations: int = 10, *, tile: tuple[int, ...],
    overlap: tuple[int, ...] | None = None, **kwargs: Any,
) -> Any:  # fmt: skip
    """Richardson-Lucy over overlapping tiles: memory bounded by one tile, not the block.

    Each tile is grown by ``overlap`` per side (default: twice the PSF's size, which
    keeps the result within ~1e-5 of the untiled one), deconvolved as its own block, and
    only its core is kept. This is how blocks larger than GPU memory still run.
    """
    import itertools

    xp = array_module(image)
    overlap = overlap or tuple(2 * p for p in np.shape(psf))
    out = xp.empty(image.shape, dtype=xp.float32)
    starts = [range(0, n, t) for n, t in zip(image.shape, tile)]
    for st in itertools.product(*starts):
        core = tuple(slice(s, min(s + t, n)) for s, t, n in zip(st, tile, image.shape))
        ext = tuple(
            slice(max(c.start - o, 0), min(c.stop + o, n))
            for c, o, n in zip(core, overlap, image.shape)
        )
        inner = tuple(slice(c.start - e.start, c.stop - e.start) for c, e in zip(core, ext))
        out[core] = richardson_lucy(image[ext], psf, iterations, **kwargs)[inner]
    return out


def _gpu_tile(shape: tuple[int, ...], psf_shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """A tile that fits in half the GPU's free memory (about 40 bytes per padded voxel)."""
    import cupy

    free, _ = cupy.cuda.runtime.memGetInfo()
    tile = list(shape)
    while np.prod([t + 4 * p for t, p in zip(tile, psf_shape)]) * 40 > free / 2:
        i = int(np.argmax(tile))
        if tile[i] <= 2 * psf_shape[i]:
            break
        tile[i] = (tile[i] + 1) // 2
    return None if tile == list(shape) else tuple(tile)


def richardson_lucy_gpu(image: Any, psf: Any, iterations: int = 10, **kwargs: Any) -> np.ndarray:
    """The same on the GPU (CuPy): the block moves there, tiled to fit, and comes back."""
    import cupy

    gpu_image = cupy.asarray(image, dtype=cupy.float32)
    tile = _gpu_tile(gpu_image.shape, np.shape(psf))
    if tile is None:
        result = richardson_lucy(gpu_image, psf, iterations, **kwargs)
    else:
        result = richardson_lucy_tiled(gpu_image, psf, iterations, tile=tile, **kwargs)
    return cupy.asnumpy(result)


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
    xp = array_module(image)
    if xp is not np:
        return _richardson_lucy_cupy(image, psf, iterations, background=background, eps=eps)
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


def _richardson_lucy_cupy(image: Any, psf: Any, iterations: int, *, background: float,
                          eps: float) -> Any:  # fmt: skip
    """The CuPy twin of :func:`richardson_lucy` (same padding, cropping and start)."""
    import cupy
    import cupyx.scipy.fft as cufft

    image = image.astype(cupy.float32, copy=False)
    if background:
        image = cupy.maximum(image - cupy.float32(background), 0)
    psf_host = np.asarray(psf, dtype=np.float32)
    psf_host = psf_host / psf_host.sum()
    full = [s + p - 1 for s, p in zip(image.shape, psf_host.shape)]
    fshape = tuple(cufft.next_fast_len(n) for n in full)
    axes = tuple(range(image.ndim))
    otf = cufft.rfftn(cupy.asarray(psf_host), fshape, axes=axes)
    mirror = np.ascontiguousarray(psf_host[tuple(slice(None, None, -1) for _ in psf_host.shape)])
    otf_mirror = cufft.rfftn(cupy.asarray(mirror), fshape, axes=axes)
    start = [(p - 1) // 2 for p in psf_host.shape]
    crop = tuple(slice(st, st + s) for st, s in zip(start, image.shape))
    estimate = cupy.full(image.shape, 0.5, dtype=cupy.float32)
    for _ in range(int(iterations)):
        blurred = cufft.irfftn(cufft.rfftn(estimate, fshape, axes=axes) * otf, fshape, axes=axes)[
            crop
        ]
        ratio = cupy.where(blurred >= eps, image / cupy.maximum(blurred, eps), 0)
        estimate *= cufft.irfftn(cufft.rfftn(ratio, fshape, axes=axes) * otf_mirror, fshape,
                                 axes=axes)[crop].astype(cupy.float32)  # fmt: skip
    return estimate


def _gpu_available() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def deconvolve(
    arr: Any, psf: Any, *, iterations: int = 10, background: float = 0.0,
    device: str = "auto", tile: tuple[int, ...] | None = None,
) -> Any:  # fmt: skip
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
    device
        ``"auto"`` (default): the GPU through CuPy when one is present, else the CPU;
        ``"cpu"``; ``"gpu"``. On the GPU a block that does not fit in half the free GPU
        memory is deconvolved in overlapping tiles.
    tile
        On the CPU too: deconvolve each block in overlapping tiles of this size, so that
        memory is bounded by a tile (results within ~1e-5 of untiled).
    """
    _checks.whole(iterations, "iterations")
    _checks.number(background, "background", at_least=0)
    for t in tile or ():
        _checks.whole(t, "tile")
    if device not in ("auto", "cpu", "gpu"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'gpu', not {device!r}")
    use_gpu = device == "gpu" or (device == "auto" and _gpu_available())
    if device == "gpu" and not _gpu_available():
        raise ValueError("device='gpu' needs CuPy and a CUDA GPU; none was found")
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
    kernel: Any = richardson_lucy_gpu if use_gpu else richardson_lucy
    extra: dict[str, Any] = {"background": background}
    if tile is not None and not use_gpu:
        kernel, extra["tile"] = richardson_lucy_tiled, tuple(tile)
    return apply(kernel, arr, psf, iterations, core_dims=core, dtype=np.float32,
                 output_sizes={d: arr.sizes[d] for d in core}, **extra)  # fmt: skip
