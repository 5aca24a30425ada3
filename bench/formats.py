"""Benchmark: a PNG image sequence (the EM case), opened and read beside today's tools.

Writes N PNG slices of SIZE x SIZE uint8 (smooth signal plus noise, like EM sections) once
under --data, then times in the same run, warm (files in the page cache):

- building the lazy array: ndstack.open(folder) beside dask_image.imread(glob) and
  dask.array.image.imread(glob, imread=imagecodecs.imread);
- reading everything (sum, two threads) beside the same peers and a plain two-thread
  imagecodecs.imread loop (the practical limit: PNG decoding is the work).

    python bench/formats.py                 # the issue's size: 1,000 slices of 2,000 x 2,000
    python bench/formats.py --n 200 --size 1000

Targets (issue "Beyond TIFF"), on a 2-core machine: open >= 10x faster than
dask_image.imread; full read >= 90% of the plain loop.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dask
import dask.array as da
import dask.array.image
import imagecodecs
import numpy as np

import ndstack

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from open_read import median_time


def make(folder: str, n: int, size: int) -> list[str]:
    """N slices, written once (kept between runs under --data)."""
    os.makedirs(folder, exist_ok=True)
    paths = [os.path.join(folder, f"section_{i:05d}.png") for i in range(n)]
    if all(os.path.exists(p) for p in paths):
        return paths
    rng = np.random.default_rng(0)
    y, x = np.ogrid[:size, :size]
    base = 128 + 60 * np.sin(y / 37.0) * np.cos(x / 23.0)
    for i, p in enumerate(paths):
        img = np.clip(base + 20 * np.sin(i / 9.0) + rng.normal(0, 8, (size, size)), 0, 255)
        imagecodecs.imwrite(p, img.astype(np.uint8))
    return paths


def plain_loop(paths: list[str]) -> int:
    with ThreadPoolExecutor(2) as pool:
        return sum(int(a.sum(dtype=np.uint64)) for a in pool.map(imagecodecs.imread, paths))


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", default="bench-data", help="where the slices live (made once)")
    p.add_argument("--n", type=int, default=1000, help="slices")
    p.add_argument("--size", type=int, default=2000, help="slice edge in pixels")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--skip-read", action="store_true", help="time building the array only")
    args = p.parse_args()
    folder = os.path.join(args.data, f"png-{args.n}-{args.size}")
    paths = make(folder, args.n, args.size)
    pattern = os.path.join(folder, "*.png")
    nbytes = args.n * args.size * args.size
    plain_loop(paths)  # warm the page cache
    warnings.simplefilter("ignore")
    try:
        import dask_image.imread as di
    except ImportError:
        di = None
        print("dask_image is not installed (pip install 'ndstack[bench]'): its peer is skipped")

    print(f"## {args.n} PNG slices of {args.size} x {args.size} uint8 ({nbytes / 1e9:.2f} GB)")
    print("## building the lazy array (median of the runs)")
    t_nd = median_time(lambda: ndstack.open(folder), args.repeat)
    arr = ndstack.open(folder)
    print(f"ndstack.open                       {t_nd:8.4f} s -> dims {arr.dims} shape {arr.shape}")
    builds: dict[str, Callable[[], Any]] = {
        "dask.array.image.imread": lambda: dask.array.image.imread(
            pattern, imread=imagecodecs.imread
        ),
    }
    if di is not None:
        builds["dask_image.imread"] = lambda: di.imread(pattern)
    t_list = median_time(lambda: [e.name for e in os.scandir(folder) if e.is_file()], args.repeat)
    print(f"    listing the folder (scandir)     {t_list:8.4f} s   (the floor: every opener lists)")
    for name, fn in builds.items():
        t = median_time(fn, args.repeat)
        print(f"    {name:30s} {t:8.4f} s   ndstack is {t / t_nd:6.2f}x faster")
        if name == "dask_image.imread":
            met = "MET" if t / t_nd >= 10 else "NOT MET"
            print(f"  target: open >= 10x faster than dask_image.imread: {t / t_nd:.1f}x -> {met}")

    if args.skip_read:
        return 0
    print("## reading everything: sum, two threads, warm (GB/s, median of the runs)")
    t_loop = median_time(lambda: plain_loop(paths), args.repeat)
    limit = nbytes / t_loop / 1e9
    print(f"    plain imagecodecs.imread loop, 2 threads {limit:6.3f} GB/s (the practical limit)")
    with dask.config.set(scheduler="threads", num_workers=2):
        t = median_time(lambda: arr.sum().compute(), args.repeat)
        ours = nbytes / t / 1e9
        print(f"    ndstack open(...).sum()                 {ours:6.3f} GB/s = {ours / limit:.1%}")
        peers: dict[str, Any] = {
            "dask.array.image": dask.array.image.imread(pattern, imread=imagecodecs.imread)
        }
        if di is not None:
            peers["dask_image.imread"] = di.imread(pattern)
        for name, a in peers.items():
            t = median_time(lambda a=a: da.sum(a).compute(), args.repeat)
            rate = nbytes / t / 1e9
            print(
                f"    {name:39s} {rate:6.3f} GB/s = {rate / limit:.1%}; ndstack {ours / rate:.2f}x"
            )
    met = "MET" if ours / limit >= 0.9 else "NOT MET"
    print(f"  target: full read >= 90% of the plain loop: {ours / limit:.1%} -> {met}")
    print(
        f"\nrerun: python bench/formats.py --n {args.n} --size {args.size} --repeat {args.repeat}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
