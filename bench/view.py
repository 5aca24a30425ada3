"""Benchmark: processed data on demand in napari, ndstack.view beside the seed's recipe.

For raw data, deskew, and deskew + Richardson-Lucy (10 iterations), on the D1-like dataset
(64x256x256 uint16 stacks, 3 channels), in one run:

- ``ndstack.view(arr)`` of ``ndstack.open`` -> ``ops.deskew`` -> ``ops.deconvolve``;
- the seed's hand-written recipe: a Dask array of ``dask.delayed(imread)`` stacks, a
  ``map_blocks`` chain of the same kernels, ``viewer.add_image(..., channel_axis=1,
  contrast_limits=...)`` with limits given by hand (nothing computed for them);
- the ceiling: computing one timepoint's stacks (every channel) with the same kernels.

It prints the time to the first frame and per step of the T slider, each as a multiple of
the ceiling, and how many files each read (a counting reader). Runs headless
(``QT_QPA_PLATFORM=offscreen``, or under ``xvfb-run``); napari slices synchronously, so a
slider step's time is the time of setting it.

    python bench/view.py                 # 3 timepoints of D1 (9 files)
    python bench/view.py --stacks 4

Target (issue "Process and view on demand"): first frame and slider step <= 1.2x the
ceiling; never more reads than the recipe.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import threading
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PIXEL = {"Z": 0.4, "Y": 0.104, "X": 0.104}
ANGLE = 31.5


class Counter:
    def __init__(self) -> None:
        self.reads: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()

    def imread(self, path: str) -> np.ndarray:
        import tifffile

        with self.lock:
            self.reads[os.path.basename(path)] += 1
        return tifffile.imread(path)

    def take(self) -> int:
        with self.lock:
            n = sum(self.reads.values())
            self.reads.clear()
        return n


def psf() -> np.ndarray:
    z, y, x = np.mgrid[-4:5, -3:4, -3:4]
    p = np.exp(-(z**2) / 8 - (y**2 + x**2) / 2).astype(np.float32)
    return p / p.sum()


def ndstack_pipeline(source: str, counter: Counter, kind: str):
    import ndstack

    arr = ndstack.open(source, reader=counter.imread, file_axes="ZYX", pixel_size=PIXEL)
    if kind != "raw":
        arr = ndstack.ops.deskew(arr, angle=ANGLE)
    if kind == "deskew+decon":
        arr = ndstack.ops.deconvolve(arr, psf(), iterations=10)
    return arr


def recipe_pipeline(files: list[str], counter: Counter, kind: str):
    """The seed's hand-written recipe: delayed reads, a map_blocks chain."""
    import dask
    import dask.array as da

    from ndstack.ops.kernels import deskew_block, deskew_shift, richardson_lucy

    by_time: dict[str, list[str]] = collections.defaultdict(list)
    for f in sorted(files):
        by_time[f.split("_stack")[1][:4]].append(f)
    shape = (64, 256, 256)
    lazy = [[da.from_delayed(dask.delayed(counter.imread)(f), shape, np.uint16) for f in fs]
            for _, fs in sorted(by_time.items())]  # fmt: skip
    stack = da.stack([da.stack(row) for row in lazy])  # (T, C, Z, Y, X), a stack per chunk
    if kind == "raw":
        return stack
    shift = deskew_shift(ANGLE, PIXEL["Z"], PIXEL["X"])
    width = shape[2] + int(np.ceil(shift * (shape[0] - 1)))
    out = stack.map_blocks(lambda b: deskew_block(b[0, 0], shift)[None, None],
                           chunks=(1, 1, shape[0], shape[1], width), dtype=np.float32)  # fmt: skip
    if kind == "deskew+decon":
        kernel = psf()
        out = out.map_blocks(lambda b: richardson_lucy(b[0, 0], kernel, 10)[None, None],
                             dtype=np.float32)  # fmt: skip
    return out


def ceiling(arr) -> float:
    t = time.perf_counter()
    np.asarray(arr.isel(T=1).values)
    return time.perf_counter() - t


def show(napari, make_layers, counter: Counter) -> tuple[float, float, int, int]:
    """Seconds to the first frame (viewer made, layers sliced) and for one T step, and
    the files read by each; napari's chunk cache emptied first (as in a new session)."""
    from napari.utils import resize_dask_cache

    cache = resize_dask_cache(0)  # empty it, then as napari sets it up
    resize_dask_cache(nbytes=int(cache.cache.available_bytes) or None)
    counter.take()
    t = time.perf_counter()
    viewer = make_layers()
    first = time.perf_counter() - t
    reads_first = counter.take()
    step = list(viewer.dims.current_step)
    step[0] += 1
    t = time.perf_counter()
    viewer.dims.current_step = tuple(step)
    seconds = time.perf_counter() - t
    reads_step = counter.take()
    viewer.close()
    return first, seconds, reads_first, reads_step


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", default="bench-data")
    p.add_argument("--stacks", type=int, default=3, help="D1 timepoints (3 channels each)")
    args = p.parse_args()
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    warnings.simplefilter("ignore")
    sys.path.insert(0, HERE)
    import napari
    from open_read import D1_DIR, make_d1

    import ndstack

    napari.Viewer(show=False).close()  # Qt and napari start once, before any timing
    t = time.perf_counter()
    napari.Viewer(show=False).close()
    alone = time.perf_counter() - t
    source = os.path.join(args.data, D1_DIR.format(stacks=args.stacks))
    files = make_d1(source, args.stacks)
    print(f"D1: {len(files)} files of 64x256x256 uint16 ({args.stacks} timepoints x 3 "
          "channels); first frame and one T step, seconds (x the ceiling), files read\n")  # fmt: skip
    print(f"  {'':14s} {'ceiling':>8s}  {'ndstack.view':>28s}  {'recipe':>28s}")
    for kind in ("raw", "deskew", "deskew+decon"):
        counter = Counter()
        arr = ndstack_pipeline(source, counter, kind)
        top = ceiling(arr)
        nd_first, nd_step, nd_reads_first, nd_reads_step = show(
            napari,
            lambda arr=arr: ndstack.view(arr, viewer=napari.Viewer(show=False), block=False),
            counter,
        )
        rc = Counter()
        data = recipe_pipeline(files, rc, kind)
        limits = [100.0, 200.0] if kind == "raw" else [0.0, 200.0]

        def recipe(data=data, limits=limits):
            viewer = napari.Viewer(show=False)  # napari.view_image before napari 0.6
            viewer.add_image(data, channel_axis=1, contrast_limits=limits)
            return viewer

        r_first, r_step, r_reads_first, r_reads_step = show(napari, recipe, rc)
        print(
            f"  {kind:14s} {top:7.2f}s  first {nd_first:5.2f}s ({nd_first / top:4.2f}x) "
            f"step {nd_step:5.2f}s ({nd_step / top:4.2f}x)  first {r_first:5.2f}s "
            f"({r_first / top:4.2f}x) step {r_step:5.2f}s ({r_step / top:4.2f}x)"
        )
        print(f"  {'':14s} {'':8s}  reads: first {nd_reads_first}, step {nd_reads_step}"
              f"{'':12s}reads: first {r_reads_first}, step {r_reads_step}")  # fmt: skip
    print(f"\n  a napari viewer alone (made and closed, nothing in it): {alone:.2f}s")
    print(f"\n  rerun: python bench/view.py --stacks {args.stacks}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
