"""A summary of an opened array: the same for ``ndstack info`` and for notebooks."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._redact import redact
from ._util import AttrDict

__all__ = ["Info", "format_info", "info"]


class Info(AttrDict):
    """What :func:`info` returns: a dict (``json.dumps`` as it is) whose keys also read as
    attributes, and whose ``str()`` is the :func:`format_info` text."""

    def __str__(self) -> str:
        return format_info(self)


def info(arr: Any, pattern: str | None = None, **options: Any) -> Info:
    """Summarise what ``ndstack.open`` built (or would build): an :class:`Info` (a dict).

    Credentials in the source's URL are redacted (see :func:`ndstack._redact.redact`).

    Parameters
    ----------
    arr
        A DataArray from :func:`ndstack.open`, or a source to open (no pixel is read).
    pattern, **options
        Passed to :func:`ndstack.open` when ``arr`` is a source.

    Returns
    -------
    dict
        Keys: ``dims``, ``shape``, ``dtype``, ``chunks`` (largest chunk per dim),
        ``nchunks``, ``nbytes``, ``files``, ``missing``, ``bad_files``, ``coords``
        (dim -> values), ``extra_coords`` (name -> {dims, values, units}),
        ``axis_sources`` (how each axis was found), ``pixel_size``, ``pixel_unit``,
        ``constants``, ``source``, ``pattern``, ``layout``, ``skipped``.
    """
    import xarray as xr

    if not isinstance(arr, xr.DataArray):
        from ._open import open as _open

        arr = _open(arr, pattern, **options)
    a = arr.attrs
    data = arr.data
    chunks = getattr(data, "chunks", None) or tuple((n,) for n in arr.shape)
    coords: dict[str, list[Any]] = {}
    extra: dict[str, Any] = {}
    for name, c in arr.coords.items():
        values = [_plain(v) for v in np.asarray(c.values).ravel().tolist()]
        if c.dims == (name,):
            coords[str(name)] = values
        else:
            extra[str(name)] = {
                "dims": list(c.dims),
                "values": values,
                "units": c.attrs.get("units"),
            }
    return Info(
        {
            "source": _redacted(a.get("source")),
            "pattern": a.get("pattern"),
            "layout": a.get("layout"),
            "dims": list(arr.dims),
            "shape": list(arr.shape),
            "dtype": str(arr.dtype),
            "chunks": {d: max(c) if c else 0 for d, c in zip(arr.dims, chunks)},
            "nchunks": int(np.prod([len(c) for c in chunks])),
            "nbytes": int(arr.nbytes),
            "files": a.get("files"),
            "skipped": a.get("skipped", 0),
            "missing": list(a.get("missing", [])),
            "bad_files": [_redacted(b) for b in a.get("bad_files", [])],
            "coords": coords,
            "extra_coords": extra,
            "axis_sources": dict(a.get("axis_sources", {})),
            "pixel_size": dict(a.get("pixel_size", {})),
            "pixel_unit": a.get("pixel_unit"),
            "pixel_note": a.get("pixel_note"),
            "constants": dict(a.get("constants", {})),
        }
    )


def _redacted(v: Any) -> Any:
    return redact(v) if isinstance(v, str) else v


def _plain(v: Any) -> Any:
    if isinstance(v, float) and v != v:
        return None  # NaN: a coordinate of a position without a file
    return v


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover


def _fmt_values(values: list[Any], n: int = 4) -> str:
    shown = ", ".join(str(v) for v in values[:n])
    return shown + (f", ... {values[-1]}" if len(values) > n else "")


def format_info(d: dict[str, Any]) -> str:
    """The human-readable form of :func:`info`'s dict.

    >>> print(format_info({"source": "x", "dims": ["Y", "X"], "shape": [2, 3],
    ...     "dtype": "uint8", "chunks": {"Y": 2, "X": 3}, "nchunks": 1, "nbytes": 6,
    ...     "files": 1}).splitlines()[1])
      1 file, 6 B (uint8), 1 chunk of 6 B
    """
    nchunk_bytes = int(np.prod(list(d["chunks"].values()))) * np.dtype(d["dtype"]).itemsize
    files = d.get("files") or 0
    lines = [
        f"ndstack: {d.get('source')}"
        + (f"  (pattern {d['pattern']!r})" if d.get("pattern") else "  (axes inferred from names)"),
        f"  {files} file{'s' if files != 1 else ''}, {_fmt_bytes(d['nbytes'])} ({d['dtype']}), "
        f"{d['nchunks']} chunk{'s' if d['nchunks'] != 1 else ''} of {_fmt_bytes(nchunk_bytes)}",
        "  shape   " + "  ".join(f"{k}: {n}" for k, n in zip(d["dims"], d["shape"])),
        "  chunks  " + "  ".join(f"{k}: {n}" for k, n in d["chunks"].items()),
        "  axes",
    ]
    sources = d.get("axis_sources", {})
    px = d.get("pixel_size", {})
    extra = d.get("extra_coords", {})
    for dim, n in zip(d["dims"], d["shape"]):
        values = d.get("coords", {}).get(dim)
        shown = _fmt_values(values) if values else ""
        size = f" {px[dim]:g} {d.get('pixel_unit') or ''}/px".rstrip() if dim in px else ""
        lines.append(f"    {dim:<8} {n:>6}  {shown:<28}{size} <- {sources.get(dim, '')}".rstrip())
        for name, c in extra.items():
            if c["dims"] and c["dims"][-1] == dim:
                units = f" {c['units']}" if c.get("units") else ""
                on = ",".join(c["dims"])
                shown = _fmt_values(c["values"])
                lines.append(f"      {name} ({on}){units}: {shown}  <- {sources.get(name, '')}")
    for dim, how in sources.items():
        if dim not in d["dims"] and dim not in extra:
            lines.append(f"    {dim:<8} {'':>6}  {how}")
    if d.get("pixel_note"):
        lines.append(f"  pixel size: {d['pixel_note']}")
    if d.get("constants"):
        lines.append(
            "  constant in every name: " + ", ".join(f"{k}={v}" for k, v in d["constants"].items())
        )
    missing = d.get("missing", [])
    lines.append(
        f"  missing {len(missing)}"
        + (f": {'; '.join(missing[:5])}" + (" ..." if len(missing) > 5 else "") if missing else "")
    )
    if d.get("bad_files"):
        lines.append(f"  unreadable {len(d['bad_files'])} (filled): {d['bad_files'][0]}")
    if d.get("skipped"):
        lines.append(f"  skipped {d['skipped']} files the pattern does not match")
    return redact("\n".join(lines))
