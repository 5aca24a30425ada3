"""Named processing steps with typed parameters: what ``ndstack process`` chains.

A step is written ``name`` or ``name key=value,key=value``; every parameter is checked
against the step's list before anything is computed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import NdstackError
from . import _basic, _deconvolve, _deskew, _filters, _recenter

__all__ = ["STEPS", "Step", "parse_params", "run_steps"]


def _read_image(path: str) -> np.ndarray:
    import tifffile

    try:
        return np.asarray(tifffile.imread(path), dtype=np.float32)
    except Exception as exc:
        raise NdstackError(f"{path}: cannot read it as a TIFF ({exc})") from None


def _psf(text: str) -> Any:
    """One TIFF, or one per channel joined by '+': 488.tif+560.tif+642.tif."""
    import xarray as xr

    paths = text.split("+")
    if len(paths) == 1:
        return _read_image(paths[0])
    stack = np.stack([_read_image(p) for p in paths])
    dims = ("C", "Z", "Y", "X") if stack.ndim == 4 else ("C", "Y", "X")
    return xr.DataArray(stack, dims=dims)


def _size(text: str) -> tuple[int, int]:
    h, _, w = text.lower().partition("x")
    return int(h), int(w)


def _range(text: str) -> slice:
    a, _, b = text.partition(":")
    return slice(int(a) if a else None, int(b) if b else None)


@dataclass(frozen=True)
class Step:
    """A processing step: the function and its parameters (name -> (parse, default, help))."""

    func: Callable[..., Any]
    params: dict[str, tuple[Callable[[str], Any], Any, str]]
    help: str
    any_dim_params: bool = False  # crop: every parameter is a dim name
    required: tuple[str, ...] = field(default_factory=tuple)
    device: bool = False  # takes device="cpu" | "gpu" | "auto" (ndstack process --device)


STEPS: dict[str, Step] = {
    "deskew": Step(
        lambda a, **k: _deskew.deskew(a, **k),
        {"angle": (float, 31.5, "light-sheet angle, degrees"),
         "dz": (float, None, "stage step (default: pixel size Z)"),
         "dx": (float, None, "pixel size (default: pixel size X)"),
         "direction": (int, 1, "scan direction, 1 or -1")},
        "stage-scanning light-sheet deskew (linear interpolation)", device=True),
    "deconvolve": Step(
        lambda a, **k: _deconvolve.deconvolve(a, **k),
        {"psf": (_psf, None, "PSF TIFF, or one per channel joined by '+'"),
         "iterations": (int, 10, "Richardson-Lucy iterations"),
         "background": (float, 0.0, "constant subtracted first")},
        "Richardson-Lucy deconvolution", required=("psf",), device=True),
    "crop": Step(lambda a, **k: _basic.crop(a, **k), {}, "index ranges per dim: Y=100:400,X=0:256",
                 any_dim_params=True),
    "project": Step(
        lambda a, **k: _basic.project(a, **k),
        {"dim": (str, "Z", "the dim to project away"), "how": (str, "max", "max, mean or sum")},
        "projection along a dim"),
    "background": Step(
        lambda a, **k: _basic.subtract_background(a, **k),
        {"value": (float, None, "a constant"), "percentile": (float, None, "per plane")},
        "subtract a background, clipped at 0"),
    "flatfield": Step(
        lambda a, **k: _basic.flatfield(a, **k),
        {"flat": (_read_image, None, "flat-field TIFF"), "dark": (_read_image, None, "dark TIFF")},
        "flat-field correction", required=("flat",)),
    "gaussian": Step(
        lambda a, **k: _filters.gaussian(a, **k),
        {"sigma": (float, 1.0, "pixels"),
         "dims": (lambda s: tuple(s.upper()), ("Y", "X"), "e.g. ZYX")},
        "Gaussian filter, exact across chunk borders", device=True),
    "median": Step(
        lambda a, **k: _filters.median(a, **k),
        {"size": (int, 3, "window"), "dims": (lambda s: tuple(s.upper()), ("Y", "X"), "e.g. YX")},
        "median filter, exact across chunk borders", device=True),
    "recenter": Step(
        lambda a, **k: _recenter.recenter(a, **k),
        {"size": (_size, None, "window HxW, e.g. 64x64")},
        "crop each plane around its intensity centroid", required=("size",)),
    "power_spectrum": Step(
        lambda a, **k: _basic.power_spectrum(a, **k),
        {"dim": (str, "T", "the dim to transform")},
        "per-pixel |FFT|^2 along a dim", device=True),
}  # fmt: skip


def parse_params(name: str, text: str) -> dict[str, Any]:
    """``"k=v,k=v"`` into typed parameters of step ``name``; errors name what is wrong."""
    if name not in STEPS:
        raise NdstackError(f"unknown step {name!r}; steps: {', '.join(STEPS)}")
    step = STEPS[name]
    out: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise NdstackError(f"step {name}: expected key=value, got {item!r}")
        if step.any_dim_params:
            try:
                out[key] = _range(value)
            except ValueError:
                raise NdstackError(f"step {name}: {key}={value!r} is not a range a:b") from None
            continue
        if key not in step.params:
            raise NdstackError(
                f"step {name}: unknown parameter {key!r}; parameters: {', '.join(step.params)}"
            )
        parse = step.params[key][0]
        try:
            out[key] = parse(value)
        except NdstackError:
            raise
        except (ValueError, TypeError):
            raise NdstackError(f"step {name}: {key}={value!r} is not valid") from None
    missing = [r for r in step.required if r not in out]
    if missing:
        raise NdstackError(f"step {name}: {', '.join(missing)} is required")
    return out


def run_steps(
    arr: Any, steps: Sequence[tuple[str, dict[str, Any]]], *, device: str | None = None
) -> Any:
    """Apply the steps in order, lazily; a step's own checks run before any computing.

    ``device`` (``"cpu"``, ``"gpu"`` or ``"auto"``) goes to every step that takes one;
    ``None`` leaves each step's default (``"auto"``).
    """
    for name, params in steps:
        step = STEPS[name]
        if step.device and device is not None:
            params = {"device": device, **params}
        try:
            arr = step.func(arr, **params)
        except (ValueError, KeyError) as exc:
            raise NdstackError(f"step {name}: {exc}") from None
    return arr


def describe() -> str:
    """The text of ``ndstack process --list``."""
    lines = []
    for name, step in STEPS.items():
        gpu = "  [--device: CPU or GPU]" if step.device else ""
        lines.append(f"--{name.replace('_', '-')}  {step.help}{gpu}")
        if step.any_dim_params:
            lines.append("      DIM=a:b   an index range for each dim to crop")
        for key, (_, default, text) in step.params.items():
            req = " (required)" if key in step.required else f" (default: {default})"
            lines.append(
                f"      {key:<12}{text}{req if default is not None or key in step.required else ''}"
            )
    return "\n".join(lines)
