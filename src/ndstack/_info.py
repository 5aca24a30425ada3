"""A summary of an opened array: the same for ``ndstack info`` and for notebooks."""

from __future__ import annotations

import datetime
import os
from typing import Any

import numpy as np

from ._redact import one_line, redact
from ._util import AttrDict

__all__ = ["Info", "format_info", "info"]


class Info(AttrDict):
    """What :func:`info` returns: a dict (``json.dumps`` as it is) whose keys also read as
    attributes, and whose ``str()`` is the :func:`format_info` text."""

    def __str__(self) -> str:
        return format_info(self)


def info(arr: Any, pattern: str | None = None, **options: Any) -> Info:
    """Summarise what ``ndstack.open`` built (or would build): an :class:`Info` (a dict).

    A store (a path to one, or an array exactly as ``ndstack.open`` read it from one) is
    described as the store: its path, format, codec, dims, shape and storage chunks; what
    it was written from, and whether that was processed first, is its ``provenance``.
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
        Keys: ``kind`` ("files", "store" or "array"), ``dims``, ``shape``, ``dtype``,
        ``chunks`` (largest chunk per dim; a store's: its storage chunks), ``nchunks``,
        ``nbytes``, ``files``, ``missing``, ``bad_files``, ``coords`` (dim -> values),
        ``extra_coords`` (name -> {dims, values, units}), ``axis_sources`` (how each axis
        was found), ``pixel_size``, ``pixel_unit``, ``constants``, ``source``, ``pattern``,
        ``layout``, ``skipped``; for a store also ``store`` (path, format, zarr_format,
        codec, clevel, levels, shards, written_by) and ``provenance`` (from, pattern,
        files, processed, steps; None for a store ndstack did not write).
    """
    import xarray as xr

    store = None
    if not isinstance(arr, xr.DataArray):
        from ._zarr.read import is_store

        if is_store(arr):
            store = os.fspath(arr)
        else:
            from ._open import open as _open

            arr = _open(arr, pattern, **options)
    else:
        store = _store_of(arr)
    if store is not None:
        from ._zarr.read import open_store

        # the storage chunks: what the store is made of (ndstack.open reads several at once)
        stored = open_store(store, storage_chunks=True, on_error=options.get("on_error", "raise"))
        if not isinstance(arr, xr.DataArray) or stored.shape == arr.shape:
            arr = stored
    out = _summary(arr)
    if store is None:
        out["kind"] = "files" if out.get("files") else "array"
        return out
    described = _describe_store(store)
    out.update(described)
    # the store is the source now; what ndstack.open found in the files is provenance
    out.update(source=described["store"]["path"], files=None, pattern=None, layout=None)
    return out


def _store_of(arr: Any) -> str | None:
    """The store ``arr`` is, as ndstack.open read it (nothing selected or computed)."""
    from ._zarr.sources import sources_of

    name = str(getattr(arr.data, "name", ""))
    if not name.startswith("ndstack-store-"):
        return None
    found = sources_of(arr)
    return found.stores[0] if len(found.stores) == 1 and not found.grids else None


def _summary(arr: Any) -> Info:
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
            **(
                {
                    "skipped_reason": a["skipped_reason"],
                    "skipped_files": [_redacted(n) for n in a.get("skipped_files", [])],
                }
                if a.get("skipped_reason")
                else {}
            ),
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


def _describe_store(store: str) -> dict[str, Any]:
    """The store itself (path, format, codec, levels) and, when ndstack wrote it, what it
    was written from."""
    from ._zarr.read import array_meta, level_paths, read_node, store_levels, stored_attrs

    node = read_node(store)
    nd = stored_attrs(store)
    settings = nd.settings if nd is not None else {}
    meta, zarr_format, _, _ = array_meta(level_paths(store)[0])
    codec, clevel = _codec(meta)
    fmt = settings.get("format")
    if not isinstance(fmt, str):
        fmt = "zarr" if node is not None and node.kind == "array" else "ome-zarr"
    shards = settings.get("shards")
    return {
        "kind": "store",
        "store": {
            "path": _redacted(os.path.abspath(store) if os.path.isdir(store) else store),
            "format": fmt,
            "zarr_format": zarr_format,
            "codec": codec,
            "clevel": clevel,
            "levels": store_levels(store),
            "shards": dict(shards) if isinstance(shards, dict) and shards else None,
            "written_by": f"ndstack {nd.version}".rstrip() if nd is not None else None,
        },
        "provenance": None if nd is None else {
            k: _redacted(v) for k, v in nd.origin().items()
        },
    }  # fmt: skip


def _codec(meta: dict[str, Any]) -> tuple[str, int | None]:
    """The compressor of a Zarr array's metadata (v3 codecs, inside shards too; v2's
    ``compressor``) and its level, or ``("none", None)``."""
    found: list[Any] = [meta.get("compressor")]
    pending = list(meta.get("codecs") or [])
    while pending:
        c = pending.pop(0)
        if not isinstance(c, dict):
            continue
        conf = c.get("configuration") if isinstance(c.get("configuration"), dict) else {}
        if c.get("name") == "sharding_indexed":
            pending.extend(conf.get("codecs") or [])
        elif c.get("name") not in ("bytes", "transpose", "crc32c", "endian"):
            found.append({"id": c.get("name"), **conf})
    for comp in found:
        if isinstance(comp, dict) and comp.get("id"):
            name = str(comp.get("cname") or comp["id"])
            level = comp.get("clevel", comp.get("level"))
            return name, level if type(level) is int else None
    return "none", None


def _redacted(v: Any) -> Any:
    return redact(v) if isinstance(v, str) else v


def _plain(v: Any) -> Any:
    if isinstance(v, float) and v != v:
        return None  # NaN: a coordinate of a position without a file
    if isinstance(v, datetime.datetime):
        return v.isoformat()  # a time stamp from the names
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
    plural = "s" if d["nchunks"] != 1 else ""
    nchunks = f"{d['nchunks']} chunk{plural} of {_fmt_bytes(nchunk_bytes)}"
    store = d.get("store") if d.get("kind") == "store" else None
    if store is not None:
        lines = [
            f"ndstack store: {store['path']}  ({_fmt_store(store)})",
            _fmt_provenance(d.get("provenance")),
            f"  {_fmt_bytes(d['nbytes'])} ({d['dtype']}), {nchunks}",
        ]
    else:
        files = d.get("files") or 0
        how = (
            f"pattern {d['pattern']!r}"
            if d.get("pattern")
            else "dims from the files' OME-XML"
            if d.get("layout") == "ome"
            else "axes inferred from names"
        )
        lines = [
            f"ndstack: {d.get('source')}  ({how})",
            f"  {files} file{'s' if files != 1 else ''}, {_fmt_bytes(d['nbytes'])} ({d['dtype']}), "
            + nchunks,
        ]
    lines += [
        "  shape   " + "  ".join(f"{k}: {n}" for k, n in zip(d["dims"], d["shape"])),
        "  chunks  " + "  ".join(f"{k}: {n}" for k, n in d["chunks"].items()),
    ]
    sources = d.get("axis_sources", {})
    in_source = store is not None and sources
    lines.append("  axes" + ("  (<- how ndstack found them in the source)" if in_source else ""))
    px = d.get("pixel_size", {})
    extra = d.get("extra_coords", {})
    for dim, n in zip(d["dims"], d["shape"]):
        values = d.get("coords", {}).get(dim)
        shown = _fmt_values(values) if values else ""
        size = f" {px[dim]:g} {d.get('pixel_unit') or ''}/px".rstrip() if dim in px else ""
        how = f" <- {sources[dim]}" if sources.get(dim) else ""
        lines.append(f"    {dim:<8} {n:>6}  {shown:<28}{size}{how}".rstrip())
        for name, c in extra.items():
            if c["dims"] and c["dims"][-1] == dim:
                units = f" {c['units']}" if c.get("units") else ""
                on = ",".join(c["dims"])
                shown = _fmt_values(c["values"])
                lines.append(f"      {name} ({on}){units}: {shown}  <- {sources.get(name, '')}")
    for dim, how in sources.items():
        if dim not in d["dims"] and dim not in extra:
            only = "in the source only: " if store is not None else ""
            lines.append(f"    {dim:<8} {'':>6}  {only}{how}")
    if d.get("pixel_note"):
        lines.append(f"  pixel size: {d['pixel_note']}")
    if d.get("constants"):
        lines.append(
            f"  constant in every {'source file ' if store is not None else ''}name: "
            + ", ".join(f"{k}={v}" for k, v in d["constants"].items())
        )
    missing = d.get("missing", [])
    shown = f": {'; '.join(missing[:5])}" + (" ..." if len(missing) > 5 else "") if missing else ""
    if store is None:
        lines.append(f"  missing {len(missing)}{shown}")
    elif missing:  # positions without a file in the source: the store holds the fill value
        lines.append(f"  missing in the source, written as the fill value: {len(missing)}{shown}")
    if d.get("bad_files"):
        lines.append(f"  unreadable {len(d['bad_files'])} (filled): {d['bad_files'][0]}")
    if d.get("skipped") and store is None:
        why = d.get("skipped_reason") or "the pattern does not match them"
        lines.append(f"  skipped {d['skipped']} files: {why}")
    return redact("\n".join(lines))


def _fmt_store(store: dict[str, Any]) -> str:
    """``ome-zarr, Zarr v3, zstd level 3, 3 levels, shards T: 8``."""
    codec = store.get("codec") or "none"
    if store.get("clevel") is not None and codec != "none":
        codec += f" level {store['clevel']}"
    levels = store.get("levels") or 1
    parts = [
        str(store.get("format")),
        f"Zarr v{store.get('zarr_format')}",
        codec,
        f"{levels} level{'s' if levels != 1 else ''}",
    ]
    if store.get("shards"):
        parts.append("shards " + "  ".join(f"{k}: {n}" for k, n in store["shards"].items()))
    return ", ".join(parts)


def _fmt_provenance(p: dict[str, Any] | None) -> str:
    """Where a store's data came from: the source it was written from, never the store."""
    if p is None:
        return "  written from: not recorded (not written by ndstack)"
    if not p.get("from"):
        return "  written from: an array made in memory (no source files)"
    details = []
    if p.get("files"):
        details.append(f"{p['files']} file{'s' if p['files'] != 1 else ''}")
    if p.get("pattern"):
        details.append(f"pattern {p['pattern']!r}")
    if p.get("processed") is True:  # the steps as one line each: the metadata is untrusted
        steps = ", ".join(one_line(str(s)) for s in p.get("steps") or [])
        details.append(f"processed: {steps or 'yes'}")
    elif p.get("processed") is False:
        details.append("not processed")
    else:
        details.append("processed: not recorded")
    return f"  written from: {one_line(str(p['from']))}  ({'; '.join(details)})"
