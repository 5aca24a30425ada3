"""Axis letters, their order, and the file endings ndstack reads: one source for each fact.

Dims are put in OME order: positions and other axes first, then tiles, ``T, C, Z``, the
in-file ``Q`` pages, ``Y, X`` and samples ``S``. Pure data, no imports beyond typing.
"""

from __future__ import annotations

__all__ = [
    "NAME_AXES",
    "OTHER_RANK",
    "RANK",
    "RASTER_FORMATS",
    "TIFF_EXTENSIONS",
    "is_tiff_name",
    "rank",
]

#: Sort keys of the axes ndstack knows; any other axis sorts at :data:`OTHER_RANK`.
RANK: dict[str, float] = {
    "P": 0, "tile_t": 1.7, "tile_c": 1.8, "tile_z": 1.9, "tile_y": 2, "tile_x": 3,
    "T": 4, "C": 5, "Z": 6, "Q": 6.5, "Y": 7, "X": 8, "S": 9,
}  # fmt: skip
OTHER_RANK = 1
#: The axes a file name can carry (the in-file ones, Y, X, Q, S, come from headers).
NAME_AXES = frozenset({"P", "tile_y", "tile_x", "T", "C", "Z"})

#: File endings the TIFF reader takes (lower case; names are compared case-insensitively).
TIFF_EXTENSIONS = (".tif", ".tiff", ".btf", ".tf8", ".tf2", ".lsm", ".stk")
#: One-image raster formats read by default (through imagecodecs), with their endings.
RASTER_FORMATS: dict[str, tuple[str, ...]] = {
    "PNG": (".png",),
    "JPEG": (".jpg", ".jpeg", ".jpe"),
    "JPEG 2000": (".jp2", ".j2k", ".jpx"),
    "JPEG XL": (".jxl",),
    "WebP": (".webp",),
    "BMP": (".bmp",),
    "GIF": (".gif",),
}


def rank(axis: str) -> float:
    """The sort key of an axis in OME order.

    >>> sorted(["X", "T", "pos", "C", "Y"], key=rank)
    ['pos', 'T', 'C', 'Y', 'X']
    """
    return RANK.get(axis, OTHER_RANK)


def is_tiff_name(name: str) -> bool:
    """Whether a file name ends like a TIFF (any case).

    >>> [is_tiff_name(n) for n in ("a.TIF", "b.ome.tiff", "c.png")]
    [True, True, False]
    """
    return name.lower().endswith(TIFF_EXTENSIONS)
