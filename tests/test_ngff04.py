"""OME-Zarr 0.4 on Zarr v2: round trip, pyramid, positions, other readers."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

import ndstack
from ndstack.errors import (
    VerifyError,
    WriteError,
)

from .conftest import (
    mean2,
    positions,
)


def test_ngff_04_on_zarr_v2_round_trip_pyramid_and_other_readers(tmp_path: Path) -> None:
    """NGFF 0.4 for older viewers: v2 metadata, the same chunk bytes, read by zarr,
    ome-zarr-py and ome-zarr-models, and by ndstack.open back to an identical array."""
    import warnings

    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr_models.v04.image import Image

    rng = np.random.default_rng(9)
    data = rng.integers(0, 1000, size=(2, 3, 5, 70, 90), dtype=np.uint16)
    arr = xr.DataArray(
        da.from_array(data, chunks=(1, 1, 5, 70, 90)),
        dims=("T", "C", "Z", "Y", "X"),
        coords={"C": ["a", "b", "c"]},
        attrs={"pixel_size": {"Z": 0.5, "Y": 0.1, "X": 0.1}, "pixel_unit": "micrometer"},
    )
    dest = tmp_path / "v04.zarr"
    ndstack.to_zarr(arr, dest, format="ome-zarr-0.4", levels=2)
    assert (dest / ".zgroup").exists() and not (dest / "zarr.json").exists()
    assert (dest / "0" / "1" / "2" / "0" / "0" / "0").is_file()  # "/" separated, no "c/"
    group = zarr.open_group(dest, mode="r")
    Image.from_zarr(group)
    ms = group.attrs["multiscales"][0]
    assert ms["version"] == "0.4" and [d["path"] for d in ms["datasets"]] == ["0", "1"]
    assert ms["datasets"][1]["coordinateTransformations"][0]["scale"] == pytest.approx(
        [1, 1, 0.5, 0.2, 0.2]
    )
    level1 = zarr.open_array(dest / "1", mode="r")
    assert level1.metadata.zarr_format == 2 and level1.shape == (2, 3, 5, 35, 45)
    np.testing.assert_array_equal(level1[1, 2], np.rint(mean2(data[1, 2])).astype(np.uint16))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the reader's own deprecation notices
        node = next(iter(Reader(parse_url(str(dest)))()))
        np.testing.assert_array_equal(np.asarray(node.data[0]), data)
    assert node.metadata["channel_names"] == ["a", "b", "c"]
    xr.testing.assert_identical(ndstack.open(dest).compute(), arr.compute())
    assert ndstack.verify(arr, str(dest), sample="all")["differences"] == []
    (dest / "0" / "1" / "1" / "0" / "0" / "0").unlink()
    with pytest.raises(VerifyError, match=r"chunk 0/1/1/0/0/0 is missing"):
        ndstack.verify(arr, str(dest), sample=1)
    with pytest.raises(ValueError, match="shards need Zarr v3"):
        ndstack.to_zarr(arr, tmp_path / "s.zarr", format="ome-zarr-0.4", shards={"T": 2})


def test_ngff_04_positions_resume_and_overwrite(tmp_path: Path, fail_writes_after) -> None:
    arr = ndstack.open(positions(tmp_path / "mm"))
    dest = tmp_path / "pos04.zarr"
    heal = fail_writes_after(4)
    with pytest.raises(WriteError, match="disk full"):
        ndstack.to_zarr(arr, dest, format="ome-zarr-0.4")
    heal()
    assert ndstack.to_zarr(arr, dest, format="ome-zarr-0.4")["skipped"] >= 1
    root = zarr.open_group(dest, mode="r")
    assert root.attrs["bioformats2raw.layout"] == 3
    assert sorted(root.group_keys()) == ["0", "1", "2"]
    assert root["1"].attrs["multiscales"][0]["version"] == "0.4"
    xr.testing.assert_identical(ndstack.open(dest).compute(), arr.compute())
    (dest / "keep.txt").write_text("not ndstack's")
    ndstack.to_zarr(arr, dest, format="ome-zarr-0.4", overwrite=True)
    assert (dest / "keep.txt").exists() and (dest / ".zgroup").exists()
