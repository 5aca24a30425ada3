"""Every operation and `ndstack process` step checks its parameters before any work."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile
import xarray as xr

from ndstack import ops
from ndstack.cli import main
from ndstack.errors import NdstackError, ParameterError


def _arr() -> xr.DataArray:
    def never(block: np.ndarray) -> np.ndarray:
        if block.size:
            raise AssertionError("a parameter check computed something")
        return block

    zeros = da.zeros((2, 4, 6, 8), chunks=(1, 4, 6, 8), dtype="u2")
    data = zeros.map_blocks(never, dtype="u2", meta=np.empty((0, 0, 0, 0), "u2"))
    return xr.DataArray(data, dims=("T", "Z", "Y", "X"))


PSF = np.ones((3, 3, 3), np.float32)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda a: ops.gaussian(a, 0), "sigma: expected a number above 0, got 0"),
        (lambda a: ops.gaussian(a, -1.5), "sigma: expected a number above 0, got -1.5"),
        (lambda a: ops.gaussian(a, (1.0, 0.0)), "sigma: expected a number above 0, got 0.0"),
        (lambda a: ops.gaussian(a, float("nan")), "sigma: expected a number above 0"),
        (lambda a: ops.gaussian(a, 1, dims=("Q", "X")), "dims: no dim 'Q' in the array"),
        (lambda a: ops.median(a, 0), "size: expected a whole number from 1, got 0"),
        (lambda a: ops.median(a, -3), "size: expected a whole number from 1, got -3"),
        (lambda a: ops.median(a, 2.5), "size: expected a whole number from 1, got 2.5"),
        (
            lambda a: ops.subtract_background(a, percentile=150),
            "percentile: expected a number from 0 to 100, got 150",
        ),
        (
            lambda a: ops.subtract_background(a, percentile=-1),
            "percentile: expected a number from 0 to 100, got -1",
        ),
        (
            lambda a: ops.deconvolve(a, PSF, iterations=0),
            "iterations: expected a whole number from 1, got 0",
        ),
        (
            lambda a: ops.deconvolve(a, PSF, iterations=-2),
            "iterations: expected a whole number from 1, got -2",
        ),
        (
            lambda a: ops.deconvolve(a, PSF, background=-1.0),
            "background: expected a number from 0",
        ),
        (lambda a: ops.recenter(a, (0, 4)), "size: expected a whole number from 1, got 0"),
        (lambda a: ops.recenter(a, (4, -1)), "size: expected a whole number from 1, got -1"),
        (lambda a: ops.crop(a, Y=(4, 1)), "crop Y=4:1 selects nothing of 6"),
        (lambda a: ops.crop(a, Y=(10, 20)), "crop Y=10:20 selects nothing of 6"),
        (lambda a: ops.project(a, "Q"), "dim: no dim 'Q' in the array; its dims are T, Z, Y, X"),
        (lambda a: ops.project(a, "Z", how="median"), "how: expected one of 'max', 'mean', 'sum'"),
        (lambda a: ops.power_spectrum(a, "Q"), "dim: no dim 'Q' in the array"),
    ],
)
def test_operations_refuse_bad_parameters_at_the_call(call, message: str) -> None:
    with pytest.raises(ParameterError, match=message.replace("(", r"\(")) as err:
        call(_arr())
    assert isinstance(err.value, ValueError) and "\n" not in str(err.value)


def test_good_parameters_still_build_the_same_graphs() -> None:
    arr = _arr()
    assert ops.crop(arr, Y=(1, 4), X=slice(-3, None)).shape == (2, 4, 3, 3)
    assert ops.project(arr, "Z", how="mean").dims == ("T", "Y", "X")
    assert ops.gaussian(arr, (1.0, 0.5)).shape == arr.shape
    assert ops.median(arr, 1, dims=("Z", "Y", "X")).shape == arr.shape
    assert ops.recenter(arr, (4, 4)).shape == (2, 4, 4, 4)
    assert ops.subtract_background(arr, percentile=0).dims == arr.dims


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "src"
    folder.mkdir()
    for t in range(2):
        tifffile.imwrite(
            folder / f"img_t{t}.tif", np.ones((4, 6, 8), "u2"), photometric="minisblack"
        )
    return folder


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (["--crop", "Y=400:100"], "step crop: Y=400:100: selects nothing (start must be below"),
        (["--crop", "Y=4"], "step crop: Y='4' is not a range a:b"),
        (["--project", "how=median"], "step project: how='median': expected one of 'max'"),
        (["--gaussian", "sigma=0"], "step gaussian: sigma='0': expected a number above 0"),
        (["--gaussian", "sigma=-2"], "step gaussian: sigma='-2': expected a number above 0"),
        (["--gaussian", "dims=Y-X"], "step gaussian: dims='Y-X': 'Y-X': expected dim letters"),
        (["--median", "size=0"], "step median: size='0': expected a whole number from 1"),
        (["--background", "percentile=101"], "percentile='101': expected a number from 0 to 100"),
        (["--background", "percentile=-5"], "percentile='-5': expected a number from 0 to 100"),
        (["--deconvolve", "iterations=0,psf=x.tif"], "iterations='0': expected a whole number"),
        (["--deconvolve", "iterations=-3,psf=x.tif"], "iterations='-3': expected a whole number"),
        (["--recenter", "size=0x4"], "step recenter: size='0x4': size height: expected a whole"),
        (["--deskew", "angle=95"], "angle='95': expected a number strictly between 0 and 90"),
        (["--deskew", "angle=nan"], "angle='nan': expected a number strictly between 0 and 90"),
        (["--deskew", "dz=0"], "step deskew: dz='0': expected a number above 0"),
        (["--deskew", "direction=2"], "step deskew: direction='2': expected one of 1, -1"),
        (["--gaussian", "sigma=1,sigma=2"], "step gaussian: sigma given twice"),
    ],
)  # fmt: skip
def test_process_refuses_bad_step_values_before_opening(
    tmp_path: Path, capsys, step, message: str
) -> None:
    """The source does not exist: the step's value is what the error is about."""
    dest = tmp_path / "x.zarr"
    code = main(["process", str(tmp_path / "nothing"), str(dest), *step])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not dest.exists()


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (["--crop", "Y=10:20"], "step crop: crop Y=10:20 selects nothing of 6"),
        (["--project", "dim=Q"], "step project: dim: no dim 'Q' in the array"),
        (["--gaussian", "dims=QX"], "step gaussian: dims: no dim 'Q' in the array"),
        (["--power-spectrum", "dim=Q"], "step power_spectrum: dim: no dim 'Q'"),
        (["--median", "dims=ZQ"], "step median: dims: no dim 'Q' in the array"),
    ],
)
def test_process_refuses_what_needs_the_array_before_writing(
    source: Path, tmp_path: Path, capsys, step, message: str
) -> None:
    dest = tmp_path / "x.zarr"
    code = main(["process", str(source), str(dest), "--quiet", *step])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1, err
    assert not dest.exists()


def test_steps_take_the_defaults_they_list(source: Path, tmp_path: Path, capsys) -> None:
    """--gaussian dims=ZYX (sigma 1.0), --median, --project: a TypeError traceback before."""
    import ndstack

    dest = tmp_path / "x.zarr"
    steps = ["--gaussian", "dims=ZYX", "--median", "--project", "--quiet"]
    assert main(["process", str(source), str(dest), *steps]) == 0, capsys.readouterr().err
    arr = ndstack.open(source)
    expected = ops.project(ops.median(ops.gaussian(arr, 1.0, dims="ZYX"), 3), "Z")
    xr.testing.assert_allclose(ndstack.open(dest).compute(), expected.compute())


def test_unknown_step_is_a_parameter_error() -> None:
    from ndstack._steps import parse_params

    with pytest.raises(ParameterError, match="unknown step 'blur'"):
        parse_params("blur", "")
    assert issubclass(ParameterError, NdstackError)


def test_filters_take_arrays_in_memory_and_check_their_sigmas() -> None:
    import numpy as np
    import xarray as xr
    from scipy import ndimage

    from ndstack import ops
    from ndstack.errors import ParameterError

    data = np.random.default_rng(0).random((3, 20, 24)).astype(np.float32)
    arr = xr.DataArray(data, dims=("Z", "Y", "X"))  # NumPy-backed, not Dask
    got = ops.gaussian(arr, 1.5, device="cpu").values
    ref = np.stack([ndimage.gaussian_filter(p, 1.5) for p in data])
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(
        ops.median(arr, 3, device="cpu").values,
        np.stack([ndimage.median_filter(p, size=3) for p in data]),
    )
    with pytest.raises(ParameterError, match="3 values for 2 dims"):
        ops.gaussian(arr, (1, 2, 3), dims=("Y", "X"))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda a: ops.flatfield(a, xr.DataArray(np.ones((2, 8)), dims=("Q", "X"))),
            "flat: no dim 'Q' in the array; its dims are T, Z, Y, X",
        ),
        (
            lambda a: ops.flatfield(a, xr.DataArray(np.ones((5, 8)), dims=("Y", "X"))),
            "flat: its sizes Y=5 differ from the array's (Y=6)",
        ),
        (
            lambda a: ops.flatfield(a, np.ones((5, 8))),
            "flat: an array of shape (5, 8) does not broadcast against the last dims",
        ),
        (
            lambda a: ops.flatfield(a, np.ones((6, 8)), dark=xr.DataArray([0.0], dims=("C",))),
            "dark: no dim 'C' in the array; its dims are T, Z, Y, X",
        ),
        (
            lambda a: ops.flatfield(a, np.ones((6, 8)), dark=np.ones((6, 8))),
            "flat - dark must be positive everywhere",
        ),
        (
            lambda a: ops.deskew(a.isel(Z=0), dz=0.4, dx=0.1),
            "deskew: no dim 'Z' in the array; its dims are T, Y, X",
        ),
        (
            lambda a: ops.deconvolve(a.rename(X="Q"), PSF),
            "deconvolve: no dim 'X' in the array; its dims are T, Z, Y, Q",
        ),
        (
            lambda a: ops.apply(np.abs, a, core_dims=("Y", "Q")),
            "core_dims: no dim 'Q' in the array; its dims are T, Z, Y, X",
        ),
        (
            lambda a: ops.crop(a, Q=(0, 1)),
            "cannot crop unknown dims 'Q'; the array's dims are T, Z, Y, X",
        ),
        (
            lambda a: ops.median(a, 3, dims=("Y", "Q")),
            "dims: no dim 'Q' in the array; its dims are T, Z, Y, X",
        ),
        (lambda a: ops.gaussian(a, 1.0, dims=("Y", "Y")), "dims: dim 'Y' given twice"),
        (
            lambda a: ops.gaussian(a, [1, 2, 3], dims=("Y", "X")),
            "sigma: 3 values for 2 dims ('Y', 'X')",
        ),
        (
            lambda a: ops.subtract_background(a, 1.0, dims=("Q",)),
            "dims: no dim 'Q' in the array; its dims are T, Z, Y, X",
        ),
        (
            lambda a: ops.recenter(a.isel(X=0), (2, 2)),
            "recenter: no dim 'X' in the array; its dims are T, Z, Y",
        ),
    ],
)
def test_dims_and_shapes_are_checked_by_name_at_the_call(call, message: str) -> None:
    """A ParameterError that names the dim and the array's dims, before any computing."""
    import re

    with pytest.raises(ParameterError, match=re.escape(message)) as err:
        call(_arr())
    assert "\n" not in str(err.value)
