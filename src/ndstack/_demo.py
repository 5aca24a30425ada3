"""A small synthetic dataset laid out like a lattice light-sheet experiment."""

from __future__ import annotations

import os

import numpy as np

__all__ = ["DEMO_NAME", "write_demo"]

#: Name template of the lattice light-sheet software (one 3-D stack per file).
DEMO_NAME = (
    "ex6-2_CamA_ch{c}_CAM1_stack{s:04d}_{wl}nm_{msec:07d}msec_{abs:010d}msecAbs"
    "_000x_000y_000z_0000t.tif"
)
WAVELENGTHS = (488, 560, 642)


def write_demo(
    out: str,
    *,
    timepoints: int = 6,
    shape: tuple[int, int, int] = (16, 128, 128),
    seed: int = 0,
) -> list[str]:
    """Write 3 channels x ``timepoints`` stacks of ``shape`` uint16 into ``out``.

    Each stack holds a few bright blobs that drift over time, on a camera offset with
    noise; ImageJ metadata records the pixel size (0.104 um) and z-step (0.4 um).
    Returns the paths written. Existing files of the same names are replaced.
    """
    import tifffile

    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(seed)
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    centers = rng.uniform(0.2, 0.8, size=(5, 3)) * np.array(shape)
    drift = rng.normal(0, 1.5, size=(5, 3))
    paths = []
    for s in range(timepoints):
        for c, wl in enumerate(WAVELENGTHS):
            img = np.full(shape, 100.0)
            for k, (cz, cy, cx) in enumerate(centers + s * drift):
                if k % 3 == c % 3 or k >= 3:
                    r2 = ((z - cz) / 2.0) ** 2 + ((y - cy) / 6.0) ** 2 + ((x - cx) / 6.0) ** 2
                    img += 2000.0 * np.exp(-r2 / 2)
            img = rng.poisson(img).astype(np.uint16)
            msec = s * 2013
            name = DEMO_NAME.format(c=c, s=s, wl=wl, msec=msec, abs=1291795 + msec + 210 * c)
            path = os.path.join(out, name)
            tifffile.imwrite(
                path,
                img,
                imagej=True,
                resolution=(1 / 0.104, 1 / 0.104),
                metadata={"spacing": 0.4, "unit": "um", "axes": "ZYX"},
            )
            paths.append(path)
    return paths
