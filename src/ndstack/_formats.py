"""The file formats ndstack reads without ``reader=``: built-in ones and registered ones.

A format is an object with

* ``name`` (``"PNG"``) and ``extensions`` (lower-case endings, ``(".png",)``);
* ``probe(path, fs) -> FileInfo``: shape, dtype, in-file axes and pixel sizes of one
  file, from its headers where the format allows (raising
  :class:`~ndstack.errors.CorruptFileError` naming the file);
* ``reader(info, fs)``: a picklable :class:`~._grid.Reader` for the task graph, whose
  ``read(path, sel)`` returns the selection of one file.

TIFF and the raster formats of :mod:`._raster` are built in. Other packages add formats
through the entry point group ``ndstack.readers`` (each entry point names such an
object), or a program calls :func:`register_format`. Pure lookup, no I/O.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Any, Protocol

from ._axes import RASTER_FORMATS, TIFF_EXTENSIONS
from ._bioio import Bioio
from ._tiff import FileInfo

__all__ = ["Format", "extensions", "format_of", "formats", "named", "register_format", "sniff"]

ENTRY_POINTS = "ndstack.readers"


class Format(Protocol):
    """A file format ndstack reads by ending (see the module docstring)."""

    name: str
    extensions: tuple[str, ...]

    def probe(self, path: str, fs: Any = None) -> FileInfo: ...

    def reader(self, info: FileInfo, fs: Any = None) -> Any: ...


@dataclass(frozen=True)
class _Tiff:
    name: str = "TIFF"
    extensions: tuple[str, ...] = TIFF_EXTENSIONS

    def probe(self, path: str, fs: Any = None) -> FileInfo:
        from ._tiff import probe_tiff

        return probe_tiff(path, fs)

    def reader(self, info: FileInfo, fs: Any = None) -> Any:
        from ._tiff import TiffReader

        return TiffReader(info, fs)


@dataclass(frozen=True)
class _Raster:
    name: str
    extensions: tuple[str, ...]

    def probe(self, path: str, fs: Any = None) -> FileInfo:
        from ._raster import probe_raster

        return probe_raster(path, fs)

    def reader(self, info: FileInfo, fs: Any = None) -> Any:
        from ._raster import RasterReader

        return RasterReader(info, fs)


_BUILT_IN: tuple[Format, ...] = (
    _Tiff(),
    *(_Raster(name, endings) for name, endings in RASTER_FORMATS.items()),
    Bioio(),  # vendor endings (.czi, .nd2, .lif ...): bioio itself is imported on use
)
_BUILT_IN_BY_NAME = {f.name: f for f in _BUILT_IN}
_REGISTERED: list[Format] = []


def _problem(fmt: Any) -> str:
    """What makes ``fmt`` no format ('' when it is one)."""
    missing = [a for a in ("name", "extensions", "probe", "reader") if not hasattr(fmt, a)]
    if missing:
        return f"it lacks {', '.join(missing)}"
    ext = fmt.extensions
    if isinstance(ext, str) or not all(isinstance(e, str) and e.startswith(".") for e in ext):
        return f"its extensions {ext!r} are no tuple of endings such as ('.png',)"
    return ""


def register_format(fmt: Format) -> None:
    """Add a format (checked for the protocol's parts); its endings win over earlier ones."""
    problem = _problem(fmt)
    if problem:
        raise TypeError(f"{fmt!r} is no ndstack format: {problem}")
    _REGISTERED.append(fmt)
    _by_ending.cache_clear()


@functools.cache
def _from_entry_points() -> tuple[Format, ...]:
    from importlib.metadata import entry_points

    found = []
    for ep in entry_points(group=ENTRY_POINTS):
        try:
            fmt = ep.load()
            problem = _problem(fmt)
        except Exception as exc:  # a broken plugin must not break every open
            problem = f"it fails to load ({type(exc).__name__}: {exc})"
        if problem:
            warnings.warn(
                f"ndstack leaves out the format of entry point {ep.name!r} ({ep.value}) "
                f"in {ENTRY_POINTS!r}: {problem}",
                stacklevel=3,
            )
            continue
        found.append(fmt)
    return tuple(found)


def formats() -> tuple[Format, ...]:
    """Every format: built in, from entry points, then registered (later ones win)."""
    return (*_BUILT_IN, *_from_entry_points(), *_REGISTERED)


@functools.cache
def _by_ending() -> dict[str, Format]:
    return {e.lower(): f for f in formats() for e in f.extensions}


def extensions() -> tuple[str, ...]:
    """Every ending some format reads (what a folder is searched for by default)."""
    return tuple(_by_ending())


def named(name: str) -> Format:
    """The format called ``name`` (``reader="bioio"`` routes every file through it)."""
    for fmt in reversed(formats()):
        if fmt.name.lower() == name.lower():
            return fmt
    known = ", ".join(sorted({f.name for f in formats()}))
    raise ValueError(f"reader={name!r} names no format; known: {known}")


def format_of(name: str) -> Format | None:
    """The format of a file by its ending (the longest that matches), or None.

    >>> [getattr(format_of(n), "name", None) for n in ("a.TIF", "b.png", "c.jpeg", "d.txt")]
    ['TIFF', 'PNG', 'JPEG', None]
    """
    low = name.lower()
    table = _by_ending()
    dot = low.find(".", low.rfind("/") + 1)
    while dot >= 0:  # from the first dot on: the longest ending first (.ome.tif, .tif)
        fmt = table.get(low[dot:])
        if fmt is not None:
            return fmt
        dot = low.find(".", dot + 1)
    return None


#: the first bytes of each built-in format (for files whose ending lies)
_MAGIC: tuple[tuple[bytes, int, str], ...] = (
    (b"II*\0", 0, "TIFF"),
    (b"MM\0*", 0, "TIFF"),
    (b"II+\0", 0, "TIFF"),  # BigTIFF
    (b"MM\0+", 0, "TIFF"),
    (b"\x89PNG\r\n\x1a\n", 0, "PNG"),
    (b"\xff\xd8\xff", 0, "JPEG"),
    (b"\0\0\0\x0cjP  ", 0, "JPEG 2000"),
    (b"\xff\x4f\xff\x51", 0, "JPEG 2000"),
    (b"\xff\x0a", 0, "JPEG XL"),
    (b"\0\0\0\x0cJXL ", 0, "JPEG XL"),
    (b"WEBP", 8, "WebP"),
    (b"BM", 0, "BMP"),
    (b"GIF8", 0, "GIF"),
)


def sniff(head: bytes) -> Format | None:
    """The built-in format whose magic bytes ``head`` starts with, or None.

    >>> sniff(b"\\x89PNG\\r\\n\\x1a\\n....").name
    'PNG'
    """
    for magic, at, name in _MAGIC:
        if head[at : at + len(magic)] == magic:
            return _BUILT_IN_BY_NAME[name]
    return None
