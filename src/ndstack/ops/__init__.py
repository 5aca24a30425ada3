"""Lazy processing: functions that see only their own core dims, on NumPy or CuPy blocks.

DataArray operations take a DataArray and return a new lazy DataArray; nothing is
mutated, and dims are named, never positional:

- :func:`apply`: any function over named core dims, looped over the others;
- :func:`crop`, :func:`project`, :func:`subtract_background`, :func:`flatfield`,
  :func:`power_spectrum`;
- :func:`gaussian`, :func:`median`: filters identical across chunk borders;
- :func:`deconvolve` (Richardson-Lucy), :func:`deskew`, :func:`recenter`.

Kernels, in :mod:`ndstack.ops.kernels`, are what these run per block: functions on NumPy
or CuPy arrays (axes by position, no dims), e.g. :func:`~ndstack.ops.kernels.deskew_block`,
:func:`~ndstack.ops.kernels.richardson_lucy`, :func:`~ndstack.ops.kernels.centroid`. The
three are also importable from here (``ndstack.ops.deskew_block``: the same objects), as
they were before the namespace existed.

Options after the array and its first argument are keyword-only
(``project(arr, "Z", how="max")``, ``flatfield(arr, flat, dark=dark)``); the older
positional forms still work, with a DeprecationWarning.
"""

from . import kernels
from ._apply import apply
from ._basic import crop, flatfield, power_spectrum, project, subtract_background
from ._deconvolve import deconvolve
from ._deskew import deskew
from ._filters import gaussian, median
from ._recenter import recenter
from .kernels import centroid, deskew_block, richardson_lucy

__all__ = [
    "apply",
    "centroid",
    "crop",
    "deconvolve",
    "deskew",
    "deskew_block",
    "flatfield",
    "gaussian",
    "kernels",
    "median",
    "power_spectrum",
    "project",
    "recenter",
    "richardson_lucy",
    "subtract_background",
]
