"""Common raster formats, one image per file: PNG, JPEG, JPEG 2000, JPEG XL, WebP, BMP, GIF.

Read through imagecodecs (a core dependency). Shape and dtype come from the header where
the format makes that cheap — PNG's IHDR (and its ``pHYs`` pixel size, when in metres),
JPEG's SOF — and from one decode of the first file otherwise. RGB(A) samples are the last
axis inside the file, named like TIFF's: ``C`` when the files hold no other channel axis.
A read decodes the whole file (these formats hold one plane: one plane is one file) and
checks its shape and dtype against the first file's.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._grid import checked_selection
from ._redact import reason
from ._tiff import _MAX_EXPANSION, FileInfo, _map_axes, read_bytes
from .errors import CorruptFileError

__all__ = ["RasterReader", "probe_raster"]


_PNG_SAMPLES = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples (3, palette: decoded)
_HEAD = 65536  # JPEG's SOF follows EXIF and ICC segments: within the first 64 kB mostly


def _format_name(path: str) -> str:
    """The name of the format a path's ending names (for messages and header parsing)."""
    from ._formats import format_of

    return getattr(format_of(path), "name", "image")


def _axes(shape: tuple[int, ...], fmt: str) -> str:
    """In-file axes of a decoded raster: samples last (at most 4), frames first.

    A 3-D decode is one colour image (``YXS``) when its last dim holds 4 samples or fewer,
    else grey frames (a multi-frame JPEG XL): ``ZYX``, or ``TYX`` for GIF's animation.

    >>> _axes((24, 32, 3), "PNG"), _axes((5, 24, 32), "JPEG XL"), _axes((5, 24, 32, 3), "GIF")
    ('YXC', 'ZYX', 'TYXC')
    """
    frames = "T" if fmt == "GIF" else "Z"
    if len(shape) == 2:
        return "YX"
    if len(shape) == 3:
        return _map_axes("YXS") if shape[-1] <= 4 else frames + "YX"
    return _map_axes(frames + "YXS")


def _from_header(head: bytes, fmt: str) -> tuple[tuple[int, ...], str, dict[str, float]] | None:
    """(shape, dtype, pixel sizes in µm) from the first bytes, where the format allows."""
    if fmt == "PNG" and head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
        if colour not in _PNG_SAMPLES or depth not in (8, 16):
            return None  # palettes and 1/2/4-bit pixels: decode to learn what they give
        if b"tRNS" in head or b"acTL" in head:
            return None  # transparency adds alpha, animation frames: decode
        samples = _PNG_SAMPLES[colour]
        shape = (height, width) if samples == 1 else (height, width, samples)
        sizes: dict[str, float] = {}
        at = head.find(b"pHYs")
        if at > 0 and len(head) >= at + 13:
            ppx, ppy, unit = struct.unpack(">IIB", head[at + 4 : at + 13])
            if unit == 1 and ppx > 0 and ppy > 0:  # pixels per metre
                sizes = {"Y": 1e6 / ppy, "X": 1e6 / ppx}
        return shape, "uint16" if depth == 16 else "uint8", sizes
    if fmt == "JPEG" and head[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(head):
            if head[i] != 0xFF:
                return None
            marker = head[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            length = struct.unpack(">H", head[i + 2 : i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                precision, height, width, comps = struct.unpack(">BHHB", head[i + 4 : i + 10])
                if height == 0:
                    return None  # the height comes later (DNL): decode
                shape = (height, width) if comps == 1 else (height, width, comps)
                return shape, "uint8" if precision <= 8 else "uint16", {}
            i += 2 + length
    return None


def probe_raster(path: str, fs: Any = None) -> FileInfo:
    """Shape, dtype, axes and pixel sizes of one raster file: its header, or one decode.

    Raises
    ------
    CorruptFileError
        When the file cannot be read or decoded, naming it and the format expected.
    """
    fmt = _format_name(path)
    head = _read(path, fs, _HEAD)
    found = _from_header(head, fmt)
    if found is None:  # a file shorter than the head was read whole already
        data = _decode(path, head if len(head) < _HEAD else _read(path, fs), fmt)
        shape, dtype, sizes = tuple(int(n) for n in data.shape), data.dtype.name, {}
    else:
        shape, dtype, sizes = found
        _refuse_forged(path, fs, shape, dtype)
    return FileInfo(
        shape=shape,
        dtype=dtype,
        axes=_axes(shape, fmt),
        pixel_sizes=sizes,
        unit="micrometer" if sizes else None,
        pixel_note=None if sizes else f"{fmt} files carry no pixel size; pass pixel_size=",
    )


#: imagecodecs' codec of each format: a file is decoded by what its first bytes say
_CODECS = {
    "PNG": "png",
    "JPEG": "jpeg8",
    "JPEG 2000": "jpeg2k",
    "JPEG XL": "jpegxl",
    "WebP": "webp",
    "BMP": "bmp",
    "GIF": "gif",
}


def _refuse_forged(path: str, fs: Any, shape: tuple[int, ...], dtype: str) -> None:
    """A header that declares more pixels than its file could hold compressed (a forged
    or broken header) is refused before anything is sized by it."""
    try:
        size = os.path.getsize(path) if fs is None else int(fs.size(path))
    except (OSError, TypeError, ValueError):
        return
    nbytes = int(np.prod(shape, dtype=np.float64)) * np.dtype(dtype).itemsize
    if nbytes > _MAX_EXPANSION * max(size, 1):
        raise CorruptFileError(
            f"{path}: its header declares {shape} {dtype} pixels ({nbytes} bytes), more "
            f"than its {size} bytes can hold"
        )


def _read(path: str, fs: Any, limit: int = -1) -> bytes:
    try:
        return read_bytes(path, fs, limit)
    except OSError as exc:
        raise CorruptFileError(f"{path}: cannot be read ({reason(exc)})") from None


def _decode(path: str, raw: bytes, fmt: str) -> np.ndarray:
    """A file's bytes decoded by the codec their magic bytes name (never by trying every
    codec: some crash on input that is not theirs), after checks that make a cut file an
    error rather than part of an image."""
    import imagecodecs

    from ._formats import sniff

    if not raw:
        raise CorruptFileError(f"{path}: empty (0 bytes), expected a {fmt} file")
    found = sniff(raw[:16])
    kind = found.name if found is not None else fmt
    codec = _CODECS.get(kind)
    if codec is None:
        raise CorruptFileError(
            f"{path}: not a readable {fmt} file (its first bytes {raw[:8]!r} name no image format)"
        )
    if kind == "JPEG" and b"\xff\xd9" not in raw[-64:]:
        raise CorruptFileError(f"{path}: truncated: the JPEG has no end marker")
    if kind == "WebP" and b"ANIM" in raw[:64]:
        raise CorruptFileError(f"{path}: an animated WebP: only single images are read")
    try:
        return np.asarray(imagecodecs.imread(raw, codec=codec))
    except Exception as exc:  # imagecodecs raises its codecs' own errors
        raise CorruptFileError(f"{path}: not a readable {kind} file ({reason(exc)})") from None


@dataclass(frozen=True)
class RasterReader:
    """Reads whole raster files (one plane each) for a :class:`~._grid.FileGrid`."""

    info: FileInfo
    fs: Any = None

    def read(self, path: str, sel: Any) -> np.ndarray:
        data = _decode(path, _read(path, self.fs), _format_name(path))
        return checked_selection(path, data, self.info.shape, self.info.dtype, sel)
