"""Vendor formats through bioio: a real plugin (bioio-ome-tiff) reads real files.

``reader="bioio"`` routes OME-TIFFs written here by tifffile through bioio, so the bridge
is tested end to end with a plugin the test extra installs; the vendor endings (.czi, .nd2)
go the same way once their plugin is installed. Skipped, saying why, without bioio.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

import ndstack
from ndstack.errors import MissingDependencyError

pytest.importorskip("bioio", reason="needs the bioio extra (pip install 'ndstack[bioio]')")
pytest.importorskip("bioio_ome_tiff", reason="needs the bioio-ome-tiff plugin")

RNG = np.random.default_rng(5)
# bioio-ome-tiff's ome-types warns of its own deprecated arguments while parsing, in
# reader threads too; the suite turns warnings into errors, so these are let through
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _write(path: Path, data: np.ndarray) -> None:
    meta = {"axes": "TCZYX", "PhysicalSizeX": 0.1, "PhysicalSizeY": 0.1, "PhysicalSizeZ": 0.4}
    if data.shape[1] == 2:
        meta["Channel"] = {"Name": ["DAPI", "GFP"]}
    tifffile.imwrite(path, data, metadata=meta, photometric="minisblack")


def test_files_read_through_bioio_assemble_across_names(tmp_path: Path) -> None:
    truth = RNG.integers(0, 4000, (3, 2, 2, 4, 8, 9), dtype=np.uint16)  # P, TCZYX
    for p in range(3):
        _write(tmp_path / f"well_pos{p}.ome.tif", truth[p])
    arr = ndstack.open(tmp_path, reader="bioio")
    assert arr.dims == ("P", "T", "C", "Z", "Y", "X") and arr.shape == truth.shape
    assert arr.attrs["pixel_size"] == pytest.approx({"Z": 0.4, "Y": 0.1, "X": 0.1})
    assert arr.coords["C"].values.tolist() == ["DAPI", "GFP"]
    np.testing.assert_array_equal(arr.values, truth)
    np.testing.assert_array_equal(  # a selection inside files and across them
        arr.isel(P=[2, 0], T=1, Z=slice(1, 4), X=[8, 0]).values,
        truth[[2, 0], 1][:, :, 1:4][..., [8, 0]],
    )


def test_a_file_with_several_scenes_gives_them_as_p(tmp_path: Path) -> None:
    truth = RNG.integers(0, 255, (2, 1, 1, 3, 5, 6), dtype=np.uint8)
    with tifffile.TiffWriter(tmp_path / "scenes.ome.tif", ome=True) as tw:
        for s in range(2):
            tw.write(truth[s], metadata={"axes": "TCZYX"}, photometric="minisblack")
    arr = ndstack.open(tmp_path / "scenes.ome.tif", reader="bioio")
    assert arr.dims[0] == "P" and arr.sizes["P"] == 2
    np.testing.assert_array_equal(arr.values.reshape(truth.shape), truth)
    np.testing.assert_array_equal(arr.isel(P=1).values.reshape(truth.shape[1:]), truth[1])


def test_a_vendor_file_without_its_plugin_names_the_plugin(tmp_path: Path) -> None:
    (tmp_path / "run.czi").write_bytes(b"ZISRAWFILE" + b"\0" * 100)
    with pytest.raises(MissingDependencyError, match="bioio-czi"):
        ndstack.open(tmp_path)


def test_reader_names_a_known_format(tmp_path: Path) -> None:
    _write(tmp_path / "a.ome.tif", np.zeros((1, 1, 1, 2, 2), np.uint8))
    with pytest.raises(ValueError, match=r"names no format; known: .*bioio"):
        ndstack.open(tmp_path, reader="bioformats")


def test_files_with_another_number_of_scenes_are_named(tmp_path: Path) -> None:
    for name, n in (("a_t0.ome.tif", 2), ("a_t1.ome.tif", 3)):
        with tifffile.TiffWriter(tmp_path / name, ome=True) as tw:
            for _ in range(n):
                tw.write(np.zeros((1, 1, 1, 3, 4), np.uint8), metadata={"axes": "TCZYX"},
                         photometric="minisblack")  # fmt: skip
    arr = ndstack.open(tmp_path, reader="bioio")
    with pytest.raises(ndstack.errors.FileMismatchError, match=r"a_t1\.ome\.tif: expected 2 scene"):
        arr.values
    with pytest.raises(ndstack.errors.ParameterError, match="file_axes= does not apply"):
        ndstack.open(tmp_path, reader="bioio", file_axes="PCTZYX")


def test_urls_go_to_bioio_whole(tmp_path: Path) -> None:
    from .conftest import serve_http

    truth = RNG.integers(0, 4000, (2, 1, 2, 1, 4, 5), dtype=np.uint16)
    for p in range(2):
        _write(tmp_path / f"w_pos{p}.ome.tif", truth[p])
    with serve_http(tmp_path) as url:
        arr = ndstack.open([f"{url}/w_pos{p}.ome.tif" for p in range(2)], reader="bioio")
        assert arr.dims == ("P", "T", "C", "Z", "Y", "X")
        np.testing.assert_array_equal(arr.values, truth)
    del arr
    # bioio's plugins open their own fsspec HTTP sessions and leave aiohttp to warn when
    # they are collected: collect them here, not in whichever test runs next
    import gc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gc.collect()
