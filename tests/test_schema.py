"""The store's ndstack attributes: one schema written and read (ndstack._zarr.schema)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from ndstack._zarr.schema import StoredAttrs, StoredCoord
from ndstack.errors import DamagedStoreError


def sample() -> StoredAttrs:
    arr = xr.DataArray(
        np.zeros((2, 3, 4, 5)),
        dims=("P", "C", "Y", "X"),
        coords={"C": ["DAPI", "GFP", "RFP"], "wavelength": ("C", [405.0, np.nan, 561.0])},
        attrs={"pixel_size": {"Y": 0.1}, "root": "s3://user:pw@bucket/x"},
    )
    return StoredAttrs(
        dims=tuple(arr.dims), shape=arr.shape, image_dims=("C", "Y", "X"), split_dims=("P",),
        settings={"format": "ome-zarr"},
        coords={k: StoredCoord.of(c) for k, c in arr.coords.items()},
        attrs=dict(arr.attrs), name="image", store="abc", written=("zarr.json", "0", "1"),
        source={"digest": "d"},
    )  # fmt: skip


def test_round_trip_keeps_everything_and_redacts() -> None:
    stored = sample()
    back = StoredAttrs.from_json(stored.to_json(), "x/zarr.json")
    assert back.dims == stored.dims and back.shape == stored.shape and back.n_images == 2
    assert back.written == ("zarr.json", "0", "1") and back.store == "abc"
    np.testing.assert_array_equal(back.coords["C"].array(), ["DAPI", "GFP", "RFP"])
    np.testing.assert_array_equal(back.coords["wavelength"].array(), [405.0, np.nan, 561.0])
    assert "pw" not in str(back.to_json()) and back.attrs["root"] == "s3://***@bucket/x"


@pytest.mark.parametrize(
    "change, what",
    [
        (lambda j: j.update(dims="TYX"), "dims"),
        (lambda j: j.update(shape=[2, 3]), "shape"),
        (lambda j: j.update(shape=[2, 3, -4, 5]), "shape"),
        (lambda j: j.update(dims=["P", "P", "Y", "X"]), "repeats"),
        (lambda j: j.update(split_dims=["Q"]), "split dims"),
        (lambda j: j.pop("settings"), "settings"),
        (lambda j: j["coords"]["C"].update(dims=["Z"]), "coordinate 'C'"),
        (lambda j: j["coords"]["C"].update(kind="complex"), "coordinate 'C'"),
        (lambda j: j.update(written=["..", "0"]), "what ndstack wrote"),
        (lambda j: j.update(written=["0/../../x"]), "what ndstack wrote"),
    ],
)
def test_damaged_attributes_are_named(change, what) -> None:
    value = sample().to_json()
    change(value)
    with pytest.raises(DamagedStoreError, match=rf"x/zarr\.json: .*{what}"):
        StoredAttrs.from_json(value, "x/zarr.json")


def test_origin_round_trips_and_is_checked() -> None:
    """What a store was written from: kept through JSON, redacted, and untrusted values
    (a number for a path, a word for a flag) read as unknown, never shown as they are."""
    stored = sample()
    origin = {
        "from": "glob s3://user:pw@bucket/*.tif", "pattern": "{C}.tif", "processed": True,
        "steps": ["shape 2x3 -> 3"],
    }  # fmt: skip
    value = StoredAttrs(**{**stored.__dict__, "source": {"digest": "d", "files": 4, **origin}})
    back = StoredAttrs.from_json(value.to_json(), "x/zarr.json")
    assert back.origin() == {**origin, "from": "glob s3://***@bucket/*.tif", "files": 4}
    assert back.source is not None and back.source["digest"] == "d"  # resume compares it
    forged = value.to_json()
    forged["source"].update({"from": 7, "processed": "yes", "steps": [1, "dtype a -> b"]})
    assert StoredAttrs.from_json(forged, "x/zarr.json").origin() == {
        "from": None, "pattern": "{C}.tif", "files": 4, "processed": None,
        "steps": ["dtype a -> b"],
    }  # fmt: skip


@pytest.mark.parametrize(
    "array, attrs, processed",
    [
        ("ndstack-open-0123", {"source": "folder /data", "files": 12}, False),
        ("ndstack-store-0123", {"source": "folder /data", "files": 12}, False),
        ("max-aggregate-0123", {"source": "folder /data", "files": 12}, True),
        ("array-0123", {}, None),  # made in memory: no source, nothing processed
    ],
)
def test_origin_of_an_older_store_is_inferred(array, attrs, processed) -> None:
    """Stores from before ndstack recorded where they came from: the source from the attrs
    they kept of it, processed from the name of the array written."""
    old = StoredAttrs(
        dims=("Y", "X"), shape=(2, 3), image_dims=("Y", "X"), split_dims=(),
        settings={"format": "ome-zarr", "array": array}, attrs=attrs,
        source={"digest": "d", "files": 12 if attrs else 0},
    )  # fmt: skip
    assert StoredAttrs.from_json(old.to_json(), "x/zarr.json").origin() == {
        "from": attrs.get("source"), "pattern": None, "files": 12 if attrs else None,
        "processed": processed, "steps": [],
    }  # fmt: skip
