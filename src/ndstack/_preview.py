"""Preview pictures: a montage of per-channel maximum projections, as a PNG.

A preview is always a PNG (``.png``), whatever matplotlib could write: one format keeps
the output check simple and a source TIFF out of reach. It never goes inside its source
(nor over one of its files), never replaces an existing file unless asked
(``overwrite``), and is written to a temporary file first and moved into place, so an
interrupted run leaves no half-written picture.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterable
from typing import Any

import numpy as np

from .errors import DestinationError, ParameterError

__all__ = ["check_output", "preview"]

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


def _local_folder(source: Any) -> str | None:
    """The local folder a source names (a file: its folder; a glob: its fixed part)."""
    from ._discover import _GLOB_CHARS, _glob_root
    from ._util import local_path

    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str) or not source:
        return None
    local = local_path(source)
    if local is None:
        return None  # another filesystem: nothing of it is a local path
    source = local
    if not os.path.exists(source) and _GLOB_CHARS & set(source):
        source = _glob_root(source)
    if os.path.isfile(source):
        source = os.path.dirname(os.path.abspath(source))
    return os.path.realpath(source) if os.path.isdir(source) else None


def check_output(path: Any, sources: Iterable[Any] = (), *, overwrite: bool = False) -> str:
    """The preview's path, checked before anything is read: a ``.png`` outside the sources.

    Raises
    ------
    ParameterError
        The path does not end in ``.png``, or is a URL.
    DestinationError
        The path lies inside a source's folder, is a folder, or exists and ``overwrite``
        is not set.
    """
    text = os.fspath(path)
    if "://" in text:
        raise ParameterError(f"preview output {text!r}: expected a local .png path, not a URL")
    if not text.lower().endswith(".png"):
        raise ParameterError(
            f"preview output {text!r}: expected a .png file (a preview is always a PNG)"
        )
    real = os.path.realpath(text)
    for source in sources:
        folder = _local_folder(source)
        inside = folder is not None and os.path.commonpath([real, folder]) == folder
        if inside:
            raise DestinationError(
                f"preview output {text!r} lies inside the source {folder!r}; "
                "write it outside the source"
            )
    if os.path.isdir(real):
        raise DestinationError(f"preview output {text!r} is a folder; expected a .png file")
    if os.path.lexists(text) and not overwrite:
        raise DestinationError(
            f"preview output {text!r} exists; pass overwrite=True (--overwrite) to replace it"
        )
    return text


def _check_options(dim: Any, every: Any, max_columns: Any, percentiles: Any) -> tuple[float, float]:
    for name, value in (("every", every), ("max_columns", max_columns)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ParameterError(f"{name}: expected a whole number from 1, got {value!r}")
    if not isinstance(dim, str):
        raise ParameterError(f"dim: expected a dim name, got {dim!r}")
    try:
        lo, hi = (float(p) for p in percentiles)
    except (TypeError, ValueError):
        raise ParameterError(f"percentiles: expected (low, high), got {percentiles!r}") from None
    if not 0 <= lo < hi <= 100:
        raise ParameterError(
            f"percentiles: expected 0 <= low < high <= 100, got {tuple(percentiles)!r}"
        )
    return lo, hi


def preview(
    arr: Any,
    path: str | os.PathLike[str],
    *,
    dim: str = "T",
    every: int = 1,
    max_columns: int = 8,
    percentiles: tuple[float, float] = (0.5, 99.8),
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write a PNG montage: rows = channels, columns = every ``every``-th index of ``dim``.

    Each panel is the maximum projection over ``Z`` (when present) of one channel at one
    index, so only those planes are read. Contrast per channel comes from percentiles of
    what is drawn; a scale bar is drawn when the X pixel size is known.

    ``path`` must end in ``.png`` and lie outside the source's folder
    (``arr.attrs["root"]``, when local); an existing file is replaced only with
    ``overwrite=True``. The picture is written to a temporary file beside ``path`` and
    moved into place. Every option is checked before anything is read.

    Returns
    -------
    dict
        ``rows``, ``columns``, ``scale_bar`` (length in the pixel unit, or None), ``path``.

    Raises
    ------
    ParameterError, DestinationError
        Bad options, or an output path that is refused (see :func:`check_output`).
    """
    percentiles = _check_options(dim, every, max_columns, percentiles)
    from ._zarr.sources import source_paths

    check_output(path, [arr.attrs.get("root"), *source_paths(arr)], overwrite=overwrite)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    others = [d for d in arr.dims if d not in ("C", dim, "Z", "Y", "X")]
    view = arr.isel(dict.fromkeys(others, 0))  # one position / tile etc.: the first
    cols = list(range(0, view.sizes.get(dim, 1), every))[:max_columns]
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
    try:
        _save_atomically(fig, os.fspath(path))
    finally:
        plt.close(fig)
    return {"rows": len(rows), "columns": len(cols), "scale_bar": bar, "path": os.fspath(path)}


def _save_atomically(fig: Any, path: str) -> None:
    """PNG to a temporary file in the same folder, then renamed over ``path``."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.partial")
    try:
        with open(tmp, "xb") as f:  # the umask's permissions, like any new file
            fig.savefig(f, format="png", dpi=100, facecolor="black")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
