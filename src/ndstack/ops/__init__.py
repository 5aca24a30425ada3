"""Lazy processing: functions that see only their own core dims, on NumPy or CuPy blocks.

Every operation takes a DataArray and returns a new lazy DataArray; nothing is mutated.
"""

from ._apply import apply
from ._basic import crop, flatfield, power_spectrum, project, subtract_background
from ._deconvolve import deconvolve, richardson_lucy
from ._deskew import deskew, deskew_block
from ._filters import gaussian, median
from ._recenter import centroid, recenter

__all__ = [
    "apply",
    "centroid",
    "crop",
    "deconvolve",
    "deskew",
    "deskew_block",
    "flatfield",
    "gaussian",
    "median",
    "power_spectrum",
    "project",
    "recenter",
    "richardson_lucy",
    "subtract_background",
]
