"""ndstack.open against direct tifffile reads, on multi-chunk arrays."""

from __future__ import annotations

import json
import os
import pickle
import stat
from pathlib import Path

import dask
import numpy as np
import pytest
import tifffile
import xarray as xr

import ndstack
from ndstack.errors import (
    CorruptFileError,
    DuplicatePositionError,
    FileMismatchError,
    LayoutError,
    NoImagesError,
    PatternError,
)

from .conftest import bytes_read, lls_name, snapshot, write_files


def stack_truth(truth: dict, n_t: int, n_c: int) -> np.ndarray:
    return np.stack([np.stack([truth[(t, c)] for c in range(n_c)]) for t in range(n_t)])


def test_lattice_lightsheet_folder(lls) -> None:
    folder, truth = lls
    arr = ndstack.open(folder)
    assert isinstance(arr, xr.DataArray)
    assert isinstance(arr.data, dask.array.Array)
    assert arr.dims == ("T", "C", "Z", "Y", "X")
    assert arr.shape == (4, 3, 6, 20, 24)
    assert arr.data.numblocks == (4, 3, 1, 1, 1)  # one chunk per file
    assert arr.coords["wavelength"].values.tolist() == [488, 560, 642]
    assert arr.coords["wavelength"].dims == ("C",)
    assert arr.coords["msec"].dims == ("T",)
    assert arr.attrs["pixel_size"] == pytest.approx({"Z": 0.4, "Y": 0.104, "X": 0.104})
    assert arr.attrs["pixel_unit"] == "micrometer"
    assert arr.attrs["files"] == 12 and arr.attrs["missing"] == []
    np.testing.assert_array_equal(arr.values, stack_truth(truth, 4, 3))


def test_random_selections_equal_direct_reads(lls) -> None:
    folder, truth = lls
    arr = ndstack.open(folder, chunks={"Z": 4})
    assert arr.data.numblocks == (4, 3, 2, 1, 1)
    full = stack_truth(truth, 4, 3)
    rng = np.random.default_rng(1)
    for _ in range(20):
        key = []
        for n in arr.shape:
            a, b = sorted(rng.integers(0, n + 1, size=2))
            key.append(
                int(a)
                if a == b and a < n
                else slice(int(a), int(b) + (a == b), int(rng.integers(1, 3)))
            )
        np.testing.assert_array_equal(arr[tuple(key)].values, full[tuple(key)])
    np.testing.assert_array_equal(
        arr.sel(C=2).isel(T=1).values, tifffile.imread(folder / lls_name(2, 1))
    )
    np.testing.assert_array_equal(arr.max("Z").values, full.max(axis=2))


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux /proc/self/io")
@pytest.mark.parametrize("compression", [None, "zlib"])
def test_one_plane_reads_one_plane(tmp_path: Path, compression) -> None:
    """Bytes read by the process (page cache included) for one plane of a 32-page file."""
    folder = tmp_path / "planes"
    rng = np.random.default_rng(7)
    truth = write_files(
        folder,
        [f"s_t{t}.tif" for t in range(3)],
        lambda n: rng.integers(0, 4000, (32, 64, 64), dtype=np.uint16),
        compression=compression,
    )
    arr = ndstack.open(folder)
    plane = 64 * 64 * 2
    arr.isel(T=0, Z=1).values  # warm-up: imports and first-call costs
    before = bytes_read()
    out = arr.isel(T=2, Z=17).values
    read = bytes_read() - before
    np.testing.assert_array_equal(out, truth["s_t2.tif"][17])
    whole = (folder / "s_t2.tif").stat().st_size
    if compression is None:
        # one plane, plus the bytes that prove the file is laid out like the first one
        # (all that is not pixels: header and page headers), never the other 31 planes
        others = whole - 32 * plane
        assert read <= 1.25 * plane + others, f"read {read} bytes for a {plane}-byte plane"
    else:  # tifffile walks the chain of page headers, then decodes one page
        assert read < whole / 2, f"read {read} of {whole} bytes"


def test_selecting_a_channel_and_time_touches_one_file(tmp_path: Path) -> None:
    names = [f"img_ch{c}_t{t}.npy" for c in range(3) for t in range(4)]
    folder = tmp_path / "npy"
    folder.mkdir()
    for i, n in enumerate(names):
        np.save(folder / n, np.full((5, 6), i, dtype=np.int32))
    calls = []

    def reader(path: str) -> np.ndarray:
        calls.append(os.path.basename(path))
        return np.load(path)

    arr = ndstack.open(folder, reader=reader)
    assert calls == ["img_ch0_t0.npy"]  # the probe
    calls.clear()
    out = arr.sel(C=1).isel(T=2).values
    assert calls == ["img_ch1_t2.npy"]
    assert (out == names.index("img_ch1_t2.npy")).all()
    assert arr.dims == ("T", "C", "Y", "X")


def test_tiles_are_stitched_like_da_block(tmp_path: Path) -> None:
    folder = tmp_path / "tiles"
    names = [
        f"mydata_ch{c}_{t}t_{x}x_{y}y_{z}z.tif"
        for c in range(2)
        for t in range(2)
        for x in range(3)
        for y in range(2)
        for z in range(2)
    ]
    rng = np.random.default_rng(2)
    truth = write_files(folder, names, lambda n: rng.integers(0, 255, (8, 10), dtype=np.uint8))
    arr = ndstack.open(folder)
    assert arr.dims == ("T", "C", "Z", "Y", "X")
    assert arr.shape == (2, 2, 2, 16, 30)
    t, c, z = 1, 0, 1
    expected = np.block(
        [[truth[f"mydata_ch{c}_{t}t_{x}x_{y}y_{z}z.tif"] for x in range(3)] for y in range(2)]
    )
    np.testing.assert_array_equal(arr.isel(T=t, C=c, Z=z).values, expected)
    # a region across tile borders
    np.testing.assert_array_equal(
        arr.isel(T=t, C=c, Z=z, Y=slice(5, 12), X=slice(7, 25)).values, expected[5:12, 7:25]
    )
    kept = ndstack.open(folder, tiles="axes")
    assert kept.dims == ("tile_y", "tile_x", "T", "C", "Z", "Y", "X")
    np.testing.assert_array_equal(
        kept.isel(tile_y=1, tile_x=2, T=t, C=c, Z=z).values,
        truth[f"mydata_ch{c}_{t}t_2x_1y_{z}z.tif"],
    )


def test_3d_blocks_with_z_indices_in_names_are_stitched_like_da_block(tmp_path: Path) -> None:
    """The seed's tiled naming read literally: each file a 3-D block placed by its x, y
    and z indices; the z in the names is a block index along the files' own Z."""
    names = [
        f"mydata_ch{c}_0t_{x}x_{y}y_{z}z.tif"
        for c in range(2)
        for x in range(2)
        for y in range(2)
        for z in range(3)
    ]
    rng = np.random.default_rng(5)
    truth = write_files(
        tmp_path / "b", names, lambda n: rng.integers(0, 255, (4, 5, 6), dtype=np.uint8)
    )
    arr = ndstack.open(tmp_path / "b")
    assert arr.dims == ("C", "Z", "Y", "X") and arr.shape == (2, 12, 10, 12)
    assert "stitched along Z" in arr.attrs["axis_sources"]["Z"]
    blocks = [
        [[truth[f"mydata_ch1_0t_{x}x_{y}y_{z}z.tif"] for x in range(2)] for y in range(2)]
        for z in range(3)
    ]
    expected = np.block(blocks)
    np.testing.assert_array_equal(arr.isel(C=1).values, expected)
    # a box across block borders in all three dims, in one step
    np.testing.assert_array_equal(
        arr.isel(C=1, Z=slice(3, 9), Y=slice(2, 8), X=slice(4, 11)).values,
        expected[3:9, 2:8, 4:11],
    )
    assert arr.data.chunks[1] == (4, 4, 4)  # one chunk per block
    kept = ndstack.open(tmp_path / "b", tiles="axes")
    assert kept.dims == ("tile_z", "tile_y", "tile_x", "C", "Z", "Y", "X")
    assert kept.shape == (3, 2, 2, 2, 4, 5, 6)
    np.testing.assert_array_equal(
        kept.isel(tile_z=2, tile_y=1, tile_x=0, C=1).values, truth["mydata_ch1_0t_0x_1y_2z.tif"]
    )


def test_micromanager_sequence_2d(tmp_path: Path) -> None:
    folder = tmp_path / "mm"
    names = [
        f"img_channel{c:03d}_position{p:03d}_time{t:09d}_z{z:03d}.tif"
        for c in range(2)
        for p in range(2)
        for t in range(3)
        for z in range(2)
    ]
    truth = write_files(folder, names, lambda n: np.full((4, 5), hash(n) % 1000, np.uint16))
    arr = ndstack.open(folder)
    assert arr.dims == ("P", "T", "C", "Z", "Y", "X")
    n = "img_channel001_position001_time000000002_z001.tif"
    np.testing.assert_array_equal(arr.isel(P=1, T=2, C=1, Z=1).values, truth[n])


def test_imagej_sequence_unpadded_natural_order(tmp_path: Path) -> None:
    folder = tmp_path / "ij"
    write_files(
        folder,
        [f"img{i}.tif" for i in range(1, 13)],
        lambda n: np.full((3, 3), int(n[3:-4]), np.uint8),
    )
    arr = ndstack.open(folder)
    assert arr.coords["img"].values.tolist() == list(range(1, 13))
    assert arr[:, 0, 0].values.tolist() == list(range(1, 13))


def test_hyperstack_files_follow_ome_order(tmp_path: Path) -> None:
    folder = tmp_path / "hyper"
    rng = np.random.default_rng(3)
    truth = {}
    for p in range(2):
        data = rng.integers(0, 100, (3, 4, 2, 5, 6), dtype=np.uint16)  # T Z C Y X
        tifffile.imwrite(
            folder / f"pos{p}.tif"
            if folder.exists()
            else (folder.mkdir() or folder / f"pos{p}.tif"),
            data,
            imagej=True,
            metadata={"axes": "TZCYX"},
        )
        truth[p] = data
    arr = ndstack.open(folder)
    assert arr.dims == ("P", "T", "C", "Z", "Y", "X")
    np.testing.assert_array_equal(arr.isel(P=1).values, truth[1].transpose(0, 2, 1, 3, 4))
    np.testing.assert_array_equal(arr.isel(P=0, T=2, C=1, Z=3).values, truth[0][2, 3, 1])


def test_ome_tiff_pixel_sizes(tmp_path: Path) -> None:
    folder = tmp_path / "ome"
    folder.mkdir()
    for t in range(2):
        tifffile.imwrite(
            folder / f"t{t}.ome.tif",
            np.zeros((3, 4, 5), np.uint16),
            metadata={
                "axes": "ZYX",
                "PhysicalSizeX": 0.2,
                "PhysicalSizeY": 0.2,
                "PhysicalSizeZ": 1.5,
            },
        )
    arr = ndstack.open(folder)
    assert arr.dims == ("T", "Z", "Y", "X")
    assert arr.attrs["pixel_size"] == pytest.approx({"X": 0.2, "Y": 0.2, "Z": 1.5})


def test_compressed_files_read_through_tifffile(tmp_path: Path) -> None:
    folder = tmp_path / "zlib"
    rng = np.random.default_rng(4)
    truth = write_files(
        folder,
        [f"z_t{t}.tif" for t in range(3)],
        lambda n: rng.integers(0, 50, (4, 6, 7), dtype=np.uint16),
        compression="zlib",
    )
    arr = ndstack.open(folder, chunks={"Z": 3})
    np.testing.assert_array_equal(arr.values, np.stack([truth[f"z_t{t}.tif"] for t in range(3)]))
    np.testing.assert_array_equal(arr.isel(T=1, Z=2).values, truth["z_t1.tif"][2])


def test_missing_files_are_filled_listed_and_warned(lls) -> None:
    folder, truth = lls
    os.remove(folder / lls_name(1, 2))
    with pytest.warns(ndstack.MissingFilesWarning, match="1 of 12 grid positions"):
        arr = ndstack.open(folder, fill_value=7)
    assert arr.attrs["missing"] == ["T=2, C=1"]
    assert (arr.isel(T=2, C=1).values == 7).all()
    np.testing.assert_array_equal(arr.isel(T=2, C=0).values, truth[(2, 0)])


def test_memory_filesystem(tmp_path: Path) -> None:
    import io

    import fsspec

    fs = fsspec.filesystem("memory")
    rng = np.random.default_rng(5)
    truth = {}
    for t in range(3):
        data = rng.integers(0, 100, (2, 4, 4), dtype=np.uint16)
        buf = io.BytesIO()
        tifffile.imwrite(buf, data, photometric="minisblack")
        fs.pipe(f"/ndstack-test/run_t{t}.tif", buf.getvalue())
        truth[t] = data
    fs.pipe("/ndstack-test/notes.txt", b"not an image")
    try:
        arr = ndstack.open("memory://ndstack-test")
        assert arr.dims == ("T", "Z", "Y", "X")
        np.testing.assert_array_equal(arr.values, np.stack([truth[t] for t in range(3)]))
        np.testing.assert_array_equal(arr.isel(T=1, Z=1).values, truth[1][1])
    finally:
        fs.rm("/ndstack-test", recursive=True)


def test_graph_pickles_and_runs_in_processes(lls) -> None:
    folder, truth = lls
    arr = ndstack.open(folder)
    again = pickle.loads(pickle.dumps(arr))
    with dask.config.set(scheduler="processes", num_workers=2):
        total = again.sum().compute()
    assert int(total) == int(stack_truth(truth, 4, 3).sum(dtype=np.int64))


def test_names_with_spaces_and_non_ascii(tmp_path: Path) -> None:
    folder = tmp_path / "données brutes"
    truth = write_files(
        folder,
        [f"échantillon ch{c} t{t}.tif" for c in range(2) for t in range(2)],
        lambda n: np.full((3, 3), len(n) + int(n[-5]), np.uint8),
    )
    arr = ndstack.open(folder)
    assert arr.dims == ("T", "C", "Y", "X")
    np.testing.assert_array_equal(arr.isel(T=1, C=1).values, truth["échantillon ch1 t1.tif"])


def test_read_only_source_simply_works(lls) -> None:
    folder, truth = lls
    before = snapshot(folder)
    os.chmod(folder, stat.S_IRUSR | stat.S_IXUSR)
    try:
        arr = ndstack.open(folder)
        np.testing.assert_array_equal(arr.isel(T=0, C=0).values, truth[(0, 0)])
    finally:
        os.chmod(folder, stat.S_IRWXU)
    assert snapshot(folder) == before


def test_symlink_loop_is_not_followed_forever(lls) -> None:
    folder, _ = lls
    os.symlink(folder, folder / "loop")
    arr = ndstack.open(folder)
    assert arr.shape[:2] == (4, 3)


def test_glob_and_list_sources(lls) -> None:
    folder, truth = lls
    arr = ndstack.open(str(folder / "*ch1*.tif"))
    assert arr.dims == ("T", "Z", "Y", "X")
    np.testing.assert_array_equal(arr.isel(T=3).values, truth[(3, 1)])
    files = [folder / lls_name(c, 0) for c in range(3)]
    arr = ndstack.open(files)
    assert arr.dims == ("C", "Z", "Y", "X")


def test_directory_skips_non_images(lls) -> None:
    folder, _ = lls
    (folder / "notes.txt").write_text("hello")
    (folder / "meta.json").write_text("{}")
    (folder / "Thumbs.db").write_bytes(b"\0" * 10)
    (folder / ".hidden.tif").write_bytes(b"junk")
    (folder / "sub").mkdir()
    tifffile.imwrite(folder / "sub" / "preview_thumb.tif", np.zeros((2, 2), np.uint8))
    assert ndstack.open(folder).shape[:2] == (4, 3)


def test_custom_reader_with_file_axes(tmp_path: Path) -> None:
    folder = tmp_path / "raw"
    folder.mkdir()
    for t in range(3):
        np.save(folder / f"cam_t{t}.npy", np.full((2, 3, 4), t, np.float32))
    arr = ndstack.open(folder, reader=np.load, file_axes="CYX")
    assert arr.dims == ("T", "C", "Y", "X") and arr.dtype == np.float32
    assert arr.isel(T=2, C=1).values.tolist() == [[2.0] * 4] * 3


def test_custom_reader_with_shape_from_the_user_calls_nothing_while_opening(tmp_path: Path) -> None:
    folder = tmp_path / "raw"
    folder.mkdir()
    for t in range(3):
        np.save(folder / f"cam_t{t}.npy", np.full((4, 5), t, np.uint16))
    calls = []

    def reader(path: str) -> np.ndarray:
        calls.append(path)
        return np.load(path)

    arr = ndstack.open(folder, reader=reader, file_shape=(4, 5), dtype="uint16")
    assert calls == [] and arr.dims == ("T", "Y", "X")
    assert (arr.isel(T=2).values == 2).all() and len(calls) == 1
    wrong = ndstack.open(folder, reader=reader, file_shape=(4, 6), dtype="uint16")
    with pytest.raises(
        FileMismatchError, match=r"cam_t1.npy: expected shape \(4, 6\) dtype uint16"
    ):
        wrong.isel(T=1).values


# --------------------------------------------------------------------------- bad input
def test_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(NoImagesError, match="no image file in"):
        ndstack.open(tmp_path / "empty")


def test_glob_that_matches_nothing(tmp_path: Path) -> None:
    with pytest.raises(NoImagesError, match="matches no file"):
        ndstack.open(str(tmp_path / "*.tif"))


def test_folder_of_non_images(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    (tmp_path / "b.csv").write_text("x")
    with pytest.raises(NoImagesError, match=r"looked for \.tif"):
        ndstack.open(tmp_path)


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ndstack.open(tmp_path / "nope")


def test_file_that_is_not_a_tiff(lls) -> None:
    folder, _ = lls
    bad = folder / lls_name(2, 3)
    bad.write_bytes(b"this is not a tiff at all")
    before = snapshot(folder)
    with pytest.raises(CorruptFileError, match=rf"{bad.name}: not a readable TIFF"):
        ndstack.open(folder)
    assert snapshot(folder) == before
    with pytest.warns(ndstack.MissingFilesWarning):
        arr = ndstack.open(folder, on_error="fill")
    assert len(arr.attrs["bad_files"]) == 1 and bad.name in arr.attrs["bad_files"][0]
    assert (arr.isel(T=3, C=2).values == 0).all()


def test_truncated_tiff(lls) -> None:
    folder, _ = lls
    victim = folder / lls_name(0, 1)
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match=rf"{victim.name}: truncated"):
        ndstack.open(folder)


def test_truncated_file_found_only_when_read(lls) -> None:
    folder, _ = lls
    arr = ndstack.open(folder, check="none")
    victim = folder / lls_name(0, 1)
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError, match=rf"{victim.name}: truncated"):
        arr.isel(T=1, C=0).values
    with pytest.raises(CorruptFileError, match=rf"{victim.name}: truncated"):
        arr.isel(T=1, C=0, Z=5).values  # a page beyond the end
    with tifffile.TiffFile(victim) as tif:
        offset = tif.pages.first.dataoffsets[0]
    first_page = np.frombuffer(data, np.uint16, count=20 * 24, offset=offset).reshape(20, 24)
    np.testing.assert_array_equal(arr.isel(T=1, C=0, Z=0).values, first_page)  # before the cut


def test_file_of_another_shape(lls) -> None:
    folder, _ = lls
    odd = folder / lls_name(1, 3)
    tifffile.imwrite(odd, np.zeros((6, 20, 25), np.uint16), imagej=True)
    with pytest.raises(
        FileMismatchError,
        match=rf"{odd.name}: expected shape \(6, 20, 24\) dtype uint16 .*found shape \(6, 20, 25\)",
    ):
        ndstack.open(folder)


def test_file_of_another_dtype(lls) -> None:
    folder, _ = lls
    odd = folder / lls_name(1, 3)
    tifffile.imwrite(odd, np.zeros((6, 20, 24), np.uint8), imagej=True)
    with pytest.raises(FileMismatchError, match="found shape \\(6, 20, 24\\) dtype uint8"):
        ndstack.open(folder)


def test_same_size_other_shape_found_with_header_check(tmp_path: Path) -> None:
    folder = tmp_path / "same"
    write_files(
        folder,
        ["a_t0.tif", "a_t1.tif"],
        lambda n: np.zeros((4, 6) if "t0" in n else (6, 4), np.uint8),
    )
    with pytest.raises(FileMismatchError, match=r"a_t1\.tif"):
        ndstack.open(folder, check="headers")
    # without the header check the size matches, and the read itself refuses
    arr = ndstack.open(folder)
    with pytest.raises(FileMismatchError, match=r"a_t1\.tif"):
        arr.isel(T=1).values


def test_duplicate_grid_positions(lls) -> None:
    folder, _ = lls
    with pytest.raises(DuplicatePositionError, match="map to the same position"):
        ndstack.open(folder, pattern="{name}_ch{C}_*.tif")


def test_pattern_that_matches_no_file(lls) -> None:
    folder, _ = lls
    with pytest.raises(PatternError, match="matches none of the 12 file names"):
        ndstack.open(folder, pattern="img_{T}.tif")


def test_a_pattern_field_that_varies_on_its_own_is_an_axis(tmp_path: Path) -> None:
    folder = tmp_path / "x"
    write_files(
        folder,
        [f"img_t{t}_{k}ms.tif" for t in range(2) for k in (10, 20)],
        lambda n: np.zeros((2, 2), np.uint8),
    )
    arr = ndstack.open(folder, pattern="img_t{T}_{ms}ms.tif")  # an axis of its own name
    assert arr.dims[:2] == ("ms", "T") and arr.sizes["ms"] == 2
    assert arr.coords["ms"].values.tolist() == [10, 20]


def test_name_axis_matching_a_file_axis_is_a_block_index(tmp_path: Path) -> None:
    """Once refused ("comes both from the names and from inside the files"): now the
    files are blocks along that axis, stitched in name order."""
    folder = tmp_path / "z"
    truth = write_files(
        folder, [f"s_z{z}.tif" for z in (1, 0)], lambda n: np.full((3, 5, 6), int(n[3]), np.uint8)
    )
    arr = ndstack.open(folder)
    assert arr.dims == ("Z", "Y", "X") and arr.shape == (6, 5, 6)
    np.testing.assert_array_equal(
        arr.values, np.concatenate([truth["s_z0.tif"], truth["s_z1.tif"]])
    )


def test_file_with_extra_pages_is_refused_when_read(tmp_path: Path) -> None:
    """Same first page, more pages: the size check at open and the series check at read."""
    folder = tmp_path / "extra"
    write_files(
        folder,
        ["s_t0.tif", "s_t1.tif"],
        lambda n: np.zeros((5 if "t1" in n else 4, 6, 7), np.uint16),
    )
    with pytest.raises(FileMismatchError, match=r"s_t1.tif: expected shape \(4, 6, 7\)"):
        ndstack.open(folder)
    arr = ndstack.open(folder, check="none")
    with pytest.raises(FileMismatchError, match=r"s_t1.tif: expected shape \(4, 6, 7\)"):
        arr.isel(T=1).values


def test_a_single_file_opens_with_its_own_axes(tmp_path: Path) -> None:
    data = np.arange(3 * 4 * 5, dtype=np.uint16).reshape(3, 4, 5)
    path = tmp_path / "one stack.tif"
    tifffile.imwrite(path, data, imagej=True, metadata={"axes": "ZYX"})
    for source in (path, [path], tmp_path):
        arr = ndstack.open(source)
        assert arr.dims == ("Z", "Y", "X") and arr.attrs["files"] == 1
        np.testing.assert_array_equal(arr.values, data)
        np.testing.assert_array_equal(arr.isel(Z=2).values, data[2])


def test_import_ndstack_loads_no_heavy_library() -> None:
    """Only heavy third-party imports stay deferred: importing ndstack is cheap."""
    import subprocess
    import sys

    code = (
        "import sys, ndstack; heavy = [m for m in ('dask', 'xarray', 'zarr', 'tifffile', "
        "'scipy', 'distributed', 'imagecodecs', 'napari', 'matplotlib') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_version_has_one_source() -> None:
    """pyproject reads the version from ndstack.__version__; the installed metadata agrees."""
    import importlib.metadata
    import tomllib

    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert importlib.metadata.version("ndstack") == ndstack.__version__


def test_pixel_sizes_given_to_open(tmp_path: Path) -> None:
    """A function reader gives no pixel size: pixel_size= gives them, they reach the
    store's NGFF scales; bad values and unknown dims are refused naming them."""
    from ndstack.errors import ParameterError

    folder = tmp_path / "npy"
    folder.mkdir()
    for t in range(2):
        np.save(folder / f"img_t{t}.npy", np.full((3, 8, 8), t, np.uint16))
    arr = ndstack.open(folder, reader=np.load, pixel_size={"Z": 0.3, "Y": 0.104, "X": 0.104})
    assert arr.attrs["pixel_size"] == {"Z": 0.3, "Y": 0.104, "X": 0.104}
    assert arr.attrs["pixel_unit"] == "micrometer" and arr.attrs["pixel_size_given"] == [
        "X", "Y", "Z"]  # fmt: skip
    store = tmp_path / "s.ome.zarr"
    ndstack.to_zarr(arr, store, levels=1)
    scale = json.loads((store / "zarr.json").read_text())["attributes"]["ome"]["multiscales"][0][
        "datasets"][0]["coordinateTransformations"][0]["scale"]  # fmt: skip
    assert scale[-3:] == [0.3, 0.104, 0.104]
    again = ndstack.open(store, pixel_size={"Z": 0.25})
    assert again.attrs["pixel_size"] == {"Z": 0.25, "Y": 0.104, "X": 0.104}
    refused = [
        ({"Z": 0}, "Z=0"),
        ({"Z": -1.0}, "Z=-1.0"),
        ({"Y": float("nan")}, "Y=nan"),
        ({"Y": "0.1"}, "Y='0.1'"),
        ({"Q": 1.0}, "'Q'"),
        ([0.3], "must map"),
    ]
    for bad, message in refused:
        with pytest.raises(ParameterError, match=message):
            ndstack.open(folder, reader=np.load, pixel_size=bad)


def test_thumbnails_beside_the_images_are_left_out_and_named(tmp_path: Path) -> None:
    """MetaXpress writes a thumbnail beside the images (``..._w1_thumb<GUID>.tif``): of
    another structure than a clear majority, it is left out, counted, named in one
    warning and in info; without a clear majority the names still refuse."""
    from ndstack import SkippedFilesWarning

    names = [f"plate_B{r:02d}_s{s}_w{w}.tif" for r in (2, 3) for s in (1, 2) for w in (1, 2)]
    thumb = "plate_B02_s1_w1_thumbD5F8F51A-3E85-4358-AE51-A465AF87386F.tif"
    write_files(tmp_path / "mx", [*names, thumb], lambda n: np.full((4, 5), len(n), np.uint16))
    with pytest.warns(SkippedFilesWarning, match="left out 1 files of another structure"):
        arr = ndstack.open(tmp_path / "mx")
    assert arr.attrs["skipped"] == 1 and arr.attrs["skipped_files"] == [thumb]
    assert arr.shape[:3] == (2, 2, 2) and arr.attrs["files"] == 8
    assert int(arr.values.max()) == len(names[0])  # no thumbnail inside
    text = ndstack.format_info(ndstack.info(arr))
    assert "skipped 1 files: of another structure" in text
    write_files(tmp_path / "half", ["a_t1.tif", "a_t2.tif", "b_x_t1_y2.tif", "b_x_t2_y3.tif"],
                lambda n: np.zeros((2, 2), np.uint8))  # fmt: skip
    with pytest.raises(LayoutError, match="do not share one structure"):
        ndstack.open(tmp_path / "half")


def test_time_stamps_in_names_survive_a_store(tmp_path: Path) -> None:
    stamps = ["2024-03-05_14-22-07.123", "2024-03-05_14-22-08.5", "2024-03-06_00-00-00"]
    truth = write_files(
        tmp_path / "cam",
        [f"frame_{s}.tif" for s in stamps],
        lambda n: np.full((3, 4), len(n), np.uint8),
    )
    arr = ndstack.open(tmp_path / "cam")
    assert arr.dims == ("T", "Y", "X")
    np.testing.assert_array_equal(arr.values, np.stack([truth[f"frame_{s}.tif"] for s in stamps]))
    ndstack.to_zarr(arr, tmp_path / "out.ome.zarr")
    back = ndstack.open(tmp_path / "out.ome.zarr")
    np.testing.assert_array_equal(back.coords["time"].values, arr.coords["time"].values)
    assert str(back.coords["time"].values[1]) == "2024-03-05T14:22:08.500000"
    text = ndstack.format_info(ndstack.info(arr))
    assert "time (T): 2024-03-05T14:22:07.123000" in text and "order of the files by" in text


def test_channel_names_from_the_files_own_ome_xml(tmp_path: Path) -> None:
    for t in range(2):
        tifffile.imwrite(
            tmp_path / f"x_t{t}.ome.tif",
            np.full((2, 3, 4), t, np.uint8),
            metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "GFP"]}},
            photometric="minisblack",
        )
    arr = ndstack.open(tmp_path)
    assert arr.dims == ("T", "C", "Y", "X")
    assert arr.coords["C"].values.tolist() == ["DAPI", "GFP"]
    assert int(arr.sel(C="GFP").isel(T=1).max()) == 1
    # names that stitch C blocks (c0, c1 files of 2 channels each): no names for 4
    blocks = tmp_path / "b"
    for c in range(2):
        blocks.mkdir(exist_ok=True)
        tifffile.imwrite(
            blocks / f"y_c{c}.ome.tif",
            np.zeros((2, 3, 4), np.uint8),
            metadata={"axes": "CYX", "Channel": {"Name": ["DAPI", "GFP"]}},
            photometric="minisblack",
        )
    stitched = ndstack.open(blocks)
    assert stitched.sizes["C"] == 4 and stitched.coords["C"].values.tolist() == [0, 1, 2, 3]
