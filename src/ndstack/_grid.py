"""A grid of files seen as one N-D array-like that reads only what an index asks for.

:class:`FileGrid` is what goes into the Dask graph: a picklable recipe (relative paths,
the reader, the layout), never an open handle. Indexing it with a region opens each file
under the region, reads the needed pages through the reader and assembles the result.
Dask fuses a selection made in one indexing step into this getter (``from_array`` with
``fancy=True``), so ``arr.isel(T=0, C=1, Z=10)`` reads one plane, not one file.
"""

from __future__ import annotations

import itertools
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from ._discover import join_path
from ._redact import reason
from .errors import CorruptFileError, FileMismatchError

__all__ = [
    "FileAxis",
    "FileGrid",
    "FunctionReader",
    "GridAxis",
    "Place",
    "ReadFailedWarning",
    "Reader",
    "TileAxis",
    "place_key",
    "record_fill",
    "take_filled",
]


@runtime_checkable
class Reader(Protocol):
    """How a :class:`FileGrid` reads one file: the TIFF reader, a user's function, others.

    A reader goes into the Dask graph, so it must pickle and hold no open handle: it
    opens ``path`` inside :meth:`read`, reads what ``sel`` asks for and closes it.
    ``sel`` holds one array of indices per in-file axis (in the file's axis order); the
    result has shape ``tuple(len(s) for s in sel)``. A file that cannot be read raises
    :class:`~ndstack.errors.CorruptFileError`, one of another shape or dtype
    :class:`~ndstack.errors.FileMismatchError`, each naming the file.
    """

    def read(self, path: str, sel: Sequence[np.ndarray]) -> np.ndarray: ...


class GridAxis(NamedTuple):
    """An output dim that is axis ``grid`` of the file grid (one file per index)."""

    grid: int


class FileAxis(NamedTuple):
    """An output dim that is axis ``file`` inside every file."""

    file: int


class TileAxis(NamedTuple):
    """An output dim of tiles: grid axis ``grid`` stitched along in-file axis ``file``."""

    grid: int
    file: int


Place = GridAxis | FileAxis | TileAxis
"""Where an output dim of a :class:`FileGrid` comes from."""

_KIND = {GridAxis: "grid", FileAxis: "file", TileAxis: "tile"}


def place_key(place: Place) -> tuple[Any, ...]:
    """A plain tuple naming a place, such as ``("tile", 1, 2)``: stable in graph names."""
    return (_KIND[type(place)], *place)


class ReadFailedWarning(UserWarning):
    """A file could not be read and was filled (``on_error="fill"``)."""


_filled = threading.local()


def take_filled() -> list[str]:
    """The fills this thread made since the last call (one message per file, naming it).

    A writer that runs right after the read in the same task (Dask fuses the two) takes
    them into its own record, so that they survive a resume and a run on other machines,
    where warnings would stay in the worker's log.
    """
    out: list[str] = getattr(_filled, "messages", [])
    _filled.messages = []
    return out


def record_fill(message: str) -> None:
    """Record (for :func:`take_filled`) and warn that something was read as fill values."""
    _filled.messages = [*getattr(_filled, "messages", []), message]
    warnings.warn(message, ReadFailedWarning, stacklevel=3)


@dataclass(frozen=True)
class FunctionReader:
    """Adapts any ``path -> ndarray`` function to the :class:`Reader` protocol (picklable)."""

    func: Callable[[str], Any]
    shape: tuple[int, ...]
    dtype: str

    @property
    def name(self) -> str:
        return getattr(self.func, "__qualname__", repr(self.func))

    def read(self, path: str, sel: Sequence[np.ndarray]) -> np.ndarray:
        try:
            data = np.asarray(self.func(path))
        except Exception as exc:
            raise CorruptFileError(
                f"{path}: the reader {self.name} failed: {reason(exc)}"
            ) from None
        return checked_selection(path, data, self.shape, self.dtype, sel, "the reader returned")


def checked_selection(
    path: str,
    data: np.ndarray,
    shape: tuple[int, ...],
    dtype: str,
    sel: Sequence[np.ndarray],
    found: str = "found",
) -> np.ndarray:
    """The outer selection ``sel`` of a whole file's array, once it proves to have the
    first file's ``shape`` and ``dtype`` (:class:`FileMismatchError` naming it if not)."""
    if data.shape != tuple(shape) or data.dtype != np.dtype(dtype):
        raise FileMismatchError(
            f"{path}: expected shape {tuple(shape)} dtype {dtype} like the first file, "
            f"{found} shape {data.shape} dtype {data.dtype}"
        )
    if all(len(s) == n for s, n in zip(sel, data.shape)):
        return data
    return data[np.ix_(*sel)]


@dataclass(frozen=True, eq=False)
class FileGrid:
    """N-D array-like over a grid of files.

    Each output dim comes from one of three places, listed in ``sources``: a
    :class:`GridAxis` of the file grid, a :class:`FileAxis` inside the files, or a
    :class:`TileAxis`, a grid axis of tiles stitched along an in-file axis.
    """

    root: str
    files: np.ndarray  # object array over the grid: relative name, or None if missing
    reader: Reader
    file_shape: tuple[int, ...]
    sources: tuple[Place, ...]
    dtype: np.dtype
    fill_value: Any = 0
    on_error: str = "raise"
    fs: Any = None

    @property
    def shape(self) -> tuple[int, ...]:
        out = []
        for src in self.sources:
            match src:
                case GridAxis(i):
                    out.append(self.files.shape[i])
                case FileAxis(j):
                    out.append(self.file_shape[j])
                case TileAxis(i, j):
                    out.append(self.files.shape[i] * self.file_shape[j])
        return tuple(out)

    @property
    def ndim(self) -> int:
        return len(self.sources)

    def path(self, name: str) -> str:
        return join_path(self.root, name, self.fs)

    def __getitem__(self, key: Any) -> np.ndarray:
        sel, keep = _normalize(key, self.shape)
        out_shape = tuple(len(s) for s in sel)
        ngrid = self.files.ndim
        nfile = len(self.file_shape)
        # per grid axis: list of (grid index, output positions, local indices or None)
        groups: list[list[tuple[int, np.ndarray, np.ndarray | None]]] = [[] for _ in range(ngrid)]
        grid_dim = [0] * ngrid
        file_sel: list[np.ndarray] = [np.arange(n) for n in self.file_shape]
        file_dim = [-1] * nfile
        tile_of_file: dict[int, int] = {}
        for d, src in enumerate(self.sources):
            idx = sel[d]
            match src:
                case GridAxis(i):
                    grid_dim[i] = d
                    groups[i] = _group(idx, np.arange(len(idx)), None)
                case FileAxis(j):
                    file_dim[j] = d
                    file_sel[j] = idx
                case TileAxis(i, j):
                    n = self.file_shape[j]
                    grid_dim[i] = d
                    file_dim[j] = d
                    tile_of_file[j] = i
                    groups[i] = _group(idx // n, np.arange(len(idx)), idx % n)
        # order of the in-file axes in the output
        file_order = sorted(range(nfile), key=lambda j: file_dim[j])
        combos = list(itertools.product(*groups))
        if len(combos) == 1 and all(len(c[1]) == 1 for c in combos[0] if c[2] is None):
            # the whole request lies in one file: hand its block over without a copy
            combo = combos[0]
            block = self._read_one(
                self.files[tuple(c[0] for c in combo)], self._fsel(file_sel, combo, tile_of_file)
            )
            out = block.transpose(file_order).reshape(out_shape)
            return out.reshape(tuple(n for n, k in zip(out_shape, keep) if k))
        out = np.empty(out_shape, dtype=self.dtype)
        for combo in combos:
            block = self._read_one(
                self.files[tuple(c[0] for c in combo)], self._fsel(file_sel, combo, tile_of_file)
            )
            block = block.transpose(file_order)
            index: list[Any] = [slice(None)] * len(out_shape)
            shape = list(out_shape)
            for i, c in enumerate(combo):
                index[grid_dim[i]] = _as_slice(c[1])
                if c[2] is None:
                    shape[grid_dim[i]] = 1  # one file along a grid axis; broadcast if repeated
            for j in range(nfile):
                shape[file_dim[j]] = block.shape[file_order.index(j)]
            out[_outer(index, out_shape)] = block.reshape(shape)
        return out.reshape(tuple(n for n, k in zip(out_shape, keep) if k))

    @staticmethod
    def _fsel(
        file_sel: list[np.ndarray], combo: tuple[Any, ...], tile_of_file: dict[int, int]
    ) -> list[np.ndarray]:
        fsel = list(file_sel)
        for j, i in tile_of_file.items():
            fsel[j] = combo[i][2]
        return fsel

    def _read_one(self, name: str | None, sel: list[np.ndarray]) -> np.ndarray:
        shape = tuple(len(s) for s in sel)
        if name is None:
            return np.full(shape, self.fill_value, dtype=self.dtype)
        path = self.path(name)
        try:
            data = self.reader.read(path, sel)
        except (CorruptFileError, FileMismatchError) as exc:
            if self.on_error != "fill":
                raise
            record_fill(f"filled with {self.fill_value}: {exc}")
            return np.full(shape, self.fill_value, dtype=self.dtype)
        if data.shape != shape:  # a reader that returned less than it was asked for
            raise CorruptFileError(f"{path}: expected a block of {shape}, read {data.shape}")
        return data


def grid_array(grid: FileGrid, chunks: Any, name: str) -> Any:
    """The Dask array of a file grid in ``chunks``: the grid itself in the graph (held
    once, not inlined in every task), and selections fused into its reads."""
    import dask.array as da

    return da.from_array(
        grid,
        chunks=chunks,
        name=name,
        asarray=False,
        fancy=True,  # lets dask fuse a selection into the read
        meta=np.empty((0,) * grid.ndim, dtype=grid.dtype),
        inline_array=False,
    )


def _normalize(key: Any, shape: tuple[int, ...]) -> tuple[list[np.ndarray], list[bool]]:
    """Index arrays per dim, and whether each dim stays (an integer drops it)."""
    if not isinstance(key, tuple):
        key = (key,)
    if any(k is Ellipsis for k in key):
        i = next(i for i, k in enumerate(key) if k is Ellipsis)
        key = key[:i] + (slice(None),) * (len(shape) - len(key) + 1) + key[i + 1 :]
    key = key + (slice(None),) * (len(shape) - len(key))
    if len(key) != len(shape):
        raise IndexError(f"too many indices: {len(key)} for {len(shape)} dims")
    sel: list[np.ndarray] = []
    keep: list[bool] = []
    for k, n in zip(key, shape):
        if isinstance(k, slice):
            sel.append(np.arange(*k.indices(n)))
            keep.append(True)
        elif isinstance(k, (int, np.integer)):
            i = int(k) + n if k < 0 else int(k)
            if not 0 <= i < n:
                raise IndexError(f"index {k} is out of bounds for size {n}")
            sel.append(np.array([i]))
            keep.append(False)
        else:
            arr = np.asarray(k)
            if arr.dtype == bool:
                arr = np.flatnonzero(arr)
            arr = np.where(arr < 0, arr + n, arr).astype(np.int64).ravel()
            sel.append(arr)
            keep.append(True)
    return sel, keep


def _group(
    keys: np.ndarray, positions: np.ndarray, local: np.ndarray | None
) -> list[tuple[int, np.ndarray, np.ndarray | None]]:
    uniq = np.unique(keys)
    if len(uniq) == 1:
        return [(int(uniq[0]), positions, local)]
    out = []
    for u in uniq:
        m = keys == u
        out.append((int(u), positions[m], None if local is None else local[m]))
    return out


def _as_slice(positions: np.ndarray) -> slice | np.ndarray:
    """Consecutive positions as a slice (a plain, fast copy), others as they are."""
    first = int(positions[0])
    if len(positions) == 1 or np.array_equal(positions, np.arange(first, first + len(positions))):
        return slice(first, first + len(positions))
    return positions


def _outer(index: list[Any], shape: tuple[int, ...]) -> tuple[Any, ...]:
    """``index`` as an outer selection: itself where every entry is a slice (basic
    indexing copies blocks), else index arrays broadcast against each other."""
    if all(isinstance(i, slice) for i in index):
        return tuple(index)
    arrays = [
        np.arange(n)[i] if isinstance(i, slice) else np.asarray(i) for i, n in zip(index, shape)
    ]
    return np.ix_(*arrays)
