"""ndstack.ops against NumPy / SciPy / scikit-image oracles, on multi-chunk arrays."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from scipy import ndimage

from ndstack import ops
from ndstack.errors import ParameterError


def lazy(data: np.ndarray, dims: tuple[str, ...], chunks: tuple[int, ...], **attrs) -> xr.DataArray:
    return xr.DataArray(da.from_array(data, chunks=chunks), dims=dims, attrs=attrs)


def psf3d(sz: float, sxy: float, r: int = 4) -> np.ndarray:
    z, y, x = np.mgrid[-r : r + 1, -r : r + 1, -r : r + 1]
    p = np.exp(-(x**2 + y**2) / (2 * sxy**2) - z**2 / (2 * sz**2)).astype(np.float32)
    return p / p.sum()


def test_apply_over_core_dims_with_per_channel_arguments() -> None:
    rng = np.random.default_rng(0)
    data = rng.random((3, 2, 4, 6, 5)).astype(np.float32)
    arr = lazy(data, ("T", "C", "Z", "Y", "X"), (1, 1, 4, 6, 5))
    seen = []

    def scale(block: np.ndarray, factor: float) -> np.ndarray:
        seen.append(block.shape)
        return block * factor

    factor = xr.DataArray([10.0, 100.0], dims=("C",))
    out = ops.apply(scale, arr, factor)
    assert out.dims == arr.dims and isinstance(out.data, da.Array)
    np.testing.assert_allclose(
        out.values, data * np.array([10, 100])[None, :, None, None, None], rtol=1e-6
    )
    assert set(seen) == {(4, 6, 5)}  # the function only ever sees its core dims


def test_apply_with_a_function_that_changes_core_sizes() -> None:
    data = np.arange(2 * 5 * 8, dtype=np.uint16).reshape(2, 5, 8)
    arr = lazy(data, ("T", "Y", "X"), (1, 5, 8))
    out = ops.apply(lambda b: b[1:-1, ::2], arr, core_dims=("Y", "X"))
    assert out.sizes == {"T": 2, "Y": 3, "X": 4}
    np.testing.assert_array_equal(out.values, data[:, 1:-1, ::2])


def test_apply_merges_split_core_dims_with_a_warning() -> None:
    arr = lazy(np.ones((2, 8, 8), np.float32), ("T", "Y", "X"), (1, 4, 4))
    with pytest.warns(UserWarning, match="split over several chunks"):
        out = ops.apply(lambda b: b.sum(keepdims=True) * np.ones_like(b), arr, core_dims=("Y", "X"))
    assert (out.values == 64).all()


@pytest.mark.parametrize("direction", [1, -1])
def test_deskew_matches_affine_transform(direction: int) -> None:
    rng = np.random.default_rng(1)
    data = rng.integers(0, 4000, size=(2, 12, 10, 16), dtype=np.uint16)
    arr = lazy(
        data, ("T", "Z", "Y", "X"), (1, 12, 10, 16), pixel_size={"Z": 0.4, "Y": 0.104, "X": 0.104}
    )
    out = ops.deskew(arr, angle=31.5, direction=direction)
    shift = 0.4 * np.cos(np.radians(31.5)) / 0.104
    width = 16 + int(np.ceil(shift * 11))
    assert out.sizes == {"T": 2, "Z": 12, "Y": 10, "X": width} and out.dtype == np.float32
    m = np.eye(3)
    m[2, 0] = -shift if direction > 0 else shift
    offset = [0, 0, 0 if direction > 0 else -shift * 11]
    for t in range(2):
        ref = ndimage.affine_transform(
            data[t].astype(np.float32),
            m,
            offset=offset,
            output_shape=(12, 10, width),
            order=1,
            mode="grid-constant",
        )
        np.testing.assert_allclose(out.isel(T=t).values, ref, atol=1e-3, rtol=1e-5)
    assert out.attrs["pixel_size"]["Z"] == pytest.approx(0.4 * np.sin(np.radians(31.5)))
    assert out.attrs["deskew"]["angle"] == 31.5


@pytest.mark.parametrize("angle", [0, 90, -5])
def test_deskew_rejects_impossible_angles(angle: float) -> None:
    arr = lazy(np.zeros((4, 4, 4), np.uint16), ("Z", "Y", "X"), (4, 4, 4))
    with pytest.raises(ValueError, match="strictly between 0 and 90"):
        ops.deskew(arr, angle=angle, dz=0.4, dx=0.1)


def test_deconvolve_agrees_with_skimage_per_channel_psf() -> None:
    from skimage.restoration import richardson_lucy

    rng = np.random.default_rng(2)
    truth = np.zeros((2, 24, 32, 32), np.float32)
    truth[:, 8:16, 10:20, 12:22] = 1
    psfs = np.stack([psf3d(1.5, 1.0), psf3d(2.5, 1.5)])
    blurred = np.stack([ndimage.convolve(truth[c], psfs[c], mode="constant") for c in range(2)])
    blurred += rng.normal(0, 0.01, blurred.shape).astype(np.float32)
    blurred = np.clip(blurred, 0, None)
    arr = lazy(blurred, ("C", "Z", "Y", "X"), (1, 24, 32, 32))
    # the PSFs stored X-first: they still reach the kernel as (Z, Y, X)
    psf_da = xr.DataArray(psfs, dims=("C", "Z", "Y", "X")).transpose("C", "X", "Y", "Z")
    out = ops.deconvolve(arr, psf_da, iterations=8)
    inner = (slice(4, -4),) * 3
    for c in range(2):
        ref = richardson_lucy(blurred[c], psfs[c], num_iter=8, clip=False)
        got = out.isel(C=c).values
        err = np.linalg.norm(got[inner] - ref[inner]) / np.linalg.norm(ref[inner])
        assert err < 1e-3
        # and it deblurs: closer to the truth than the input
        assert np.abs(got - truth[c]).mean() < np.abs(blurred[c] - truth[c]).mean()


@pytest.mark.parametrize(
    ("psf", "message"),
    [
        (np.ones((3, 3)), "the PSF has 2 dims"),
        (np.full((3, 3, 3), np.nan), "finite"),
        (xr.DataArray(np.ones((3, 3, 3, 3)), dims=("C", "Z", "Y", "X")), "3 PSFs for 2 channels"),
    ],
)
def test_deconvolve_rejects_bad_psfs_before_computing(psf, message) -> None:
    arr = lazy(np.ones((2, 8, 8, 8), np.float32), ("C", "Z", "Y", "X"), (1, 8, 8, 8))
    with pytest.raises(ValueError, match=message):
        ops.deconvolve(arr, psf)


def test_gaussian_and_median_equal_scipy_across_chunks() -> None:
    rng = np.random.default_rng(3)
    data = rng.random((2, 40, 52)).astype(np.float32)
    arr = lazy(data, ("T", "Y", "X"), (1, 13, 17))
    g = ops.gaussian(arr, 2.0)
    ref = np.stack([ndimage.gaussian_filter(data[t], 2.0) for t in range(2)])
    np.testing.assert_allclose(g.values, ref, rtol=1e-5, atol=1e-6)
    m = ops.median(arr, 5)
    ref = np.stack([ndimage.median_filter(data[t], size=5) for t in range(2)])
    np.testing.assert_array_equal(m.values, ref)


def test_power_spectrum_equals_numpy_fft() -> None:
    rng = np.random.default_rng(4)
    data = rng.random((32, 6, 7)).astype(np.float32)
    arr = lazy(data, ("T", "Y", "X"), (8, 3, 7))
    ps = ops.power_spectrum(arr, "T")
    assert ps.dims == ("Y", "X", "freq") and ps.dtype == np.float32
    ref = np.abs(np.fft.rfft(data, axis=0)) ** 2
    # float32 FFTs (on a GPU too, under device="auto"): the smallest bins' error is absolute
    atol = 1e-6 * ref.max()
    np.testing.assert_allclose(ps.transpose("freq", "Y", "X").values, ref, rtol=1e-4, atol=atol)
    np.testing.assert_allclose(ps.freq.values, np.fft.rfftfreq(32))


def test_crop_project_background_flatfield() -> None:
    rng = np.random.default_rng(5)
    data = rng.integers(100, 1000, size=(3, 4, 10, 12)).astype(np.uint16)
    arr = lazy(data, ("T", "Z", "Y", "X"), (1, 4, 5, 6))
    np.testing.assert_array_equal(
        ops.crop(arr, Y=(2, 8), X=slice(1, 5)).values, data[:, :, 2:8, 1:5]
    )
    np.testing.assert_array_equal(ops.project(arr, "Z", how="max").values, data.max(axis=1))
    np.testing.assert_allclose(ops.project(arr, "Z", how="mean").values, data.mean(axis=1))
    bg = ops.subtract_background(arr, 300).values
    np.testing.assert_array_equal(bg, np.clip(data.astype(np.float32) - 300, 0, None))
    p = ops.subtract_background(arr, percentile=10).values
    ref = np.clip(data - np.percentile(data, 10, axis=(2, 3), keepdims=True), 0, None)
    np.testing.assert_allclose(p, ref, rtol=1e-5)
    flat = rng.uniform(0.5, 1.5, size=(10, 12)).astype(np.float32)
    ff = ops.flatfield(arr, flat).values
    np.testing.assert_allclose(ff, data / flat * flat.mean(), rtol=1e-5)
    with pytest.raises(ValueError, match="unknown dims"):
        ops.crop(arr, Q=(0, 1))


def test_recenter_follows_a_drifting_spot_and_clamps_at_borders() -> None:
    from scipy.ndimage import center_of_mass

    data = np.zeros((4, 40, 50), np.uint16)
    spots = [(10, 12), (20, 25), (30, 40), (38, 48)]  # the last one sits at the corner
    for t, (y, x) in enumerate(spots):
        data[t, y - 1 : y + 2, x - 1 : x + 2] = 100
    arr = lazy(data, ("T", "Y", "X"), (1, 40, 50))
    for t in range(4):
        assert ops.centroid(data[t]) == pytest.approx(center_of_mass(data[t]))
    out = ops.recenter(arr, (9, 11)).values
    assert out.shape == (4, 9, 11)
    for t in range(3):
        assert out[t, 4, 5] == 100 and out[t].sum() == 900  # the spot sits in the middle
    y0, x0 = 40 - 9, 50 - 11  # clamped at the bottom-right border
    np.testing.assert_array_equal(out[3], data[3, y0:, x0:])
    with pytest.raises(ValueError, match="larger than the plane"):
        ops.recenter(arr, (41, 5))


def test_tiled_deconvolution_matches_the_whole_block() -> None:
    rng = np.random.default_rng(6)
    data = np.clip(rng.normal(1, 0.3, (2, 16, 160, 128)), 0, None).astype(np.float32)
    arr = lazy(data, ("T", "Z", "Y", "X"), (1, 16, 160, 128))
    psf = psf3d(1.5, 1.0, r=3)
    whole = ops.deconvolve(arr, psf, iterations=6, device="cpu").values
    tiled = ops.deconvolve(arr, psf, iterations=6, device="cpu", tile=(16, 40, 40)).values
    assert np.linalg.norm(tiled - whole) / np.linalg.norm(whole) < 1e-5


def test_a_psf_larger_than_the_block_gives_what_skimage_gives() -> None:
    from skimage.restoration import richardson_lucy

    rng = np.random.default_rng(12)
    data = rng.uniform(0.2, 1.5, (2, 10, 12, 30)).astype(np.float32)  # a crop ...
    zz, yy, xx = np.mgrid[-8:9, -10:11, -10:11]
    psf = np.exp(-(xx**2 + yy**2) / 18 - zz**2 / 30).astype(np.float32)  # ... a bead PSF
    assert psf.shape == (17, 21, 21)  # larger than the block along every axis
    arr = lazy(data, ("T", "Z", "Y", "X"), (1, 10, 12, 30))
    out = ops.deconvolve(arr, psf, iterations=5, device="cpu").values
    for t in range(2):
        ref = richardson_lucy(data[t], psf / psf.sum(), num_iter=5, clip=False)
        assert np.linalg.norm(out[t] - ref) / np.linalg.norm(ref) < 1e-5


def test_gpu_request_without_a_gpu_is_a_clear_error() -> None:
    from ndstack.ops._xp import gpu_available

    arr = lazy(np.ones((8, 8, 8), np.float32), ("Z", "Y", "X"), (8, 8, 8))
    if gpu_available():
        pytest.skip("a GPU is present: the GPU path runs instead")
    with pytest.raises(ValueError, match="needs CuPy and a CUDA GPU"):
        ops.deconvolve(arr, psf3d(1, 1, r=1), device="gpu")


# --- the public API: keyword-only options, kwargs=, flat fields by dim name, docs ---------


def test_options_after_the_first_argument_are_keyword_only_with_a_deprecation() -> None:
    import inspect

    rng = np.random.default_rng(11)
    data = rng.integers(100, 1000, size=(2, 3, 8, 10)).astype(np.uint16)
    arr = lazy(data, ("T", "Z", "Y", "X"), (1, 2, 8, 10))
    with pytest.warns(DeprecationWarning, match="project: passing how positionally") as rec:
        old = ops.project(arr, "Z", "mean")
    assert "how=" in str(rec[0].message) and rec[0].filename == __file__  # the caller's line
    np.testing.assert_allclose(old.values, data.mean(axis=1))
    xr.testing.assert_identical(old, ops.project(arr, "Z", how="mean"))

    flat = rng.uniform(0.5, 1.5, (8, 10)).astype(np.float32)
    dark = rng.uniform(0, 0.2, (8, 10)).astype(np.float32)
    with pytest.warns(DeprecationWarning, match="flatfield: passing dark positionally"):
        old = ops.flatfield(arr, flat, dark)
    gain = flat - dark
    np.testing.assert_allclose(old.values, (data - dark) / gain * gain.mean(), rtol=1e-5)
    xr.testing.assert_identical(old, ops.flatfield(arr, flat, dark=dark))

    # the first argument stays positional, without a warning (warnings are errors here)
    ops.project(arr, "Z")
    ops.flatfield(arr, flat)
    ops.recenter(arr, (4, 4))
    ops.power_spectrum(arr, "T")
    for func, name in [(ops.project, "how"), (ops.flatfield, "dark")]:
        assert inspect.signature(func).parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
    with pytest.raises(TypeError, match="positional arguments"):
        ops.project(arr, "Z", "max", "sum")
    with pytest.raises(TypeError, match="multiple values for 'how'"):
        ops.project(arr, "Z", "max", how="sum")


def test_apply_takes_the_functions_keywords_in_kwargs() -> None:
    """Keywords named like apply's own options reach the function through kwargs=."""
    rng = np.random.default_rng(12)
    data = rng.random((2, 3, 6, 8)).astype(np.float32)
    arr = lazy(data, ("T", "C", "Y", "X"), (1, 2, 6, 8))
    offset = xr.DataArray(np.array([1.0, 10.0, 100.0]), dims=("C",))  # one per channel

    def scale(block, *, dtype, core_dims, kwargs, offset):
        return block.astype(dtype) * core_dims + kwargs + offset

    out = ops.apply(
        scale,
        arr,
        core_dims=("Y", "X"),
        kwargs={"dtype": np.float64, "core_dims": 2.0, "kwargs": 0.5, "offset": offset},
    )
    assert out.dims == arr.dims and out.dtype == np.float64
    ref = data.astype(np.float64) * 2 + 0.5 + np.array([1, 10, 100])[None, :, None, None]
    np.testing.assert_allclose(out.values, ref)

    def shift(block, *, by):
        return block + by

    with pytest.warns(DeprecationWarning, match=r"apply: .*\(by\).* deprecated; use kwargs="):
        old = ops.apply(shift, arr, core_dims=("Y", "X"), by=offset)
    xr.testing.assert_identical(
        old, ops.apply(shift, arr, core_dims=("Y", "X"), kwargs={"by": offset})
    )
    with pytest.raises(TypeError, match="'by' given both"):
        ops.apply(shift, arr, core_dims=("Y", "X"), kwargs={"by": 1}, by=2)


def test_apply_keeps_positional_and_keyword_array_arguments_apart() -> None:
    """The 101st positional DataArray and the first keyword one: each its own core dims."""
    data = np.arange(2 * 4 * 5, dtype=np.float32).reshape(2, 4, 5)
    arr = lazy(data, ("T", "Y", "X"), (1, 4, 5))
    ones = [xr.DataArray(np.ones(1, np.float32), dims=("X",))] * 101
    weights = xr.DataArray(np.arange(5, dtype=np.float32), dims=("X",))

    def weigh(block, *rest, weights):
        assert len(rest) == 101 and all(r.shape == (1,) for r in rest)
        return block * weights

    out = ops.apply(weigh, arr, *ones, core_dims=("Y", "X"), kwargs={"weights": weights})
    np.testing.assert_array_equal(out.values, data * np.arange(5))


def test_flatfield_broadcasts_dataarrays_by_dim_name() -> None:
    rng = np.random.default_rng(13)
    data = rng.integers(100, 1000, size=(2, 2, 3, 8, 10)).astype(np.uint16)
    arr = lazy(data, ("T", "C", "Z", "Y", "X"), (1, 1, 2, 4, 5), units="counts")
    arr = arr.assign_coords(C=["488", "561"]).rename("cells")
    flat = rng.uniform(0.5, 1.5, (2, 8, 10)).astype(np.float32)  # one per channel
    dark = np.array([0.1, 0.2], np.float32)
    flat_da = xr.DataArray(flat, dims=("C", "Y", "X")).transpose("X", "C", "Y")  # any order
    out = ops.flatfield(arr, flat_da, dark=xr.DataArray(dark, dims=("C",)))
    gain = flat - dark[:, None, None]
    ref = (data - dark[:, None, None, None]) / gain[:, None] * gain.mean()
    assert out.dims == arr.dims and out.dtype == np.float32 and isinstance(out.data, da.Array)
    assert out.name == "cells" and out.attrs == {"units": "counts"}
    assert list(out.C.values) == ["488", "561"]
    np.testing.assert_allclose(out.values, ref, rtol=1e-5)

    # bare arrays broadcast against the last dims, as before, length-1 axes too
    column = flat[0, :, :1]
    out = ops.flatfield(arr, column, dark=0.1)
    np.testing.assert_allclose(out.values, (data - 0.1) / (column - 0.1) * (column - 0.1).mean(),
                               rtol=1e-5)  # fmt: skip

    elsewhere = xr.DataArray(flat, dims=("C", "Y", "X"), coords={"C": ["488", "640"]})
    with pytest.raises(ParameterError, match="coords differ"):
        ops.flatfield(arr, elsewhere)  # not silently cut to the channel both have


def test_every_public_function_documents_its_parameters_and_result() -> None:
    import inspect
    import re

    from ndstack.ops import kernels

    funcs = {n: getattr(ops, n) for n in ops.__all__ if callable(getattr(ops, n))}
    funcs |= {n: getattr(kernels, n) for n in kernels.__all__}
    assert {"apply", "deskew", "flatfield", "richardson_lucy_tiled", "recenter_plane"} <= set(funcs)
    for name, func in funcs.items():
        doc = inspect.getdoc(func) or ""
        assert "\nParameters\n----------\n" in doc and "\nReturns\n-------\n" in doc, name
        section = doc.split("\nParameters\n----------\n")[1].split("\nReturns\n")[0]
        documented = set()
        for line in section.splitlines():
            if line and not line.startswith(" "):
                names = line.split(" : ")[0]
                documented |= {n.strip().lstrip("*") for n in names.split(",")}
        wanted = set(inspect.signature(func).parameters)
        assert wanted <= documented, (name, wanted - documented)
    assert re.search(r"then ``freq`` last", inspect.getdoc(ops.power_spectrum) or "")


class _Block(np.ndarray):
    """A NumPy array that says it is CuPy's (what the dispatch looks at)."""


_Block.__module__ = "cupy"


@pytest.mark.parametrize("op", ["gaussian", "median"])
def test_filters_use_the_ndimage_of_the_blocks_module(monkeypatch, op: str) -> None:
    """On a CuPy block, cupyx.scipy.ndimage (SciPy stands in, spied on), never scipy's."""
    import types

    from ndstack.ops import _xp

    calls = []

    def spy(name):
        def run(block, *args, **kwargs):
            calls.append((name, type(block)))
            return getattr(ndimage, name)(np.asarray(block), *args, **kwargs).view(_Block)

        return run

    cp = types.ModuleType("cupy")
    cp.__getattr__ = lambda name: getattr(np, name)  # type: ignore[attr-defined]
    cp.asarray = lambda a: np.array(a).view(_Block)  # type: ignore[attr-defined]
    cp.asnumpy = lambda a: np.array(a).view(np.ndarray)  # type: ignore[attr-defined]
    cupyx_ndimage = types.SimpleNamespace(gaussian_filter=spy("gaussian_filter"),
                                          median_filter=spy("median_filter"))  # fmt: skip
    monkeypatch.setattr(_xp, "cupy_module", lambda: cp)
    monkeypatch.setattr(_xp, "cupyx_module", lambda name: cupyx_ndimage)
    monkeypatch.setattr(_xp, "gpu_available", lambda: True)
    rng = np.random.default_rng(14)
    data = rng.random((2, 20, 22)).astype(np.float32)
    arr = lazy(data, ("T", "Y", "X"), (1, 10, 11))
    if op == "gaussian":
        got = ops.gaussian(arr, 1.5, device="gpu").values
        ref = np.stack([ndimage.gaussian_filter(p, 1.5) for p in data])
    else:
        got = ops.median(arr, 3, device="gpu").values
        ref = np.stack([ndimage.median_filter(p, size=3) for p in data])
    assert calls and {t for _, t in calls} == {_Block}  # every block, with CuPy's module
    assert type(got) is np.ndarray
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-7)


def test_a_chain_of_ops_after_the_core_dims_were_rechunked(lls) -> None:
    """open(chunks={"Z": 1}) as the README advises for napari, then deskew -> deconvolve
    -> crop: coordinates stay NumPy (xarray's .chunk() made them Dask arrays chunked
    otherwise than the data, and the second op failed with "inconsistent chunks"), the
    result equals the same chain on whole stacks, and every pixel size an op does not
    change is kept."""
    import ndstack

    folder, _ = lls
    psf = np.zeros((3, 3, 3), np.float32)
    psf[1, 1, 1], psf[0, 1, 1], psf[2, 1, 1] = 0.5, 0.25, 0.25

    def chain(arr):
        d = ops.deskew(arr, angle=31.5)
        return ops.crop(ops.deconvolve(d, psf, iterations=3), X=(2, 30)), d

    with pytest.warns(UserWarning, match="split over several chunks"):
        split, deskewed = chain(ndstack.open(folder, chunks={"Z": 1}))
    whole, _ = chain(ndstack.open(folder))
    assert all(not isinstance(c.data, da.Array) for c in split.coords.values())
    np.testing.assert_allclose(split.isel(T=1).values, whole.isel(T=1).values, rtol=1e-5)
    original = ndstack.open(folder).attrs["pixel_size"]
    assert set(deskewed.attrs["pixel_size"]) == {"Z", "Y", "X"}
    assert deskewed.attrs["pixel_size"]["Y"] == original["Y"]
    assert deskewed.attrs["pixel_size"]["X"] == original["X"]
    assert split.attrs["pixel_size"] == deskewed.attrs["pixel_size"]


def test_tiles_are_used_only_where_memory_asks_for_them(monkeypatch) -> None:
    from ndstack.ops import _deconvolve

    rng = np.random.default_rng(13)
    data = np.clip(rng.normal(1, 0.3, (1, 16, 160, 128)), 0, None).astype(np.float32)
    arr = lazy(data, ("T", "Z", "Y", "X"), (1, 16, 160, 128))
    psf = psf3d(1.5, 1.0, r=3)
    untiled = ops.deconvolve(arr, psf, iterations=6, device="cpu", tile=None).values
    windows = []
    real = _deconvolve.richardson_lucy

    def counting(block, *args, **kwargs):
        windows.append(block.shape)
        return real(block, *args, **kwargs)

    monkeypatch.setattr(_deconvolve, "richardson_lucy", counting)
    for free, tiled in ((8 << 30, False), (4 << 20, True)):  # plenty, then 4 MiB a task
        monkeypatch.setattr(_deconvolve, "host_free_bytes", lambda free=free: free)
        windows.clear()
        got = ops.deconvolve(arr, psf, iterations=6, device="cpu", tile="auto").values
        assert (len(windows) > 1) is tiled and (windows[0] == (16, 160, 128)) is not tiled
        assert np.linalg.norm(got - untiled) / np.linalg.norm(untiled) < 1e-5
    with pytest.raises(ValueError, match="tile must be 'auto', None or a tuple"):
        ops.deconvolve(arr, psf, tile="big")
