"""Pure OME-NGFF 0.5 metadata: which dims form an image, axes, scales, channels.

NGFF allows 2 to 5 axes per image: at most one ``time`` axis (first), at most one
``channel`` and one custom axis, then 2 or 3 ``space`` axes. ndstack maps ``T`` to time,
``C`` to channel, ``Z``/``Y``/``X`` to space. One further axis (e.g. an unlabelled image
sequence) becomes a custom axis when it fits; every other axis (positions ``P``, tiles,
extra labels) *splits* the data into one NGFF image per index, stored side by side in the
``bioformats2raw.layout`` that viewers (napari-ome-zarr, ome-zarr-py, Fiji's MoBIE) open.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._redact import redact
from .errors import LayoutError

__all__ = ["ImagePlan", "channel_colors", "channel_labels", "plan_image", "redact"]

NGFF_VERSION = "0.5"
SPACE = ("Z", "Y", "X")
_NGFF_SPACE_UNITS = {
    "micrometer", "nanometer", "millimeter", "centimeter", "meter", "angstrom", "picometer",
}  # fmt: skip


@dataclass(frozen=True)
class ImagePlan:
    """How an N-D array is laid out as NGFF images."""

    image_dims: tuple[str, ...]  # dims of each image array, in NGFF order
    split_dims: tuple[str, ...]  # dims that index separate images (empty: one image)
    custom: str | None  # the image dim written as a custom axis, if any


def plan_image(dims: Sequence[str]) -> ImagePlan:
    """Choose the image dims (NGFF order) and the dims that split the data into images.

    >>> plan_image(["P", "T", "C", "Z", "Y", "X"])
    ImagePlan(image_dims=('T', 'C', 'Z', 'Y', 'X'), split_dims=('P',), custom=None)
    >>> plan_image(["img", "Y", "X"])
    ImagePlan(image_dims=('img', 'Y', 'X'), split_dims=(), custom='img')
    """
    space = [d for d in SPACE if d in dims]
    if "Y" not in space or "X" not in space:
        raise LayoutError(f"an OME-NGFF image needs Y and X dims; the array has {tuple(dims)}")
    head = [d for d in ("T", "C") if d in dims]
    others = [d for d in dims if d not in space and d not in head]
    custom = None
    if others and len(head) + len(space) < 5:
        custom = others[-1]  # the innermost: most often the sequence inside each position
        others = others[:-1]
        head = [*head[:1], custom, *head[1:]] if head[:1] == ["T"] else [custom, *head]
        if "C" in head and head.index("C") > head.index(custom):
            head.remove("C")
            head.insert(head.index(custom), "C")
    return ImagePlan(tuple(head + space), tuple(others), custom)


def axes_metadata(plan: ImagePlan, unit: str | None) -> list[dict[str, Any]]:
    axes = []
    for d in plan.image_dims:
        if d == "T":
            axes.append({"name": "t", "type": "time"})
        elif d == "C":
            axes.append({"name": "c", "type": "channel"})
        elif d in SPACE:
            ax: dict[str, Any] = {"name": d.lower(), "type": "space"}
            if unit in _NGFF_SPACE_UNITS:
                ax["unit"] = unit
            axes.append(ax)
        else:
            axes.append({"name": d})
    return axes


def level_scale(plan: ImagePlan, pixel_size: Mapping[str, float], factor: int) -> list[float]:
    """Scale of one pyramid level: pixel sizes, Y and X multiplied by ``factor``."""
    scale = []
    for d in plan.image_dims:
        s = float(pixel_size.get(d, 1.0))
        scale.append(s * factor if d in ("Y", "X") else s)
    return scale


_WAVE_COLORS = ((430, "0000FF"), (500, "00FFFF"), (540, "00FF00"), (590, "FFFF00"), (620, "FF0000"))
_CYCLE = ("00FF00", "FF00FF", "00FFFF", "FF0000", "0000FF", "FFFF00")


def channel_colors(labels: Sequence[Any], wavelengths: Sequence[Any] | None) -> list[str]:
    """A colour per channel: by emission wavelength where known, else a fixed cycle.

    >>> channel_colors(["a", "b", "c"], [488, 560, 642])
    ['00FFFF', 'FFFF00', 'FF00FF']
    """
    out = []
    for i, _ in enumerate(labels):
        wl = wavelengths[i] if wavelengths is not None else None
        if isinstance(wl, (int, float, np.integer, np.floating)) and np.isfinite(wl):
            out.append(next((c for limit, c in _WAVE_COLORS if wl < limit), "FF00FF"))
        else:
            out.append(_CYCLE[i % len(_CYCLE)])
    return out


def channel_labels(arr: Any) -> tuple[list[str], list[float] | None]:
    """A label per channel of a DataArray, and the wavelengths if a coordinate gives them.

    A numeric coordinate along C gives ``560nm`` (its value and unit) and the
    wavelengths; else another coordinate along C gives its values; else the C coordinate;
    else the index. One answer for the OMERO metadata and napari's layer names.
    """
    n = arr.sizes["C"]
    along = [(name, c) for name, c in arr.coords.items() if c.dims == ("C",) and name != "C"]
    for _, c in along:
        if c.values.dtype.kind in "iuf":
            values = c.values.tolist()
            units = c.attrs.get("units", "")
            return [f"{v:g}{units}" for v in values], values
    if along:
        return [f"{v}{along[0][1].attrs.get('units', '')}" for v in along[0][1].values], None
    if "C" in arr.coords:
        return [str(v) for v in arr.coords["C"].values], None
    return [str(i) for i in range(n)], None
