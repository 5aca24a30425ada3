"""Stores read from URLs: a real HTTP server on 127.0.0.1 and fsspec's memory filesystem."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import ndstack
from ndstack.cli import main
from ndstack.errors import CorruptFileError, NdstackError, UnfinishedStoreError

from .conftest import serve_http, write_lls

pytest.importorskip("aiohttp")


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A multi-chunk store ndstack wrote (two levels), from a lattice-like folder."""
    write_lls(tmp_path / "src", n_stacks=3, shape=(6, 40, 48))
    arr = ndstack.open(tmp_path / "src")
    out = tmp_path / "srv" / "x.ome.zarr"
    ndstack.to_zarr(arr, out, chunks={"Z": 2, "Y": 16, "X": 16}, levels=2)
    return out


def test_a_store_over_http_opens_like_the_local_one(store: Path) -> None:
    local = ndstack.open(store)
    with serve_http(store.parent) as url:
        remote = ndstack.open(f"{url}/x.ome.zarr")
        assert remote.dims == local.dims and remote.shape == local.shape
        assert remote.data.chunks == local.data.chunks
        xr.testing.assert_identical(remote.drop_attrs(), local.drop_attrs())
        assert remote.attrs["pixel_size"] == local.attrs["pixel_size"]
        np.testing.assert_array_equal(remote.isel(T=1, C=2).values, local.isel(T=1, C=2).values)
        # trailing slash, and the CLI's reader
        assert ndstack.open(f"{url}/x.ome.zarr/").shape == local.shape
        assert main(["info", f"{url}/x.ome.zarr"]) == 0


def test_a_store_in_memory_filesystem_opens(store: Path) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    for path in store.rglob("*"):
        if path.is_file():
            fs.pipe_file(f"/mem-store/x.ome.zarr/{path.relative_to(store).as_posix()}",
                         path.read_bytes())  # fmt: skip
    try:
        remote = ndstack.open("memory://mem-store/x.ome.zarr")
        np.testing.assert_array_equal(remote.values, ndstack.open(store).values)
    finally:
        fs.rm("/mem-store", recursive=True)


def test_a_missing_chunk_over_http_is_named(store: Path) -> None:
    chunk = next(p for p in sorted((store / "0").rglob("*")) if p.is_file() and "c" in p.parts)
    os.remove(chunk)
    with serve_http(store.parent) as url:
        arr = ndstack.open(f"{url}/x.ome.zarr")
        with pytest.raises(CorruptFileError, match="chunk file missing"):
            arr.values
        filled = ndstack.open(f"{url}/x.ome.zarr", on_error="fill")
        with pytest.warns(UserWarning, match="chunk file missing"):
            filled.values


def test_unfinished_and_non_stores_over_http_are_refused(store: Path, tmp_path: Path) -> None:
    (store / ".ndstack-unfinished").write_text("")
    other = tmp_path / "srv" / "plain"
    other.mkdir()
    (other / "notes.txt").write_text("not a store")
    with serve_http(store.parent) as url:
        with pytest.raises(UnfinishedStoreError, match="unfinished conversion"):
            ndstack.open(f"{url}/x.ome.zarr")
        with pytest.raises(NdstackError):
            ndstack.open(f"{url}/nothing-here.zarr")
    shutil.rmtree(other)


def test_the_napari_reader_reads_a_store_from_its_url(store: Path) -> None:
    """napari's reader (and so ``ndstack view URL``): layers per channel, the pyramid."""
    from ndstack._napari import get_reader

    local = layer_data_of(str(store))
    with serve_http(store.parent) as url:
        reader = get_reader(f"{url}/x.ome.zarr")
        assert reader is not None
        layers = reader(f"{url}/x.ome.zarr")
        assert [meta["name"] for _, meta, _ in layers] == [meta["name"] for _, meta, _ in local]
        data, meta, kind = layers[0]
        assert kind == "image" and meta["multiscale"] and len(data) == 2
        assert meta["scale"] == local[0][1]["scale"]
        np.testing.assert_array_equal(np.asarray(data[1][0, 0]), np.asarray(local[0][0][1][0, 0]))


def layer_data_of(path: str):
    from ndstack._napari import layer_data

    return layer_data(path)
