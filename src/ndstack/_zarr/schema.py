"""The ``ndstack`` attributes of a store: one typed schema, written and read through here.

A complete store keeps under ``attributes["ndstack"]`` of its root everything needed to
rebuild the DataArray it was written from (dims, shape, coordinates, attrs, name), how it
was written (``settings``), what it was made from (``source``: the digest of the source
fingerprint), its id (``store``) and the entries it owns (``written``: all that
``--overwrite`` may delete). The writer builds a :class:`StoredAttrs` and writes
:meth:`StoredAttrs.to_json`; the reader, resume and ``--overwrite`` get one back from
:meth:`StoredAttrs.from_json`, which treats the metadata as untrusted input: every field
is checked, and anything wrong is a :class:`DamagedStoreError` naming the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._redact import redact
from ..errors import DamagedStoreError
from .layout import entry_names

__all__ = ["StoredAttrs", "StoredCoord", "jsonable"]


def jsonable(v: Any) -> Any:
    """A JSON-ready copy of ``v``: NumPy values as Python's, NaN as null, strings redacted."""
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, np.ndarray):
        return jsonable(v.tolist())
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, str):
        return redact(v)
    if v is None or isinstance(v, (int, float, bool)):
        return v
    return str(v)


#: the kinds of coordinate values a store records
KINDS = ("str", "int", "float", "datetime")


@dataclass(frozen=True)
class StoredCoord:
    """One coordinate: its dims, its values (as JSON) and their kind."""

    dims: tuple[str, ...]
    values: Any  # nested lists of str, int, float (None for NaN) or ISO times ("NaT")
    kind: str  # "str", "int", "float" or "datetime"
    attrs: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, coord: Any) -> StoredCoord:
        values = coord.values
        kind = {"O": "str", "U": "str", "S": "str", "f": "float", "M": "datetime"}.get(
            values.dtype.kind, "int"
        )
        if kind == "datetime":  # time stamps from the names, to the microsecond
            values = np.datetime_as_string(values.astype("datetime64[us]"), unit="us")
        return cls(tuple(map(str, coord.dims)), jsonable(values), kind, jsonable(dict(coord.attrs)))

    def array(self) -> np.ndarray:
        """The values as an array of their kind."""
        if self.kind == "str":
            return np.asarray(self.values, dtype=str)
        if self.kind == "datetime":
            return np.asarray(self.values, dtype="datetime64[us]")
        if self.kind == "float":
            flat = [np.nan if v is None else v for v in np.ravel(self.values).tolist()]
            return np.asarray(flat, dtype=float).reshape(np.shape(self.values))
        return np.asarray(self.values, dtype=np.int64)


@dataclass(frozen=True)
class StoredAttrs:
    """What a complete store records of itself (see the module docstring)."""

    dims: tuple[str, ...]
    shape: tuple[int, ...]
    image_dims: tuple[str, ...]
    split_dims: tuple[str, ...]
    settings: dict[str, Any]
    coords: dict[str, StoredCoord] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    version: str = ""
    store: str | None = None
    written: tuple[str, ...] | None = None  # None: a store from before the list existed
    source: dict[str, Any] | None = None

    @property
    def n_images(self) -> int:
        """How many NGFF images the store holds (one per index of the split dims)."""
        return math.prod(self.shape[self.dims.index(d)] for d in self.split_dims)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "version": self.version,
            "dims": list(self.dims),
            "shape": list(self.shape),
            "image_dims": list(self.image_dims),
            "split_dims": list(self.split_dims),
            "name": self.name,
            "coords": {
                k: {"dims": list(c.dims), "values": c.values, "attrs": c.attrs, "kind": c.kind}
                for k, c in self.coords.items()
            },
            "attrs": jsonable(self.attrs),
            "settings": self.settings,
        }
        for key in ("store", "written", "source"):
            value = getattr(self, key)
            if value is not None:
                out[key] = list(value) if key == "written" else jsonable(value)
        return out

    def origin(self) -> dict[str, Any]:
        """What the stored array was made from, checked (the metadata is untrusted):
        ``from`` (the source as ndstack.open described it, ``store PATH``, or None for an
        array made in memory), ``pattern``, ``files`` (how many source files), ``processed``
        (True, False, or None when not known) and ``steps`` (what changed, as far as the
        writer could tell). Stores written before ndstack recorded these get them from the
        attrs they kept of the source and from the name of the array written."""
        src = self.source or {}
        recorded = "from" in src  # written by an ndstack that records where from

        def text(value: Any) -> str | None:
            return value if isinstance(value, str) and value else None

        if recorded:
            where, pattern = text(src.get("from")), text(src.get("pattern"))
            processed = src.get("processed") if isinstance(src.get("processed"), bool) else None
        else:
            where, pattern = text(self.attrs.get("source")), text(self.attrs.get("pattern"))
            array = str(self.settings.get("array") or "")
            as_read = array.startswith(("ndstack-open-", "ndstack-store-"))
            processed = False if as_read else (True if where and array else None)
        files = src.get("files", self.attrs.get("files") if where else None)
        steps = src.get("steps") if recorded else None
        return {
            "from": where,
            "pattern": pattern,
            "files": files if type(files) is int and files > 0 else None,
            "processed": processed,
            "steps": [s for s in steps if isinstance(s, str)] if isinstance(steps, list) else [],
        }

    @classmethod
    def from_json(cls, value: Any, where: str) -> StoredAttrs:
        """Check and read the ``ndstack`` attributes found in ``where`` (a file's path)."""

        def bad(what: str) -> DamagedStoreError:
            return DamagedStoreError(f"{where}: its ndstack attributes are damaged ({what})")

        if not isinstance(value, dict):
            raise bad(f"an object expected, found {type(value).__name__}")
        dims = _names(value.get("dims"), "dims", bad)
        shape = value.get("shape")
        ok = isinstance(shape, list) and len(shape) == len(dims)
        if not ok or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0
                             for n in shape):  # fmt: skip
            raise bad(f"shape {shape!r} does not fit dims {dims}")
        image_dims = _names(value.get("image_dims", list(dims)), "image_dims", bad)
        split_dims = _names(value.get("split_dims", []), "split_dims", bad)
        if not set(image_dims + split_dims) <= set(dims):
            raise bad(f"image and split dims {image_dims + split_dims} are not all in {dims}")
        settings = value.get("settings")
        if not isinstance(settings, dict):
            raise bad("no settings")
        coords = {}
        raw_coords = value.get("coords", {})
        if not isinstance(raw_coords, dict):
            raise bad("coords is not an object")
        for key, c in raw_coords.items():
            if not isinstance(c, dict) or c.get("kind", "int") not in KINDS:
                raise bad(f"coordinate {key!r}")
            c_dims = _names(c.get("dims"), f"the dims of coordinate {key!r}", bad)
            if not set(c_dims) <= set(dims) or "values" not in c:
                raise bad(f"coordinate {key!r} on dims {c_dims}")
            attrs = c.get("attrs", {})
            coords[str(key)] = StoredCoord(
                c_dims, c["values"], c.get("kind", "int"), attrs if isinstance(attrs, dict) else {}
            )
        attrs = value.get("attrs", {})
        written = value.get("written")
        if written is not None:
            if not entry_names(written):
                raise bad(f"the list of what ndstack wrote, {written!r}, names more than entries")
        source = value.get("source")
        name = value.get("name")
        return cls(
            dims=dims, shape=tuple(shape), image_dims=image_dims, split_dims=split_dims,
            settings=settings, coords=coords, attrs=attrs if isinstance(attrs, dict) else {},
            name=name if isinstance(name, str) else None, version=str(value.get("version", "")),
            store=value.get("store") if isinstance(value.get("store"), str) else None,
            written=tuple(written) if written is not None else None,
            source=source if isinstance(source, dict) else None,
        )  # fmt: skip


def _names(value: Any, what: str, bad: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise bad(f"{what} is {value!r}, expected a list of names")
    if len(set(value)) != len(value):
        raise bad(f"{what} {value!r} repeats a name")
    return tuple(value)
