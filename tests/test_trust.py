"""What ndstack promises about your data: each test failed on the code before the fix.

Issue "Trust first": a store overwritten by itself, two runs mixing one store, a complete
store of another source taken as done, a stale record taking over a user's folder,
--overwrite deleting a user's folders, unfinished stores read as complete, missing chunks
read as zeros, writes through symbolic links, paths out of the store, absurd levels.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import dask
import numpy as np
import pytest
import tifffile
import xarray as xr

import ndstack
from ndstack._zarr.lock import _machine, acquire, lock_path
from ndstack.cli import main
from ndstack.errors import (
    CorruptFileError,
    DamagedStoreError,
    DestinationError,
    LockedError,
    NdstackError,
)

from .conftest import snapshot, write_files


def planes(folder: Path, n: int = 4, value: int = 0, shape=(3, 16, 20)) -> dict:
    """n files img_t{k}.tif of ZYX stacks, distinct per ``value``."""
    rng = np.random.default_rng(value)
    return write_files(
        folder,
        [f"img_t{t}.tif" for t in range(n)],
        lambda name: rng.integers(0, 1000, shape, dtype=np.uint16) + value,
    )


def interrupted(arr, dest: Path, monkeypatch, after: int = 2) -> None:
    """A conversion stopped after ``after`` written blocks (as a kill would leave it)."""
    real = ndstack._zarr.tasks._write_block
    calls = {"n": 0}

    def flaky(*args, **kw):
        calls["n"] += 1
        if calls["n"] > after:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr("ndstack._zarr.tasks._write_block", flaky)
    with pytest.raises(KeyboardInterrupt), dask.config.set(scheduler="synchronous"):
        ndstack.to_zarr(arr, dest)  # synchronous: no thread goes on writing afterwards
    monkeypatch.setattr("ndstack._zarr.tasks._write_block", real)


# ------------------------------------------------------------------ 1. store as its own dest
@pytest.mark.parametrize("overwrite", [False, True])
def test_a_store_is_never_its_own_destination(tmp_path: Path, overwrite: bool) -> None:
    planes(tmp_path / "src")
    store = tmp_path / "s.zarr"
    ndstack.to_zarr(ndstack.open(tmp_path / "src"), store)
    before = snapshot(store)
    args = ["convert", str(store), str(store), "--quiet"] + (["--overwrite"] if overwrite else [])
    assert main(args) == 2
    with pytest.raises(DestinationError, match="is the source"):
        ndstack.to_zarr(ndstack.open(store), store, overwrite=True)
    with pytest.raises(DestinationError, match="lies inside the source"):
        ndstack.to_zarr(ndstack.open(store), store / "0" / "again.zarr", overwrite=True)
    assert snapshot(store) == before


def test_local_urls_are_checked_like_paths(tmp_path: Path) -> None:
    folder = tmp_path / "src"
    planes(folder)
    for url in (f"file://{folder}", f"local://{folder}"):
        with pytest.raises(DestinationError, match="lies inside the source"):
            ndstack.to_zarr(ndstack.open(url), folder / "out.zarr")
    assert not (folder / "out.zarr").exists()


# ------------------------------------------------------------------ 2. one run per destination
def test_a_destination_being_written_is_refused(tmp_path: Path) -> None:
    planes(tmp_path / "src")
    arr = ndstack.open(tmp_path / "src")
    dest = tmp_path / "d.zarr"
    lock = acquire(str(dest))  # this live process holds it
    try:
        with pytest.raises(LockedError, match=f"being written by process {os.getpid()}"):
            ndstack.to_zarr(arr, dest)
    finally:
        lock.release()
    assert not dest.exists()
    ndstack.to_zarr(arr, dest)
    assert not os.path.exists(lock_path(str(dest)))


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    planes(tmp_path / "src")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    dest = tmp_path / "d.zarr"
    owner = {**_machine(), "pid": dead.pid, "run": "x", "started": 0}
    Path(lock_path(str(dest))).write_text(json.dumps(owner))
    ndstack.to_zarr(ndstack.open(tmp_path / "src"), dest)
    assert ndstack.open(dest).shape == ndstack.open(tmp_path / "src").shape


def test_a_lock_from_another_host_is_stale_only_when_old(tmp_path: Path) -> None:
    planes(tmp_path / "src")
    dest = tmp_path / "d.zarr"
    lock = Path(lock_path(str(dest)))
    lock.write_text(json.dumps({"host": "elsewhere", "pid": 1, "run": "y", "started": 0}))
    with pytest.raises(LockedError, match="on elsewhere"):
        ndstack.to_zarr(ndstack.open(tmp_path / "src"), dest)
    old = time.time() - 3600
    os.utime(lock, (old, old))
    ndstack.to_zarr(ndstack.open(tmp_path / "src"), dest)


def test_two_runs_at_once_never_mix_one_store(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    planes(a, n=12, value=0)
    planes(b, n=12, value=5000)
    dest = tmp_path / "both.zarr"
    cmd = [sys.executable, "-m", "ndstack.cli", "convert"]
    procs = [
        subprocess.Popen([*cmd, str(src), str(dest), "--quiet"], stderr=subprocess.PIPE, text=True)
        for src in (a, b)
    ]
    results = [(p.wait(), p.communicate()[1]) for p in procs]
    winners = [src for src, (rc, _) in zip((a, b), results) if rc == 0]
    assert len(winners) == 1, results
    loser = results[1 - (a, b).index(winners[0])]
    assert loser[0] == 2 and "Traceback" not in loser[1]
    assert "being written" in loser[1] or "another source" in loser[1]
    ndstack.verify(winners[0], str(dest), sample="all")


# ------------------------------------------------------------------ 3. a store knows its source
def test_a_complete_store_refuses_another_source(tmp_path: Path) -> None:
    planes(tmp_path / "a", value=0)
    planes(tmp_path / "b", value=7)
    dest = tmp_path / "d.zarr"
    ndstack.to_zarr(ndstack.open(tmp_path / "a"), dest)
    assert ndstack.to_zarr(ndstack.open(tmp_path / "a"), dest)["complete_before"]
    with pytest.raises(DestinationError, match=r"another (array|source)"):
        ndstack.to_zarr(ndstack.open(tmp_path / "b"), dest)
    # the same folder re-acquired in place: other pixels, same names and shapes
    time.sleep(0.01)
    planes(tmp_path / "a", value=9)
    with pytest.raises(DestinationError, match="another source"):
        ndstack.to_zarr(ndstack.open(tmp_path / "a"), dest)
    ndstack.to_zarr(ndstack.open(tmp_path / "a"), dest, overwrite=True)
    ndstack.verify(tmp_path / "a", str(dest), sample="all")


# ------------------------------------------------------------------ 5. fsspec fingerprints
def test_an_fsspec_source_rewritten_at_the_same_size_is_noticed(tmp_path: Path, monkeypatch):
    import fsspec

    fs = fsspec.filesystem("memory")
    rng = np.random.default_rng(0)
    for t in range(4):
        with fs.open(f"/trust5/img_t{t}.tif", "wb") as f:
            tifffile.imwrite(f, rng.integers(0, 99, (2, 8, 8), dtype=np.uint16))
    try:
        dest = tmp_path / "m.zarr"
        interrupted(ndstack.open("memory://trust5"), dest, monkeypatch)
        time.sleep(0.01)
        with fs.open("/trust5/img_t3.tif", "wb") as f:  # same size, other pixels
            tifffile.imwrite(f, np.ones((2, 8, 8), dtype=np.uint16))
        with pytest.raises(NdstackError, match=r"img_t3\.tif changed"):
            ndstack.to_zarr(ndstack.open("memory://trust5"), dest)
    finally:
        fs.rm("/trust5", recursive=True)


# ------------------------------------------------------------------ 7. ownership is proven
@pytest.mark.parametrize("overwrite", [False, True])
def test_a_stale_record_never_claims_a_users_folder(tmp_path, monkeypatch, overwrite) -> None:
    planes(tmp_path / "src")
    arr = ndstack.open(tmp_path / "src")
    dest = tmp_path / "d.zarr"
    interrupted(arr, dest, monkeypatch)
    assert (tmp_path / ".d.zarr.ndstack").is_dir()
    shutil.rmtree(dest)  # the user deletes it, then makes a folder of their own there
    (dest / "0").mkdir(parents=True)
    (dest / "0" / "notes.txt").write_text("mine")
    (dest / "zarr.json").write_text("{}")
    before = snapshot(dest)
    with pytest.raises(DestinationError, match="not written by ndstack"):
        ndstack.to_zarr(arr, dest, overwrite=overwrite)
    assert snapshot(dest) == before


def test_an_unfinished_store_resumes_only_with_its_own_record(tmp_path, monkeypatch) -> None:
    planes(tmp_path / "src")
    arr = ndstack.open(tmp_path / "src")
    dest = tmp_path / "d.zarr"
    interrupted(arr, dest, monkeypatch)
    shutil.rmtree(tmp_path / ".d.zarr.ndstack")
    with pytest.raises(DestinationError, match=r"record .* is gone"):
        ndstack.to_zarr(arr, dest)
    ndstack.to_zarr(arr, dest, overwrite=True)
    ndstack.verify(arr, str(dest), sample="all")


# ------------------------------------------------------------------ 8. overwrite deletes only ours
@pytest.mark.parametrize("fmt", ["ome-zarr", "ome-zarr-0.4", "zarr"])
def test_overwrite_deletes_only_what_the_store_lists(tmp_path: Path, fmt: str) -> None:
    planes(tmp_path / "src")
    arr = ndstack.open(tmp_path / "src")
    dest = tmp_path / "d.zarr"
    ndstack.to_zarr(arr, dest, format=fmt)
    for folder in ("2024", "7", "c2"):
        (dest / folder).mkdir()
        (dest / folder / "analysis.csv").write_text("keep me")
    ndstack.to_zarr(arr, dest, format=fmt, overwrite=True)
    for folder in ("2024", "7", "c2"):
        assert (dest / folder / "analysis.csv").read_text() == "keep me"
    ndstack.verify(arr, str(dest), sample="all")


# ------------------------------------------------------------------ 9. unfinished is unfinished
@pytest.mark.parametrize("fmt", ["zarr", "ome-zarr"])
def test_an_unfinished_store_does_not_open(tmp_path, monkeypatch, fmt: str) -> None:
    planes(tmp_path / "src")
    arr = ndstack.open(tmp_path / "src")
    dest = tmp_path / "d.zarr"
    real = ndstack._zarr.tasks._write_block
    calls = {"n": 0}

    def flaky(*args, **kw):
        calls["n"] += 1
        if calls["n"] > 2:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr("ndstack._zarr.tasks._write_block", flaky)
    with pytest.raises(KeyboardInterrupt), dask.config.set(scheduler="synchronous"):
        ndstack.to_zarr(arr, dest, format=fmt)
    with pytest.raises(NdstackError, match="unfinished conversion"):
        ndstack.open(dest)
    from ndstack._napari import layer_data

    with pytest.raises(NdstackError, match="unfinished conversion"):
        layer_data(str(dest))


# ------------------------------------------------------------------ 10. missing source chunks
def test_a_source_store_missing_a_chunk_is_an_error_or_recorded_fill(tmp_path: Path) -> None:
    truth = planes(tmp_path / "src")
    first = ndstack.open(tmp_path / "src")
    store = tmp_path / "s.zarr"
    ndstack.to_zarr(first, store, chunks={"Z": 1})
    victim = store / "0" / "c" / "2" / "1" / "0" / "0"
    victim.unlink()
    with pytest.raises(CorruptFileError, match="c/2/1/0/0: chunk file missing"):
        ndstack.to_zarr(ndstack.open(store), tmp_path / "copy.zarr")
    assert main(["convert", str(store), str(tmp_path / "cli.zarr"), "--quiet"]) == 2
    with pytest.warns(UserWarning, match="chunk file missing"):
        ndstack.to_zarr(ndstack.open(store, on_error="fill"), tmp_path / "filled.zarr")
    back = ndstack.open(tmp_path / "filled.zarr")
    assert any("c/2/1/0/0" in m for m in back.attrs["filled_while_reading"])
    assert (back.isel(T=2, Z=1).values == 0).all()
    np.testing.assert_array_equal(back.isel(T=1).values, truth["img_t1.tif"])


# ------------------------------------------------------------------ 11. no writes through links
def test_resume_never_writes_through_a_symbolic_link(tmp_path, monkeypatch) -> None:
    planes(tmp_path / "src")
    arr = ndstack.open(tmp_path / "src")
    dest = tmp_path / "d.zarr"
    interrupted(arr, dest, monkeypatch, after=1)
    outside = tmp_path / "outside"
    outside.mkdir()
    chunks = dest / "0" / "c" / "3"
    if chunks.exists():
        shutil.rmtree(chunks)
    chunks.symlink_to(outside, target_is_directory=True)
    with pytest.raises(DestinationError, match="symbolic link inside the store"):
        ndstack.to_zarr(arr, dest)
    assert list(outside.iterdir()) == []


# ------------------------------------------------------------------ untrusted store metadata
def store_with(tmp_path: Path, edit) -> Path:
    planes(tmp_path / "src", n=2)
    store = tmp_path / "s.zarr"
    ndstack.to_zarr(ndstack.open(tmp_path / "src"), store, levels=2)
    meta = json.loads((store / "zarr.json").read_text())
    edit(meta)
    (store / "zarr.json").write_text(json.dumps(meta))
    return store


@pytest.mark.parametrize("path", ["../other.zarr/0", "/etc", "0/../../x", ""])
def test_dataset_paths_out_of_the_store_are_refused(tmp_path: Path, path: str) -> None:
    def edit(meta):
        meta["attributes"]["ome"]["multiscales"][0]["datasets"][0]["path"] = path

    store = store_with(tmp_path, edit)
    with pytest.raises(DamagedStoreError, match="dataset path"):
        ndstack.open(store)


def test_a_level_with_an_absurd_shape_is_refused_at_once(tmp_path: Path) -> None:
    planes(tmp_path / "src", n=2, shape=(2, 600, 40))
    store = tmp_path / "s.zarr"
    src = ndstack.open(tmp_path / "src")
    ndstack.to_zarr(src, store, levels=2)
    level = store / "1" / "zarr.json"
    meta = json.loads(level.read_text())
    meta["shape"] = [10**9, 10**9, 10**9, 10**9]
    level.write_text(json.dumps(meta))
    t0 = time.perf_counter()
    with pytest.raises(DamagedStoreError, match="does not fit under level 0"):
        ndstack.verify(src, str(store), sample="all")
    with pytest.raises(DamagedStoreError, match="does not fit under level 0"):
        ndstack.open(store)
    assert time.perf_counter() - t0 < 5


def test_store_round_trip_still_identical(tmp_path: Path) -> None:
    planes(tmp_path / "src")
    arr = ndstack.open(tmp_path / "src")
    ndstack.to_zarr(arr, tmp_path / "d.zarr")
    xr.testing.assert_identical(ndstack.open(tmp_path / "d.zarr").compute(), arr.compute())
    assert not (tmp_path / "d.zarr" / ".ndstack-unfinished").exists()
    assert not (tmp_path / ".d.zarr.ndstack").exists()


# ------------------------------------------------------------------ 4. no silently wrong pixels
def test_pages_written_one_by_one_are_never_read_as_one_block(tmp_path: Path) -> None:
    """An IFD before each page (a file written page by page) after a contiguous first file
    with the same first-page offset and a larger size: the shortcut must not apply."""
    folder = tmp_path / "src"
    folder.mkdir()
    rng = np.random.default_rng(4)
    a, b = (rng.integers(0, 1000, (4, 16, 16), dtype=np.uint16) for _ in range(2))
    tifffile.imwrite(folder / "img_t0.tif", a, photometric="minisblack", metadata=None)
    with open(folder / "img_t0.tif", "ab") as f:
        f.write(bytes(200))  # legal trailing bytes: the first file is the larger one
    with tifffile.TiffWriter(folder / "img_t1.tif") as w:
        for page in b:
            w.write(page, contiguous=False, photometric="minisblack", metadata=None)
    for check in ("auto", "headers", "none"):
        arr = ndstack.open(folder, check=check)
        np.testing.assert_array_equal(arr.isel(T=1).values, b)
        np.testing.assert_array_equal(arr.isel(T=1, Z=2).values, b[2])
        np.testing.assert_array_equal(arr.isel(T=0).values, a)


def test_verify_reads_the_source_along_another_path(tmp_path: Path, monkeypatch) -> None:
    """A fast-path bug that writes wrong pixels is caught: verify reads with tifffile."""
    from ndstack._tiff import TiffReader

    planes(tmp_path / "src")
    real = TiffReader._read_contiguous

    def wrong(self, *args, **kw):
        return real(self, *args, **kw) + 1  # the kind of error a wrong offset makes

    monkeypatch.setattr(TiffReader, "_read_contiguous", wrong)
    arr = ndstack.open(tmp_path / "src")
    ndstack.to_zarr(arr, tmp_path / "d.zarr")
    with pytest.raises(ndstack.errors.VerifyError, match="values differ"):
        ndstack.verify(arr, str(tmp_path / "d.zarr"), sample="all")


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"chunks": {"Z": 0}}, "Z=0"),
        ({"chunks": {"Q": 2}}, "dim 'Q'"),
        ({"shards": {"T": -1}}, "T=-1"),
        ({"levels": 0}, "levels"),
        ({"clevel": 12}, "clevel"),
        ({"codec": "gzip"}, "codec"),
        ({"format": "ome-zarr-0.4", "shards": {"T": 2}}, "sharding"),
    ],
)
def test_bad_writing_options_are_refused_before_any_write(tmp_path, kwargs, needle) -> None:
    planes(tmp_path / "src")
    with pytest.raises(ndstack.errors.ParameterError, match=needle):
        ndstack.to_zarr(ndstack.open(tmp_path / "src"), tmp_path / "d.zarr", **kwargs)
    assert not (tmp_path / "d.zarr").exists()


def test_a_forged_header_claiming_a_huge_image_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "forged.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint16), compression="zlib")
    with tifffile.TiffFile(path, mode="r+") as tif:
        tif.pages[0].tags["ImageWidth"].overwrite(100_000)
        tif.pages[0].tags["ImageLength"].overwrite(100_000)
    with pytest.raises(CorruptFileError, match=r"forged\.tif: its header claims 20000000000"):
        ndstack.open(path)
    assert main(["info", str(path)]) == 2


def test_a_url_destination_is_never_written_as_a_local_folder(tmp_path, monkeypatch) -> None:
    planes(tmp_path / "src")
    monkeypatch.chdir(tmp_path)
    arr = ndstack.open(tmp_path / "src")
    # read-only and unknown URLs are refused before anything is written (S3 itself: test_s3)
    with pytest.raises(DestinationError, match="http:// URL, which ndstack reads but cannot"):
        ndstack.to_zarr(arr, "http://127.0.0.1:1/x.ome.zarr")
    with pytest.raises(DestinationError, match="nosuchscheme"):
        ndstack.to_zarr(arr, "nosuchscheme://bucket/x.ome.zarr")
    assert main(["convert", str(tmp_path / "src"), "https://127.0.0.1:1/x.zarr", "--quiet"]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
    ndstack.to_zarr(arr, f"file://{tmp_path}/f.zarr")
    ndstack.verify(arr, str(tmp_path / "f.zarr"))


# ------------------------------------------------------------------ review: the holes found
def first_block_fails_others_are_slow(monkeypatch) -> list[int]:
    """Block 0's write fails at once, the others take 0.5 s; returns the list of the
    blocks (their T offsets) whose write had ended."""
    real = ndstack._zarr.tasks._write_block
    finished: list[int] = []

    def slow_or_failing(block, plan, image, offset, *args, **kw):
        if offset[0] == 0:
            raise OSError("the first block fails at once")
        time.sleep(0.5)
        out = real(block, plan, image, offset, *args, **kw)
        finished.append(offset[0])
        return out

    monkeypatch.setattr("ndstack._zarr.tasks._write_block", slow_or_failing)
    return finished


def test_no_task_writes_after_a_run_failed_and_released_its_lock(tmp_path, monkeypatch):
    """A failed run waits for its running tasks before it lets the next run in."""
    planes(tmp_path / "src", n=4)
    arr = ndstack.open(tmp_path / "src")
    finished = first_block_fails_others_are_slow(monkeypatch)
    with pytest.raises(OSError, match="fails at once"), dask.config.set(num_workers=4):
        ndstack.to_zarr(arr, tmp_path / "d.zarr")
    assert len(finished) == 3  # the others had ended before to_zarr returned


def test_a_task_of_a_replaced_store_writes_nothing(tmp_path: Path) -> None:
    import dataclasses

    from ndstack._zarr.tasks import _check_marker

    dest = tmp_path / "d.zarr"
    dest.mkdir()
    (dest / ".ndstack-unfinished").write_text(json.dumps({"store": "new", "written": []}))
    plan = dataclasses.make_dataclass("P", ["dest", "store_id"])
    _check_marker(plan(str(dest), "new"))
    with pytest.raises(DestinationError, match="no longer the store"):
        _check_marker(plan(str(dest), "old"))
    (dest / ".ndstack-unfinished").unlink()  # completed since
    with pytest.raises(DestinationError, match="no longer the store"):
        _check_marker(plan(str(dest), "new"))


def test_compute_false_holds_the_lock_until_it_has_run(tmp_path: Path) -> None:
    planes(tmp_path / "src", n=2)
    arr = ndstack.open(tmp_path / "src")
    dest = tmp_path / "d.zarr"
    work = ndstack.to_zarr(arr, dest, compute=False)
    with pytest.raises(LockedError):
        ndstack.to_zarr(arr, dest)
    work.compute()
    assert not os.path.exists(lock_path(str(dest)))
    ndstack.verify(arr, str(dest), sample="all")


def test_a_held_lock_from_another_process_stops_the_cli(tmp_path: Path) -> None:
    planes(tmp_path / "src", n=2)
    dest = tmp_path / "d.zarr"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from ndstack._zarr.lock import acquire; acquire(sys.argv[1]); "
         "print('held', flush=True); time.sleep(60)", str(dest)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        run = subprocess.run(
            [sys.executable, "-m", "ndstack.cli", "convert", str(tmp_path / "src"), str(dest)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert run.returncode == 2 and f"being written by process {holder.pid}" in run.stderr
        assert not dest.exists()
    finally:
        holder.kill()
        holder.communicate()
    ndstack.to_zarr(ndstack.open(tmp_path / "src"), dest)  # its owner is dead: taken over


def test_overwrite_never_takes_over_a_users_entry_named_like_a_new_level(tmp_path) -> None:
    planes(tmp_path / "src", n=2, shape=(2, 600, 40))
    arr = ndstack.open(tmp_path / "src")
    dest = tmp_path / "d.zarr"
    ndstack.to_zarr(arr, dest, levels=2)
    (dest / "2").mkdir()
    (dest / "2" / "analysis.csv").write_text("mine")
    with pytest.raises(DestinationError, match="holds '2'"):
        ndstack.to_zarr(arr, dest, levels=3, overwrite=True)
    assert (dest / "2" / "analysis.csv").read_text() == "mine"


def test_a_new_store_is_never_written_through_a_link(tmp_path: Path) -> None:
    planes(tmp_path / "src", n=2)
    arr = ndstack.open(tmp_path / "src")
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "d.zarr"
    Path(str(tmp_path / ".d.zarr.ndstack")).symlink_to(outside, target_is_directory=True)
    with pytest.raises(DestinationError, match="symbolic link"):
        ndstack.to_zarr(arr, dest)
    assert list(outside.iterdir()) == []


def test_a_file_of_the_other_byte_order_is_read_right(tmp_path: Path) -> None:
    folder = tmp_path / "src"
    folder.mkdir()
    rng = np.random.default_rng(2)
    a, b = (rng.integers(0, 60000, (3, 16, 16), dtype=np.uint16) for _ in range(2))
    tifffile.imwrite(folder / "img_t0.tif", a, photometric="minisblack", metadata=None)
    tifffile.imwrite(
        folder / "img_t1.tif", b, photometric="minisblack", metadata=None, byteorder=">"
    )
    for check in ("auto", "headers", "none"):
        arr = ndstack.open(folder, check=check)
        np.testing.assert_array_equal(arr.isel(T=1).values, b)
        np.testing.assert_array_equal(arr.isel(T=1, Z=1).values, b[1])


def test_a_level_opened_directly_keeps_its_stores_rules(tmp_path, monkeypatch) -> None:
    planes(tmp_path / "src", n=2)
    arr = ndstack.open(tmp_path / "src")
    dest = tmp_path / "d.zarr"
    ndstack.to_zarr(arr, dest)
    next(p for p in sorted((dest / "0" / "c").rglob("*")) if p.is_file()).unlink()
    with pytest.raises(CorruptFileError, match="chunk file missing"):
        ndstack.open(dest / "0").values
    shutil.rmtree(dest)
    shutil.rmtree(tmp_path / "src")
    planes(tmp_path / "src", n=4)
    interrupted(ndstack.open(tmp_path / "src"), dest, monkeypatch)
    with pytest.raises(NdstackError, match="unfinished conversion"):
        ndstack.open(dest / "0")


def test_a_zarr_array_read_by_dask_is_a_source_too(tmp_path: Path) -> None:
    import dask.array as da

    planes(tmp_path / "src", n=2)
    store = tmp_path / "s.zarr"
    ndstack.to_zarr(ndstack.open(tmp_path / "src"), store, format="zarr")
    before = snapshot(store)
    data = da.from_zarr(str(store))
    with pytest.raises(DestinationError, match="is the source"):
        ndstack.to_zarr(data, store, dims=("T", "Z", "Y", "X"), overwrite=True)
    assert snapshot(store) == before


def test_missing_parent_folders_are_made(tmp_path: Path) -> None:
    planes(tmp_path / "src", n=2)
    dest = tmp_path / "new" / "deeper" / "d.zarr"
    ndstack.to_zarr(ndstack.open(tmp_path / "src"), dest)
    ndstack.verify(tmp_path / "src", str(dest))
    with pytest.raises(DestinationError, match="empty"):
        ndstack.to_zarr(ndstack.open(tmp_path / "src"), "")


def test_http_style_stamps_are_fingerprinted() -> None:
    from ndstack._zarr.sources import _stamp

    assert _stamp({"Last-Modified": "Tue, 01 Jan 2026"}) == "Last-Modified=Tue, 01 Jan 2026"
    assert _stamp({"ETag": '"abc"', "size": 3}) == 'ETag="abc"'
    assert _stamp({"size": 3}) is None


def test_an_inner_chunk_missing_from_a_shard_is_an_error(tmp_path: Path) -> None:
    import google_crc32c

    planes(tmp_path / "src", n=4)
    store = tmp_path / "s.zarr"
    ndstack.to_zarr(ndstack.open(tmp_path / "src"), store, shards={"T": 2}, chunks={"Z": 1})
    shard = store / "0" / "c" / "1" / "0" / "0" / "0"
    raw = bytearray(shard.read_bytes())
    n = 2 * 3  # inner chunks per shard: 2 timepoints x 3 planes
    start = len(raw) - (16 * n + 4)
    raw[start : start + 16] = b"\xff" * 16  # the first inner chunk: "missing", valid CRC
    raw[-4:] = google_crc32c.value(bytes(raw[start:-4])).to_bytes(4, "little")
    shard.write_bytes(bytes(raw))
    import zarr

    assert (zarr.open_array(str(store / "0"))[2, 0] == 0).all()  # zarr reads it as fill
    with pytest.raises(CorruptFileError, match="lists inner chunks as missing"):
        ndstack.open(store).values


def test_in_memory_arrays_are_told_apart(tmp_path: Path) -> None:
    import xarray as xr

    dest = tmp_path / "m.zarr"
    zeros = xr.DataArray(np.zeros((2, 8, 8), np.uint16), dims=("T", "Y", "X"))
    sevens = xr.DataArray(np.full((2, 8, 8), 7, np.uint16), dims=("T", "Y", "X"))
    ndstack.to_zarr(zeros, dest)
    assert ndstack.to_zarr(zeros, dest).get("complete_before")
    with pytest.raises(DestinationError, match="another"):
        ndstack.to_zarr(sevens, dest)


@pytest.mark.parametrize("reader", ["ndstack", "dask", "xarray"])
def test_a_store_source_rewritten_in_place_is_noticed(tmp_path: Path, reader: str) -> None:
    import dask.array as da
    import xarray as xr
    import zarr

    planes(tmp_path / "src", n=2)
    src = tmp_path / "s.zarr"
    ndstack.to_zarr(ndstack.open(tmp_path / "src"), src, levels=1)
    level0 = src / "0"

    def opened():
        if reader == "ndstack":
            return ndstack.open(src)
        if reader == "dask":
            return xr.DataArray(da.from_zarr(str(level0)), dims=("T", "Z", "Y", "X"))
        v = xr.open_zarr(src, consolidated=False)["0"]  # zarr behind xarray's adapters
        return v.rename({d: d.upper() for d in v.dims})

    dest = tmp_path / "d.zarr"
    ndstack.to_zarr(opened(), dest)
    time.sleep(0.01)
    zarr.open_array(str(level0), mode="r+")[0, 0, 0, 0] = 999  # one chunk rewritten
    with pytest.raises(DestinationError, match="another source"):
        ndstack.to_zarr(opened(), dest)
    with pytest.raises(DestinationError, match=r"(is|lies inside|holds) the source"):
        ndstack.to_zarr(opened(), src, overwrite=True)
    assert int(ndstack.open(src).max()) == 999  # the source is intact


def test_verify_finds_holes_in_the_shards_of_every_level(tmp_path: Path) -> None:
    import google_crc32c

    planes(tmp_path / "src", n=4, shape=(2, 600, 40))
    arr = ndstack.open(tmp_path / "src")
    store = tmp_path / "s.zarr"
    ndstack.to_zarr(arr, store, shards={"T": 2}, chunks={"Z": 1}, levels=2)
    ndstack.verify(arr, str(store), sample="all")
    shard = store / "1" / "c" / "0" / "0" / "0" / "0"  # level 1: only verify's walk sees it
    raw = bytearray(shard.read_bytes())
    n = 2 * 2  # inner chunks per shard: 2 timepoints x 2 planes
    start = len(raw) - (16 * n + 4)
    raw[start : start + 16] = b"\xff" * 16
    raw[-4:] = google_crc32c.value(bytes(raw[start:-4])).to_bytes(4, "little")
    shard.write_bytes(bytes(raw))
    with pytest.raises(ndstack.errors.VerifyError, match=r"1/c/0/0/0/0 \(inner chunks\)"):
        ndstack.verify(arr, str(store), sample="all")


def test_on_a_cluster_a_failed_run_waits_for_its_tasks(tmp_path, monkeypatch) -> None:
    from distributed import Client, LocalCluster

    planes(tmp_path / "src", n=4)
    arr = ndstack.open(tmp_path / "src")
    finished = first_block_fails_others_are_slow(monkeypatch)
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=4, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        with pytest.raises(OSError, match="fails at once"):
            ndstack.to_zarr(arr, tmp_path / "d.zarr")
        assert len(finished) == 3  # the others had ended before to_zarr returned
    assert not os.path.exists(lock_path(str(tmp_path / "d.zarr")))


def test_every_error_class_also_inherits_a_builtin() -> None:
    """`except ValueError` / `except OSError` keep working for callers who do not know
    ndstack: no error is raised as the bare base class."""
    import re

    import ndstack.errors as errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        if cls is not errors.NdstackError:
            builtin = [b for b in cls.__mro__ if b.__module__ == "builtins"]
            assert set(builtin) - {Exception, BaseException, object}, name
    root = Path(ndstack.__file__).parent
    bare = [
        f"{p.relative_to(root)}:{i}"
        for p in root.rglob("*.py")
        for i, line in enumerate(p.read_text().splitlines(), 1)
        if re.search(r"raise NdstackError\(", line)
    ]
    assert bare == [], bare


def test_two_threads_of_one_process_never_both_hold_a_lock(tmp_path, monkeypatch) -> None:
    """A lock of this process's own pid whose run is not (yet) known here must not look
    left behind: its run id is known before the lock file exists. The creating thread is
    slowed down right after creating the file, where the other one used to break it."""
    import threading
    import time

    from ndstack._zarr import lock as lock_mod
    from ndstack.errors import LockedError

    real_create = lock_mod._create

    def slow_create(dest, path, run_id):
        made = real_create(dest, path, run_id)
        if made:
            time.sleep(0.05)
        return made

    monkeypatch.setattr(lock_mod, "_create", slow_create)
    for i in range(10):
        dest = str(tmp_path / f"d{i}.zarr")
        barrier = threading.Barrier(2)
        held: list[object] = []
        refused: list[BaseException] = []

        def take(dest: str = dest, barrier=barrier, held=held, refused=refused) -> None:
            barrier.wait()
            try:
                held.append(lock_mod.acquire(dest))
            except LockedError as exc:
                refused.append(exc)

        threads = [threading.Thread(target=take) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(held) == 1 and len(refused) == 1, (held, refused)
        held[0].release()
