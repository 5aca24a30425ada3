"""Resume and destinations: kills, full disks, changed sources, what is refused."""

from __future__ import annotations

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

import ndstack
from ndstack.errors import (
    CorruptFileError,
    DestinationError,
    NdstackError,
    SourceChangedError,
    WriteError,
)

from .conftest import (
    chunk_files,
    lls_name,
    snapshot,
    write_files,
)


def test_kill_and_resume_is_byte_identical(tmp_path: Path) -> None:
    folder = tmp_path / "src"
    rng = np.random.default_rng(4)
    write_files(
        folder,
        [f"vol_t{t:02d}.tif" for t in range(40)],
        lambda n: rng.integers(0, 4000, (16, 128, 128), dtype=np.uint16),
    )
    ref = tmp_path / "ref.zarr"
    subprocess.run(
        [sys.executable, "-m", "ndstack.cli", "convert", str(folder), str(ref), "--quiet"],
        check=True,
        capture_output=True,
    )
    dest = tmp_path / "killed.zarr"
    done = tmp_path / ".killed.zarr.ndstack" / "done"
    cmd = [sys.executable, "-m", "ndstack.cli", "convert", str(folder), str(dest), "--quiet"]
    kills = 0
    for target in sorted(rng.choice(np.arange(3, 37), size=3, replace=False).tolist()):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            if done.exists() and len(os.listdir(done)) >= target:
                proc.send_signal(signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.002)
        proc.wait()
        if kills and proc.returncode == -signal.SIGKILL:
            # the store must not look complete after a kill
            with pytest.raises(NdstackError, match="unfinished conversion"):
                ndstack.open(dest)
    assert kills >= 1
    final = subprocess.run(cmd, check=True, capture_output=True, text=True)
    assert "done before" in final.stdout
    assert not list(dest.rglob("*.partial"))
    assert not done.parent.exists()  # the record beside the store goes once it is complete
    assert chunk_files(dest) == chunk_files(ref)
    xr.testing.assert_identical(ndstack.open(dest).compute(), ndstack.open(ref).compute())


def test_disk_full_is_clear_and_resumes(lls, tmp_path: Path, fail_writes_after) -> None:
    folder, _ = lls
    arr = ndstack.open(folder)
    dest = tmp_path / "full.zarr"
    heal = fail_writes_after(6)
    with pytest.raises(WriteError, match=r"disk full while writing .*run the same command again"):
        ndstack.to_zarr(arr, dest)
    heal()
    summary = ndstack.to_zarr(arr, dest)
    assert summary["skipped"] >= 1
    xr.testing.assert_identical(ndstack.open(dest).compute(), arr.compute())
    ndstack.verify(arr, str(dest), sample="all")


def test_corrupt_source_mid_run_stops_then_fills_and_records(lls, tmp_path: Path) -> None:
    folder, truth = lls
    bad = folder / lls_name(2, 3)
    bad.write_bytes(bad.read_bytes()[:300])  # header intact, pixels gone
    dest = tmp_path / "corrupt.zarr"
    with pytest.raises(CorruptFileError, match=bad.name):
        ndstack.to_zarr(ndstack.open(folder, check="none"), dest)
    with pytest.warns(UserWarning, match=bad.name):
        ndstack.to_zarr(ndstack.open(folder, check="none", on_error="fill"), dest)
    back = ndstack.open(dest)
    assert any(bad.name in m for m in back.attrs["filled_while_reading"])
    assert (back.isel(T=3, C=2).values == 0).all()
    np.testing.assert_array_equal(back.isel(T=1, C=0).values, truth[(1, 0)])


def test_changed_source_refuses_to_resume(lls, tmp_path: Path, monkeypatch) -> None:
    folder, _ = lls
    dest = tmp_path / "ch.zarr"
    arr = ndstack.open(folder)
    real = ndstack._zarr.tasks._write_block
    calls = {"n": 0}

    def flaky(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr("ndstack._zarr.tasks._write_block", flaky)
    with pytest.raises(KeyboardInterrupt):
        ndstack.to_zarr(arr, dest)
    monkeypatch.setattr("ndstack._zarr.tasks._write_block", real)
    changed = folder / lls_name(0, 0)
    tifffile.imwrite(
        changed, np.zeros((6, 20, 24), np.uint16), imagej=True, metadata={"axes": "ZYX"}
    )
    with pytest.raises(
        SourceChangedError, match=f"{changed.name} changed size or modification time"
    ):
        ndstack.to_zarr(ndstack.open(folder), dest)


def test_files_filled_before_an_interruption_are_still_recorded(
    lls, tmp_path: Path, fail_writes_after
) -> None:
    import dask

    folder, truth = lls
    bad = folder / lls_name(1, 3)  # T=3, C=1: among the first tasks Dask runs
    bad.write_bytes(bad.read_bytes()[:300])  # header intact, pixels gone
    arr = ndstack.open(folder, check="none", on_error="fill")
    dest = tmp_path / "filled.zarr"
    heal = fail_writes_after(6)  # the run dies after some tasks, the fill among them
    with dask.config.set(scheduler="sync"), pytest.warns(UserWarning, match=bad.name):
        with pytest.raises(WriteError, match="disk full"):
            ndstack.to_zarr(arr, dest)
    markers = list((tmp_path / ".filled.zarr.ndstack" / "done").iterdir())
    assert any(bad.name in m.read_text() for m in markers)  # the fill is in its task's record
    heal()
    summary = ndstack.to_zarr(arr, dest)  # resumes: the filled file is not read again
    assert summary["skipped"] >= 1
    back = ndstack.open(dest)
    assert [m for m in back.attrs["filled_while_reading"] if bad.name in m]
    assert (back.isel(T=3, C=1).values == 0).all()
    np.testing.assert_array_equal(back.isel(T=1, C=0).values, truth[(1, 0)])


def test_destination_not_written_by_ndstack_is_refused(lls, tmp_path: Path) -> None:
    folder, _ = lls
    dest = tmp_path / "mine"
    dest.mkdir()
    (dest / "precious.txt").write_text("keep me")
    before = snapshot(dest)
    for overwrite in (False, True):
        with pytest.raises(DestinationError, match="was not written by ndstack"):
            ndstack.to_zarr(ndstack.open(folder), dest, overwrite=overwrite)
    assert snapshot(dest) == before


def test_overwrite_replaces_only_what_ndstack_wrote(lls, tmp_path: Path) -> None:
    folder, _ = lls
    dest = tmp_path / "o.zarr"
    arr = ndstack.open(folder)
    ndstack.to_zarr(arr, dest)
    with pytest.raises(DestinationError, match="other settings"):
        ndstack.to_zarr(arr, dest, codec="lz4")
    (dest / "notes.txt").write_text("mine")
    ndstack.to_zarr(arr, dest, codec="lz4", overwrite=True)
    assert (dest / "notes.txt").read_text() == "mine"
    xr.testing.assert_identical(ndstack.open(dest).compute(), arr.compute())


def test_destination_inside_source(lls) -> None:
    folder, _ = lls
    before = snapshot(folder)
    with pytest.raises(DestinationError, match=r"(is|lies inside) the source"):
        ndstack.to_zarr(ndstack.open(folder), folder / "out.zarr")
    with pytest.raises(DestinationError, match=r"(is|lies inside) the source"):
        ndstack.to_zarr(ndstack.open(folder), folder)
    assert snapshot(folder) == before


def test_destination_under_a_file_is_unwritable(lls, tmp_path: Path) -> None:
    """Holds for root too (which ignores permissions): a parent that is a file."""
    folder, _ = lls
    (tmp_path / "afile").write_text("x")
    with pytest.raises(WriteError, match=r"cannot write to .*afile/out\.zarr"):
        ndstack.to_zarr(ndstack.open(folder), tmp_path / "afile" / "out.zarr")
    assert (tmp_path / "afile").read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_destination(lls, tmp_path: Path) -> None:
    folder, _ = lls
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(WriteError, match="permission denied"):
            ndstack.to_zarr(ndstack.open(folder), locked / "out.zarr")
    finally:
        locked.chmod(0o700)
