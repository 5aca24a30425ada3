"""Preview pictures: a montage of per-channel maximum projections, as a PNG."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

__all__ = ["preview"]

_NICE = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def _scale_bar(width_px: int, pixel: float) -> float:
    """A round length (in the pixel unit) about a fifth of the panel's width."""
    target = width_px * pixel / 5
    return max((n for n in _NICE if n <= target), default=_NICE[0])


def _label(arr: Any, dim: str, i: int) -> str:
    text = f"{dim}={arr.coords[dim].values[i] if dim in arr.coords else i}"
    for name, c in arr.coords.items():
        if c.dims == (dim,) and name != dim:
            units = c.attrs.get("units", "")
            text += f" ({c.values[i]}{units})"
            break
    return text


def preview(
    arr: Any,
    path: str | os.PathLike[str],
    *,
    dim: str = "T",
    every: int = 1,
    max_columns: int = 8,
    percentiles: tuple[float, float] = (0.5, 99.8),
) -> dict[str, Any]:
    """Write a PNG montage: rows = channels, columns = every ``every``-th index of ``dim``.

    Each panel is the maximum projection over ``Z`` (when present) of one channel at one
    index, so only those planes are read. Contrast per channel comes from percentiles of
    what is drawn; a scale bar is drawn when the X pixel size is known.

    Returns
    -------
    dict
        ``rows``, ``columns``, ``scale_bar`` (length in the pixel unit, or None), ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    others = [d for d in arr.dims if d not in ("C", dim, "Z", "Y", "X")]
    view = arr.isel(dict.fromkeys(others, 0))  # one position / tile etc.: the first
    cols = list(range(0, view.sizes.get(dim, 1), max(1, every)))[:max_columns]
    rows = list(range(view.sizes.get("C", 1)))
    panels = []
    for c in rows:
        row = []
        for t in cols:
            sel = {k: v for k, v in (("C", c), (dim, t)) if k in view.dims}
            plane = view.isel(sel)
            if "Z" in plane.dims:
                plane = plane.max("Z")
            row.append(np.asarray(plane.transpose("Y", "X").values, dtype=np.float32))
        panels.append(row)
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(2.2 * len(cols), 2.2 * len(rows)),
                             squeeze=False, facecolor="black")  # fmt: skip
    px = (arr.attrs.get("pixel_size") or {}).get("X")
    unit = arr.attrs.get("pixel_unit") or ""
    bar = None
    for r, c in enumerate(rows):
        lo, hi = np.percentile(np.stack(panels[r]), percentiles)
        for k, t in enumerate(cols):
            ax = axes[r][k]
            ax.imshow(panels[r][k], cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0 and dim in view.dims:
                ax.set_title(_label(view, dim, t), color="white", fontsize=8)
            if k == 0 and "C" in view.dims:
                ax.set_ylabel(_label(view, "C", c), color="white", fontsize=8)
            if px and r == len(rows) - 1 and k == len(cols) - 1:
                width = panels[r][k].shape[1]
                bar = _scale_bar(width, float(px))
                length = bar / float(px)
                y = panels[r][k].shape[0] * 0.92
                ax.plot([width * 0.95 - length, width * 0.95], [y, y], color="white", linewidth=3)
                short = unit.replace("micrometer", "µm")
                ax.text(width * 0.95 - length / 2, y * 0.97, f"{bar:g} {short}", color="white",
                        ha="center", va="bottom", fontsize=7)  # fmt: skip
    fig.tight_layout()
    fig.savefig(os.fspath(path), dpi=100, facecolor="black")
    plt.close(fig)
    return {"rows": len(rows), "columns": len(cols), "scale_bar": bar, "path": os.fspath(path)}
