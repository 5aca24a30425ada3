"""ndstack.preview / ndstack preview: a montage that reads only what it draws."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import ndstack

pytest.importorskip("matplotlib")


def test_preview_reads_only_the_planes_it_draws(tmp_path: Path) -> None:
    folder = tmp_path / "npy"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for c in range(2):
        for t in range(6):
            np.save(
                folder / f"cell_ch{c}_t{t}.npy", rng.integers(0, 100, (4, 32, 40)).astype(np.uint16)
            )
    calls: list[str] = []

    def reader(path: str) -> np.ndarray:
        calls.append(os.path.basename(path))
        return np.load(path)

    arr = ndstack.open(folder, reader=reader, file_shape=(4, 32, 40), dtype="uint16")
    arr.attrs["pixel_size"] = {"X": 0.2, "Y": 0.2}
    arr.attrs["pixel_unit"] = "micrometer"
    out = tmp_path / "p.png"
    info = ndstack.preview(arr, out, dim="T", every=2)
    assert sorted(calls) == sorted(f"cell_ch{c}_t{t}.npy" for c in range(2) for t in (0, 2, 4))
    assert info["rows"] == 2 and info["columns"] == 3
    assert info["scale_bar"] == 1  # a fifth of 40 px x 0.2 um = 1.6 um -> 1 um
    import matplotlib.image

    img = matplotlib.image.imread(out)
    assert img.shape[0] > 100 and img.shape[1] > 200 and img[..., :3].std() > 0.01  # not blank


def test_cli_preview(lls, tmp_path: Path, capsys) -> None:
    from ndstack.cli import main

    folder, _ = lls
    out = tmp_path / "lls.png"
    assert main(["preview", str(folder), "-o", str(out), "--every", "2"]) == 0
    assert "3 channel(s) x 2 column(s)" in capsys.readouterr().out
    assert out.stat().st_size > 1000
