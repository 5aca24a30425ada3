"""Benchmark: deskew and Richardson-Lucy against their peers, in one run.

    python bench/ops.py

Sizes from shared/BASELINES.md: a (64, 256, 256) stack; deskew at 31.5 degrees,
dz 0.4 um, dx 0.104 um; deconvolution float32 with a 17^3 PSF, 10 iterations.
Targets: deskew >= 20x faster than scipy.ndimage.affine_transform(order=1);
Richardson-Lucy >= 2.5x faster per iteration than skimage.restoration.richardson_lucy,
agreeing to a relative L2 < 1e-5; tiles asked where their windows cover most of the
block (memory would hold it anyway) within 1.3x of untiled.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import ndimage

from ndstack.ops import deskew_block, richardson_lucy
from ndstack.ops._deskew import deskew_shift
from ndstack.ops.kernels import richardson_lucy_tiled


def best(fn: Callable[[], Any], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> int:
    rng = np.random.default_rng(0)
    z, y, x = np.ogrid[:64, :256, :256]
    stack = (
        1000
        + 800 * np.sin(z / 7) * np.cos(y / 23) * np.sin(x / 17)
        + rng.integers(0, 16, (64, 256, 256))
    ).astype(np.uint16)

    print("## deskew (64, 256, 256) uint16, 31.5 deg, dz 0.4 um, dx 0.104 um")
    shift = deskew_shift(31.5, 0.4, 0.104)
    ours = best(lambda: deskew_block(stack, shift), 5)
    out = deskew_block(stack, shift)
    m = np.eye(3)
    m[2, 0] = -shift
    ref_t = best(
        lambda: ndimage.affine_transform(
            stack.astype(np.float32), m, output_shape=out.shape, order=1, mode="grid-constant"
        ),
        2,
    )
    ref = ndimage.affine_transform(
        stack.astype(np.float32), m, output_shape=out.shape, order=1, mode="grid-constant"
    )
    print(f"  ndstack deskew_block      {ours:.4f} s")
    print(
        f"  affine_transform(order=1) {ref_t:.4f} s   ndstack is {ref_t / ours:.1f}x faster (target 20x)"
    )
    print(f"  max |difference| {np.abs(out - ref).max():.2e} (values up to {stack.max()})")

    print("\n## Richardson-Lucy (64, 256, 256) float32, 17^3 PSF, 10 iterations, s per iteration")
    zz, yy, xx = np.mgrid[-8:9, -8:9, -8:9]
    psf = np.exp(-(xx**2 + yy**2) / 8 - zz**2 / 18).astype(np.float32)
    psf /= psf.sum()
    image = stack.astype(np.float32) / stack.max()
    n = 10
    from skimage.restoration import richardson_lucy as sk_rl

    mine = richardson_lucy(image, psf, n)
    theirs = sk_rl(image, psf, num_iter=n, clip=False)
    ours = best(lambda: richardson_lucy(image, psf, n), 2) / n  # best of 2 runs, alternating
    sk = best(lambda: sk_rl(image, psf, num_iter=n, clip=False), 2) / n
    rel = np.linalg.norm(mine - theirs) / np.linalg.norm(theirs)
    print(f"  ndstack richardson_lucy   {ours:.4f} s/iter")
    print(
        f"  skimage richardson_lucy   {sk:.4f} s/iter   ndstack is {sk / ours:.2f}x faster (target 2.5x); relative L2 {rel:.1e}"
    )
    print("\n## Richardson-Lucy in overlapping tiles (same stack, 10 iterations), against untiled")
    from ndstack.ops._deconvolve import OVERLAP_PSFS, tile_windows, worthwhile_tile

    whole = best(lambda: richardson_lucy(image, psf, n), 2)
    for asked in ((64, 128, 128), (64, 160, 160), (64, 64, 64)):
        overlap = tuple(OVERLAP_PSFS * p for p in psf.shape)
        ran = worthwhile_tile(image.shape, asked, overlap)
        count = len(tile_windows(image.shape, ran, overlap))
        tiled_t = best(lambda asked=asked: richardson_lucy_tiled(image, psf, n, tile=asked), 2)
        got = richardson_lucy_tiled(image, psf, n, tile=asked)
        err = np.linalg.norm(got - mine) / np.linalg.norm(mine)
        print(
            f"  tile {asked} -> runs {ran} ({count} windows): {tiled_t:.2f} s = "
            f"{tiled_t / whole:.2f}x untiled ({whole:.2f} s); relative L2 {err:.1e}"
        )
    from ndstack.ops import _deconvolve

    auto_t = best(lambda: _deconvolve.richardson_lucy_auto(image, psf, n), 2)
    print(f"  tile='auto', memory to spare: {auto_t / whole:.2f}x untiled")
    real = _deconvolve.host_free_bytes
    for mib in (256, 128):  # as if a task had only this much memory
        _deconvolve.host_free_bytes = lambda mib=mib: mib << 20
        tile = _deconvolve.gpu_tile(image.shape, psf.shape, mib << 20)
        auto_t = best(lambda: _deconvolve.richardson_lucy_auto(image, psf, n), 2)
        print(f"  tile='auto' with {mib} MiB a task: tiles {tile}: {auto_t / whole:.2f}x untiled")
    _deconvolve.host_free_bytes = real
    try:
        import itk

        img = itk.image_view_from_array(image)
        kernel = itk.image_view_from_array(psf)
        t0 = time.perf_counter()
        itk.richardson_lucy_deconvolution_image_filter(
            img, kernel_image=kernel, number_of_iterations=3
        )
        print(f"  ITK                       {(time.perf_counter() - t0) / 3:.4f} s/iter")
    except ImportError:
        print("  ITK                       not installed (pip install itk to compare)")
    print("\nrerun: python bench/ops.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
