"""GPU benchmark and checks, one markdown table: ``make gpu-check`` runs it after the GPU tests.

    python bench/gpu.py [--quick] [--require-gpu]

Sizes as bench/ops.py: a (64, 256, 256) stack; Richardson-Lucy float32 with a 17^3 PSF,
10 iterations (scikit-image on the CPU, ndstack on the CPU, ndstack on the GPU), and a
(128, 512, 512) one on the GPU; deskew at 31.5 degrees, dz 0.4 um, dx 0.104 um (ndstack on
the CPU and on the GPU); Gaussian, median and power spectrum on both; and a stack just over
a quarter of the card's memory deconvolved through the tiling GPU path (2 iterations).

The CPU columns run on 2 threads (``workers=2``, threadpoolctl, and the process's affinity
set to 2 cores) whatever the machine has, so that ratios read "against 2 CPU cores", the
reference machine's. GPU times: a warm-up call first, the device synchronised around each
call, the median of several. Targets (issue 18): Richardson-Lucy on the GPU >= 50x
scikit-image per iteration; GPU deskew >= 20x ndstack's CPU deskew.

Environment:
    NDSTACK_GPU_BIG_FRACTION  the large tiled stack, as a fraction of the card's total
                              memory (default 0.26; 0 skips it)
    NDSTACK_GPU_BIG_TIMEOUT   seconds the large run may take before it is abandoned
                              (default 150); the table prints either way
    NDSTACK_CPU_THREADS       threads for the CPU columns (default 2)
    NDSTACK_GPU_QUICK=1       as --quick: small sizes, a smoke run of the script itself
    OUT                       when set, the table is also written to $OUT/gpu-table.md

Exit status: 0 when every section ran and every check passed (a missed speed target is
reported, not an error); 1 when a section failed or a check did not hold; 3 with
--require-gpu on a machine where CuPy sees no GPU. Without a GPU (and without
--require-gpu) only the CPU columns run, and it exits 0.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import platform
import signal
import statistics
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from ndstack.ops._deconvolve import (
    _gpu_tile,
    richardson_lucy,
    richardson_lucy_gpu,
    tile_windows,
)
from ndstack.ops._deskew import deskew_block, deskew_shift
from ndstack.ops._xp import gpu_available, ndimage_module, on_device

RERUN = "make gpu-check  (or: bash bench/gpu_check.sh; the benchmark alone: python3 bench/gpu.py)"


@dataclass
class Row:
    """One line of the table."""

    what: str
    size: str
    time: str = "-"
    speedup: str = "-"
    target: str = "-"
    check: str = "-"


@dataclass
class Report:
    """The table, and whether everything ran and held."""

    rows: list[Row] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(f"  {row.what}: {row.time} {row.speedup} {row.check}", flush=True)

    def check(self, ok: bool, text: str) -> str:
        if not ok:
            self.failures.append(text)
        return ("ok " if ok else "FAILED ") + text

    @contextlib.contextmanager
    def section(self, name: str) -> Iterator[None]:
        """Run a section; a failure is recorded and reported, and the next one runs."""
        print(f"# {name}", flush=True)
        t0 = time.perf_counter()
        try:
            yield
        except Exception as exc:
            traceback.print_exc()
            self.failures.append(f"{name}: {type(exc).__name__}: {exc}")
            self.rows.append(Row(name, "-", check=f"FAILED {type(exc).__name__}: {exc}"[:160]))
        finally:
            print(f"  ({time.perf_counter() - t0:.1f} s)", flush=True)


# --- timing -------------------------------------------------------------------------------


def cpu_time(fn: Callable[[], Any], repeat: int = 1) -> tuple[Any, float]:
    """The result and best wall time of ``repeat`` calls (no warm-up: the CPU needs none)."""
    best, result = math.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return result, best


def gpu_time(fn: Callable[[], Any], repeat: int = 5) -> float:
    """Median wall time of ``repeat`` calls after a warm-up, the device synchronised."""
    import cupy

    sync = cupy.cuda.Device().synchronize
    fn()
    sync()
    times = []
    for _ in range(repeat):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


@contextlib.contextmanager
def cpu_threads(n: int) -> Iterator[None]:
    """At most ``n`` threads: native thread pools limited, affinity set to ``n`` cores."""
    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    limits: Any = contextlib.nullcontext()
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(n)
    try:
        if before is not None and len(before) > n:
            os.sched_setaffinity(0, sorted(before)[:n])
        with limits:
            yield
    finally:
        if before is not None:
            os.sched_setaffinity(0, before)


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Raise TimeoutError in this (main) thread after ``seconds``: the table still prints."""

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"took more than {seconds} s (NDSTACK_GPU_BIG_TIMEOUT)")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def fmt_s(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.0f} us"


def fmt_x(ratio: float) -> str:
    return f"{ratio:.0f}x" if ratio >= 10 else f"{ratio:.1f}x"


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# --- data ---------------------------------------------------------------------------------


def stack(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    """bench/ops.py's stack: a smooth pattern plus noise, uint16."""
    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    pattern = 1000 + 800 * np.sin(z / 7) * np.cos(y / 23) * np.sin(x / 17)
    return (pattern + rng.integers(0, 16, shape)).astype(np.uint16)


def gaussian_psf(radius: int) -> np.ndarray:
    """bench/ops.py's PSF: 17^3 for radius 8, sum 1."""
    zz, yy, xx = np.mgrid[tuple(slice(-radius, radius + 1) for _ in range(3))]
    psf = np.exp(-(xx**2 + yy**2) / 8 - zz**2 / 18).astype(np.float32)
    return psf / psf.sum()


# --- sections -----------------------------------------------------------------------------


@dataclass
class Setup:
    quick: bool
    gpu: bool
    threads: int
    shape: tuple[int, int, int]
    big_shape: tuple[int, int, int]
    radius: int
    iterations: int


def bench_rl(s: Setup, report: Report) -> None:
    from skimage.restoration import richardson_lucy as sk_rl

    psf = gaussian_psf(s.radius)
    raw = stack(s.shape)
    image = raw.astype(np.float32) / raw.max()
    n = s.iterations
    size = f"{s.shape} f32, {psf.shape[0]}^3 PSF, {n} it"
    with cpu_threads(s.threads):
        theirs, sk = cpu_time(lambda: sk_rl(image, psf, num_iter=n, clip=False))
        mine, cpu = cpu_time(lambda: richardson_lucy(image, psf, n, workers=s.threads), 2)
        sk, cpu = sk / n, cpu / n
    report.add(Row(f"RL / iteration, scikit-image, CPU {s.threads} threads", size, fmt_s(sk), "1x"))
    report.add(Row(
        f"RL / iteration, ndstack, CPU {s.threads} threads", size, fmt_s(cpu),
        fmt_x(sk / cpu), ">= 2x (bench/ops.py)",
        report.check(rel(mine, theirs) < 1e-3, f"rel L2 vs scikit-image {rel(mine, theirs):.1e}"),
    ))  # fmt: skip
    if not s.gpu:
        return
    import cupy

    on_gpu = cupy.asarray(image)
    got = richardson_lucy(on_gpu, psf, n).get()
    t = gpu_time(lambda: richardson_lucy(on_gpu, psf, n)) / n
    report.add(Row(
        "RL / iteration, ndstack, GPU (data on the GPU)", size, fmt_s(t),
        f"{fmt_x(sk / t)} skimage, {fmt_x(cpu / t)} ndstack CPU",
        ("met" if sk / t >= 50 else "MISSED") + " >= 50x skimage",
        report.check(rel(got, mine) < 1e-5, f"rel L2 vs ndstack CPU {rel(got, mine):.1e}"),
    ))  # fmt: skip
    moved = richardson_lucy_gpu(image, psf, n)
    t = gpu_time(lambda: richardson_lucy_gpu(image, psf, n), 3) / n
    report.add(Row(
        "RL / iteration, ndstack, GPU, NumPy in and out (as in ops.deconvolve)", size,
        fmt_s(t), f"{fmt_x(sk / t)} skimage", ("met" if sk / t >= 50 else "MISSED") + " >= 50x",
        report.check(rel(moved, mine) < 1e-5, f"rel L2 vs ndstack CPU {rel(moved, mine):.1e}"),
    ))  # fmt: skip


def bench_rl_large(s: Setup, report: Report) -> None:
    import cupy

    psf = gaussian_psf(s.radius)
    raw = stack(s.big_shape, seed=1)
    image = raw.astype(np.float32) / raw.max()
    n_cpu, n = 2, s.iterations
    size = f"{s.big_shape} f32, {psf.shape[0]}^3 PSF"
    with cpu_threads(s.threads):
        mine, cpu = cpu_time(lambda: richardson_lucy(image, psf, n_cpu, workers=s.threads))
        cpu /= n_cpu
    report.add(Row(f"RL / iteration, ndstack, CPU {s.threads} threads", f"{size}, {n_cpu} it", fmt_s(cpu), "1x"))  # fmt: skip
    on_gpu = cupy.asarray(image)
    got = richardson_lucy(on_gpu, psf, n_cpu).get()
    t = gpu_time(lambda: richardson_lucy(on_gpu, psf, n), 3) / n
    report.add(Row(
        "RL / iteration, ndstack, GPU (data on the GPU)", f"{size}, {n} it", fmt_s(t),
        f"{fmt_x(cpu / t)} ndstack CPU", "-",
        report.check(rel(got, mine) < 1e-5, f"rel L2 vs CPU ({n_cpu} it) {rel(got, mine):.1e}"),
    ))  # fmt: skip


def bench_deskew(s: Setup, report: Report) -> None:
    data = stack(s.shape)
    shift = deskew_shift(31.5, 0.4, 0.104)
    size = f"{s.shape} u16, 31.5 deg, dz 0.4, dx 0.104"
    with cpu_threads(s.threads):
        ref, cpu = cpu_time(lambda: deskew_block(data, shift), 5)
    report.add(Row(f"deskew, ndstack, CPU {s.threads} threads", size, fmt_s(cpu), "1x"))
    if not s.gpu:
        return
    import cupy

    on_gpu = cupy.asarray(data)
    got = deskew_block(on_gpu, shift).get()
    t = gpu_time(lambda: deskew_block(on_gpu, shift), 20)
    diff = float(np.abs(got - ref).max())
    report.add(Row(
        "deskew, ndstack, GPU (data on the GPU)", size, fmt_s(t), fmt_x(cpu / t),
        ("met" if cpu / t >= 20 else "MISSED") + " >= 20x CPU",
        report.check(diff <= 1e-6 * float(ref.max()), f"max abs diff vs CPU {diff:.1e}"),
    ))  # fmt: skip
    moved = on_device(deskew_block, True)
    t = gpu_time(lambda: moved(data, shift), 5)
    report.add(Row(
        "deskew, ndstack, GPU, NumPy in and out (as in ops.deskew)", size, fmt_s(t),
        fmt_x(cpu / t), "-",
        report.check(np.array_equal(moved(data, shift), got), "same values as on the GPU"),
    ))  # fmt: skip


def bench_filters(s: Setup, report: Report) -> None:
    """Gaussian, median and power spectrum kernels, as the ops run them per block."""
    raw = stack(s.shape, seed=2)
    image = raw.astype(np.float32)
    series = np.ascontiguousarray(np.moveaxis(image, 0, -1))  # the transformed axis last
    cases: list[tuple[str, str, np.ndarray, Callable[[Any], Any], float]] = [
        ("Gaussian sigma 2, ZYX", f"{s.shape} f32", image,
         lambda a: ndimage_module(a).gaussian_filter(a, 2.0), 1e-5),
        ("median 3x3 in YX", f"{s.shape} u16", raw,
         lambda a: ndimage_module(a).median_filter(a, size=(1, 3, 3)), 0.0),
        ("power spectrum along Z", f"{series.shape} f32", series,
         lambda a: _spectrum(a), 1e-5),
    ]  # fmt: skip
    for name, size, data, kernel, tol in cases:
        with cpu_threads(s.threads):
            ref, cpu = cpu_time(lambda k=kernel, d=data: np.asarray(k(d)), 2)
        if not s.gpu:
            report.add(Row(f"{name}, CPU {s.threads} threads", size, fmt_s(cpu), "1x"))
            continue
        import cupy

        on_gpu = cupy.asarray(data)
        got = kernel(on_gpu).get()
        t = gpu_time(lambda k=kernel, g=on_gpu: k(g), 10)
        err = rel(got.astype(np.float64), ref.astype(np.float64))
        report.add(Row(
            f"{name}: CPU {s.threads} threads {fmt_s(cpu)}, GPU (data on the GPU)", size,
            fmt_s(t), fmt_x(cpu / t), "-",
            report.check(err <= max(tol, 0.0), f"rel L2 vs CPU {err:.1e}"),
        ))  # fmt: skip


def _spectrum(x: Any) -> Any:
    from ndstack.ops._xp import array_module

    xp = array_module(x)
    return (xp.abs(xp.fft.rfft(x, axis=-1)) ** 2).astype(xp.float32)


def bench_big(s: Setup, report: Report, fraction: float) -> None:
    """A stack just over ``fraction`` of the card's memory, through the tiling GPU path."""
    import cupy

    cupy.get_default_memory_pool().free_all_blocks()
    with contextlib.suppress(Exception):  # the FFT plans of earlier sections hold memory
        cupy.fft.config.get_plan_cache().clear()
    free, total = cupy.cuda.runtime.memGetInfo()
    psf = gaussian_psf(s.radius)
    iterations = 2
    ny = nx = 256 if s.quick else 2048
    nz = math.ceil(fraction * total / (4 * ny * nx)) + 1
    shape = (nz, ny, nx)
    gib = nz * ny * nx * 4 / 2**30
    t0 = time.perf_counter()
    image = np.empty(shape, np.float32)
    slab = 16
    z_all = cupy.arange(nz, dtype=cupy.float32)[:, None, None]
    yx = cupy.sin(cupy.arange(ny, dtype=cupy.float32)[:, None] / 23) * cupy.cos(
        cupy.arange(nx, dtype=cupy.float32)[None, :] / 17
    )
    for z0 in range(0, nz, slab):
        z1 = min(z0 + slab, nz)
        part = 1 + 0.5 * cupy.sin(z_all[z0:z1] / 7) * yx
        part += cupy.random.random(part.shape, dtype=cupy.float32) * 0.05
        part.astype(cupy.float32, copy=False).get(out=image[z0:z1])
    del part, z_all, yx
    cupy.get_default_memory_pool().free_all_blocks()
    made = time.perf_counter() - t0
    tile = _gpu_tile(shape, psf.shape)
    n_tiles = len(tile_windows(shape, tile, tuple(2 * p for p in psf.shape))) if tile else 1
    print(f"  stack {shape} float32 = {gib:.1f} GiB ({gib * 2**30 / total:.2f} of the card's "
          f"{total / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free); made in {made:.1f} s; "
          f"tile {tile}, {n_tiles} tiles", flush=True)  # fmt: skip
    t0 = time.perf_counter()
    out = richardson_lucy_gpu(image, psf, iterations)
    took = time.perf_counter() - t0
    print(f"  deconvolved in {took:.1f} s", flush=True)

    def finite(z0: int) -> bool:
        part = out[z0 : z0 + 64]
        return bool(np.isfinite(part).all() and (part >= 0).all())

    with ThreadPoolExecutor(min(16, os.cpu_count() or 1)) as pool:
        all_finite = all(pool.map(finite, range(0, nz, 64)))
    # A region across the corner where tiles meet, against an untiled run of a crop with a
    # margin: with 2 iterations a voxel depends on input within 2 * 2 * radius, less than
    # both the margin and the tiles' overlap, so the two agree to rounding.
    corner = [t if t is not None and t < n else n // 2 for t, n in zip(tile or shape, shape)]
    half, margin = 24, 4 * s.radius * iterations
    region = tuple(slice(max(c - half, 0), min(c + half, n)) for c, n in zip(corner, shape))
    crop = tuple(slice(max(r.start - margin, 0), min(r.stop + margin, n))
                 for r, n in zip(region, shape))  # fmt: skip
    inner = tuple(slice(r.start - c.start, r.stop - c.start) for r, c in zip(region, crop))
    untiled = richardson_lucy(cupy.asarray(image[crop]), psf, iterations).get()[inner]
    err = rel(out[region], untiled)
    report.add(Row(
        f"tiled RL on the GPU, a stack > {fraction:.2f} of the card", f"{shape} f32 = "
        f"{gib:.1f} GiB, tile {tile} ({n_tiles} tiles), {iterations} it", fmt_s(took),
        "-", "completes",
        report.check(all_finite, "finite, >= 0") + "; "
        + report.check(err < 1e-5, f"rel L2 at a tile corner vs untiled crop {err:.1e}")
        + f" (data made in {made:.0f} s, not counted)",
    ))  # fmt: skip


# --- main ---------------------------------------------------------------------------------


def header(s: Setup) -> list[str]:
    lines = [f"host: {platform.node()}, {os.cpu_count()} CPU threads; Python "
             f"{platform.python_version()}, NumPy {np.__version__}"]  # fmt: skip
    with contextlib.suppress(Exception):
        import scipy
        import skimage

        lines[0] += f", SciPy {scipy.__version__}, scikit-image {skimage.__version__}"
    if s.gpu:
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
        _, total = cupy.cuda.runtime.memGetInfo()
        rt, drv = cupy.cuda.runtime.runtimeGetVersion(), cupy.cuda.runtime.driverGetVersion()
        lines.append(
            f"GPU: {name}, {total / 2**30:.1f} GiB; CuPy {cupy.__version__}, CUDA runtime "
            f"{rt // 1000}.{rt % 1000 // 10}, driver API {drv // 1000}.{drv % 1000 // 10}"
        )
    else:
        lines.append("GPU: none (CuPy missing or no CUDA device): CPU columns only")
    lines.append(
        f"CPU columns: {s.threads} threads (workers={s.threads}, threadpoolctl, affinity to "
        f"{s.threads} cores), like the 2-core reference machine; GPU: warm-up, then the "
        "median of synchronised calls"
    )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    p.add_argument("--require-gpu", action="store_true", help="exit 3 without a GPU")
    args = p.parse_args(argv)
    quick = args.quick or os.environ.get("NDSTACK_GPU_QUICK") == "1"
    gpu = gpu_available()
    if not gpu and args.require_gpu:
        print("bench/gpu.py: no GPU (CuPy missing or it sees no CUDA device)", file=sys.stderr)
        return 3
    s = Setup(
        quick=quick,
        gpu=gpu,
        threads=int(os.environ.get("NDSTACK_CPU_THREADS", "2")),
        shape=(16, 64, 64) if quick else (64, 256, 256),
        big_shape=(32, 128, 128) if quick else (128, 512, 512),
        radius=4 if quick else 8,
        iterations=10,
    )
    fraction = float(os.environ.get("NDSTACK_GPU_BIG_FRACTION", "0.01" if quick else "0.26"))
    report = Report()
    t0 = time.perf_counter()
    with report.section("Richardson-Lucy"):
        bench_rl(s, report)
    with report.section("deskew"):
        bench_deskew(s, report)
    with report.section("Gaussian, median, power spectrum"):
        bench_filters(s, report)
    if gpu:
        with report.section("Richardson-Lucy, larger, on the GPU"):
            bench_rl_large(s, report)
        if fraction > 0:
            limit = int(os.environ.get("NDSTACK_GPU_BIG_TIMEOUT", "150"))
            with report.section("tiled Richardson-Lucy near the memory limit"), deadline(limit):
                bench_big(s, report, fraction)
    lines = [*header(s), ""]
    lines.append("| what | size | time | speed-up | target | check |")
    lines.append("| --- | --- | --- | --- | --- | --- |")
    for r in report.rows:
        lines.append(f"| {r.what} | {r.size} | {r.time} | {r.speedup} | {r.target} | {r.check} |")
    lines.append("")
    status = "all sections ran, all checks held" if not report.failures else (
        "FAILED: " + "; ".join(report.failures))  # fmt: skip
    lines.append(f"{status} ({time.perf_counter() - t0:.0f} s)")
    lines.append(f"rerun: {RERUN}")
    table = "\n".join(lines)
    print("\n" + table)
    out = os.environ.get("OUT")
    if out and os.path.isdir(out):
        with open(os.path.join(out, "gpu-table.md"), "w") as f:
            f.write(table + "\n")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
