"""The command line: one-line errors, exit codes, JSON keys, demo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from ndstack.cli import main

from .conftest import lls_name, snapshot


def run(args: list[str], capsys) -> tuple[int, str, str]:
    code = main(args)
    out, err = capsys.readouterr()
    return code, out, err


def test_info_text_explains_axes(lls, capsys) -> None:
    folder, _ = lls
    code, out, err = run(["info", str(folder)], capsys)
    assert code == 0 and err == ""
    assert "T: 4  C: 3  Z: 6  Y: 20  X: 24" in out
    assert "label 'stack' before the number" in out
    assert "wavelength (C) nm: 488, 560, 642" in out
    assert "0.104 micrometer/px" in out


def test_info_json_has_the_promised_keys(lls, capsys) -> None:
    folder, _ = lls
    code, out, _ = run(["info", str(folder), "--json"], capsys)
    assert code == 0
    d = json.loads(out)
    for key in ("dims", "shape", "dtype", "chunks", "nbytes", "files", "missing", "coords"):
        assert key in d
    assert d["dims"] == ["T", "C", "Z", "Y", "X"]
    assert d["shape"] == [4, 3, 6, 20, 24]
    assert d["chunks"] == {"T": 1, "C": 1, "Z": 6, "Y": 20, "X": 24}
    assert d["nbytes"] == 4 * 3 * 6 * 20 * 24 * 2
    assert d["files"] == 12 and d["missing"] == []
    assert d["coords"]["C"] == [0, 1, 2]
    assert d["extra_coords"]["wavelength"]["values"] == [488, 560, 642]


def test_info_with_pattern(lls, capsys) -> None:
    folder, _ = lls
    code, out, _ = run(
        ["info", str(folder), "--json", "--pattern", "{name}_ch{C}_CAM1_stack{T}_*.tif"], capsys
    )
    assert code == 0
    assert json.loads(out)["pattern"] == "{name}_ch{C}_CAM1_stack{T}_*.tif"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: None, "no image file in"),
        (
            lambda d: (d / "a.tif").write_text("not a tiff") or (d / "b.tif").write_text("x"),
            "not a readable TIFF",
        ),
    ],
)
def test_errors_are_one_line_with_exit_code_2(tmp_path: Path, capsys, make, message) -> None:
    folder = tmp_path / "src"
    folder.mkdir()
    make(folder)
    before = snapshot(folder)
    code, out, err = run(["info", str(folder)], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("ndstack: error: ") and message in err
    assert snapshot(folder) == before


def test_glob_without_match_exit_2(tmp_path: Path, capsys) -> None:
    code, _, err = run(["info", str(tmp_path / "*.tif")], capsys)
    assert code == 2 and "matches no file" in err


def test_missing_files_warning_is_one_line(lls, capsys) -> None:
    folder, _ = lls
    (folder / lls_name(0, 0)).unlink()
    code, out, err = run(["info", str(folder)], capsys)
    assert code == 0
    assert err.startswith("ndstack: warning: 1 of 12 grid positions") and err.count("\n") == 1
    assert "missing 1: T=0, C=0" in out


def test_console_script_runs_as_a_process(tmp_path: Path) -> None:
    """The installed entry point, as a user runs it: no traceback on bad input."""
    proc = subprocess.run(
        [sys.executable, "-m", "ndstack.cli", "info", str(tmp_path / "nothing-here")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "does not exist" in proc.stderr


def test_demo_writes_and_opens(tmp_path: Path, capsys) -> None:
    out_dir = tmp_path / "demo"
    code, out, _ = run(["demo", "--out", str(out_dir), "--timepoints", "2"], capsys)
    assert code == 0
    assert len(list((out_dir / "tiffs").glob("*.tif"))) == 6
    assert "T: 2  C: 3  Z: 16  Y: 128  X: 128" in out
    assert "wrote" in out and "demo.ome.zarr" in out
    import ndstack

    back = ndstack.open(out_dir / "demo.ome.zarr")
    assert back.dims == ("T", "C", "Z", "Y", "X") and back.shape == (2, 3, 16, 128, 128)
    with tifffile.TiffFile(next((out_dir / "tiffs").glob("*ch1*stack0001*.tif"))) as tif:
        assert tif.series[0].shape == (16, 128, 128)
        assert np.asarray(tif.series[0].asarray()).max() > 1000  # blobs, not an empty stack


def test_process_chains_steps_and_writes_what_the_library_computes(
    lls, tmp_path: Path, capsys
) -> None:
    import xarray as xr

    import ndstack
    from ndstack import ops

    folder, _ = lls
    psf = np.ones((3, 3, 3), np.float32)
    tifffile.imwrite(tmp_path / "psf.tif", psf, photometric="minisblack")
    dest = tmp_path / "processed.zarr"
    code, out, err = run(
        ["process", str(folder), str(dest), "--deskew", "angle=31.5",
         "--deconvolve", f"psf={tmp_path / 'psf.tif'},iterations=2", "--project", "dim=Z,how=max",
         "--quiet"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "wrote" in out
    expected = ops.project(ops.deconvolve(ops.deskew(ndstack.open(folder)), psf, iterations=2), "Z")
    xr.testing.assert_allclose(ndstack.open(dest).compute(), expected.compute())


def test_process_device_reaches_the_steps(lls, tmp_path: Path, capsys) -> None:
    import xarray as xr

    import ndstack
    from ndstack import ops
    from ndstack.ops._xp import gpu_available

    folder, _ = lls
    dest = tmp_path / "cpu.zarr"
    code, _, err = run(
        ["process", str(folder), str(dest), "--device", "cpu", "--gaussian", "sigma=1", "--quiet"],
        capsys,
    )
    assert code == 0, err
    expected = ops.gaussian(ndstack.open(folder), 1.0, device="cpu")
    xr.testing.assert_allclose(ndstack.open(dest).compute(), expected.compute())
    if gpu_available():
        return  # the refusal below is for machines without one
    dest = tmp_path / "gpu.zarr"
    code, _, err = run(
        ["process", str(folder), str(dest), "--device", "gpu", "--median", "size=3"], capsys
    )
    assert code == 2 and "needs CuPy and a CUDA GPU" in err and err.count("\n") == 1
    assert not dest.exists()


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (
            ["--deskew", "angel=30"],
            "unknown parameter 'angel'; parameters: angle, dz, dx, direction",
        ),
        (["--deskew", "angle=0"], "strictly between 0 and 90"),
        (["--deconvolve", "iterations=3"], "psf is required"),
        (["--project", "how"], "expected key=value"),
        (["--recenter", "size=12x"], "size='12x' is not valid"),
    ],
)
def test_process_refuses_bad_steps_before_computing(
    lls, tmp_path: Path, capsys, step, message
) -> None:
    folder, _ = lls
    code, _, err = run(["process", str(folder), str(tmp_path / "x.zarr"), *step], capsys)
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "x.zarr").exists()


def test_process_list_documents_every_step(capsys) -> None:
    from ndstack._steps import STEPS

    code, out, _ = run(["process", "--list"], capsys)
    assert code == 0
    for name, step in STEPS.items():
        assert f"--{name.replace('_', '-')}" in out
        for key in step.params:
            assert key in out


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--chunks", "Z=0"], "--chunks: expected DIM=SIZE[,DIM=SIZE] with sizes from 1"),
        (["--chunks", "Z=-4"], "--chunks: expected DIM=SIZE[,DIM=SIZE] with sizes from 1"),
        (["--chunks", "Z"], "--chunks: expected DIM=SIZE[,DIM=SIZE] with sizes from 1"),
        (["--chunks", "Z=2,Z=4"], "--chunks: Z given twice"),
        (["--shards", "T=0"], "--shards: expected DIM=SIZE[,DIM=SIZE] with sizes from 1"),
        (["--levels", "0"], "--levels: expected a number from 1 or 'auto', got '0'"),
        (["--levels", "-2"], "--levels: expected a number from 1 or 'auto', got '-2'"),
        (["--levels", "many"], "--levels: expected a number from 1 or 'auto', got 'many'"),
        (["--clevel", "10"], "--clevel 10: the zstd codec takes levels 0 to 9"),
        (["--codec", "lz4", "--clevel", "-1"], "--clevel -1: the lz4 codec takes levels 0 to 9"),
        (["--shards", "T=2", "--format", "ome-zarr-0.4"], "--shards need Zarr v3"),
        (["--workers", "2", "--memory-limit", "banana"], "memory limit 'banana'"),
        (["--workers", "-1"], "--workers: expected a whole number from 1"),
        (["--format", "tiff"], "argument --format: invalid choice: 'tiff'"),
    ],
)
def test_bad_options_are_one_line_before_the_source_is_opened(
    tmp_path: Path, capsys, options, message
) -> None:
    """The source does not even exist: the option is what the error is about."""
    dest = tmp_path / "out.zarr"
    code, out, err = run(["convert", str(tmp_path / "nothing"), str(dest), *options], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith("ndstack: error: ") and message in err, err
    assert "does not exist" not in err and not dest.exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--chunks", "Q=4"], "--chunks: no dim 'Q' in the array; its dims are T, C, Z, Y, X"),
        (["--shards", "Z=6,tile=2"], "--shards: no dim 'tile' in the array"),
    ],
)
def test_chunks_and_shards_of_unknown_dims_are_refused_before_writing(
    lls, tmp_path: Path, capsys, options, message
) -> None:
    folder, _ = lls
    dest = tmp_path / "out.zarr"
    code, _, err = run(["convert", str(folder), str(dest), "--quiet", *options], capsys)
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not dest.exists()


def test_clevel_is_ignored_without_a_codec(lls, tmp_path: Path, capsys) -> None:
    folder, _ = lls
    dest = tmp_path / "out.zarr"
    args = ["convert", str(folder), str(dest), "--codec", "none", "--clevel", "42", "--quiet"]
    code, out, err = run(args, capsys)
    assert code == 0 and "wrote" in out, err


def test_usage_errors_are_one_line_too(capsys) -> None:
    code, out, err = run(["convert"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "the following arguments are required" in err and "ndstack convert --help" in err


def test_demo_writes_only_into_its_own_folder(tmp_path: Path, capsys) -> None:
    out_dir = tmp_path / "demo"
    assert run(["demo", "--out", str(out_dir), "--timepoints", "3"], capsys)[0] == 0
    code, out, _ = run(["demo", "--out", str(out_dir), "--timepoints", "2"], capsys)
    assert code == 0 and "T: 2  C: 3" in out  # the earlier run's third timepoint is gone
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "preview.png").write_bytes(b"my own picture")
    code, _, err = run(["demo", "--out", str(mine)], capsys)
    assert code == 2 and "not made by 'ndstack demo'" in err
    assert (mine / "preview.png").read_bytes() == b"my own picture"
    assert sorted(p.name for p in mine.iterdir()) == ["preview.png"]


def test_library_deprecations_are_not_shown_to_users(tmp_path: Path, capsys, monkeypatch) -> None:
    import warnings

    from ndstack import cli

    def noisy(args):
        warnings.warn("old pydantic API", DeprecationWarning, stacklevel=1)
        warnings.warn("a real problem with a file", UserWarning, stacklevel=1)
        return 0

    monkeypatch.setitem(cli._COMMANDS, "info", noisy)
    assert cli.main(["info", str(tmp_path)]) == 0
    err = capsys.readouterr().err
    assert "pydantic" not in err and "ndstack: warning: a real problem with a file" in err


def test_info_is_a_dict_that_prints_as_the_report(lls) -> None:
    import json

    import ndstack

    folder, _ = lls
    d = ndstack.info(folder)
    assert isinstance(d, ndstack.Info) and isinstance(d, dict)
    assert d.dims == d["dims"] == ["T", "C", "Z", "Y", "X"]
    assert str(d) == ndstack.format_info(d) and json.loads(json.dumps(d, default=str))["dims"]


def test_info_says_why_an_imagej_calibration_in_pixels_gives_no_size(tmp_path, capsys) -> None:
    folder = tmp_path / "px"
    folder.mkdir()
    for t in range(2):
        tifffile.imwrite(
            folder / f"img_t{t}.tif",
            np.zeros((3, 8, 8), np.uint16),
            imagej=True,
            resolution=(1.0, 1.0),
            metadata={"unit": "pixel", "axes": "ZYX"},
        )
    code, out, _ = run(["info", str(folder)], capsys)
    assert code == 0 and "pixel size: none known: the files' ImageJ calibration is in pixels" in out


def test_a_library_deprecation_stays_hidden_when_the_library_turns_warnings_on(
    lls, capsys, monkeypatch
) -> None:
    """A library that shows its warnings for a while (simplefilter("always") in a
    catch_warnings block) still does not print its deprecations as ndstack's; ndstack's
    own warnings (MissingFilesWarning) are still shown."""
    import warnings

    from ndstack import cli

    folder, _ = lls
    (folder / lls_name(0, 0)).unlink()
    real = cli._COMMANDS["info"]

    def noisy(args):
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            for category in (DeprecationWarning, FutureWarning, PendingDeprecationWarning):
                warnings.warn_explicit(
                    f"old pydantic API ({category.__name__})", category, "pydantic/main.py", 1
                )
        return real(args)

    monkeypatch.setitem(cli._COMMANDS, "info", noisy)
    assert cli.main(["info", str(folder)]) == 0
    err = capsys.readouterr().err
    assert "pydantic" not in err
    assert err.startswith("ndstack: warning: 1 of 12 grid positions") and err.count("\n") == 1


#: ``ndstack view`` in a fresh process, without a window: napari.Viewer hidden and
#: napari.run returning at once, patched when ndstack's view imports napari
_VIEW_HIDDEN = """
import builtins, sys

real_import = builtins.__import__
made = []

def hooked(name, globals=None, locals=None, fromlist=(), level=0):
    module = real_import(name, globals, locals, fromlist, level)
    if name == "napari" and (globals or {}).get("__name__") == "ndstack._napari":
        if not getattr(module, "_hidden_for_test", False):
            class Hidden(module.Viewer):
                def __init__(self, *args, **kwargs):
                    super().__init__(*args, **{**kwargs, "show": False})
                    made.append(self)

            module.Viewer, module.run, module._hidden_for_test = Hidden, lambda: None, True
    return module

builtins.__import__ = hooked
from ndstack.cli import main

code = main(["view", sys.argv[1]])
print("layers:", [layer.name for v in made for layer in v.layers])
for v in made:
    v.close()
sys.exit(code)
"""


def test_ndstack_view_prints_ndstack_warnings_and_no_library_deprecations(lls) -> None:
    """The whole ``ndstack view`` path in a fresh process (napari, npe2 and pydantic
    imported there for the first time), with Python's warnings all on (PYTHONWARNINGS):
    the one missing file is one ndstack warning, and no library's deprecation shows."""
    import os

    pytest.importorskip("napari")
    folder, _ = lls
    (folder / lls_name(0, 0)).unlink()
    env = {**os.environ, "PYTHONWARNINGS": "default"}
    env.setdefault("QT_QPA_PLATFORM", "xcb" if env.get("DISPLAY") else "offscreen")
    proc = subprocess.run(
        [sys.executable, "-c", _VIEW_HIDDEN, str(folder)],
        capture_output=True, text=True, check=False, env=env, timeout=240,
    )  # fmt: skip
    if "layers:" not in proc.stdout:
        pytest.skip(f"napari cannot start here: {proc.stderr[-500:]}")
    assert proc.returncode == 0, proc.stderr
    assert "layers: ['488nm', '560nm', '642nm']" in proc.stdout
    ours = [line for line in proc.stderr.splitlines() if line.startswith("ndstack: warning:")]
    assert len(ours) == 1 and "1 of 12 grid positions" in ours[0], proc.stderr
    for word in ("Deprecat", "pydantic", "FutureWarning"):
        assert word not in proc.stderr, proc.stderr


def _forget_origin(store: Path) -> None:
    """Make ``store`` look written by an ndstack from before provenance was recorded."""
    meta = json.loads((store / "zarr.json").read_text())
    src = meta["attributes"]["ndstack"]["source"]
    meta["attributes"]["ndstack"]["source"] = {k: src[k] for k in ("digest", "files")}
    (store / "zarr.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("recorded", [True, False], ids=["recorded", "older-store"])
def test_info_of_a_processed_store_describes_the_store_not_the_source(
    lls, tmp_path: Path, capsys, recorded: bool
) -> None:
    import ndstack
    from ndstack import ops

    folder, _ = lls
    store = tmp_path / "projected.ome.zarr"
    ndstack.to_zarr(ops.project(ndstack.open(folder), "Z"), store, progress=False)
    if not recorded:
        _forget_origin(store)
    code, out, err = run(["info", str(store)], capsys)
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == f"ndstack store: {store}  (ome-zarr, Zarr v3, zstd level 3, 1 level)"
    steps = "shape 4x3x6x20x24 -> 4x3x20x24" if recorded else "yes"
    assert lines[1] == f"  written from: folder {folder}  (12 files; processed: {steps})"
    assert "T: 4  C: 3  Y: 20  X: 24" in out and "12 files," not in out
    assert "missing 0" not in out  # the store misses nothing: the source's gaps are named so
    code, out, _ = run(["info", str(store), "--json"], capsys)
    d = json.loads(out)
    assert d["kind"] == "store" and d["source"] == str(store) and d["files"] is None
    assert d["store"]["path"] == str(store) and d["store"]["codec"] == "zstd"
    assert d["dims"] == ["T", "C", "Y", "X"] and d["chunks"] == {"T": 1, "C": 1, "Y": 20, "X": 24}
    assert d["provenance"] == {
        "from": f"folder {folder}", "pattern": None, "files": 12, "processed": True,
        "steps": [steps] if recorded else [],
    }  # fmt: skip


def test_info_of_a_store_from_ndstack_process_names_the_steps(lls, tmp_path, capsys) -> None:
    folder, _ = lls
    store = tmp_path / "deskewed.zarr"
    args = ["process", str(folder), str(store), "--deskew", "angle=31.5", "--quiet"]
    assert main(args) == 0
    capsys.readouterr()
    code, out, _ = run(["info", str(store)], capsys)
    assert code == 0 and out.startswith(f"ndstack store: {store}  (")
    assert (
        f"  written from: folder {folder}  (12 files; processed: deskew angle=31.5, "
        "shape 4x3x6x20x24 -> 4x3x6x20x41, dtype uint16 -> float32)"
    ) in out


@pytest.mark.parametrize("recorded", [True, False], ids=["recorded", "older-store"])
def test_info_of_a_store_written_as_read_says_not_processed(
    lls, tmp_path, capsys, recorded
) -> None:
    folder, _ = lls
    store = tmp_path / "as-read.ome.zarr"
    assert main(["convert", str(folder), str(store), "--quiet", "--format", "ome-zarr"]) == 0
    if not recorded:
        _forget_origin(store)
    capsys.readouterr()
    code, out, _ = run(["info", str(store)], capsys)
    assert code == 0
    assert f"  written from: folder {folder}  (12 files; not processed)" in out.splitlines()
    assert "T: 4  C: 3  Z: 6  Y: 20  X: 24" in out


def test_info_of_a_store_of_an_array_made_in_memory(tmp_path, capsys) -> None:
    import dask.array as da
    import xarray as xr

    import ndstack

    arr = xr.DataArray(da.zeros((3, 40, 50), dtype="uint8", chunks=(1, 40, 50)), dims=list("ZYX"))
    ndstack.to_zarr(arr, tmp_path / "mem.zarr", format="zarr", codec="lz4", clevel=5)
    code, out, _ = run(["info", str(tmp_path / "mem.zarr")], capsys)
    assert code == 0
    assert out.splitlines()[:2] == [
        f"ndstack store: {tmp_path / 'mem.zarr'}  (zarr, Zarr v3, lz4 level 5, 1 level)",
        "  written from: an array made in memory (no source files)",
    ]


def test_pixel_size_on_the_command_line(tmp_path, capsys) -> None:
    from .conftest import write_files

    write_files(tmp_path / "src", [f"img_t{t}.tif" for t in range(2)],
                lambda n: np.zeros((3, 8, 8), "u2"))  # fmt: skip
    assert main(["info", str(tmp_path / "src"), "--pixel-size", "Z=0.3,Y=0.1,X=0.1", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["pixel_size"] == {"Z": 0.3, "Y": 0.1, "X": 0.1}
    for bad in ("Z=0", "Z=-1", "Z=x", "Z", "Z=1,Z=2"):
        assert main(["info", str(tmp_path / "src"), "--pixel-size", bad]) == 2
        assert "--pixel-size" in capsys.readouterr().err
    assert main(["info", str(tmp_path / "src"), "--pixel-size", "Q=1"]) == 2
    assert "'Q'" in capsys.readouterr().err
