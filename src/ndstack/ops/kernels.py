"""Block-level kernels: functions on NumPy or CuPy arrays, not DataArrays.

What the DataArray operations of :mod:`ndstack.ops` run on each block, for use on arrays
in memory, inside :func:`ndstack.ops.apply`, or in one's own ``map_blocks``. Each takes
and returns arrays of one array module (NumPy in, NumPy out; CuPy in, CuPy out), with
no dims to name: axes are positional, as documented per function.

- :func:`deskew_block`: deskew one ``(Z, Y, X)`` stack (what :func:`~ndstack.ops.deskew`
  runs per stack), with :func:`deskew_shift` for its shift per slice;
- :func:`richardson_lucy`: Richardson-Lucy deconvolution of one block (what
  :func:`~ndstack.ops.deconvolve` runs), and :func:`richardson_lucy_tiled`, the same over
  overlapping tiles (:func:`worthwhile_tile`: the tiles it runs for a tile asked);
- :func:`centroid`: the intensity centroid of a 2-D plane, and :func:`recenter_plane`,
  the window around it (what :func:`~ndstack.ops.recenter` runs per plane).

These are the same objects as ``ndstack.ops.deskew_block``, ``ndstack.ops.richardson_lucy``
and ``ndstack.ops.centroid``, which stay importable from there.
"""

from ._deconvolve import richardson_lucy, richardson_lucy_tiled, worthwhile_tile
from ._deskew import deskew_block, deskew_shift
from ._recenter import centroid, recenter_plane

__all__ = [
    "centroid",
    "deskew_block",
    "deskew_shift",
    "recenter_plane",
    "richardson_lucy",
    "richardson_lucy_tiled",
    "worthwhile_tile",
]
