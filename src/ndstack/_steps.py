"""Named processing steps with typed parameters: what ``ndstack process`` chains.

A step is written ``name`` or ``name key=value,key=value``; every parameter is checked
against the step's list, and its value against its range (``sigma`` above 0, ``percentile``
from 0 to 100, ``iterations`` from 1, crop ranges not inverted ...), before the source is
opened; what needs the array (its dims and sizes) is checked by the operation itself,
before anything is computed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import CorruptFileError, NdstackError, ParameterError
from .ops import _basic, _checks, _deconvolve, _deskew, _filters, _recenter

__all__ = ["STEPS", "Step", "parse_params", "run_steps"]


def _read_image(path: str) -> np.ndarray:
    import tifffile

    try:
        return np.asarray(tifffile.imread(path), dtype=np.float32)
    except Exception as exc:
        raise CorruptFileError(f"{path}: cannot read it as a TIFF ({exc})") from None


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
    return _checks.whole(int(h), "size height"), _checks.whole(int(w), "size width")


def _range(text: str) -> slice:
    a, colon, b = text.partition(":")
    if not colon:
        raise ValueError(text)
    start, stop = int(a) if a else None, int(b) if b else None
    if start is not None and stop is not None and (start < 0) == (stop < 0) and start >= stop:
        raise ParameterError(f"{text}: selects nothing (start must be below stop)")
    return slice(start, stop)


def _number(**bounds: float) -> Callable[[str], float]:
    """A parser of a number in a range (see :func:`_checks.number`)."""
    return lambda text: _checks.number(float(text), "value", **bounds)


def _whole(text: str) -> int:
    return _checks.whole(int(text), "value")


def _choice(*options: Any) -> Callable[[str], Any]:
    kind = type(options[0])
    return lambda text: _checks.choice(kind(text), "value", options)


def _dims(text: str) -> tuple[str, ...]:
    if not text.isalpha():
        raise ParameterError(f"{text!r}: expected dim letters such as YX or ZYX")
    return tuple(text.upper())


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
        {"angle": (_number(above=0, below=90), 31.5, "light-sheet angle, degrees"),
         "dz": (_number(above=0), None, "stage step (default: pixel size Z)"),
         "dx": (_number(above=0), None, "pixel size (default: pixel size X)"),
         "direction": (_choice(1, -1), 1, "scan direction, 1 or -1")},
        "stage-scanning light-sheet deskew (linear interpolation)", device=True),
    "deconvolve": Step(
        lambda a, **k: _deconvolve.deconvolve(a, **k),
        {"psf": (_psf, None, "PSF TIFF, or one per channel joined by '+'"),
         "iterations": (_whole, 10, "Richardson-Lucy iterations"),
         "background": (_number(at_least=0), 0.0, "constant subtracted first")},
        "Richardson-Lucy deconvolution", required=("psf",), device=True),
    "crop": Step(lambda a, **k: _basic.crop(a, **k), {}, "index ranges per dim: Y=100:400,X=0:256",
                 any_dim_params=True),
    "project": Step(
        lambda a, **k: _basic.project(a, **k),
        {"dim": (str, "Z", "the dim to project away"),
         "how": (_choice("max", "mean", "sum"), "max", "max, mean or sum")},
        "projection along a dim"),
    "background": Step(
        lambda a, **k: _basic.subtract_background(a, **k),
        {"value": (_number(), None, "a constant"),
         "percentile": (_number(at_least=0, at_most=100), None, "per plane, 0 to 100")},
        "subtract a background, clipped at 0"),
    "flatfield": Step(
        lambda a, **k: _basic.flatfield(a, **k),
        {"flat": (_read_image, None, "flat-field TIFF"), "dark": (_read_image, None, "dark TIFF")},
        "flat-field correction", required=("flat",)),
    "gaussian": Step(
        lambda a, **k: _filters.gaussian(a, **k),
        {"sigma": (_number(above=0), 1.0, "pixels"), "dims": (_dims, ("Y", "X"), "e.g. ZYX")},
        "Gaussian filter, exact across chunk borders", device=True),
    "median": Step(
        lambda a, **k: _filters.median(a, **k),
        {"size": (_whole, 3, "window"), "dims": (_dims, ("Y", "X"), "e.g. YX")},
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
        raise ParameterError(f"unknown step {name!r}; steps: {', '.join(STEPS)}")
    step = STEPS[name]
    out: dict[str, Any] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise ParameterError(f"step {name}: expected key=value, got {item!r}")
        if key in out:
            raise ParameterError(f"step {name}: {key} given twice")
        if step.any_dim_params:
            try:
                out[key] = _range(value)
            except ParameterError as exc:
                raise ParameterError(f"step {name}: {key}={exc}") from None
            except ValueError:
                raise ParameterError(f"step {name}: {key}={value!r} is not a range a:b") from None
            continue
        if key not in step.params:
            raise ParameterError(
                f"step {name}: unknown parameter {key!r}; parameters: {', '.join(step.params)}"
            )
        parse = step.params[key][0]
        try:
            out[key] = parse(value)
        except ParameterError as exc:  # a value out of range: the message says which
            reason = str(exc).removeprefix("value: ")
            raise ParameterError(f"step {name}: {key}={value!r}: {reason}") from None
        except NdstackError:
            raise
        except (ValueError, TypeError):
            raise ParameterError(f"step {name}: {key}={value!r} is not valid") from None
    missing = [r for r in step.required if r not in out]
    if missing:
        raise ParameterError(f"step {name}: {', '.join(missing)} is required")
    for key, (_, default, _) in step.params.items():  # the defaults --list shows
        if key not in out and default is not None:
            out[key] = default
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
        except (ValueError, KeyError, TypeError) as exc:
            raise ParameterError(f"step {name}: {exc}") from None
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
