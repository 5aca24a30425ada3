"""The built-in TIFF reader: probe headers, read page ranges.

``probe`` learns shape, dtype, axes and pixel sizes from the headers of one file without
reading pixels. ``TiffReader.read`` reads only the pages a selection needs. When a file is
laid out like the probed one (uncompressed, the same first-page offset and page shape),
the pages are read straight from their byte offsets; otherwise tifffile's series reader
does the work. Every read is checked against the expected shape, because tifffile can
hand back fewer pages from a truncated file with only a logged error.
"""

from __future__ import annotations

import builtins
import math
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._redact import reason
from .errors import CorruptFileError, FileMismatchError

__all__ = ["FileInfo", "TiffReader", "probe_tiff"]

_UNIT_NAMES = {
    "um": "micrometer",
    "µm": "micrometer",
    "\\u00B5m": "micrometer",
    "micron": "micrometer",
    "micrometer": "micrometer",
    "nm": "nanometer",
    "nanometer": "nanometer",
    "mm": "millimeter",
    "millimeter": "millimeter",
    "cm": "centimeter",
    "m": "meter",
}
_TO_MICRON = {"micrometer": 1.0, "nanometer": 1e-3, "millimeter": 1e3, "centimeter": 1e4}


@dataclass(frozen=True)
class FileInfo:
    """What a file's headers say: enough to build the lazy array without its pixels."""

    shape: tuple[int, ...]
    dtype: str
    axes: str  # one letter per dim, tifffile's letters mapped to T, C, Z, Y, X, S, ...
    pixel_sizes: dict[str, float]  # per axis letter, in ``unit``
    unit: str | None
    #: byte offset of the first page when the whole series is one uncompressed block
    offset: int | None = None
    byteorder: str = "<"
    size: int = 0  # the file's size in bytes
    #: the bytes before the pixel data (TIFF header, first IFD and all its values),
    #: when they hold everything tifffile parses for the first page; None otherwise
    header: bytes | None = None
    #: the bytes after the pixel data (the other pages' IFDs): with ``header``, every
    #: byte of the file that is not a pixel, so a file equal in both is laid out alike
    trailer: bytes | None = None
    #: why the files give no pixel size although they carry a calibration (for ``info``)
    pixel_note: str | None = None
    #: names of the channels along an in-file ``C`` axis (OME-XML, bioio), if known
    channel_names: tuple[str, ...] = ()


@contextmanager
def _opened(path: str, fs: Any) -> Iterator[Any]:
    """Yield something tifffile can open: the path itself, or an fsspec file."""
    if fs is None:
        yield path
    else:
        with fs.open(path, "rb") as fh:
            yield fh


def read_bytes(path: str, fs: Any = None, limit: int = -1) -> bytes:
    """The first ``limit`` bytes of a file (all with -1), local or in ``fs``; OSError when
    it cannot be read."""
    with open(path, "rb") if fs is None else fs.open(path, "rb") as fh:
        return bytes(fh.read(limit))


def _tifffile() -> Any:
    import tifffile

    return tifffile


def _one_file(f: Any) -> Any:
    """A TiffFile whose series hold its own pages only: a file of a multi-file OME data
    set (whose OME-XML describes the other files too) read as itself, as when its name
    places it (``_ome`` reads the data set as a whole)."""
    tifffile = _tifffile()
    try:
        return tifffile.TiffFile(f, _multifile=False)
    except TypeError:  # a tifffile without the (private) switch
        return tifffile.TiffFile(f)


def _map_axes(axes: str) -> str:
    """tifffile's axis letters to ndstack's: pages without a name become Z (or Q)."""
    out = []
    for a in axes:
        if a in "IQ":
            a = "Z" if "Z" not in axes and "Z" not in out else "Q"
        elif a == "S" and "C" not in axes:
            a = "C"
        out.append(a)
    return "".join(out)


def probe_tiff(path: str, fs: Any = None) -> FileInfo:
    """Shape, dtype, axes and pixel sizes of the first series, from headers only.

    Raises
    ------
    CorruptFileError
        When the file is not a TIFF or its headers cannot be parsed.
    """
    try:
        with _opened(path, fs) as f, _one_file(f) as tif:
            series = tif.series[0]
            shape = tuple(int(s) for s in series.shape)
            axes = _map_axes(series.axes)
            sizes, unit = _pixel_sizes(tif, axes)
            size = int(tif.filehandle.size)
            ij = tif.imagej_metadata or {}
            if tif.is_imagej and int(ij.get("images", 1)) > len(tif.pages):
                raise CorruptFileError(
                    f"{path}: truncated: its ImageJ header announces {ij['images']} images, "
                    f"the file holds {len(tif.pages)} pages in {size} bytes"
                )
            offset = series.dataoffset
            page = tif.pages.first
            if offset is not None and page.compression != 1:
                offset = None
            if offset is not None and int(offset) + series.nbytes > size:
                raise CorruptFileError(
                    f"{path}: truncated: the pixels need {int(offset) + series.nbytes} bytes, "
                    f"the file has {size}"
                )
            _refuse_forged_size(path, int(series.nbytes), size)
            if offset is not None:  # tifffile may trust shaped or ImageJ metadata: prove it
                offset = contiguous_offset(tif, int(series.nbytes), _page_count(shape, axes))
            header = _layout_header(tif, page, offset)
            trailer = None
            if header is not None and offset is not None:
                trailer = _layout_trailer(tif, offset + int(series.nbytes), size)
                header = header if trailer is not None else None

            return FileInfo(
                shape=shape,
                dtype=np.dtype(series.dtype).name,
                axes=axes,
                pixel_sizes=sizes,
                unit=unit,
                offset=None if offset is None else int(offset),
                byteorder=tif.byteorder,
                size=size,
                header=header,
                trailer=trailer,
                pixel_note=_pixel_note(tif, sizes),
                channel_names=_ome_channel_names(tif) if "C" in axes else (),
            )
    except CorruptFileError:
        raise
    except Exception as exc:  # tifffile raises TiffFileError, ValueError, struct.error...
        raise CorruptFileError(f"{path}: not a readable TIFF ({reason(exc)})") from None


_MAX_HEADER = 1 << 20


#: compressed pixels may expand this much at most (blank planes under zstd reach ~10^4)
_MAX_EXPANSION = 20_000


def _refuse_forged_size(path: str, nbytes: int, size: int) -> None:
    """A header claiming far more pixels than the file could hold is refused before
    anything allocates them (a forged 100,000 x 100,000 image in a few kilobytes)."""
    if nbytes > max(256 << 20, _MAX_EXPANSION * size):
        raise CorruptFileError(
            f"{path}: its header claims {nbytes} bytes of pixels, more than a file of "
            f"{size} bytes can hold even compressed; refusing to allocate them"
        )


def _page_ndim(shape: tuple[int, ...], axes: str) -> int:
    """How many trailing dims one page holds (Y, X and samples)."""
    return 3 if axes.endswith(("YXS", "YXC")) and len(shape) >= 3 else 2


def _page_count(shape: tuple[int, ...], axes: str) -> int:
    """Pages in a series: everything but the trailing Y, X (and samples) dims."""
    return int(np.prod(shape[: max(0, len(shape) - _page_ndim(shape, axes))]))


def contiguous_offset(tif: Any, nbytes: int, n_pages: int) -> int | None:
    """The offset of a series' pixels if its ``n_pages`` pages are proven to lie in one
    uncompressed block, in order (every page's strips checked); else None.

    tifffile reports a data offset for ImageJ and shaped series from their metadata and
    the first page alone; a file written page by page has an IFD before each page, and
    reading it as one block would read IFDs as pixels.
    """
    pages = tif.pages
    first = pages.first
    if first.compression != 1 or not first.dataoffsets:
        return None
    offset = int(first.dataoffsets[0])
    page_bytes = nbytes // max(1, n_pages)
    if page_bytes * n_pages != nbytes:
        return None
    useframes = pages.useframes
    pages.useframes = True  # light frames: offsets without parsing every tag
    try:
        pages.set_keyframe(0)
        for i in (n_pages - 1, *range(n_pages)):  # the last page first: fail fast
            try:
                page = pages[i]
            except IndexError:
                return None
            offsets, counts = page.dataoffsets, page.databytecounts
            start = offset + i * page_bytes
            if not offsets or int(offsets[0]) != start:
                return None
            pos = start
            for o, c in zip(offsets, counts):
                if int(o) != pos:
                    return None
                pos += int(c)
            if pos - start < page_bytes:
                return None
        try:
            pages[n_pages]  # a page more than the series holds: not this layout
            return None
        except IndexError:
            pass
    finally:
        pages.useframes = useframes
    return offset


def _layout_trailer(tif: Any, end: int, size: int) -> bytes | None:
    """The bytes after the pixel data, when few enough to compare with each file."""
    if size - end > _MAX_HEADER:
        return None
    fh = tif.filehandle
    fh.seek(end)
    return bytes(fh.read(size - end))


def _layout_header(tif: Any, page: Any, offset: int | None) -> bytes | None:
    """The bytes that decide how tifffile reads the first page, if they precede the data.

    A file of the same size whose first ``offset`` bytes are identical parses the same
    way (same shape, dtype, compression, strip offsets, description), so its pixels can be
    read straight from ``offset`` without parsing it again.
    """
    if offset is None or offset > _MAX_HEADER or page.offset >= offset:
        return None
    if any(t.valueoffset >= offset for t in page.tags.values()):
        return None  # a tag value lies after the pixel data: not covered by the bytes
    fh = tif.filehandle
    fh.seek(0)
    return bytes(fh.read(offset))


def _ome_channel_names(tif: Any) -> tuple[str, ...]:
    """Channel names from a file's own OME-XML, if it has one."""
    if not tif.is_ome or not tif.ome_metadata:
        return ()
    from ._ome import channel_names

    return channel_names(tif.ome_metadata)


def _pixel_note(tif: Any, sizes: dict[str, float]) -> str | None:
    """Why no pixel size came out of a calibrated file: ImageJ's ``unit=pixel``."""
    if sizes:
        return None
    unit = str((tif.imagej_metadata or {}).get("unit", "")).strip()
    if unit.lower() in ("pixel", "pixels", "px"):
        return f"none known: the files' ImageJ calibration is in pixels (unit={unit})"
    return None


def _pixel_sizes(tif: Any, axes: str) -> tuple[dict[str, float], str | None]:
    """Pixel sizes from OME, ImageJ or resolution tags, in micrometres where known."""
    sizes: dict[str, float] = {}
    unit: str | None = None
    if tif.is_ome and tif.ome_metadata:
        for ax in "XYZ":
            m = re.search(rf'PhysicalSize{ax}="([0-9.eE+-]+)"', tif.ome_metadata)
            if m:
                u = re.search(rf'PhysicalSize{ax}Unit="([^"]+)"', tif.ome_metadata)
                scale = _TO_MICRON.get(
                    _UNIT_NAMES.get(u.group(1), "micrometer") if u else "micrometer", 1.0
                )
                sizes[ax] = float(m.group(1)) * scale
        unit = "micrometer" if sizes else None
    page = tif.pages.first
    if not sizes:
        ij = tif.imagej_metadata or {}
        ij_unit = _UNIT_NAMES.get(str(ij.get("unit", "")).strip())
        res_unit = page.tags.get("ResolutionUnit")
        res_unit_v = int(res_unit.value) if res_unit is not None else 1
        tiff_unit = {2: "inch", 3: "centimeter"}.get(res_unit_v)
        for ax, tag in (("X", "XResolution"), ("Y", "YResolution")):
            t = page.tags.get(tag)
            if t is None:
                continue
            num, den = t.value
            if not num or not den:
                continue
            per_unit = num / den
            if ij_unit and per_unit != 1:
                sizes[ax] = 1.0 / per_unit
                unit = ij_unit
            elif tiff_unit and per_unit not in (1, 72):
                microns = 25400.0 if tiff_unit == "inch" else 1e4
                sizes[ax] = microns / per_unit
                unit = "micrometer"
        if "spacing" in ij and ij_unit:
            sizes["Z"] = float(ij["spacing"])
            unit = unit or ij_unit
    if unit in _TO_MICRON and unit != "micrometer":
        sizes = {k: v * _TO_MICRON[unit] for k, v in sizes.items()}
        unit = "micrometer"
    sizes = {k: v for k, v in sizes.items() if k in axes and math.isfinite(v) and v > 0}
    return sizes, (unit if sizes else None)


@dataclass(frozen=True)
class TiffReader:
    """Reads page selections of TIFF files laid out like ``info`` (picklable recipe)."""

    info: FileInfo
    fs: Any = None
    #: read through tifffile's own series and page readers only, never from byte
    #: offsets: the second, independent read path that :func:`ndstack.verify` uses
    independent: bool = False

    name = "tifffile"

    @property
    def page_ndim(self) -> int:
        """How many trailing dims one page holds (Y, X and samples)."""
        return _page_ndim(self.info.shape, self.info.axes)

    def read(self, path: str, sel: Sequence[np.ndarray]) -> np.ndarray:
        """Read ``sel`` (one index array per file axis) from ``path``.

        Raises
        ------
        CorruptFileError
            When the file cannot be read or yields fewer pixels than expected.
        FileMismatchError
            When the file's shape or dtype differs from the first file's.
        """
        info = self.info
        nlead = len(info.shape) - self.page_ndim
        lead_shape = info.shape[:nlead]
        lead_sel = sel[:nlead]
        pages = np.ravel_multi_index(np.ix_(*lead_sel), lead_shape).ravel() if nlead else None
        try:
            shortcut = info.header is not None and not self.independent
            data = self._read_same_layout(path, pages) if shortcut else None
            if data is None:
                with _opened(path, self.fs) as f:
                    data = self._read_pages(f, path, pages)
        except (CorruptFileError, FileMismatchError):
            raise
        except Exception as exc:
            raise CorruptFileError(f"{path}: cannot read ({reason(exc)})") from None
        page_shape = info.shape[nlead:]
        data = data.reshape(tuple(len(s) for s in lead_sel) + page_shape)
        for ax in range(nlead, len(info.shape)):
            s = sel[ax]
            if len(s) != info.shape[ax]:
                data = np.take(data, s, axis=ax)
        return data

    def _read_same_layout(self, path: str, pages: np.ndarray | None) -> np.ndarray | None:
        """Read pages of a file whose size and header bytes equal the probed file's.

        Returns None when the file differs; the caller then parses it with tifffile.
        """
        info = self.info
        assert info.header is not None
        # unbuffered: a buffered reader would pull 8 KiB to check a few hundred bytes
        opener = (
            (lambda p: builtins.open(p, "rb", buffering=0))
            if self.fs is None
            else (lambda p: self.fs.open(p, "rb"))
        )
        with opener(path) as fh:
            size = os.fstat(fh.fileno()).st_size if self.fs is None else int(fh.size)
            if size != info.size or fh.read(len(info.header)) != info.header:
                return None
            trailer = info.trailer or b""
            if trailer:  # the other pages' IFDs, after the pixels: equal, or no shortcut
                fh.seek(size - len(trailer))
                if fh.read(len(trailer)) != trailer:
                    return None
            dtype = np.dtype(info.dtype).newbyteorder(info.byteorder)
            return self._read_contiguous(fh, path, size, pages, dtype)

    def _read_pages(self, f: Any, path: str, pages: np.ndarray | None) -> np.ndarray:
        info = self.info
        dtype = np.dtype(info.dtype).newbyteorder(info.byteorder)
        with _one_file(f) as tif:
            page = tif.pages.first
            n_pages = _page_count(info.shape, info.axes)
            # Pages read straight from their offsets only where this file proves that its
            # pages lie in one block at the probed offset (every page checked).
            if (
                not self.independent
                and info.offset is not None
                and page.compression == 1
                and page.dataoffsets
                and page.dataoffsets[0] == info.offset
                and tuple(page.shape) == tuple(info.shape[-len(page.shape) :])
                and np.dtype(page.dtype) == np.dtype(info.dtype)
                and tif.byteorder == info.byteorder
                and contiguous_offset(tif, _nbytes(info), n_pages) == info.offset
            ):
                fh = tif.filehandle
                return self._read_contiguous(fh, path, int(fh.size), pages, dtype)
            if pages is not None and len(pages) < n_pages:
                # Part of a file: walk to the pages, without resolving the whole series
                # (for compressed files tifffile would read far more than the pages).
                data = self._read_some_pages(tif, page, path, pages)
            else:
                series = tif.series[0]
                found = (tuple(int(s) for s in series.shape), np.dtype(series.dtype).name)
                size = int(tif.filehandle.size)
                if (
                    found != (info.shape, info.dtype)
                    and page.compression == 1
                    and (size < _nbytes(info))
                ):
                    raise CorruptFileError(
                        f"{path}: truncated: {_nbytes(info)} bytes of pixels expected like "
                        f"the first file, the file has {size} bytes in all"
                    )
                if found != (info.shape, info.dtype):
                    raise FileMismatchError(
                        f"{path}: expected shape {info.shape} dtype {info.dtype} like the "
                        f"first file, found shape {found[0]} dtype {found[1]}"
                    )
                data = series.asarray(maxworkers=1).reshape(
                    (n_pages, *info.shape[-self.page_ndim :])
                )
                if pages is not None and not np.array_equal(pages, np.arange(n_pages)):
                    data = data[pages]
            return self._check(path, np.asarray(data), pages)

    def _read_contiguous(
        self, fh: Any, path: str, size: int, pages: np.ndarray | None, dtype: np.dtype
    ) -> np.ndarray:
        """Read whole pages of an uncompressed, contiguous series from their offsets."""
        info = self.info
        assert info.offset is not None
        nlead = len(info.shape) - self.page_ndim
        page_items = int(np.prod(info.shape[nlead:]))
        page_bytes = page_items * dtype.itemsize
        if pages is None:
            pages = np.zeros(1, dtype=np.int64)
        start, stop = int(pages.min()), int(pages.max()) + 1
        need = info.offset + stop * page_bytes
        if size < need:
            raise CorruptFileError(
                f"{path}: truncated: {need} bytes needed for pages up to {stop - 1}, "
                f"the file has {size}"
            )
        dense = (stop - start) <= 4 * len(pages)
        runs = [(start, stop)] if dense else [(int(p), int(p) + 1) for p in pages]
        block = np.empty((sum(b - a for a, b in runs), page_items), dtype)
        row = 0
        for a, b in runs:
            fh.seek(info.offset + a * page_bytes)
            _readinto(fh, block[row : row + b - a], path)
            row += b - a
        if dense and not np.array_equal(pages, np.arange(start, stop)):
            block = block[pages - start]
        if not dtype.isnative:
            block = block.astype(dtype.newbyteorder("="))
        return block

    def _read_some_pages(self, tif: Any, page: Any, path: str, pages: np.ndarray) -> np.ndarray:
        info = self.info
        page_shape = info.shape[len(info.shape) - self.page_ndim :]
        if tuple(page.shape) != page_shape or np.dtype(page.dtype).name != info.dtype:
            raise FileMismatchError(
                f"{path}: expected pages of shape {page_shape} dtype {info.dtype} like the "
                f"first file, found {tuple(page.shape)} dtype {np.dtype(page.dtype).name}"
            )
        out = np.empty((len(pages), *page_shape), dtype=info.dtype)
        for i, p in enumerate(pages.tolist()):
            try:
                out[i] = tif.pages[p].asarray(maxworkers=1)
            except IndexError:
                raise CorruptFileError(
                    f"{path}: truncated: page {p} is missing (expected {info.shape})"
                ) from None
        return out

    def _check(self, path: str, data: np.ndarray, pages: np.ndarray | None) -> np.ndarray:
        nlead = len(self.info.shape) - self.page_ndim
        page_shape = self.info.shape[nlead:]
        n = 1 if pages is None else len(pages)
        if data.size != n * int(np.prod(page_shape)):
            raise CorruptFileError(
                f"{path}: truncated or damaged: expected {n} page(s) of {page_shape}, "
                f"read {data.shape}"
            )
        return data


def _nbytes(info: FileInfo) -> int:
    return int(np.prod(info.shape)) * np.dtype(info.dtype).itemsize


def _readinto(fh: Any, out: np.ndarray, path: str) -> None:
    """Fill ``out`` from the file's current position (reads release the GIL)."""
    view = memoryview(out.reshape(-1).view(np.uint8))
    done = 0
    while done < len(view):
        n = fh.readinto(view[done:])
        if not n:
            raise CorruptFileError(f"{path}: truncated: ended {len(view) - done} bytes early")
        done += n
