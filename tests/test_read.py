"""Reading a store back: blocks of neighbouring chunks, shards."""

from __future__ import annotations

import os
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

import ndstack
from ndstack.errors import (
    VerifyError,
)

from .conftest import (
    bytes_read,
    validate_ngff,
)


@pytest.mark.skipif(not os.path.exists("/proc/self/io"), reason="needs Linux /proc/self/io")
def test_a_store_is_read_in_blocks_of_neighbouring_chunks(tmp_path: Path, monkeypatch) -> None:
    """ndstack.open(store) makes blocks of several storage chunks; one plane reads one chunk."""
    from ndstack._zarr import read as _store

    rng = np.random.default_rng(3)
    values = rng.integers(0, 4000, (3, 2, 8, 32, 32), dtype=np.uint16)
    arr = xr.DataArray(da.from_array(values, chunks=(1, 1, 8, 32, 32)), dims=list("TCZYX"))
    dest = tmp_path / "blocks.zarr"
    ndstack.to_zarr(arr, dest, chunks={"Z": 2}, levels=1)
    monkeypatch.setattr(_store, "READ_CHUNK_BYTES", 2 * 8 * 32 * 32 * 2)  # two channels' stacks
    back = ndstack.open(dest)
    assert back.data.chunksize == (1, 2, 8, 32, 32)  # 8 storage chunks of (1, 1, 2, 32, 32)
    np.testing.assert_array_equal(back.values, values)
    back.isel(T=0, C=0, Z=0).values  # warm-up: first-call costs
    chunk = dest / "0" / "c" / "1" / "0" / "2" / "0" / "0"  # T=1, C=0, Z=4:6
    before = bytes_read()
    np.testing.assert_array_equal(back.isel(T=1, C=0, Z=5).values, values[1, 0, 5])
    read = bytes_read() - before
    assert read < 2 * chunk.stat().st_size, (
        f"read {read} bytes; one chunk is {chunk.stat().st_size}"
    )


def test_sharded_store_reads_back_like_an_unsharded_one(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    data = rng.integers(0, 60000, size=(5, 3, 1030, 600), dtype=np.uint16)
    arr = xr.DataArray(da.from_array(data, chunks=(1, 1, 1030, 600)), dims=("T", "C", "Y", "X"))
    ndstack.to_zarr(arr, tmp_path / "plain.zarr")
    ndstack.to_zarr(arr, tmp_path / "sharded.zarr", shards={"T": 2, "C": 3})
    validate_ngff(tmp_path / "sharded.zarr")
    ms = zarr.open_group(tmp_path / "sharded.zarr", mode="r").attrs["ome"]["multiscales"][0]
    assert len(ms["datasets"]) == 3
    for ds in ms["datasets"]:
        plain = zarr.open_array(tmp_path / "plain.zarr" / ds["path"], mode="r")
        sharded = zarr.open_array(tmp_path / "sharded.zarr" / ds["path"], mode="r")
        assert sharded.shards is not None and sharded.shards[:2] == (2, 3)
        np.testing.assert_array_equal(sharded[:], plain[:])
        n_files = len(list((tmp_path / "sharded.zarr" / ds["path"] / "c").rglob("*")))
        assert n_files < len(list((tmp_path / "plain.zarr" / ds["path"] / "c").rglob("*")))
    ndstack.verify(arr, str(tmp_path / "sharded.zarr"), sample="all")
    shard = next((tmp_path / "sharded.zarr" / "0" / "c").rglob("*")).resolve()
    while shard.is_dir():
        shard = next(shard.iterdir())
    shard.write_bytes(shard.read_bytes()[:-8] + bytes(8))  # damage the shard index
    with pytest.raises(VerifyError):
        ndstack.verify(arr, str(tmp_path / "sharded.zarr"), sample="all")


def test_info_of_a_store_read_back_is_the_store(tmp_path: Path, monkeypatch) -> None:
    """ndstack.info of ndstack.open(store): the store's storage chunks and provenance, as
    for the store's path, though open() reads several chunks at once; an array computed
    from it is described as before."""
    from ndstack._zarr import read as _store

    values = np.zeros((3, 2, 8, 32, 32), dtype=np.uint16)
    arr = xr.DataArray(da.from_array(values, chunks=(1, 1, 8, 32, 32)), dims=list("TCZYX"))
    dest = tmp_path / "blocks.zarr"
    ndstack.to_zarr(arr, dest, chunks={"Z": 2}, levels=1, progress=False)
    monkeypatch.setattr(_store, "READ_CHUNK_BYTES", 2 * 8 * 32 * 32 * 2)
    back = ndstack.open(dest)
    assert back.data.chunksize == (1, 2, 8, 32, 32)
    by_array, by_path = ndstack.info(back), ndstack.info(str(dest))
    assert by_array == by_path
    assert by_array["kind"] == "store" and by_array["source"] == str(dest)
    assert by_array["chunks"] == {"T": 1, "C": 1, "Z": 2, "Y": 32, "X": 32}
    assert by_array["nchunks"] == 3 * 2 * 4
    assert by_array["provenance"]["from"] is None  # written from an array in memory
    assert ndstack.info(back.isel(T=0))["kind"] == "array"
