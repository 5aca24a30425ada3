"""ndstack.verify and convert --verify: damage found, counted and named."""

from __future__ import annotations

import json
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import ndstack
from ndstack.errors import (
    VerifyError,
)


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
