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


def _tiny(folder: Path) -> None:
    from .conftest import write_files

    write_files(folder, [f"img_t{t}.tif" for t in range(2)], lambda n: np.ones((8, 9), "u2"))


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("{src}/img_t0.tif", "expected a .png file"),  # a source file: overwrote it before
        ("{src}/preview.png", "lies inside the source"),
        ("{src}/sub/preview.png", "lies inside the source"),
        ("{tmp}/link/preview.png", "lies inside the source"),  # a link into the source
        ("{tmp}/p.jpg", "expected a .png file"),
        ("{tmp}/existing.png", "exists; pass overwrite=True (--overwrite) to replace it"),
        ("{tmp}/folder.png", "is a folder"),
    ],
)
def test_cli_preview_never_writes_into_its_source_or_over_a_file(
    tmp_path: Path, capsys, output: str, message: str
) -> None:
    from ndstack.cli import main

    from .conftest import snapshot

    src = tmp_path / "src"
    _tiny(src)
    (tmp_path / "link").symlink_to(src)
    (tmp_path / "existing.png").write_bytes(b"mine")
    (tmp_path / "folder.png").mkdir()
    before = snapshot(tmp_path)
    for source in (str(src), str(src / "*.tif")):  # a folder, a glob
        code = main(["preview", source, "-o", output.format(src=src, tmp=tmp_path)])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1, err
        assert snapshot(tmp_path) == before


def test_preview_replaces_a_file_only_when_asked(tmp_path: Path, capsys) -> None:
    from ndstack.cli import main

    src = tmp_path / "src"
    _tiny(src)
    out = tmp_path / "p.png"
    out.write_bytes(b"mine")
    assert main(["preview", str(src), "-o", str(out), "--overwrite"]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left
    arr = ndstack.open(src)
    with pytest.raises(ndstack.errors.DestinationError, match="exists; pass overwrite"):
        ndstack.preview(arr, out)
    with pytest.raises(ndstack.errors.DestinationError, match="inside the source"):
        ndstack.preview(arr, src / "p.png", overwrite=True)  # the library checks too


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"every": 0}, "every: expected a whole number from 1, got 0"),
        ({"every": -2}, "every: expected a whole number from 1, got -2"),
        ({"max_columns": 0}, "max_columns: expected a whole number from 1"),
        ({"percentiles": (5, 200)}, "percentiles: expected 0 <= low < high <= 100"),
        ({"percentiles": (50, 10)}, "percentiles: expected 0 <= low < high <= 100"),
    ],
)
def test_preview_options_are_checked_before_reading(tmp_path: Path, options, message) -> None:
    src = tmp_path / "src"
    _tiny(src)
    calls: list[str] = []
    arr = ndstack.open(src, reader=calls.append, file_shape=(8, 9), dtype="uint16")
    with pytest.raises(ndstack.errors.ParameterError, match=message):
        ndstack.preview(arr, tmp_path / "p.png", **options)
    assert calls == [] and not (tmp_path / "p.png").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--every", "0"], "--every: expected a whole number from 1, got '0'"),
        (["--every", "-1"], "--every: expected a whole number from 1, got '-1'"),
        (["--dim", "Q"], "--dim Q: no such dim in the array; its dims are T, Y, X"),
    ],
)
def test_cli_preview_options_are_one_line(tmp_path: Path, capsys, options, message) -> None:
    from ndstack.cli import main

    src = tmp_path / "src"
    _tiny(src)
    code = main(["preview", str(src), "-o", str(tmp_path / "p.png"), *options])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "p.png").exists()


def test_an_interrupted_preview_leaves_the_old_file_whole(tmp_path: Path, monkeypatch) -> None:
    from matplotlib.figure import Figure

    src = tmp_path / "src"
    _tiny(src)
    out = tmp_path / "p.png"
    out.write_bytes(b"the previous preview")

    def killed(self, fname, **kwargs) -> None:
        fname.write(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", killed)
    with pytest.raises(KeyboardInterrupt):
        ndstack.preview(ndstack.open(src), out, overwrite=True)
    assert out.read_bytes() == b"the previous preview"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.png", "src"]  # no half file


def test_demo_runs_twice_in_the_same_folder(tmp_path: Path, capsys) -> None:
    """The demo replaces its own preview (it made it) on every run."""
    from ndstack.cli import main

    for _ in range(2):
        assert main(["demo", "--out", str(tmp_path / "demo"), "--timepoints", "1"]) == 0
        assert "preview: " in capsys.readouterr().out
