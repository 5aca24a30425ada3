"""Benchmark: building the lazy array, reading one plane, reading everything.

Builds D1- and D2-like datasets (shared/BASELINES.md) once under --data, then times
ndstack beside today's tools in the same run and prints ratios. Files are warm (in the
page cache) for every timing: each dataset is read once before the timings.

    python bench/open_read.py                   # full size: D1 5 GB (600 files), D2 10,000 files
    python bench/open_read.py --stacks 40       # a smaller D1 for a quick look

Targets (issue "Open many image files ..."), on a 2-core machine:
- building over D2 (10,000 files), axes inferred: >= 1.5x faster than TiffSequence with a
  hand-written pattern, and under 0.2 s;
- one plane out of a 64-page file: at most 1.5x the plane's bytes read;
- reading all of D1 (arr.sum().compute(), warm): >= 90% of a plain two-thread
  tifffile.imread loop.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dask
import dask.array as da
import dask.array.image
import numpy as np
import tifffile

import ndstack

D1_NAME = (
    "ex6-2_CamA_ch{c}_CAM1_stack{s:04d}_{wl}nm_{t:07d}msec_0001291795msecAbs"
    "_000x_000y_000z_0000t.tif"
)
D1_PATTERN = (
    r"ex6-2_CamA_ch(?P<C>\d+)_CAM1_stack(?P<T>\d+)_\d+nm_\d+msec_0001291795msecAbs"
    r"_000x_000y_000z_0000t\.tif"
)
D1_SHAPE = (64, 256, 256)
D2_SHAPE = (256, 256)
D1_DIR = "d1v3-{stacks}"  # bump when make_d1 changes: stale data is never reused


def make_d1(folder: str, stacks: int) -> list[str]:
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(0)
    z, y, x = np.ogrid[: D1_SHAPE[0], : D1_SHAPE[1], : D1_SHAPE[2]]
    base = 1000 + 800 * np.sin(z / 7.0) * np.cos(y / 23.0) * np.sin(x / 17.0)
    paths = []
    for c, wl in enumerate((488, 560, 642)):
        photons = (base + c * 100) / 20  # a smooth signal of 10 to 95 photons per pixel
        for s in range(stacks):
            p = os.path.join(folder, D1_NAME.format(c=c, s=s, wl=wl, t=s * 2013))
            paths.append(p)
            if os.path.exists(p):
                continue
            # camera offset + shot noise: compresses 2.5:1 with Blosc zstd3 + bit-shuffle
            # and encodes at the speed shared/BASELINES.md reports for its D1
            counts = 100 + rng.poisson(photons).astype(np.uint16)
            tifffile.imwrite(p, counts, photometric="minisblack")
    return sorted(paths)


def warm_d1(data: str, stacks: int) -> tuple[str, list[str]]:
    """The D1 folder under ``data`` (made once) and its files, read once into the page
    cache (every benchmark times warm files)."""
    source = os.path.join(data, D1_DIR.format(stacks=stacks))
    files = make_d1(source, stacks)
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass
    return source, files


def make_d2(folder: str, n: int) -> list[str]:
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(1)
    y, x = np.ogrid[: D2_SHAPE[0], : D2_SHAPE[1]]
    base = (1000 + 800 * np.cos(y / 19.0) * np.sin(x / 13.0)).astype(np.uint16)
    paths = []
    for i in range(n):
        p = os.path.join(folder, f"img_{i:05d}.tif")
        paths.append(p)
        if not os.path.exists(p):
            tifffile.imwrite(p, base + rng.integers(0, 64, D2_SHAPE, dtype=np.uint16))
    return paths


def median_time(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bytes_read() -> int:
    """Bytes this process has read through read() calls (page cache included)."""
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    return 0


# ----------------------------------------------------------------------------- peers
def peers_build(pattern_glob: str, files: list[str], regex: str | None) -> dict[str, Callable]:
    out: dict[str, Callable] = {}
    out["a2 dask.array.image.imread"] = lambda: da.image.imread(
        pattern_glob, imread=tifffile.imread
    )
    try:
        import dask_image.imread

        out["a dask_image.imread"] = lambda: dask_image.imread.imread(pattern_glob)
    except ImportError:
        pass

    def delayed() -> Any:
        first = tifffile.imread(files[0])
        lazy = [dask.delayed(tifffile.imread)(f) for f in files]
        return da.stack([da.from_delayed(x, first.shape, first.dtype) for x in lazy])

    out["b delayed recipe"] = delayed

    def aszarr() -> Any:
        store = tifffile.imread(files, aszarr=True)
        return da.from_zarr(store, zarr_format=2)

    out["c tifffile aszarr"] = aszarr
    if regex is not None:
        # like ndstack, starting from the folder (a glob); and, kinder to the peer, from a
        # ready list of files (the listing done beforehand, not timed)
        out["d TiffSequence(glob)+pattern"] = lambda: da.from_zarr(
            tifffile.TiffSequence(pattern_glob, pattern=regex).aszarr(), zarr_format=2
        )
        out["d TiffSequence(list)+pattern"] = lambda: da.from_zarr(
            tifffile.TiffSequence(files, pattern=regex).aszarr(), zarr_format=2
        )
    return out


def plain_loop(files: list[str]) -> int:
    """The practical limit: tifffile.imread + sum on two threads."""
    with ThreadPoolExecutor(2) as pool:
        return sum(pool.map(lambda f: int(tifffile.imread(f).sum(dtype=np.uint64)), files))


# ----------------------------------------------------------------------------- main
def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", default="bench-data", help="where the datasets live (created once)")
    p.add_argument("--stacks", type=int, default=200, help="D1 stacks per channel (200 = 5 GB)")
    p.add_argument("--d2", type=int, default=10_000, help="D2 files")
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)  # peers' own deprecations

    d1_dir = os.path.join(args.data, D1_DIR.format(stacks=args.stacks))
    d2_dir = os.path.join(args.data, f"d2-{args.d2}")
    print(f"preparing data under {args.data} ...", flush=True)
    d1 = make_d1(d1_dir, args.stacks)
    d2 = make_d2(d2_dir, args.d2)
    d1_bytes = len(d1) * int(np.prod(D1_SHAPE)) * 2
    for f in d1 + d2:  # warm the page cache
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass
    print(f"D1: {len(d1)} files, {d1_bytes / 1e9:.2f} GB; D2: {len(d2)} files\n")

    # 1. building the lazy array
    print("## building the lazy array (seconds, warm, median of", args.repeat, "runs)")
    rows = []
    for label, folder, files, regex in (
        ("D1", d1_dir, d1, D1_PATTERN),
        ("D2", d2_dir, d2, r"img_(?P<T>\d+)\.tif"),
    ):
        ours = median_time(lambda folder=folder: ndstack.open(folder), args.repeat)
        arr = ndstack.open(folder)
        print(
            f"{label}: ndstack.open (axes inferred) {ours:.4f} s -> dims {arr.dims} shape {arr.shape}"
        )
        for name, fn in peers_build(os.path.join(folder, "*.tif"), files, regex).items():
            t = median_time(fn, max(1, args.repeat // 2 if label == "D2" else args.repeat))
            rows.append((label, name, t, t / ours))
            print(f"    {name:28s} {t:8.4f} s   ndstack is {t / ours:5.2f}x faster")
        if label == "D2":
            for seq in (r for r in rows if r[0] == "D2" and r[1].startswith("d ")):
                met = seq[3] >= 1.5 and ours < 0.2
                print(
                    f"  target D2 vs {seq[1]}: >= 1.5x faster and < 0.2 s: "
                    f"{seq[3]:.2f}x, {ours:.3f} s -> {'MET' if met else 'NOT MET'}"
                )
    print()

    # 2. one plane out of a 64-page file
    print("## one 2-D plane out of a 64-page file (bytes read, warm)")
    plane_bytes = D1_SHAPE[1] * D1_SHAPE[2] * 2
    arr = ndstack.open(d1_dir)
    cases: dict[str, Callable[[], Any]] = {
        "ndstack arr.isel(T=5, C=1, Z=10)": lambda: arr.isel(T=5, C=1, Z=10).values,
        "tifffile.imread(key=10) (the limit)": lambda: tifffile.imread(
            d1[len(d1) // 3 + 5], key=10
        ),
    }
    a2 = da.image.imread(os.path.join(d1_dir, "*.tif"), imread=tifffile.imread)
    cases["a2 dask.array.image [i, 10]"] = lambda: a2[len(d1) // 3 + 5, 10].compute()
    c_arr = da.from_zarr(tifffile.imread(d1, aszarr=True), zarr_format=2)
    cases["c tifffile aszarr [i, 10]"] = lambda: c_arr[len(d1) // 3 + 5, 10].compute()
    ratio_ours = 0.0
    for name, fn in cases.items():
        fn()
        r0 = bytes_read()
        t = median_time(fn, 1)
        n = bytes_read() - r0
        t = median_time(fn, args.repeat)
        print(
            f"    {name:38s} {n / 1e6:8.3f} MB read = {n / plane_bytes:6.2f}x the plane, {t * 1e3:7.2f} ms"
        )
        if name.startswith("ndstack"):
            ratio_ours = n / plane_bytes
    print(
        f"  target: at most 1.5x the plane's bytes: {ratio_ours:.2f}x -> {'MET' if ratio_ours <= 1.5 else 'NOT MET'}\n"
    )

    # 3. reading all of D1
    print("## reading all of D1: sum, threaded scheduler, warm (GB/s, median of 3)")
    expected = plain_loop(d1)
    limit = median_time(lambda: plain_loop(d1), 3)
    print(
        f"    {'plain tifffile.imread loop, 2 threads':38s} {d1_bytes / limit / 1e9:6.2f} GB/s (the practical limit)"
    )
    arr = ndstack.open(d1_dir)
    assert int(arr.sum(dtype=np.uint64).compute()) == expected, "ndstack read different data"
    ours = median_time(lambda: arr.data.sum(dtype=np.uint64).compute(), 3)
    print(
        f"    {'ndstack open(...).sum()':38s} {d1_bytes / ours / 1e9:6.2f} GB/s = {limit / ours:5.1%} of the limit"
    )
    a2 = da.image.imread(os.path.join(d1_dir, "*.tif"), imread=tifffile.imread)
    t = median_time(lambda: a2.sum(dtype=np.uint64).compute(), 3)
    print(
        f"    {'a2 dask.array.image':38s} {d1_bytes / t / 1e9:6.2f} GB/s = {limit / t:5.1%}; ndstack {t / ours:4.2f}x"
    )
    first = tifffile.imread(d1[0])
    b = da.stack(
        [da.from_delayed(dask.delayed(tifffile.imread)(f), first.shape, first.dtype) for f in d1]
    )
    t = median_time(lambda: b.sum(dtype=np.uint64).compute(), 3)
    print(
        f"    {'b delayed recipe':38s} {d1_bytes / t / 1e9:6.2f} GB/s = {limit / t:5.1%}; ndstack {t / ours:4.2f}x"
    )
    print(
        f"  target: >= 90% of the limit: {limit / ours:.1%} -> {'MET' if limit / ours >= 0.9 else 'NOT MET'}"
    )
    # What dask itself allows here: the same chunked sum over blocks already in memory
    # (no file access at all), through dask and through a plain two-thread loop.
    blocks = [tifffile.imread(f) for f in d1[:8]]

    class InMemory:
        shape = (len(d1), *D1_SHAPE)
        dtype = np.dtype(np.uint16)
        ndim = 4

        def __getitem__(self, key: Any) -> np.ndarray:
            return blocks[key[0].start % 8][None]

    mem = da.from_array(
        InMemory(),
        chunks=(1, *D1_SHAPE),
        asarray=False,
        fancy=True,
        meta=np.empty((0,) * 4, np.uint16),
        name="in-memory",
    )
    with ThreadPoolExecutor(2) as pool:
        loop = median_time(
            lambda: sum(
                pool.map(lambda i: int(blocks[i % 8].sum(dtype=np.uint64)), range(len(d1)))
            ),
            3,
        )
    through = median_time(lambda: mem.sum(dtype=np.uint64).compute(), 3)
    print(
        f"  dask's own ceiling on this machine: a {len(d1)}-chunk sum of in-memory blocks runs at "
        f"{loop / through:.1%} of a two-thread loop ({(through - loop) / len(d1) * 1e6:.0f} us per chunk)"
    )
    print("\nrerun: python bench/open_read.py " + " ".join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
