"""Many small files: chunks and write tasks span several files, the records stay few, a
kill at any moment resumes to the same bytes, and one plane of the source reads one plane.

Behaviour only; the speed targets live in ``bench/scale.py``.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import xarray as xr
import zarr

import ndstack

from .conftest import bytes_read, chunk_files

T, Z, PLANE = 1000, 20, (16, 16)  # 20,000 files of 512 bytes


def _write_tiny(folder: Path, seed: int = 3, t_count: int = T, z_count: int = Z) -> np.ndarray:
    """T x Z one-plane TIFFs, each its own pixels (one template, its pixels replaced:
    20,000 files in about a second)."""
    folder.mkdir(parents=True)
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.zeros(PLANE, np.uint16), photometric="minisblack")
    head = buf.getvalue()
    with tifffile.TiffFile(io.BytesIO(head)) as tif:
        at = tif.pages[0].dataoffsets[0]
    nbytes = int(np.prod(PLANE)) * 2
    truth = np.random.default_rng(seed).integers(
        0, 4000, (t_count, z_count, *PLANE), dtype=np.uint16
    )
    for t in range(t_count):
        for z in range(z_count):
            raw = truth[t, z].astype("<u2").tobytes()
            (folder / f"img_t{t:04d}_z{z:02d}.tif").write_bytes(
                head[:at] + raw + head[at + nbytes :]
            )
    return truth


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    folder = tmp_path_factory.mktemp("scale") / "src"
    return folder, _write_tiny(folder)


def _files_under(path: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(path)) if path.exists() else 0


def test_a_write_task_reads_many_files_and_the_store_holds_few(
    tiny: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    folder, truth = tiny
    arr = ndstack.open(folder)
    assert arr.dims == ("T", "Z", "Y", "X") and arr.shape == truth.shape
    dest = tmp_path / "out.zarr"
    delayed = ndstack.to_zarr(arr, dest, compute=False)
    # one task per write group (a chunk of several files), not one per file
    tasks = len(dict(delayed.__dask_graph__()))
    assert tasks < 20, tasks
    summary = delayed.compute()
    assert summary["tasks"] < 10
    level = zarr.open_array(str(dest / "0"), mode="r")
    assert level.chunks[1:] == (Z, *PLANE) and level.chunks[0] > 100
    assert _files_under(dest) < T * Z / 1000  # chunks and metadata: a small fraction of N
    assert not (tmp_path / ".out.zarr.ndstack").exists()
    np.testing.assert_array_equal(ndstack.open(dest).values, truth)


def test_a_processed_array_of_many_files_is_grouped_too(
    tiny: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    folder, truth = tiny
    arr = ndstack.open(folder).isel(T=slice(0, 300)) + 1  # rechunked by Dask
    dest = tmp_path / "p.zarr"
    summary = ndstack.to_zarr(arr, dest, format="zarr")
    assert summary["tasks"] < 10
    np.testing.assert_array_equal(ndstack.open(dest).values, truth[:300] + 1)


def test_user_chunks_are_kept(tiny: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    folder, truth = tiny
    dest = tmp_path / "c.zarr"
    summary = ndstack.to_zarr(ndstack.open(folder), dest, chunks={"T": 50}, format="zarr")
    assert zarr.open_array(str(dest), mode="r").chunks == (50, Z, *PLANE)  # Z grew, T kept
    assert summary["tasks"] < 10
    np.testing.assert_array_equal(ndstack.open(dest).values, truth)


def test_one_plane_of_many_small_files_reads_one_file(tiny: tuple[Path, np.ndarray]) -> None:
    folder, truth = tiny
    arr = ndstack.open(folder)
    assert arr.data.chunksize[:2] == (334, Z)  # blocks of many small files, ~4 MiB
    assert ndstack.open(folder, chunks={"T": 1}).data.chunksize[:2] == (1, 1)  # as asked
    assert ndstack.open(folder, chunks={"T": 7}).data.chunksize[:2] == (7, 1)
    arr.isel(T=0, Z=0).values  # the first compute of a process imports modules
    before = bytes_read()
    plane = arr.isel(T=517, Z=3).values
    read = bytes_read() - before
    np.testing.assert_array_equal(plane, truth[517, 3])
    size = (folder / "img_t0517_z03.tif").stat().st_size
    assert read <= 2 * size, (read, size)


def test_a_kill_mid_run_resumes_to_the_same_bytes(
    tiny: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    folder, truth = tiny
    ref = tmp_path / "ref.zarr"
    cmd = [sys.executable, "-m", "ndstack.cli", "convert", str(folder)]
    subprocess.run([*cmd, str(ref), "--quiet"], check=True, capture_output=True)
    dest = tmp_path / "killed.zarr"
    done = tmp_path / ".killed.zarr.ndstack" / "done"
    env = {**os.environ, "DASK_NUM_WORKERS": "1"}  # one write task at a time
    proc = subprocess.Popen(
        [*cmd, str(dest), "--quiet"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    most = 0
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        n = _files_under(done)
        most = max(most, n + _files_under(dest) + _files_under(done.parent) - n)
        if n >= 1:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.002)
    out = proc.communicate()[0]
    assert proc.returncode == -signal.SIGKILL, out
    assert most < T * Z / 1000  # markers, chunks, record: a small fraction of N
    final = subprocess.run([*cmd, str(dest)], check=True, capture_output=True, text=True)
    assert "done before" in final.stdout, final.stdout  # resumed, not started again
    assert chunk_files(dest) == chunk_files(ref)
    xr.testing.assert_identical(ndstack.open(dest).compute(), ndstack.open(ref).compute())
    np.testing.assert_array_equal(ndstack.open(dest).values, truth)


def test_verify_compares_a_grouped_store_by_its_blocks_and_catches_a_change(
    tiny: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    from ndstack.errors import VerifyError

    folder, truth = tiny
    arr = ndstack.open(folder)
    dest = tmp_path / "v.zarr"
    ndstack.to_zarr(arr, dest, format="zarr")
    sampled = ndstack.verify(arr, str(dest))
    assert sampled.blocks == T * Z and sampled.checked == 18  # single files, at random
    whole = ndstack.verify(arr, str(dest), sample="all")
    assert whole.checked == whole.blocks < 10  # the store's blocks, each read once
    stored = zarr.open_array(str(dest), mode="r+")
    stored[700, 4, 2, 2] = truth[700, 4, 2, 2] + 1
    with pytest.raises(VerifyError, match="1 values differ"):
        ndstack.verify(arr, str(dest), sample="all")


def test_a_listing_with_check_none_is_taken_as_it_is(tmp_path: Path) -> None:
    from ndstack.errors import CorruptFileError, NoImagesError

    names = [str(tmp_path / f"run/img_t{t:04d}_z{z:02d}.tif") for t in range(300) for z in range(7)]
    given = {"reader": tifffile.imread, "file_shape": PLANE, "dtype": "uint16"}
    arr = ndstack.open(names, check="none", **given)  # not one of them exists
    assert arr.dims == ("T", "Z", "Y", "X") and arr.shape == (300, 7, *PLANE)
    with pytest.raises(CorruptFileError, match=r"img_t0012_z03\.tif"):
        arr.isel(T=12, Z=3).values
    with pytest.raises(NoImagesError, match=r"img_t0000_z00\.tif.* does not exist"):
        ndstack.open(names, **given)


def test_a_long_step_counts_on_stderr_only_when_asked(capsys: pytest.CaptureFixture) -> None:
    from ndstack._progress import Ticker

    tick = Ticker("listing /data", enabled=True, after=0.0)
    tick(4096)
    tick.done(5000)
    err = capsys.readouterr().err
    assert "\rlisting /data: 4,096" in err and err.endswith("listing /data: 5,000 (0.0 s)\n")
    quiet = Ticker("listing /data", enabled=False, after=0.0)
    quiet(4096)
    quiet.done(5000)
    slow = Ticker("reading headers", enabled=True, after=60.0)  # a quick step: nothing
    slow(10, 20)
    slow.done(20)
    assert capsys.readouterr().err == ""


def test_a_store_of_very_many_chunks_is_sharded_by_default(
    tiny: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    folder, truth = tiny
    arr = ndstack.open(folder)
    dest = tmp_path / "s.zarr"
    summary = ndstack.to_zarr(arr, dest, chunks={"T": 1, "Z": 1})  # 20,000 chunks asked
    level = zarr.open_array(str(dest / "0"), mode="r")
    assert level.chunks == (1, 1, *PLANE)  # the chunks as asked, inside shards
    assert level.shards is not None and np.prod(level.shards) > 1000 * np.prod(level.chunks)
    assert summary["tasks"] < 10 and _files_under(dest) < 20
    np.testing.assert_array_equal(ndstack.open(dest).values, truth)
    assert ndstack.verify(arr, str(dest)).checked == 18
    few = ndstack.to_zarr(arr.isel(T=slice(0, 100)), tmp_path / "f.zarr", chunks={"Z": 1})
    assert zarr.open_array(str(tmp_path / "f.zarr" / "0"), mode="r").shards is None
    assert few["bytes_in"] == 100 * Z * 512
    assert _files_under(tmp_path / "f.zarr") > 2000  # 2,000 chunks: one file each, as before


def test_a_few_hundred_small_files_read_in_one_block_make_one_chunk(tmp_path: Path) -> None:
    truth = _write_tiny(tmp_path / "src", seed=5, t_count=30, z_count=10)  # 300 files
    arr = ndstack.open(tmp_path / "src")
    assert arr.data.numblocks == (1, 1, 1, 1)  # more than 256 small files: grouped
    summary = ndstack.to_zarr(arr, tmp_path / "one.zarr", format="zarr")
    assert zarr.open_array(str(tmp_path / "one.zarr"), mode="r").chunks == (30, 10, *PLANE)
    assert summary["tasks"] == 1 and _files_under(tmp_path / "one.zarr") == 2  # chunk, meta
    np.testing.assert_array_equal(ndstack.open(tmp_path / "one.zarr").values, truth)


def test_default_shards_keep_whole_planes_and_every_pyramid_level(tmp_path: Path) -> None:
    import dask.array as da

    rng = np.random.default_rng(8)
    data = rng.integers(0, 4000, (10, 512, 512), dtype=np.uint16)
    arr = xr.DataArray(da.from_array(data, chunks=(1, 512, 512)), dims=("Z", "Y", "X"))
    chunks = {"Z": 1, "Y": 16, "X": 16}  # 10,240 chunks: sharded by default
    ndstack.to_zarr(arr, tmp_path / "sh.zarr", chunks=chunks, levels=3)
    ndstack.to_zarr(arr, tmp_path / "no.zarr", chunks=chunks, levels=3, shards=False)
    sharded, plain = (zarr.open_group(str(tmp_path / n), mode="r") for n in ("sh.zarr", "no.zarr"))
    assert sorted(sharded.array_keys()) == sorted(plain.array_keys()) == ["0", "1", "2"]
    for k in ("0", "1", "2"):
        assert sharded[k].chunks == plain[k].chunks == (1, 16, 16)  # no level's chunks shrink
        assert sharded[k].shards is not None and sharded[k].shards[1:] == sharded[k].shape[1:]
        assert plain[k].shards is None
        np.testing.assert_array_equal(sharded[k][:], plain[k][:])
    np.testing.assert_array_equal(sharded["0"][:], data)
