"""ndstack.to_zarr / convert / verify: round trips, pyramid, resume, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile
import xarray as xr
import zarr

import ndstack
from ndstack.errors import (
    CorruptFileError,
    DestinationError,
    NdstackError,
    SourceChangedError,
    VerifyError,
    WriteError,
)

from .conftest import bytes_read, lls_name, snapshot, write_files


def chunk_files(store: Path) -> dict[str, bytes]:
    """Every file under every array's chunk folder, by relative path: the array contents
    (temporary leftovers included, so that they count as a difference)."""
    out = {}
    for root, dirs, files in os.walk(store):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if f"{os.sep}c" in root[len(str(store)) :] + os.sep:
            for f in files:
                p = Path(root) / f
                out[str(p.relative_to(store))] = p.read_bytes()
    return out


def validate_ngff(store: Path) -> None:
    from ome_zarr_models.v05.bioformats2raw import BioFormats2Raw
    from ome_zarr_models.v05.image import Image

    group = zarr.open_group(store, mode="r")
    if "bioformats2raw.layout" in group.attrs["ome"]:
        BioFormats2Raw.from_zarr(group)
        for name in group.group_keys():
            Image.from_zarr(group[name])
    else:
        Image.from_zarr(group)


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


def _positions(folder: Path) -> Path:
    """Micro-Manager-like planes: 2 channels, 3 positions, 2 times, 2 z (P splits images)."""
    names = [
        f"img_channel{c:03d}_position{p:03d}_time{t:09d}_z{z:03d}.tif"
        for c in range(2)
        for p in range(3)
        for t in range(2)
        for z in range(2)
    ]
    write_files(folder, names, lambda n: np.full((6, 8), sum(map(ord, n)) % 251, np.uint8))
    return folder


def test_positions_become_one_image_each(tmp_path: Path) -> None:
    arr = ndstack.open(_positions(tmp_path / "mm"))
    assert arr.dims == ("P", "T", "C", "Z", "Y", "X")
    ndstack.to_zarr(arr, tmp_path / "pos.zarr")
    validate_ngff(tmp_path / "pos.zarr")
    assert sorted(zarr.open_group(tmp_path / "pos.zarr", mode="r").group_keys()) == ["0", "1", "2"]
    xr.testing.assert_identical(ndstack.open(tmp_path / "pos.zarr").compute(), arr.compute())


def _mean2(a: np.ndarray) -> np.ndarray:
    """Oracle: 2x2 mean of the last two axes, odd edges repeated, rounded."""
    a = a.astype(np.float64)
    if a.shape[-2] % 2:
        a = np.concatenate([a, a[..., -1:, :]], axis=-2)
    if a.shape[-1] % 2:
        a = np.concatenate([a, a[..., :, -1:]], axis=-1)
    return (a[..., ::2, ::2] + a[..., 1::2, ::2] + a[..., ::2, 1::2] + a[..., 1::2, 1::2]) / 4


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
            expected = _mean2(expected)
            # each level is computed from the rounded level above, as the writer does
            np.testing.assert_allclose(z[:], np.rint(expected), atol=1)
            expected = z[:].astype(np.float64)


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


def test_verify_catches_damaged_and_deleted_chunks(lls, tmp_path: Path) -> None:
    folder, _ = lls
    arr = ndstack.open(folder)
    out = tmp_path / "v.zarr"
    ndstack.to_zarr(arr, out)
    assert ndstack.verify(arr, str(out), sample="all")["differences"] == []
    victim = out / "0" / "c" / "2" / "1" / "0" / "0" / "0"
    good = victim.read_bytes()
    victim.write_bytes(good[:20] + bytes(len(good) - 20))
    with pytest.raises(VerifyError, match=r"T=2, C=1.*: cannot read"):
        ndstack.verify(arr, str(out), sample="all")
    victim.write_bytes((out / "0" / "c" / "3" / "1" / "0" / "0" / "0").read_bytes())
    with pytest.raises(VerifyError, match=r"1 differing block.*T=2, C=1.*: \d+ values differ"):
        ndstack.verify(arr, str(out), sample="all")  # decodes, to other values
    victim.unlink()
    with pytest.raises(VerifyError, match=r"chunk 0/c/2/1/0/0/0 is missing"):
        ndstack.verify(arr, str(out), sample=1)


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


def test_unsupported_dtype(tmp_path: Path) -> None:
    arr = xr.DataArray(np.array([["a", "b"], ["c", "d"]], dtype=object), dims=("Y", "X"))
    with pytest.raises(NdstackError, match="cannot write dtype object"):
        ndstack.to_zarr(arr, tmp_path / "s.zarr")


def test_cli_convert_verify_and_exit_codes(lls, tmp_path: Path, capsys) -> None:
    from ndstack.cli import main

    folder, _ = lls
    dest = tmp_path / "cli.zarr"
    assert main(["convert", str(folder), str(dest), "--verify", "all", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "GB in" in out and "ratio" in out and "verified 12 of 12 blocks" in out
    (dest / "0" / "c" / "1" / "2" / "0" / "0" / "0").unlink()
    assert main(["verify", str(folder), str(dest), "--all"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ndstack: verify:") and "0/c/1/2/0/0/0 is missing" in err
    assert main(["convert", str(folder), str(folder / "x.zarr")]) == 2
    assert "lies inside the source" in capsys.readouterr().err
    settings = json.loads((dest / "zarr.json").read_text())["attributes"]["ndstack"]["settings"]
    assert settings["codec"] == "zstd" and settings["clevel"] == 3
    old = tmp_path / "cli04.zarr"
    assert main(["convert", str(folder), str(old), "--format", "ome-zarr-0.4", "--quiet"]) == 0
    assert json.loads((old / ".zattrs").read_text())["multiscales"][0]["version"] == "0.4"
    assert main(["verify", str(folder), str(old), "--all"]) == 0


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
    np.testing.assert_array_equal(level1[1, 2], np.rint(_mean2(data[1, 2])).astype(np.uint16))
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
    arr = ndstack.open(_positions(tmp_path / "mm"))
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


def test_verify_counts_differences_in_batches_and_nan_equals_nan(tmp_path, monkeypatch) -> None:
    from ndstack._zarr import verify as _verify

    values = np.random.default_rng(5).random((6, 16, 16)).astype(np.float32)
    values[:, 3:5, 3] = np.nan
    arr = xr.DataArray(da.from_array(values, chunks=(1, 16, 16)), dims=["T", "Y", "X"])
    dest = tmp_path / "nan.zarr"
    ndstack.to_zarr(arr, dest, levels=1)
    monkeypatch.setattr(_verify, "_BATCH", 4)  # six blocks: two batches
    assert ndstack.verify(arr, str(dest), sample="all")["checked"] == 6
    changed = values.copy()
    changed[5, 3, 3] = 1.0  # was NaN; NaN stays at (5, 4, 3) and counts as equal
    changed[5, 0, :2] = -1.0
    other = xr.DataArray(da.from_array(changed, chunks=(1, 16, 16)), dims=["T", "Y", "X"])
    with pytest.raises(VerifyError, match=r"1 differing block.*T=5, Y=0:16, X=0:16: 3 values"):
        ndstack.verify(other, str(dest), sample="all")


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
