"""Multi-file OME-TIFF data sets: one OME-XML that describes every file.

The OME sample ``tubhiswt-4D`` (``tubhiswt_C0_TP0.ome.tif`` ... each file one Z stack,
each holding the OME-XML of all of them) and Micro-Manager's ``*_MMStack_Pos0.ome.tif``
with its continuation files ``..._Pos0_1.ome.tif`` say in their metadata which planes
each file holds. There the metadata wins over the names: dims, sizes, channel names and
pixel sizes come from the OME-XML, files continue each other as it declares, and the
name-based grid is not built.

tifffile parses the data set (its OME series reader opens the files the XML names); this
module keeps only, per plane, the file (relative path), the page and, for uncompressed
pages in one piece, the byte offset: paths and numbers in the task graph, no handles. A
plane is read alone: from its offset (one read), or through tifffile's page reader.
"""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._axes import rank
from ._grid import _normalize, record_fill
from ._names import MAJORITY
from ._tiff import _map_axes, _one_file, _pixel_sizes
from .errors import CorruptFileError, LayoutError

__all__ = ["OmeDataset", "OmePlanes", "channel_names", "find_dataset"]

_FILE_NAME = re.compile(r'<UUID[^>]*\bFileName="([^"]+)"')
_OME_ENDINGS = (".ome.tif", ".ome.tiff", ".ome.tf2", ".ome.tf8", ".ome.btf")


@dataclass(frozen=True, eq=False)
class OmePlanes:
    """Array-like over the planes of an OME data set: leading dims index planes, each one
    page of one file (``file < 0``: declared but absent, read as ``fill_value``)."""

    root: str
    files: tuple[str, ...]  # relative paths
    file: np.ndarray  # int, shaped like the leading dims
    page: np.ndarray  # page index in its file
    offset: np.ndarray  # byte offset of an uncompressed plane in one piece, else -1
    plane_shape: tuple[int, ...]
    dtype: np.dtype
    byteorder: str
    fill_value: Any = 0
    on_error: str = "raise"  # "fill": an unreadable plane reads as fill_value, recorded

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.file.shape) + self.plane_shape

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __getitem__(self, key: Any) -> np.ndarray:
        sel, keep = _normalize(key, self.shape)
        lead = self.file.ndim
        out = np.empty(tuple(len(s) for s in sel), dtype=self.dtype)
        inner = np.ix_(*sel[lead:])
        for pos in itertools.product(*(range(len(s)) for s in sel[:lead])):
            at = tuple(int(s[p]) for s, p in zip(sel[:lead], pos))
            out[pos] = self.read_plane(at)[inner]
        return out.reshape(tuple(n for n, k in zip(out.shape, keep) if k))

    def read_plane(self, at: tuple[int, ...]) -> np.ndarray:
        """The plane at leading index ``at``."""
        try:
            return self._read_plane(at)
        except CorruptFileError as exc:
            if self.on_error != "fill":
                raise
            record_fill(f"filled with {self.fill_value}: {exc}")
            return np.full(self.plane_shape, self.fill_value, dtype=self.dtype)

    def _read_plane(self, at: tuple[int, ...]) -> np.ndarray:
        f = int(self.file[at])
        if f < 0:
            return np.full(self.plane_shape, self.fill_value, dtype=self.dtype)
        path = os.path.join(self.root, self.files[f])
        offset = int(self.offset[at])
        try:
            if offset >= 0:
                dtype = self.dtype.newbyteorder(self.byteorder)
                count = int(np.prod(self.plane_shape))
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    data = np.fromfile(fh, dtype=dtype, count=count)
                if data.size != count:
                    raise CorruptFileError(
                        f"{path}: truncated: page {int(self.page[at])} needs {count} values "
                        f"at byte {offset}, the file holds {data.size}"
                    )
                return data.reshape(self.plane_shape).astype(self.dtype, copy=False)
            import tifffile

            with tifffile.TiffFile(path) as tif:
                data = tif.pages[int(self.page[at])].asarray()
        except CorruptFileError:
            raise
        except Exception as exc:
            raise CorruptFileError(
                f"{path}: cannot read page {int(self.page[at])} ({type(exc).__name__}: {exc})"
            ) from None
        if data.shape != self.plane_shape:
            raise CorruptFileError(
                f"{path}: page {int(self.page[at])} has shape {data.shape}, the data set's "
                f"OME-XML declares {self.plane_shape}"
            )
        return data


@dataclass(frozen=True)
class OmeDataset:
    """What the OME-XML of a multi-file data set declares."""

    first: str  # the file whose metadata was read (relative)
    planes: OmePlanes
    dims: tuple[str, ...]  # leading dims, then the plane's
    channel_names: tuple[str, ...]
    pixel_sizes: dict[str, float]
    unit: str | None
    missing: tuple[str, ...]  # planes declared in files that are absent


def _is_ome_name(name: str) -> bool:
    return name.lower().endswith(_OME_ENDINGS)


def find_dataset(root: str, names: Sequence[str], fill_value: Any = 0) -> OmeDataset | None:
    """The data set that the first OME-TIFF's metadata describes, when it spans several
    files and is most of ``names``; None otherwise (names then give the grid)."""
    # a data set that is most of the names has one of its files among the first quarter
    head = names[: int((1 - MAJORITY) * len(names)) + 1]
    first = next((n for n in head if _is_ome_name(n)), None)
    if first is None:
        return None
    import tifffile

    path = os.path.join(root, first)
    declared: set[str] = set()
    try:
        with tifffile.TiffFile(path) as tif:
            xml = tif.ome_metadata if tif.is_ome else None
            declared = set(_FILE_NAME.findall(xml or ""))
            if len(declared - {first.rpartition("/")[2]}) < 1:
                return None  # one file, or no OME-XML: the names decide
            series = [s for s in tif.series if s.kind == "ome"]
            if not series:
                return None
            found = _dataset(root, first, tif, series, fill_value)
            members = set(found.planes.files) & set(names)
            # the data set must be what the source is: not one of many files (exports
            # renamed, each declaring its old name), nor a few beside many others
            if len(members) < MAJORITY * len(names):
                return None
            return found
    except (LayoutError, CorruptFileError):
        raise
    except Exception as exc:  # named below, once the traceback holds no file open
        failure = f"{type(exc).__name__}: {exc}"
    _close_leaked()
    if not declared:  # the first file itself failed: the names path says how
        return None
    folder = os.path.dirname(path)
    for name in sorted(declared):  # name the file at fault
        other = os.path.join(folder, name)
        try:
            with _one_file(other) as t:
                t.series  # noqa: B018 - parses the headers
        except FileNotFoundError:
            continue
        except Exception as err:
            raise CorruptFileError(
                f"{other}: not a readable TIFF ({type(err).__name__}: {err}); it is one "
                f"of the {len(declared)} files the OME-XML of {first} describes"
            ) from None
    raise CorruptFileError(
        f"{path}: its OME-XML describes {len(declared)} files; reading them failed ({failure})"
    )


def _close_leaked() -> None:
    """Close the files tifffile's series reader opened and left open when a file of the
    data set failed to parse (it keeps no reference to them): collected now, quietly."""
    import gc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def _dataset(root: str, first: str, tif: Any, series: list[Any], fill_value: Any) -> OmeDataset:
    s0 = series[0]
    kinds = {(tuple(s.shape), s.axes, str(s.dtype)) for s in series}
    if len(kinds) > 1:
        raise LayoutError(
            f"{first}: its OME-XML describes images that differ in shape, dim order or "
            f"dtype {sorted(kinds)}; open the files of each image as a list"
        )
    plane = tuple(int(n) for n in s0.keyframe.shape)
    shape = tuple(int(n) for n in s0.shape)
    k = len(plane)
    axes = _map_axes(s0.axes)
    if shape[len(shape) - k :] != plane or int(np.prod(shape[: len(shape) - k])) != len(s0.pages):
        raise LayoutError(
            f"{first}: its OME-XML declares {s0.axes} {shape}, which its pages of {plane} "
            "do not fill plane by plane"
        )
    lead_axes = axes[: len(shape) - k]
    lead_shape = shape[: len(shape) - k]
    if len(series) > 1:
        lead_axes, lead_shape = "P" + lead_axes, (len(series), *lead_shape)
    root_abs = os.path.abspath(root)
    files: dict[str, int] = {}
    n = int(np.prod(lead_shape))
    file_of = np.full(n, -1, dtype=np.int64)
    page_of = np.zeros(n, dtype=np.int64)
    offset_of = np.full(n, -1, dtype=np.int64)
    nbytes = int(np.prod(plane)) * np.dtype(s0.dtype).itemsize
    for i, page in enumerate(p for s in series for p in s.pages):
        if page is None:
            continue
        rel = os.path.relpath(os.path.abspath(page.parent.filehandle.path), root_abs)
        if rel.startswith(".."):
            raise LayoutError(
                f"{first}: its OME-XML names {page.parent.filehandle.path}, outside the source"
            )
        file_of[i] = files.setdefault(rel.replace(os.sep, "/"), len(files))
        page_of[i] = page.index if isinstance(page.index, int) else page.index[-1]
        if (
            page.compression == 1
            and page.is_contiguous
            and sum(page.databytecounts) == nbytes
            and page.dtype == s0.dtype
        ):
            offset_of[i] = int(page.dataoffsets[0])
    order = sorted(range(len(lead_axes)), key=lambda j: (rank(lead_axes[j]), j))
    grid = [a.reshape(lead_shape).transpose(order) for a in (file_of, page_of, offset_of)]
    missing = tuple(
        ", ".join(f"{lead_axes[o]}={i}" for o, i in zip(order, pos))
        for pos in np.argwhere(grid[0] < 0)
    )
    sizes, unit = _pixel_sizes(tif, axes)
    planes = OmePlanes(
        root=root,
        files=tuple(files),
        file=grid[0],
        page=grid[1],
        offset=grid[2],
        plane_shape=plane,
        dtype=np.dtype(s0.dtype),
        byteorder=tif.byteorder,
        fill_value=fill_value,
    )
    return OmeDataset(
        first=first,
        planes=planes,
        dims=tuple(lead_axes[o] for o in order) + tuple(axes[len(axes) - k :]),
        channel_names=channel_names(tif.ome_metadata),
        pixel_sizes=sizes,
        unit=unit,
        missing=missing,
    )


def channel_names(xml: str) -> tuple[str, ...]:
    """The channel names of the first image of an OME-XML ('' where unnamed)."""
    import tifffile

    try:
        image = tifffile.xml2dict(xml)["OME"]["Image"]
        image = image[0] if isinstance(image, list) else image
        channels = image["Pixels"].get("Channel", [])
        channels = channels if isinstance(channels, list) else [channels]
        return tuple(str(c.get("Name", "")) for c in channels)
    except (KeyError, TypeError, ValueError):
        return ()
