"""ndstack.ops.kernels: the block-level functions, on NumPy arrays, against SciPy oracles."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from ndstack import ops
from ndstack.ops import kernels

from .test_ops import psf3d


def test_kernels_are_the_same_objects_as_before() -> None:
    import ndstack.ops.kernels as by_path

    assert ops.kernels is kernels is by_path
    for name in ("deskew_block", "richardson_lucy", "centroid"):
        assert getattr(ops, name) is getattr(kernels, name)  # still importable from ops
        assert name in ops.__all__
    assert set(kernels.__all__) == {
        "centroid",
        "deskew_block",
        "deskew_shift",
        "recenter_plane",
        "richardson_lucy",
        "richardson_lucy_tiled",
        "worthwhile_tile",
    }
    doc = ops.__doc__ or ""
    assert "DataArray operations" in doc and "ndstack.ops.kernels" in doc


def test_deskew_block_equals_affine_transform() -> None:
    rng = np.random.default_rng(20)
    stack = rng.random((6, 5, 9)).astype(np.float32)
    shift = kernels.deskew_shift(31.5, 0.4, 0.104)
    out = kernels.deskew_block(stack, shift)
    width = 9 + int(np.ceil(shift * 5))
    assert out.shape == (6, 5, width) and out.dtype == np.float32
    m = np.eye(3)
    m[2, 0] = -shift
    ref = ndimage.affine_transform(stack, m, output_shape=out.shape, order=1, mode="grid-constant")
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_richardson_lucy_kernels_equal_skimage() -> None:
    from skimage.restoration import richardson_lucy

    rng = np.random.default_rng(21)
    image = rng.uniform(0.5, 2, (12, 60, 54)).astype(np.float32)
    psf = psf3d(1.2, 1.0, r=2)
    ref = richardson_lucy(image, psf, num_iter=4, clip=False)
    got = kernels.richardson_lucy(image, psf, 4, workers=1)
    assert type(got) is np.ndarray and got.dtype == np.float32 and got.shape == image.shape
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    # Y in 3 tiles (windows of 50 of 60); X whole (its windows would be 48 of 54)
    assert kernels.worthwhile_tile(image.shape, (12, 20, 18), (15, 15, 15)) == (12, 20, 54)
    tiled = kernels.richardson_lucy_tiled(image, psf, 4, tile=(12, 20, 18), workers=1)
    assert np.linalg.norm(tiled - got) / np.linalg.norm(got) < 1e-5


def test_centroid_and_recenter_plane_on_arrays() -> None:
    rng = np.random.default_rng(22)
    plane = rng.random((15, 21))
    assert kernels.centroid(plane) == pytest.approx(ndimage.center_of_mass(plane))
    assert kernels.centroid(np.zeros((5, 8))) == (2.0, 3.5)  # no intensity: the centre
    spot = np.zeros((30, 40), np.uint16)
    spot[20:23, 5:8] = 7
    window = kernels.recenter_plane(spot, (5, 9))
    assert window.shape == (5, 9) and window.dtype == np.uint16
    assert window[2, 4] == 7 and window.sum() == 63  # the spot in the middle
    with pytest.raises(ValueError, match="larger than the plane"):
        kernels.recenter_plane(spot, (31, 4))
