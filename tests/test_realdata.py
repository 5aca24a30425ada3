"""Real microscopy data from packages on the package index (shared/BASELINES.md).

The wheels are downloaded (not installed) into a temporary folder; without network
access to the index these tests are skipped, saying why.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import tifffile
from scipy import ndimage

import ndstack
from ndstack import ops

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheels")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(folder),
         "lls-core==2.2.3", "flowdec==1.1.0"],
        capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        pytest.skip(
            f"cannot fetch the sample-data wheels from the package index: {proc.stderr[-300:]}"
        )
    return folder


def member(wheels: Path, name: str, dest: Path) -> Path:
    for whl in wheels.glob("*.whl"):
        with zipfile.ZipFile(whl) as z:
            if name in z.namelist():
                target = dest / Path(name).name
                target.write_bytes(z.read(name))
                return target
    pytest.skip(f"{name} is not in the downloaded wheels")


def test_real_lattice_stack_deskews_to_the_expected_geometry(wheels: Path, tmp_path: Path) -> None:
    path = member(wheels, "lls_core/sample/RBC_lattice.tif", tmp_path)
    arr = ndstack.open(path)
    assert arr.dims == ("Z", "Y", "X") and arr.shape == (150, 118, 209)
    out = ops.deskew(arr, angle=30, dz=0.3, dx=0.145)
    shift = 0.3 * np.cos(np.radians(30)) / 0.145
    assert out.shape == (150, 118, 209 + int(np.ceil(149 * shift)))
    assert out.attrs["pixel_size"]["Z"] == pytest.approx(0.15)
    data = tifffile.imread(path).astype(np.float32)
    m = np.eye(3)
    m[2, 0] = -shift
    ref = ndimage.affine_transform(data, m, output_shape=out.shape, order=1, mode="grid-constant")
    np.testing.assert_allclose(out.values, ref, rtol=1e-5, atol=1e-2)
    # the cell, spread along X across the skewed stack, is compact once deskewed
    assert np.count_nonzero(out.values.max(axis=0) > data.mean() * 3) > 0


def test_flowdec_bars_get_closer_to_the_ground_truth(wheels: Path, tmp_path: Path) -> None:
    data = tifffile.imread(member(wheels, "flowdec/datasets/bars-25pct/data.tif", tmp_path))
    kernel = tifffile.imread(member(wheels, "flowdec/datasets/bars-25pct/kernel.tif", tmp_path))
    truth = tifffile.imread(member(wheels, "flowdec/datasets/bars-25pct/actual.tif", tmp_path))
    import dask.array as da
    import xarray as xr
    from skimage.restoration import richardson_lucy

    arr = xr.DataArray(da.from_array(data.astype(np.float32)), dims=("Z", "Y", "X"))
    out = ops.deconvolve(arr, kernel, iterations=25).values
    ref = richardson_lucy(
        data.astype(np.float32), kernel.astype(np.float32), num_iter=25, clip=False
    )
    assert np.linalg.norm(out - ref) / np.linalg.norm(ref) < 1e-3

    def err(x: np.ndarray) -> float:
        x = x / x.sum()
        t = truth / truth.sum()
        return float(np.linalg.norm(x - t) / np.linalg.norm(t))

    # 25% noise: Richardson-Lucy gains a few percent here (scikit-image: the same)
    assert err(out) < 0.97 * err(data)
