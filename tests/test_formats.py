"""Image sequences in the common raster formats open by default, like TIFFs.

Every file is written by its own encoder (imagecodecs) here and compared with
``imagecodecs.imread`` of the same file, over arrays of several chunks (one per file).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import imagecodecs
import numpy as np
import pytest

import ndstack
from ndstack._raster import probe_raster
from ndstack.errors import CorruptFileError, FileMismatchError, LayoutError, NoImagesError

from .conftest import bytes_read, serve_http

RNG = np.random.default_rng(11)

#: (ending, image shape and dtype, what the array's dims are besides the file axis)
CASES = [
    (".png", (24, 32), np.uint8, ("Y", "X")),
    (".png", (24, 32), np.uint16, ("Y", "X")),
    (".png", (24, 32, 3), np.uint8, ("C", "Y", "X")),
    (".png", (24, 32, 4), np.uint8, ("C", "Y", "X")),
    (".jpg", (24, 32), np.uint8, ("Y", "X")),
    (".jpg", (24, 32, 3), np.uint8, ("C", "Y", "X")),
    (".jp2", (24, 32), np.uint16, ("Y", "X")),
    (".jxl", (24, 32, 3), np.uint8, ("C", "Y", "X")),
    (".webp", (24, 32, 3), np.uint8, ("C", "Y", "X")),
    (".bmp", (24, 32, 3), np.uint8, ("C", "Y", "X")),
    (".gif", (24, 32), np.uint8, ("C", "Y", "X")),  # GIF decodes to RGB
]


def _write(folder: Path, ending: str, shape: tuple[int, ...], dtype: type, n: int = 4) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for z in range(n):
        data = RNG.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
        path = folder / f"slice_{z:04d}{ending}"
        imagecodecs.imwrite(path, data)
        paths.append(path)
    return paths


@pytest.mark.parametrize(("ending", "shape", "dtype", "dims"), CASES)
def test_a_sequence_of_each_format_opens_by_default(
    tmp_path: Path, ending: str, shape: tuple[int, ...], dtype: type, dims: tuple[str, ...]
) -> None:
    paths = _write(tmp_path / "s", ending, shape, dtype)
    arr = ndstack.open(tmp_path / "s")
    expected = np.stack([imagecodecs.imread(p) for p in paths])
    if expected.ndim == 4:  # samples last in the files: C, in OME order (C, Z, Y, X)
        expected = np.moveaxis(expected, -1, 0)
    assert arr.dims == (*dims[:-2], "Z", "Y", "X")
    assert arr.data.numblocks[arr.dims.index("Z")] == len(paths)
    assert arr.dtype == expected.dtype
    np.testing.assert_array_equal(arr.values, expected)
    np.testing.assert_array_equal(arr.isel(Z=2).values, expected[..., 2, :, :])


@pytest.mark.parametrize("ending", [".png", ".jpg"])
def test_png_and_jpeg_headers_give_what_a_decode_gives(tmp_path: Path, ending: str) -> None:
    for shape, dtype in (((9, 13), np.uint8), ((9, 13, 3), np.uint8)):
        (path,) = _write(tmp_path / str(len(shape)), ending, shape, dtype, n=1)
        info = probe_raster(str(path))
        decoded = imagecodecs.imread(path)
        assert info.shape == decoded.shape and info.dtype == decoded.dtype.name


def _with_phys(png: bytes, um_per_px: float) -> bytes:
    """A PNG with a pHYs chunk (pixels per metre) after its IHDR."""
    ppm = round(1e6 / um_per_px)
    body = b"pHYs" + struct.pack(">IIB", ppm, ppm, 1)
    chunk = struct.pack(">I", 9) + body + struct.pack(">I", zlib.crc32(body))
    return png[:33] + chunk + png[33:]


def test_a_png_pixel_size_in_metres_is_read_and_pixel_size_gives_one(tmp_path: Path) -> None:
    paths = _write(tmp_path / "s", ".png", (8, 8), np.uint8, n=2)
    for p in paths:
        p.write_bytes(_with_phys(p.read_bytes(), 0.5))
    arr = ndstack.open(tmp_path / "s")
    assert arr.attrs["pixel_size"] == pytest.approx({"Y": 0.5, "X": 0.5})
    plain = _write(tmp_path / "p", ".png", (8, 8), np.uint8, n=2)
    given = ndstack.open(plain[0].parent, pixel_size={"Z": 0.3, "Y": 0.1, "X": 0.1})
    assert given.attrs["pixel_size"] == {"Z": 0.3, "Y": 0.1, "X": 0.1}


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/self/io")
def test_one_plane_of_a_png_sequence_reads_one_file(tmp_path: Path) -> None:
    paths = _write(tmp_path / "s", ".png", (256, 256), np.uint16, n=8)
    arr = ndstack.open(tmp_path / "s")
    before = bytes_read()
    arr.isel(Z=5).values
    read = bytes_read() - before
    assert paths[5].stat().st_size <= read < 1.5 * paths[5].stat().st_size


def test_a_list_of_png_urls_opens_over_http(tmp_path: Path) -> None:
    paths = _write(tmp_path / "s", ".png", (16, 20), np.uint8, n=3)
    with serve_http(tmp_path / "s") as url:
        arr = ndstack.open([f"{url}/{p.name}" for p in paths])
        expected = np.stack([imagecodecs.imread(p) for p in paths])
        np.testing.assert_array_equal(arr.values, expected)


def test_a_stray_png_among_tiffs_is_left_out_and_a_real_mix_refused(tmp_path: Path) -> None:
    import tifffile

    for t in range(4):
        tifffile.imwrite(tmp_path / f"img_t{t}.tif", np.full((4, 5), t, np.uint8))
    imagecodecs.imwrite(tmp_path / "preview.png", np.zeros((4, 5), np.uint8))
    with pytest.warns(ndstack.SkippedFilesWarning, match="preview.png"):
        arr = ndstack.open(tmp_path)
    assert arr.sizes["T"] == 4 and arr.attrs["skipped_files"] == ["preview.png"]
    assert "another format" in arr.attrs["skipped_reason"]
    for t in range(4):
        imagecodecs.imwrite(tmp_path / f"img_t{t}.png", np.zeros((4, 5), np.uint8))
    with pytest.raises(LayoutError, match=r"mixes image formats .*'img_t0.(tif|png)'.*'img_t0"):
        ndstack.open(tmp_path)
    with pytest.warns(ndstack.SkippedFilesWarning, match="preview.png"):  # another structure
        assert ndstack.open(tmp_path, extensions=[".png"]).sizes["T"] == 4


def test_a_truncated_png_is_named_when_read(tmp_path: Path) -> None:
    paths = _write(tmp_path / "s", ".png", (16, 16), np.uint8, n=3)
    paths[2].write_bytes(paths[2].read_bytes()[:60])
    arr = ndstack.open(tmp_path / "s")
    with pytest.raises(CorruptFileError, match=r"slice_0002\.png: not a readable PNG"):
        arr.values
    filled = ndstack.open(tmp_path / "s", on_error="fill", fill_value=9)
    with pytest.warns(UserWarning, match="slice_0002.png"):
        assert (filled.isel(Z=2).values == 9).all()


def test_an_unknown_ending_is_named_in_the_error(tmp_path: Path) -> None:
    (tmp_path / "a.xyz").write_bytes(b"\0" * 10)
    with pytest.raises(NoImagesError, match=r"looked for .*\.png"):
        ndstack.open(tmp_path)


_PLUGIN = """
import numpy as np
from ndstack import FileInfo


class NpyReader:
    def __init__(self, info):
        self.info = info

    def read(self, path, sel):
        READS.append(path)
        return np.asarray(np.load(path, mmap_mode="r")[np.ix_(*sel)])


class Npy:
    name = "NumPy"
    extensions = (".npy",)

    def probe(self, path, fs=None):
        a = np.load(path, mmap_mode="r")
        sizes = {"Y": 0.2, "X": 0.2}
        return FileInfo(a.shape, a.dtype.name, "YX", pixel_sizes=sizes, unit="micrometer")

    def reader(self, info, fs=None):
        return NpyReader(info)


READS = []
FORMAT = Npy()
"""


@pytest.fixture
def fresh_formats():
    from ndstack import _formats

    _formats._from_entry_points.cache_clear()
    _formats._by_ending.cache_clear()
    yield _formats
    _formats._REGISTERED.clear()
    _formats._from_entry_points.cache_clear()
    _formats._by_ending.cache_clear()


def test_a_format_from_an_installed_entry_point_reads_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_formats
) -> None:
    """A real distribution on sys.path declares ``[ndstack.readers] npy = ndstackfmt:FORMAT``."""
    site = tmp_path / "site"
    (site / "ndstackfmt").mkdir(parents=True)
    (site / "ndstackfmt" / "__init__.py").write_text(_PLUGIN)
    info = site / "ndstackfmt-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ndstackfmt\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[ndstack.readers]\nnpy = ndstackfmt:FORMAT\n")
    monkeypatch.syspath_prepend(str(site))
    data = tmp_path / "data"
    data.mkdir()
    truth = RNG.integers(0, 1000, (3, 5, 6)).astype(np.int32)
    for z in range(3):
        np.save(data / f"plane_z{z}.npy", truth[z])
    arr = ndstack.open(data)
    assert arr.dims == ("Z", "Y", "X") and arr.attrs["pixel_size"] == {"Y": 0.2, "X": 0.2}
    np.testing.assert_array_equal(arr.values, truth)
    import ndstackfmt

    ndstackfmt.READS.clear()
    np.testing.assert_array_equal(arr.isel(Z=1).values, truth[1])
    assert [Path(p).name for p in ndstackfmt.READS] == ["plane_z1.npy"]


def test_register_format_refuses_what_is_no_format(fresh_formats) -> None:
    with pytest.raises(TypeError, match="lacks probe, reader"):
        ndstack.register_format(type("Half", (), {"name": "x", "extensions": (".x",)})())


def test_files_whose_ending_lies_are_read_as_what_they_are(tmp_path: Path) -> None:
    import tifffile

    truth = RNG.integers(0, 255, (3, 6, 7), dtype=np.uint8)
    for z in range(3):  # TIFFs named .png (an export that renamed them)
        tifffile.imwrite(tmp_path / f"t_z{z}.png", truth[z], photometric="minisblack")
    np.testing.assert_array_equal(ndstack.open(tmp_path).values, truth)
    other = tmp_path / "o"
    other.mkdir()
    for z in range(3):  # PNGs named .tif
        imagecodecs.imwrite(other / f"p_z{z}.png", truth[z])
        (other / f"p_z{z}.png").rename(other / f"p_z{z}.tif")
    np.testing.assert_array_equal(ndstack.open(other).values, truth)
    junk = tmp_path / "j"
    junk.mkdir()
    (junk / "a_z0.tif").write_bytes(b"not an image at all")
    with pytest.raises(CorruptFileError, match=r"a_z0\.tif: not a readable TIFF"):
        ndstack.open(junk)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def test_broken_raster_files_are_errors_naming_them_never_crashes(tmp_path: Path) -> None:
    paths = _write(tmp_path / "e", ".png", (4, 5), np.uint8, n=3)
    paths[2].write_bytes(b"")  # empty: some codecs crash on what is not theirs
    arr = ndstack.open(tmp_path / "e")
    with pytest.raises(CorruptFileError, match=r"slice_0002\.png: empty"):
        arr.values
    jpgs = _write(tmp_path / "j", ".jpg", (32, 32), np.uint8, n=2)
    jpgs[1].write_bytes(jpgs[1].read_bytes()[:300])  # cut: no end marker
    with pytest.raises(CorruptFileError, match=r"slice_0001\.jpg: truncated"):
        ndstack.open(tmp_path / "j").values
    (forged,) = _write(tmp_path / "f", ".png", (4, 5), np.uint8, n=1)
    raw = bytearray(forged.read_bytes())
    raw[16:24] = struct.pack(">II", 2**31 - 1, 2**31 - 1)  # IHDR width, height
    forged.write_bytes(bytes(raw))
    with pytest.raises(CorruptFileError, match="more than its"):
        ndstack.open(tmp_path / "f")


def test_a_png_with_transparency_reads_with_its_alpha(tmp_path: Path) -> None:
    paths = _write(tmp_path / "t", ".png", (4, 5, 3), np.uint8, n=2)
    for p in paths:  # a tRNS colour key: decoders add an alpha channel
        raw = p.read_bytes()
        p.write_bytes(raw[:33] + _chunk(b"tRNS", struct.pack(">HHH", 0, 0, 0)) + raw[33:])
    arr = ndstack.open(tmp_path / "t")
    expected = np.moveaxis(np.stack([imagecodecs.imread(p) for p in paths]), -1, 0)
    assert arr.shape == expected.shape and expected.shape[0] == 4
    np.testing.assert_array_equal(arr.values, expected)


def test_a_broken_entry_point_is_left_out_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fresh_formats
) -> None:
    import tifffile

    site = tmp_path / "site"
    info = site / "brokenfmt-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenfmt\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[ndstack.readers]\nbad = no_such_module_xyz:F\n")
    monkeypatch.syspath_prepend(str(site))
    tifffile.imwrite(tmp_path / "a.tif", np.ones((3, 4), np.uint8))
    with pytest.warns(UserWarning, match="entry point 'bad'.*fails to load"):
        assert int(ndstack.open(tmp_path / "a.tif").sum()) == 12
    with pytest.raises(TypeError, match="no tuple of endings"):
        ndstack.register_format(type("S", (), {"name": "s", "extensions": ".s",
                                               "probe": None, "reader": None})())  # fmt: skip


def test_rasters_are_listed_without_a_stat_each_and_headers_still_catch_a_misfit(
    tmp_path: Path,
) -> None:
    from ndstack._discover import discover

    _write(tmp_path / "s", ".png", (24, 32), np.uint8, n=3)
    imagecodecs.imwrite(tmp_path / "s" / "slice_0003.png", np.zeros((24, 30), np.uint8))
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(tmp_path / "s" / "a.tif", np.zeros((2, 2), np.uint8))
    src = discover(tmp_path / "s", extensions=None)
    sizes = dict(zip(src.names, src.sizes))
    assert sizes["a.tif"] == (tmp_path / "s" / "a.tif").stat().st_size
    assert {sizes[n] for n in src.names if n.endswith(".png")} == {-1}
    with pytest.raises(FileMismatchError, match=r"slice_0003\.png: expected shape \(24, 32\)") as e:
        ndstack.open(tmp_path / "s", extensions=[".png"], check="headers")
    assert "bytes" not in str(e.value)


def test_grey_multi_frame_jpeg_xl_files_are_frames_not_colour(tmp_path: Path) -> None:
    folder = tmp_path / "jxl"
    folder.mkdir()
    stacks = [RNG.integers(0, 255, (5, 24, 32), dtype=np.uint8) for _ in range(3)]
    for t, stack in enumerate(stacks):
        (folder / f"run_t{t}.jxl").write_bytes(imagecodecs.jpegxl_encode(stack, lossless=True))
    arr = ndstack.open(folder)
    assert arr.dims == ("T", "Z", "Y", "X") and arr.shape == (3, 5, 24, 32)
    np.testing.assert_array_equal(arr.values, np.stack(stacks))


def test_napari_gets_a_file_per_chunk_of_many_small_pngs(tmp_path: Path) -> None:
    from ndstack._napari import _plane_chunks

    folder = tmp_path / "em"
    folder.mkdir()
    for z in range(300):  # more than 256 small files: opened several to a block
        imagecodecs.imwrite(folder / f"section_{z:03d}.png", np.full((8, 8), z % 250, np.uint8))
    arr = ndstack.open(folder)
    assert arr.data.numblocks[0] == 1
    shown = _plane_chunks(arr)
    assert shown.numblocks == (300, 1, 1)  # a slider step decodes one file, not 300
    np.testing.assert_array_equal(shown[123].compute(), np.full((8, 8), 123, np.uint8))
