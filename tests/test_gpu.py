"""The GPU paths (CuPy): equal to the CPU ones; their logic also on the CPU, NumPy standing in.

Tests marked ``gpu`` need CuPy and a CUDA GPU and are skipped without them; ``make
gpu-check`` runs them on a GPU machine (README, "GPU"). The others run everywhere: the tile
windows, the GPU memory sizing (a pure function of the free bytes), the device dispatch
with a stand-in ``cupy`` module, and ``device=`` reaching every step.
"""

from __future__ import annotations

import types
from typing import Any

import numpy as np
import pytest
import xarray as xr

from ndstack import ops
from ndstack.errors import NdstackError
from ndstack.ops import _deconvolve, _xp
from ndstack.ops._deconvolve import (
    GPU_BYTES_PER_VOXEL,
    OVERLAP_PSFS,
    gpu_tile,
    richardson_lucy,
    richardson_lucy_gpu,
    richardson_lucy_tiled,
    tile_windows,
)

from .test_ops import lazy, psf3d

gpu = pytest.mark.gpu


def rel(a: np.ndarray, b: np.ndarray) -> float:
    """Relative L2 distance of ``a`` from ``b``."""
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def blobs(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """A positive float32 stack, smooth with noise: something to deconvolve."""
    rng = np.random.default_rng(seed)
    grids = np.ogrid[tuple(slice(0, n) for n in shape)]
    smooth = sum(np.sin(g / (5 + 3 * i)) for i, g in enumerate(grids))
    return (2 + smooth + rng.normal(0, 0.2, shape)).clip(0.01).astype(np.float32)


@pytest.fixture
def cupy() -> Any:
    cp = pytest.importorskip("cupy")
    if not _xp.gpu_available():
        pytest.skip("CuPy sees no CUDA GPU")
    return cp


# --- everywhere: tiles and memory sizing --------------------------------------------------


def test_tile_windows_partition_the_block_with_one_window_shape() -> None:
    shape, tile, overlap = (23, 50, 37), (8, 16, 16), (4, 6, 5)
    seen = np.zeros(shape, np.int32)
    windows = set()
    for window, core, inner in tile_windows(shape, tile, overlap):
        seen[core] += 1
        windows.add(tuple(w.stop - w.start for w in window))
        for w, c, i, o, n in zip(window, core, inner, overlap, shape):
            assert 0 <= w.start <= c.start and c.stop <= w.stop <= n
            assert c.start - w.start >= min(o, c.start)  # context before the core ...
            assert w.stop - c.stop >= min(o, n - c.stop)  # ... and after it, inside the block
            assert (i.start, i.stop) == (c.start - w.start, c.stop - w.start)
    assert (seen == 1).all()  # every voxel from exactly one core
    assert windows == {(16, 28, 26)}  # one FFT shape for all: min(tile + 2 overlap, n)


def test_gpu_tile_is_sized_from_the_free_memory() -> None:
    shape, psf = (64, 256, 256), (17, 17, 17)

    def need(tile: tuple[int, ...]) -> float:
        padded = [min(t + 2 * OVERLAP_PSFS * p, n) + p - 1 for t, p, n in zip(tile, psf, shape)]
        return float(np.prod(padded, dtype=np.float64)) * GPU_BYTES_PER_VOXEL

    assert gpu_tile(shape, psf, 80 * 2**30) is None  # an H100 takes it whole
    assert gpu_tile(shape, psf, 2 * need(shape)) is None  # exactly fits half the free memory
    last = 0
    for free in (2e8, 3e8, 4e8, 4.5e8):
        tile = gpu_tile(shape, psf, free)
        assert tile is not None and need(tile) <= free / 2
        assert all(p < t <= n for t, p, n in zip(tile, psf, shape))  # halved from > 2 psf
        voxels = int(np.prod(tile))
        assert voxels >= last  # more memory, no smaller tiles
        last = voxels
    tiny = gpu_tile(shape, psf, 1)  # nothing fits: it stops at twice the PSF
    assert tiny is not None and all(p < t <= 2 * p for t, p in zip(tiny, psf))
    assert gpu_tile(shape, psf, 4e8, fraction=1.0) != gpu_tile(shape, psf, 4e8)
    capped = gpu_tile(shape, psf, 80 * 2**30, max_voxels=3 * 10**6)  # a cap on FFT sizes too
    assert capped is not None and need(capped) / GPU_BYTES_PER_VOXEL <= 3 * 10**6


def test_tiles_moved_by_a_kernel_equal_the_untiled_result() -> None:
    image = blobs((30, 140, 100), 1)
    psf = psf3d(1.5, 1.2, r=3)
    whole = richardson_lucy(image, psf, 10, workers=1)
    shapes = []

    def moving(block: np.ndarray, *args: Any, **kwargs: Any) -> np.ndarray:
        shapes.append(block.shape)
        return richardson_lucy(np.array(block), *args, **kwargs)  # a copy, as an upload is

    tiled = richardson_lucy_tiled(image, psf, 10, tile=(16, 40, 40), kernel=moving, workers=1)
    # Y in 4 tiles of 35 (windows of 77); Z and X whole: their windows (30 of 30, 82 of
    # 100) would repeat nearly all the work of every tile
    assert len(shapes) == 4 and set(shapes) == {(30, 77, 100)}  # one FFT plan
    assert tiled.dtype == np.float32 and rel(tiled, whole) < 1e-5


def test_richardson_lucy_gpu_tiles_when_the_free_memory_is_short(monkeypatch) -> None:
    """NumPy stands in for CuPy: the sizing, tiling and moving logic of the GPU path."""
    image = blobs((24, 64, 48), 2)
    psf = psf3d(1.5, 1.2, r=3)
    whole = richardson_lucy(image, psf, 8, workers=1)
    tiles: list[tuple[int, ...]] = []
    real_tiled = _deconvolve.richardson_lucy_tiled

    def spy(*args: Any, tile: tuple[int, ...], **kwargs: Any) -> Any:
        tiles.append(tile)
        return real_tiled(*args, tile=tile, **kwargs)

    monkeypatch.setattr(_deconvolve, "on_device", lambda kernel, gpu, back=True: kernel)
    monkeypatch.setattr(_deconvolve, "richardson_lucy_tiled", spy)
    monkeypatch.setattr(_deconvolve, "gpu_free_bytes", lambda: 80 * 2**30)
    untiled = richardson_lucy_gpu(image, psf, 8, workers=1)
    assert tiles == [] and rel(untiled, whole) < 1e-6
    monkeypatch.setattr(_deconvolve, "gpu_free_bytes", lambda: 2e6)
    tiled = richardson_lucy_gpu(image, psf, 8, workers=1)
    assert len(tiles) == 1 and tiles[0] != image.shape
    assert rel(tiled, whole) < 1e-5


def test_large_host_copies_split_over_threads_copy_the_same(monkeypatch) -> None:
    monkeypatch.setattr(_xp, "PARALLEL_COPY_BYTES", 1)  # every copy split
    rng = np.random.default_rng(10)
    a = rng.random((13, 17, 19)).astype(np.float32)
    window = a[2:11, 3:15, 1:18]
    got = _xp.contiguous(window)
    assert got.flags.c_contiguous and np.array_equal(got, window)
    out = np.zeros_like(a)
    core = (slice(3, 12), slice(0, 17), slice(4, 9))
    _xp.assign(out, core, a[core] * 2)
    expected = np.zeros_like(a)
    expected[core] = a[core] * 2
    np.testing.assert_array_equal(out, expected)


# --- everywhere: the dispatch, with a stand-in ``cupy`` -----------------------------------


class _FakeGpuArray(np.ndarray):
    """A NumPy array that says it is CuPy's: what ``is_cupy`` and ``on_device`` look at."""


_FakeGpuArray.__module__ = "cupy"


@pytest.fixture
def fake_cupy(monkeypatch) -> types.SimpleNamespace:
    """``cupy``, ``cupyx.scipy.ndimage`` and ``.fft`` made of NumPy and SciPy, counting moves.

    They stand in where ndstack takes CuPy from (``_xp.cupy_module``, ``_xp.cupyx_module``),
    not in ``sys.modules``: xarray and Dask, which look CuPy up there, never see them.
    """
    import scipy.fft
    from scipy import ndimage

    moves = types.SimpleNamespace(up=0, down=0)

    def asarray(a: Any) -> Any:
        moves.up += 1
        return np.array(a).view(_FakeGpuArray)

    def asnumpy(a: Any) -> Any:
        moves.down += 1
        return np.array(a).view(np.ndarray)

    cp = types.ModuleType("cupy")
    cp.__getattr__ = lambda name: getattr(np, name)  # type: ignore[attr-defined]
    cp.asarray, cp.asnumpy = asarray, asnumpy  # type: ignore[attr-defined]
    cupyx = {"ndimage": ndimage, "fft": scipy.fft}
    monkeypatch.setattr(_xp, "cupy_module", lambda: cp)
    monkeypatch.setattr(_xp, "cupyx_module", lambda name: cupyx[name])
    monkeypatch.setattr(_xp, "gpu_available", lambda: True)
    moves.module = cp
    return moves


def test_on_device_moves_numpy_blocks_there_and_back(fake_cupy) -> None:
    seen = []

    def kernel(block: Any, factor: float) -> Any:
        seen.append(type(block))
        return block * factor

    assert _xp.on_device(kernel, False) is kernel
    out = _xp.on_device(kernel, True)(np.ones(3), 2.0)
    assert type(out) is np.ndarray and (out == 2).all() and seen == [_FakeGpuArray]
    assert (fake_cupy.up, fake_cupy.down) == (1, 1)
    block = fake_cupy.module.asarray(np.ones(3))  # already "on the GPU": stays there
    out = _xp.on_device(kernel, True)(block, 3.0)
    assert type(out) is _FakeGpuArray and (fake_cupy.up, fake_cupy.down) == (2, 1)
    assert _xp.array_module(block) is fake_cupy.module and _xp.is_cupy(block)
    assert _xp.ndimage_module(block).__name__ == "scipy.ndimage"
    assert _xp.array_module(np.ones(2)) is np and not _xp.is_cupy(np.ones(2))


def test_filters_and_spectra_go_through_the_gpu_dispatch(fake_cupy) -> None:
    rng = np.random.default_rng(7)
    data = rng.random((4, 30, 26)).astype(np.float32)
    arr = lazy(data, ("T", "Y", "X"), (2, 15, 13))
    for op, kwargs in [(ops.gaussian, {"sigma": 1.5}), (ops.median, {"size": 3}),
                       (ops.power_spectrum, {"dim": "T"})]:  # fmt: skip
        before = fake_cupy.up
        on_gpu = op(arr, device="gpu", **kwargs).values
        assert fake_cupy.up > before  # each block went "to the GPU" ...
        assert type(on_gpu) is np.ndarray  # ... and came back as NumPy
        np.testing.assert_array_equal(on_gpu, op(arr, device="cpu", **kwargs).values)


def test_deconvolve_goes_through_the_gpu_path_and_its_cupy_twin(fake_cupy, monkeypatch) -> None:
    """The CuPy Richardson-Lucy (same padding, crop and start as the CPU one), moved
    blocks and tiles sized from free memory, with NumPy and SciPy standing in for CuPy."""
    data = np.stack([blobs((12, 120, 100), 8), blobs((12, 120, 100), 9)])
    arr = lazy(data, ("C", "Z", "Y", "X"), (1, 12, 120, 100))
    psf = psf3d(1.5, 1.2, r=3)
    cpu = ops.deconvolve(arr, psf, iterations=8, device="cpu").values
    twin = richardson_lucy(fake_cupy.module.asarray(data[0]), psf, 8)
    assert _xp.is_cupy(fake_cupy.module.asarray(data[0])) and rel(np.asarray(twin), cpu[0]) < 1e-6
    for free in (80 * 2**30, 1e7):  # whole blocks, then tiles
        monkeypatch.setattr(_deconvolve, "gpu_free_bytes", lambda free=free: free)
        up = fake_cupy.up
        got = ops.deconvolve(arr, psf, iterations=8, device="gpu").values
        assert type(got) is np.ndarray and rel(got, cpu) < 1e-5
        assert fake_cupy.up - up >= (2 if free > 1e9 else 8)  # a move per block, or per tile


# --- everywhere: the device= argument -----------------------------------------------------


def _device_ops(arr: xr.DataArray) -> dict[str, Any]:
    psf = psf3d(1, 1, r=1)
    return {
        "deskew": lambda d: ops.deskew(arr, dz=0.4, dx=0.104, device=d),
        "deconvolve": lambda d: ops.deconvolve(arr, psf, iterations=2, device=d),
        "gaussian": lambda d: ops.gaussian(arr, 1.0, device=d),
        "median": lambda d: ops.median(arr, 3, device=d),
        "power_spectrum": lambda d: ops.power_spectrum(arr, "T", device=d),
    }


def test_every_op_checks_its_device_before_computing() -> None:
    arr = lazy(np.ones((4, 6, 8, 8), np.float32), ("T", "Z", "Y", "X"), (2, 6, 8, 8))
    for name, run in _device_ops(arr).items():
        with pytest.raises(ValueError, match="device must be 'auto', 'cpu' or 'gpu'"):
            run("tpu")
        if not _xp.gpu_available():
            with pytest.raises(ValueError, match="needs CuPy and a CUDA GPU"):
                run("gpu")
            # "auto" is the CPU here; on a GPU, the gpu tests compare the two
            np.testing.assert_array_equal(run("cpu").values, run("auto").values, err_msg=name)


def test_run_steps_gives_the_device_to_every_step_that_takes_one(monkeypatch) -> None:
    from ndstack._steps import STEPS, run_steps

    monkeypatch.setattr(_xp, "gpu_available", lambda: False)
    arr = lazy(np.ones((4, 6, 8, 8), np.float32), ("T", "Z", "Y", "X"), (2, 6, 8, 8))
    params = {
        "deskew": {"dz": 0.4, "dx": 0.104},
        "deconvolve": {"psf": psf3d(1, 1, r=1)},
        "recenter": {"size": (4, 4)},
        "project": {"dim": "Z"},
        "gaussian": {"sigma": 1.0},
        "median": {"size": 3},
        "power_spectrum": {"dim": "T"},
        "background": {"value": 1.0},
        "flatfield": {"flat": np.ones((8, 8), np.float32)},
    }
    with_device = {name for name, step in STEPS.items() if step.device}
    assert with_device == {"deskew", "deconvolve", "gaussian", "median", "power_spectrum"}
    for name in STEPS:
        steps = [(name, params.get(name, {}))]
        if name in with_device:
            with pytest.raises(NdstackError, match="needs CuPy and a CUDA GPU"):
                run_steps(arr, steps, device="gpu")
            run_steps(arr, steps, device="cpu")
        else:
            run_steps(arr, steps, device="gpu")  # not given to the others


# --- on a GPU -----------------------------------------------------------------------------


@gpu
@pytest.mark.parametrize("direction", [1, -1])
@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_deskew_on_the_gpu_equals_the_cpu(cupy, direction: int, dtype: Any) -> None:
    from ndstack.ops._deskew import _deskew_cupy, _deskew_planes, deskew_shift

    rng = np.random.default_rng(11)
    data = (rng.random((2, 13, 20, 33)) * 4000).astype(dtype)
    arr = lazy(data, ("T", "Z", "Y", "X"), (1, 13, 20, 33))
    cpu = ops.deskew(arr, dz=0.4, dx=0.104, direction=direction, device="cpu").values
    out = ops.deskew(arr, dz=0.4, dx=0.104, direction=direction, device="gpu")
    got = out.values
    assert type(got) is np.ndarray and got.dtype == np.float32 and got.shape == cpu.shape
    assert np.abs(got - cpu).max() <= 1e-6 * np.abs(cpu).max()
    shift = deskew_shift(31.5, 0.4, 0.104)  # the fused kernel against the generic loop on CuPy
    stack = cupy.asarray(data[0])
    fused = _deskew_cupy(stack, shift, direction=direction).get()
    planes = _deskew_planes(stack, shift, direction=direction).get()
    assert np.abs(fused - planes).max() <= 1e-6 * np.abs(planes).max()


@gpu
def test_filters_and_power_spectrum_on_the_gpu_equal_the_cpu(cupy) -> None:
    rng = np.random.default_rng(12)
    data = rng.random((8, 6, 40, 52)).astype(np.float32)
    # even chunks: every overlapped block has one shape. On a fresh H200, uneven ones
    # (13, 17) made this test take 152 s, compiling cupyx kernels (one per block shape?)
    arr = lazy(data, ("T", "Z", "Y", "X"), (4, 3, 20, 26))
    for kwargs in ({"sigma": 2.0}, {"sigma": (1.0, 1.5, 2.0), "dims": ("Z", "Y", "X")}):
        got = ops.gaussian(arr, device="gpu", **kwargs).values
        assert type(got) is np.ndarray
        cpu = ops.gaussian(arr, device="cpu", **kwargs).values
        np.testing.assert_allclose(got, cpu, rtol=1e-5, atol=1e-6)
    u16 = lazy((data * 4000).astype(np.uint16), ("T", "Z", "Y", "X"), (4, 3, 20, 26))
    for a in (arr, u16):
        got = ops.median(a, 5, device="gpu").values
        np.testing.assert_array_equal(got, ops.median(a, 5, device="cpu").values)
    got = ops.power_spectrum(arr, "T", device="gpu")
    cpu = ops.power_spectrum(arr, "T", device="cpu")
    assert got.dims == cpu.dims and got.dtype == np.float32
    np.testing.assert_allclose(got.values, cpu.values, rtol=1e-4, atol=1e-6 * cpu.values.max())


@gpu
def test_deconvolve_on_the_gpu_equals_the_cpu(cupy) -> None:
    data = np.stack([blobs((24, 80, 72), 3), blobs((24, 80, 72), 4)])
    arr = lazy(data, ("C", "Z", "Y", "X"), (1, 24, 80, 72))
    psf = xr.DataArray(np.stack([psf3d(1.5, 1.0), psf3d(2.5, 1.5)]), dims=("C", "Z", "Y", "X"))
    got = ops.deconvolve(arr, psf, iterations=10, device="gpu").values
    cpu = ops.deconvolve(arr, psf, iterations=10, device="cpu").values
    assert type(got) is np.ndarray and got.dtype == np.float32
    for c in range(2):
        assert rel(got[c], cpu[c]) < 1e-5
    tiled = ops.deconvolve(arr, psf, iterations=10, device="gpu", tile=(12, 20, 18)).values
    # windows of (24, 56, 54) in (24, 80, 72): tiled in Y and X
    assert rel(tiled, cpu) < 1e-5


@gpu
def test_gpu_tiles_sized_from_short_memory_equal_the_untiled_result(cupy, monkeypatch) -> None:
    image = blobs((40, 96, 96), 5)
    psf = psf3d(2.0, 1.5, r=4)
    untiled = richardson_lucy(cupy.asarray(image), psf, 10).get()
    assert rel(untiled, richardson_lucy(image, psf, 10)) < 1e-5  # GPU == CPU, untiled
    monkeypatch.setattr(_deconvolve, "gpu_free_bytes", lambda: 2e7)  # the whole needs 21 MB
    tile = _deconvolve._gpu_tile(image.shape, psf.shape)
    assert tile is not None and tile != image.shape
    tiled = richardson_lucy_gpu(image, psf, 10)
    assert type(tiled) is np.ndarray and rel(tiled, untiled) < 1e-5
    on_gpu = richardson_lucy_gpu(cupy.asarray(image), psf, 10)  # CuPy in: CuPy out, tiled
    assert isinstance(on_gpu, cupy.ndarray) and rel(on_gpu.get(), untiled) < 1e-5


@gpu
def test_cupy_blocks_are_computed_where_they_are_and_stay_cupy(cupy) -> None:
    import dask.array as da

    data = blobs((2, 16, 30, 28), 6)
    gpu_arr = xr.DataArray(
        da.from_array(cupy.asarray(data), chunks=(1, 16, 30, 28), asarray=False),
        dims=("T", "Z", "Y", "X"),
    )
    cpu_arr = lazy(data, ("T", "Z", "Y", "X"), (1, 16, 30, 28))
    psf = psf3d(1.5, 1.0, r=3)
    cases = [
        (lambda a: ops.gaussian(a, 1.5, device="cpu"), 1e-5),
        (lambda a: ops.median(a, 3, device="cpu"), 0.0),
        (lambda a: ops.deskew(a, dz=0.4, dx=0.104, device="cpu"), 1e-6),
        (lambda a: ops.deconvolve(a, psf, iterations=5, device="cpu"), 1e-5),
        (lambda a: ops.power_spectrum(a, "T", device="cpu"), 1e-4),
    ]
    for run, tol in cases:
        got = run(gpu_arr).data.compute()
        assert isinstance(got, cupy.ndarray)
        ref = run(cpu_arr).values
        assert rel(got.get(), ref) <= max(tol, 1e-7)
