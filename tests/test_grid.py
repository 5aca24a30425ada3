"""FileGrid as a unit: places, reads through any Reader, against a NumPy oracle."""

from __future__ import annotations

import pickle
from collections.abc import Sequence

import numpy as np
import pytest

from ndstack._grid import (
    FileAxis,
    FileGrid,
    FunctionReader,
    GridAxis,
    Reader,
    TileAxis,
    place_key,
)
from ndstack._tiff import FileInfo, TiffReader
from ndstack.errors import CorruptFileError


class DictReader:
    """A reader over arrays named by path (module level, so it pickles); counts reads."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays
        self.reads: list[str] = []

    def read(self, path: str, sel: Sequence[np.ndarray]) -> np.ndarray:
        self.reads.append(path)
        return self.arrays[path][np.ix_(*sel)]


def _grid(arrays: np.ndarray, sources, reader: DictReader | None = None) -> FileGrid:
    """A 2-axis grid of (Y, X) files from ``arrays`` of shape (A, B, Y, X)."""
    a, b = arrays.shape[:2]
    files = np.empty((a, b), dtype=object)
    data = {}
    for i in range(a):
        for j in range(b):
            files[i, j] = f"f{i}_{j}"
            data[f"/root/f{i}_{j}"] = arrays[i, j]
    return FileGrid(
        root="/root",
        files=files,
        reader=reader or DictReader(data),
        file_shape=arrays.shape[2:],
        sources=sources,
        dtype=arrays.dtype,
    )


def test_readers_follow_the_protocol() -> None:
    info = FileInfo((4, 5), "uint8", "YX", {}, None)
    assert isinstance(TiffReader(info), Reader)
    assert isinstance(FunctionReader(np.load, (4, 5), "uint8"), Reader)
    assert isinstance(DictReader({}), Reader)
    assert not isinstance(np.load, Reader)


def test_places_give_the_shape_and_plain_keys() -> None:
    arrays = np.arange(2 * 3 * 4 * 5, dtype=np.uint16).reshape(2, 3, 4, 5)
    grid = _grid(arrays, (GridAxis(0), GridAxis(1), FileAxis(0), FileAxis(1)))
    assert grid.shape == (2, 3, 4, 5) and grid.ndim == 4
    stitched = _grid(arrays, (TileAxis(0, 0), TileAxis(1, 1)))
    assert stitched.shape == (8, 15)
    # graph names hash these keys: they must not change with the record types
    assert [place_key(p) for p in stitched.sources] == [("tile", 0, 0), ("tile", 1, 1)]
    assert place_key(GridAxis(2)) == ("grid", 2) and place_key(FileAxis(1)) == ("file", 1)


@pytest.mark.parametrize(
    "key",
    [
        (slice(None),) * 4,
        (1, slice(None), 2, slice(1, 4)),
        (slice(None), [2, 0], slice(None, None, 2), -1),
        (0, 0),
        (Ellipsis, 3),
        (np.array([True, False]), slice(None), [3, 1], slice(None)),
    ],
)
def test_indexing_equals_numpy(key) -> None:
    arrays = np.random.default_rng(0).integers(0, 60000, (2, 3, 4, 5), dtype=np.uint16)
    grid = _grid(arrays, (GridAxis(0), GridAxis(1), FileAxis(0), FileAxis(1)))
    # the oracle: outer indexing (as Dask asks for), one axis at a time
    expected, axis = arrays, 0
    for k in key:
        if k is Ellipsis:
            axis += arrays.ndim - len(key) + 1
            continue
        expected = expected[(slice(None),) * axis + (k,)]
        axis += not isinstance(k, int)
    np.testing.assert_array_equal(grid[key], expected)


def test_stitched_tiles_equal_a_block_of_numpy() -> None:
    arrays = np.random.default_rng(1).integers(0, 255, (2, 3, 4, 5), dtype=np.uint8)
    # file axis order in the output: grid 0 stitched along Y, grid 1 along X
    grid = _grid(arrays, (TileAxis(0, 0), TileAxis(1, 1)))
    whole = np.block([[arrays[i, j] for j in range(3)] for i in range(2)])
    np.testing.assert_array_equal(grid[:, :], whole)
    np.testing.assert_array_equal(grid[3:6, 4:11], whole[3:6, 4:11])


def test_a_selection_reads_only_its_files() -> None:
    arrays = np.zeros((2, 3, 4, 5), dtype=np.uint8)
    reader = DictReader({f"/root/f{i}_{j}": arrays[i, j] for i in range(2) for j in range(3)})
    grid = _grid(arrays, (GridAxis(0), GridAxis(1), FileAxis(0), FileAxis(1)), reader)
    grid[1, 2, 0, :]
    assert reader.reads == ["/root/f1_2"]


def test_missing_file_is_filled_and_short_reads_are_refused() -> None:
    arrays = np.ones((1, 2, 4, 5), dtype=np.uint8)
    grid = _grid(arrays, (GridAxis(0), GridAxis(1), FileAxis(0), FileAxis(1)))
    grid.files[0, 1] = None
    out = grid[0]
    assert out[0].min() == 1 and out[1].max() == 0

    class Short(DictReader):
        def read(self, path, sel):
            return super().read(path, sel)[:1]

    short = _grid(arrays, (GridAxis(0), GridAxis(1), FileAxis(0), FileAxis(1)),
                  Short({"/root/f0_0": arrays[0, 0], "/root/f0_1": arrays[0, 1]}))  # fmt: skip
    with pytest.raises(CorruptFileError, match="f0_0: expected a block of"):
        short[0, 0]


def test_a_grid_pickles_without_handles() -> None:
    arrays = np.arange(40, dtype=np.int32).reshape(1, 2, 4, 5)
    grid = _grid(arrays, (GridAxis(0), GridAxis(1), FileAxis(0), FileAxis(1)))
    again = pickle.loads(pickle.dumps(grid))
    np.testing.assert_array_equal(again[0, 1], arrays[0, 1])
    assert again.sources == grid.sources and isinstance(again.sources[0], GridAxis)
