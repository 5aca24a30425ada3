"""Deskew stage-scanning light-sheet stacks (lattice light-sheet, OPM)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._apply import apply
from ._xp import array_module

__all__ = ["deskew", "deskew_block", "deskew_shift"]


def deskew_shift(angle: float, dz: float, dx: float) -> float:
    """Pixels along X that each successive Z slice moves: ``dz cos(angle) / dx``."""
    return dz * math.cos(math.radians(angle)) / dx


def deskew_block(stack: Any, shift: float, *, direction: int = 1) -> Any:
    """Deskew one (Z, Y, X) stack: slice z moves ``z * shift`` pixels along X.

    ``out[z, y, x] = in[z, y, x - s]`` with ``s = z * shift`` (``(Z - 1 - z) * shift``
    for ``direction=-1``), linearly interpolated: with ``s = i + f``, ``(1 - f) in[x - i]
    + f in[x - i - 1]``, i.e. two shifted, weighted copies of each slice. The same values
    as ``scipy.ndimage.affine_transform(order=1, mode="constant")`` with the shear
    matrix, without a general resampler. NumPy or CuPy in, the same out; float32, wider
    in X by ``ceil(shift * (Z - 1))``, zero where no input falls.
    """
    xp = array_module(stack)
    nz, ny, nx = stack.shape
    extra = math.ceil(shift * (nz - 1) - 1e-9)
    out = xp.zeros((nz, ny, nx + extra), dtype=xp.float32)
    src = stack.astype(xp.float32, copy=False)
    tmp = xp.empty((ny, nx), dtype=xp.float32)  # one scratch plane: no temporaries
    for z in range(nz):
        s = (z if direction > 0 else nz - 1 - z) * shift
        i = math.floor(s + 1e-9)
        f = max(0.0, s - i)
        if f < 1e-6:
            out[z, :, i : i + nx] = src[z]
            continue
        xp.multiply(src[z], xp.float32(1 - f), out=out[z, :, i : i + nx])
        xp.multiply(src[z], xp.float32(f), out=tmp)
        view = out[z, :, i + 1 : i + 1 + nx]
        xp.add(view, tmp, out=view)
    return out


def deskew(
    arr: Any,
    *,
    angle: float = 31.5,
    dz: float | None = None,
    dx: float | None = None,
    direction: int = 1,
) -> Any:
    """Deskew a stage-scanning light-sheet DataArray along its ``Z`` and ``X`` dims.

    Parameters
    ----------
    arr
        A DataArray with dims ``Z``, ``Y``, ``X`` (others are looped over lazily).
    angle
        The light-sheet angle to the coverslip, in degrees (31.5 for the lattice).
    dz, dx
        Stage step and pixel size; default: ``attrs["pixel_size"]`` Z and X.
    direction
        ``1`` or ``-1``: the scan direction.

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
    px = dict(arr.attrs.get("pixel_size") or {})
    dz = float(dz if dz is not None else px.get("Z", float("nan")))
    dx = float(dx if dx is not None else px.get("X", float("nan")))
    if not (math.isfinite(dz) and math.isfinite(dx) and dz > 0 and dx > 0):
        raise ValueError("deskew needs dz and dx (or pixel sizes for Z and X in attrs)")
    shift = deskew_shift(angle, dz, dx)
    nz = arr.sizes["Z"]
    width = arr.sizes["X"] + math.ceil(abs(shift) * (nz - 1) - 1e-9)
    out = apply(
        deskew_block,
        arr,
        shift,
        core_dims=("Z", "Y", "X"),
        output_sizes={"Z": nz, "Y": arr.sizes["Y"], "X": width},
        dtype=np.float32,
        direction=direction,
    )
    px = {**px, "Z": dz * math.sin(math.radians(angle)), "X": dx}
    out.attrs = {**arr.attrs, "pixel_size": px,
                 "deskew": {"angle": angle, "dz": dz, "dx": dx, "direction": direction,
                            "shift_px_per_slice": shift}}  # fmt: skip
    return out
