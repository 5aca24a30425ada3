"""Deskew stage-scanning light-sheet stacks (lattice light-sheet, OPM)."""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

from . import _checks
from ._apply import apply
from ._xp import array_module, cupy_module, is_cupy, on_device, use_gpu

__all__ = ["deskew", "deskew_block", "deskew_shift"]


def deskew_shift(angle: float, dz: float, dx: float) -> float:
    """Pixels along X that each successive Z slice moves: ``dz cos(angle) / dx``.

    Parameters
    ----------
    angle : float
        The light-sheet angle to the coverslip, in degrees.
    dz, dx : float
        The stage step and the pixel size, in one unit.

    Returns
    -------
    float
        The shift per slice, in pixels.
    """
    return dz * math.cos(math.radians(angle)) / dx


def deskew_block(stack: Any, shift: float, *, direction: int = 1) -> Any:
    """Deskew one (Z, Y, X) stack: slice z moves ``z * shift`` pixels along X.

    ``out[z, y, x] = in[z, y, x - s]`` with ``s = z * shift`` (``(Z - 1 - z) * shift``
    for ``direction=-1``), linearly interpolated: with ``s = i + f``, ``(1 - f) in[x - i]
    + f in[x - i - 1]``, i.e. two shifted, weighted copies of each slice. The same values
    as ``scipy.ndimage.affine_transform(order=1, mode="constant")`` with the shear
    matrix, without a general resampler. On CuPy it is one fused kernel
    (:func:`_deskew_cupy`) with the same float32 arithmetic, so the same values.

    Parameters
    ----------
    stack : numpy.ndarray or cupy.ndarray
        One ``(Z, Y, X)`` stack, any real dtype.
    shift : float
        Pixels along X that each successive slice moves, from 0 (see
        :func:`deskew_shift`).
    direction : {1, -1}, keyword-only
        The scan direction: ``-1`` shifts the last slice least.

    Returns
    -------
    numpy.ndarray or cupy.ndarray
        float32, of the input's array module, shape ``(Z, Y, X + ceil(shift * (Z - 1)))``;
        zero where no input falls.
    """
    if is_cupy(stack):
        return _deskew_cupy(stack, shift, direction=direction)
    return _deskew_planes(stack, shift, direction=direction)


def _weights(z: int, nz: int, shift: float, direction: int) -> tuple[int, float]:
    """Slice ``z``'s whole shift ``i`` and fraction ``f`` (0 when under 1e-6)."""
    s = (z if direction > 0 else nz - 1 - z) * shift
    i = math.floor(s + 1e-9)
    f = max(0.0, s - i)
    return i, (0.0 if f < 1e-6 else f)


def _deskew_planes(stack: Any, shift: float, *, direction: int = 1) -> Any:
    """:func:`deskew_block` with any array module, plane by plane, without temporaries."""
    xp = array_module(stack)
    nz, ny, nx = stack.shape
    extra = math.ceil(shift * (nz - 1) - 1e-9)
    out = xp.zeros((nz, ny, nx + extra), dtype=xp.float32)
    src = stack.astype(xp.float32, copy=False)
    tmp = xp.empty((ny, nx), dtype=xp.float32)  # one scratch plane: no temporaries
    for z in range(nz):
        i, f = _weights(z, nz, shift, direction)
        if f == 0.0:
            out[z, :, i : i + nx] = src[z]
            continue
        xp.multiply(src[z], xp.float32(1 - f), out=out[z, :, i : i + nx])
        xp.multiply(src[z], xp.float32(f), out=tmp)
        view = out[z, :, i + 1 : i + 1 + nx]
        xp.add(view, tmp, out=view)
    return out


_CUPY_DESKEW = r"""
const long long W = nx + extra;
const long long x = i % W;
const long long zy = i / W;
const long long z = zy / ny;
const long long k = shifts[z];
const float w0 = w[2 * z], w1 = w[2 * z + 1];
const long long a = x - k, b = x - k - 1;  /* in[a] * w0 + in[b] * w1 */
const long long row = zy * nx;
float v = 0.0f;
if (a >= 0 && a < nx) v = __fmul_rn((float)src[row + a], w0);
if (w1 != 0.0f && b >= 0 && b < nx) v = __fadd_rn(v, __fmul_rn((float)src[row + b], w1));
out = v;
"""


@functools.lru_cache(maxsize=1)
def _cupy_deskew_kernel() -> Any:
    return cupy_module().ElementwiseKernel(
        "raw T src, raw int64 shifts, raw float32 w, int64 nx, int64 ny, int64 extra",
        "float32 out",
        _CUPY_DESKEW,
        "ndstack_deskew",
    )


def _deskew_cupy(stack: Any, shift: float, *, direction: int = 1) -> Any:
    """:func:`deskew_block` on a CuPy stack: one elementwise kernel over the output.

    Each output voxel reads its one or two input voxels, with the per-slice shifts and
    float32 weights of :func:`_deskew_planes` and its rounding (products rounded, then
    added, no fused multiply-add), so both give the same values.
    """
    cupy = cupy_module()
    nz, ny, nx = stack.shape
    extra = math.ceil(shift * (nz - 1) - 1e-9)
    parts = [_weights(z, nz, shift, direction) for z in range(nz)]
    shifts = cupy.asarray(np.array([i for i, _ in parts], dtype=np.int64))
    weights = np.array([(1 - f, f) for _, f in parts], dtype=np.float64).astype(np.float32)
    weights[[f == 0.0 for _, f in parts], 0] = 1  # a whole shift copies the slice
    out = cupy.empty((nz, ny, nx + extra), dtype=cupy.float32)
    src = cupy.ascontiguousarray(stack).reshape(-1)  # 1-D: plain offsets in the kernel
    _cupy_deskew_kernel()(src, shifts, cupy.asarray(weights.ravel()), nx, ny, extra, out)
    return out


def deskew(
    arr: Any,
    *,
    angle: float = 31.5,
    dz: float | None = None,
    dx: float | None = None,
    direction: int = 1,
    device: str = "auto",
) -> Any:
    """Deskew a stage-scanning light-sheet DataArray along its ``Z`` and ``X`` dims.

    Parameters
    ----------
    arr : xarray.DataArray
        A DataArray with dims ``Z``, ``Y``, ``X`` (others are looped over lazily).
    angle : float, keyword-only
        The light-sheet angle to the coverslip, in degrees (31.5 for the lattice).
    dz, dx : float, optional, keyword-only
        Stage step and pixel size; default: ``attrs["pixel_size"]`` Z and X.
    direction : {1, -1}, keyword-only
        The scan direction.
    device : {"auto", "cpu", "gpu"}, keyword-only
        ``"auto"`` (default): on the GPU through CuPy when one is present, else the CPU;
        ``"cpu"``; ``"gpu"`` (an error without one). On the GPU each stack moves there
        and back within its task, so the result is NumPy (CuPy blocks stay CuPy); the
        values are the same on both.

    Returns
    -------
    xarray.DataArray
        float32, wider in X; ``attrs["pixel_size"]["Z"]`` becomes the true z spacing
        ``dz sin(angle)`` and ``attrs["deskew"]`` records the geometry.
    """
    if not 0 < angle < 90:
        raise ValueError(f"angle must be strictly between 0 and 90 degrees, not {angle}")
    if direction not in (1, -1):
        raise ValueError(f"direction must be 1 or -1, not {direction}")
    _checks.dims(arr, ["Z", "Y", "X"], "deskew")
    gpu = use_gpu(device)
    px = dict(arr.attrs.get("pixel_size") or {})
    dz = float(dz if dz is not None else px.get("Z", float("nan")))
    dx = float(dx if dx is not None else px.get("X", float("nan")))
    if not (math.isfinite(dz) and math.isfinite(dx) and dz > 0 and dx > 0):
        raise ValueError("deskew needs dz and dx (or pixel sizes for Z and X in attrs)")
    shift = deskew_shift(angle, dz, dx)
    nz = arr.sizes["Z"]
    width = arr.sizes["X"] + math.ceil(abs(shift) * (nz - 1) - 1e-9)
    out = apply(
        on_device(deskew_block, gpu),
        arr,
        shift,
        core_dims=("Z", "Y", "X"),
        output_sizes={"Z": nz, "Y": arr.sizes["Y"], "X": width},
        dtype=np.float32,
        kwargs={"direction": direction},
    )
    px = {**px, "Z": dz * math.sin(math.radians(angle)), "X": dx}
    out.attrs = {**arr.attrs, "pixel_size": px,
                 "deskew": {"angle": angle, "dz": dz, "dx": dx, "direction": direction,
                            "shift_px_per_slice": shift}}  # fmt: skip
    return out
