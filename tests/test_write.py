"""ndstack.to_zarr: round trips, layouts, pyramid, options, results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

import ndstack
from ndstack.errors import (
    NdstackError,
)

from .conftest import (
    mean2,
    positions,
    validate_ngff,
    write_files,
)


def test_lattice_round_trip_is_identical_and_valid(lls, tmp_path: Path) -> None:
    folder, _ = lls
    arr = ndstack.open(folder)
    summary = ndstack.to_zarr(arr, tmp_path / "out.zarr")
    assert summary["tasks"] == 12 and summary["bytes_in"] == arr.nbytes
    assert summary["bytes_out"] < summary["bytes_in"] * 2
    back = ndstack.open(tmp_path / "out.zarr")
    xr.testing.assert_identical(back.compute(), arr.compute())
    validate_ngff(tmp_path / "out.zarr")
    meta = zarr.open_group(tmp_path / "out.zarr", mode="r").attrs["ome"]
    ms = meta["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["t", "c", "z", "y", "x"]
    assert ms["axes"][2] == {"name": "z", "type": "space", "unit": "micrometer"}
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == pytest.approx(
        [1, 1, 0.4, 0.104, 0.104]
    )
    assert [c["label"] for c in meta["omero"]["channels"]] == ["488nm", "560nm", "642nm"]
    arr0 = zarr.open_array(tmp_path / "out.zarr" / "0", mode="r")
    assert arr0.metadata.codecs[1].to_dict()["configuration"]["cname"] == "zstd"
    assert arr0.metadata.codecs[1].to_dict()["configuration"]["shuffle"] == "bitshuffle"


def test_opens_with_ome_zarr_py(tmp_path: Path) -> None:
    """A second, independent reader sees the same pyramid, axes and channels."""
    import warnings

    pytest.importorskip("ome_zarr")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    rng = np.random.default_rng(8)
    data = rng.integers(0, 1000, size=(2, 3, 1030, 600), dtype=np.uint16)
    arr = xr.DataArray(
        da.from_array(data, chunks=(1, 1, 1030, 600)),
        dims=("T", "C", "Y", "X"),
        coords={"C": [0, 1, 2]},
    )
    ndstack.to_zarr(arr, tmp_path / "oz.zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reader's own deprecation notices
        node = next(iter(Reader(parse_url(str(tmp_path / "oz.zarr")))()))
        levels = [np.asarray(level) for level in node.data]
    assert [lv.shape for lv in levels] == [(2, 3, 1030, 600), (2, 3, 515, 300), (2, 3, 258, 150)]
    np.testing.assert_array_equal(levels[0], data)
    assert [a["name"] for a in node.metadata["axes"]] == ["t", "c", "y", "x"]
    assert node.metadata["channel_names"] == ["0", "1", "2"]


def test_sequence_of_planes_uses_a_custom_axis(tmp_path: Path) -> None:
    folder = tmp_path / "seq"
    rng = np.random.default_rng(1)
    write_files(
        folder,
        [f"img_{i:03d}.tif" for i in range(7)],
        lambda n: rng.integers(0, 9, (20, 30), dtype=np.uint8),
    )
    arr = ndstack.open(folder)
    ndstack.to_zarr(arr, tmp_path / "seq.zarr")
    validate_ngff(tmp_path / "seq.zarr")
    xr.testing.assert_identical(ndstack.open(tmp_path / "seq.zarr").compute(), arr.compute())


def test_plain_dask_array_with_uneven_chunks(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    data = rng.normal(size=(10, 16, 20)).astype(np.float32)
    lazy = da.from_array(data, chunks=((3, 5, 2), (7, 9), (20,)))
    ndstack.to_zarr(lazy, tmp_path / "u.zarr", dims=("Z", "Y", "X"), chunks={"Z": 2})
    back = ndstack.open(tmp_path / "u.zarr")
    assert back.dims == ("Z", "Y", "X")
    np.testing.assert_array_equal(back.values, data)
    ndstack.verify(xr.DataArray(lazy, dims=("Z", "Y", "X")), str(tmp_path / "u.zarr"), sample="all")


def test_plain_zarr_format(lls, tmp_path: Path) -> None:
    folder, _ = lls
    arr = ndstack.open(folder)
    ndstack.to_zarr(arr, tmp_path / "plain.zarr", format="zarr", codec="lz4")
    z = zarr.open_array(tmp_path / "plain.zarr", mode="r")
    assert z.shape == arr.shape and "ndstack" in z.attrs
    xr.testing.assert_identical(ndstack.open(tmp_path / "plain.zarr").compute(), arr.compute())


def test_positions_become_one_image_each(tmp_path: Path) -> None:
    arr = ndstack.open(positions(tmp_path / "mm"))
    assert arr.dims == ("P", "T", "C", "Z", "Y", "X")
    ndstack.to_zarr(arr, tmp_path / "pos.zarr")
    validate_ngff(tmp_path / "pos.zarr")
    assert sorted(zarr.open_group(tmp_path / "pos.zarr", mode="r").group_keys()) == ["0", "1", "2"]
    xr.testing.assert_identical(ndstack.open(tmp_path / "pos.zarr").compute(), arr.compute())


@pytest.mark.parametrize("tiled", [False, True])
def test_pyramid_levels_shapes_scales_and_values(tmp_path: Path, tiled: bool) -> None:
    rng = np.random.default_rng(3)
    data = rng.integers(0, 60000, size=(2, 3, 1100, 700), dtype=np.uint16)
    chunks = (1, 3, 1100, 700) if not tiled else (1, 3, 275 * 4, 140)
    lazy = xr.DataArray(
        da.from_array(data, chunks=chunks),
        dims=("T", "Z", "Y", "X"),
        attrs={"pixel_size": {"Z": 1.0, "Y": 0.5, "X": 0.5}, "pixel_unit": "micrometer"},
    )
    ndstack.to_zarr(lazy, tmp_path / "pyr.zarr")
    validate_ngff(tmp_path / "pyr.zarr")
    ms = zarr.open_group(tmp_path / "pyr.zarr", mode="r").attrs["ome"]["multiscales"][0]
    expected = data.astype(np.float64)
    levels = [ds["path"] for ds in ms["datasets"]]
    assert levels == ["0", "1", "2"]  # 1100 -> 550 -> 275 px fits 512
    for k, ds in enumerate(ms["datasets"]):
        z = zarr.open_array(tmp_path / "pyr.zarr" / ds["path"], mode="r")
        assert z.shape == (2, 3, -(-1100 // 2**k), -(-700 // 2**k))
        assert ds["coordinateTransformations"][0]["scale"] == [1.0, 1.0, 0.5 * 2**k, 0.5 * 2**k]
        if k:
            expected = mean2(expected)
            # each level is computed from the rounded level above, as the writer does
            np.testing.assert_allclose(z[:], np.rint(expected), atol=1)
            expected = z[:].astype(np.float64)


def test_compute_false_returns_delayed(lls, tmp_path: Path) -> None:
    folder, _ = lls
    arr = ndstack.open(folder)
    work = ndstack.to_zarr(arr, tmp_path / "d.zarr", compute=False)
    assert not (tmp_path / "d.zarr" / "0" / "c").exists()
    summary = work.compute(scheduler="threads")
    assert summary["tasks"] == 12
    xr.testing.assert_identical(ndstack.open(tmp_path / "d.zarr").compute(), arr.compute())


def test_credentials_are_never_written(lls, tmp_path: Path) -> None:
    folder, _ = lls
    arr = ndstack.open(folder)
    arr.attrs["source"] = "s3://AKIDEXAMPLE:wJalrSECRET@bucket/data?X-Amz-Signature=deadbeef"
    out = tmp_path / "c.zarr"
    ndstack.to_zarr(arr, out)
    for p in out.rglob("*.json"):
        text = p.read_text()
        assert "wJalrSECRET" not in text and "deadbeef" not in text, p


def test_progress_bar_and_summary(lls, tmp_path: Path, capsys) -> None:
    folder, _ = lls
    ndstack.to_zarr(ndstack.open(folder), tmp_path / "p.zarr", progress=True)
    err = capsys.readouterr().err
    assert "GB/s" in err and "ETA" in err and err.endswith("\n")


# --------------------------------------------------------------------------- bad input


def test_unsupported_dtype(tmp_path: Path) -> None:
    arr = xr.DataArray(np.array([["a", "b"], ["c", "d"]], dtype=object), dims=("Y", "X"))
    with pytest.raises(NdstackError, match="cannot write dtype object"):
        ndstack.to_zarr(arr, tmp_path / "s.zarr")


def test_a_scheduler_the_user_configured_is_used(lls, tmp_path: Path, monkeypatch) -> None:
    import dask
    import dask.local

    folder, _ = lls
    arr = ndstack.open(folder)
    calls = {"n": 0}
    real = dask.local.get_sync

    def counting_get(dsk, keys, **kwargs):
        calls["n"] += 1
        return real(dsk, keys, **kwargs)

    with dask.config.set(scheduler=counting_get):
        summary = ndstack.to_zarr(arr, tmp_path / "s.zarr")
    assert calls["n"] == 1 and summary["tasks"] == 12
    xr.testing.assert_identical(ndstack.open(tmp_path / "s.zarr").compute(), arr.compute())


def test_a_local_conversion_does_not_import_distributed(lls, tmp_path: Path) -> None:
    """Dask's scheduler look-up imports distributed (0.3 s) to learn there is no Client."""
    folder, _ = lls
    code = (
        "import sys, ndstack; "
        f"ndstack.to_zarr(ndstack.open({str(folder)!r}), {str(tmp_path / 'l.zarr')!r}); "
        "print('distributed' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False"]
    xr.testing.assert_identical(
        ndstack.open(tmp_path / "l.zarr").compute(), ndstack.open(folder).compute()
    )


def test_results_are_typed_and_read_as_dicts(lls, tmp_path: Path, capsys) -> None:
    folder, _ = lls
    arr = ndstack.open(folder)
    summary = ndstack.to_zarr(arr, tmp_path / "t.zarr")
    assert isinstance(summary, ndstack.WriteSummary) and summary.tasks == summary["tasks"] == 12
    assert summary["skipped"] == 0 and "complete_before" not in summary
    assert json.loads(json.dumps(summary))["tasks"] == 12  # still a plain dict underneath
    again = ndstack.to_zarr(arr, tmp_path / "t.zarr")
    assert again["complete_before"] and again.tasks == 0 and again.skipped == 12
    report = ndstack.verify(arr, str(tmp_path / "t.zarr"))
    assert isinstance(report, ndstack.VerifyReport) and report.blocks == 12
    assert report["differences"] == [] and set(report) == {
        "blocks",
        "checked",
        "missing_chunks",
        "differences",
    }
    from ndstack.cli import main

    assert main(["convert", str(folder), str(tmp_path / "t.zarr"), "--quiet"]) == 0
    assert "is complete already" in capsys.readouterr().out
