"""The destination of a conversion: create, resume or refuse; the record beside the store.

The record (``.DEST.ndstack/`` next to ``DEST``) holds the settings, a fingerprint of the
source files (size, modification time) and one marker per finished task. It lives beside
the store, not in it, so that the store stays a clean Zarr hierarchy, and it is removed
once the store is complete; a complete store records its settings in its own metadata.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import uuid
from typing import Any

from ._ngff import redact
from ._store import METADATA_FILES, read_node
from .errors import DestinationError, NdstackError, SourceChangedError, WriteError

__all__ = ["_atomic_write", "_prepare_destination", "record_dir"]


def _atomic_write(path: str, payload: bytes) -> None:
    tmp = f"{path}.{uuid.uuid4().hex[:8]}.partial"
    try:
        try:
            f = open(tmp, "wb")
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            f = open(tmp, "wb")
        with f:
            f.write(payload)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.remove(tmp)
        except OSError:
            pass
        if exc.errno == errno.ENOSPC:
            raise WriteError(
                f"disk full while writing {path}; free some space and run the same "
                "command again to resume"
            ) from None
        raise WriteError(f"cannot write {path}: {exc.strerror or exc}") from None


def record_dir(dest: str) -> str:
    """The folder beside ``dest`` that records an unfinished conversion."""
    head, tail = os.path.split(os.path.abspath(dest).rstrip(os.sep))
    return os.path.join(head, f".{tail}.ndstack")


def _file_grid(arr: Any) -> Any:
    """The FileGrid behind an array opened by ndstack, if any (for source checks)."""
    from ._grid import FileGrid

    graph = getattr(arr.data, "dask", None)
    if graph is None:
        return None
    for layer in graph.layers.values():
        for v in dict(layer).values():
            v = getattr(v, "value", v)
            if isinstance(v, FileGrid):
                return v
    return None


def _check_destination_against_source(dest: str, grid: Any) -> None:
    if grid is None or grid.fs is not None:
        return
    src = os.path.realpath(grid.root)
    real = os.path.realpath(dest)
    if real == src or real.startswith(src.rstrip(os.sep) + os.sep):
        raise DestinationError(
            f"the destination {dest} lies inside the source folder {grid.root}; "
            "choose a folder outside it (source files are only ever read)"
        )


def _fingerprint(grid: Any, arr: Any) -> dict[str, Any]:
    if grid is None or grid.fs is not None:
        return {"token": str(arr.data.name) if hasattr(arr.data, "name") else None}
    files = []
    for name in sorted(n for n in grid.files.ravel().tolist() if n is not None):
        try:
            st = os.stat(grid.path(name))
            files.append([name, st.st_size, st.st_mtime_ns])
        except OSError:
            files.append([name, None, None])
    return {"root": redact(grid.root), "files": files}


def _manifest_path(dest: str) -> str:
    return os.path.join(record_dir(dest), "manifest.json")


def _completed_settings(dest: str) -> dict[str, Any] | None:
    """The settings a complete ndstack store records in its root metadata, if any."""
    try:
        node = read_node(dest)
    except (OSError, ValueError):
        return None
    nd = node[1].get("ndstack") if node is not None else None
    return nd.get("settings") if isinstance(nd, dict) else None


def _prepare_destination(dest: str, settings: dict, fingerprint: dict, overwrite: bool) -> str:
    """Create, resume or refuse: returns ``"new"``, ``"resume"`` or ``"complete"``."""
    manifest_file = _manifest_path(dest)
    if os.path.exists(dest) and not os.path.isdir(dest):
        raise DestinationError(f"the destination {dest} exists and is a file")
    if os.path.isdir(dest) and os.listdir(dest):
        done_settings = _completed_settings(dest)
        if not os.path.exists(manifest_file) and done_settings is None:
            raise DestinationError(
                f"the destination {dest} exists, is not empty and was not written by "
                "ndstack; choose another folder (nothing was changed)"
            )
        if overwrite:
            _remove_store(dest)
        elif done_settings is not None and not os.path.exists(manifest_file):
            if done_settings != settings:
                raise DestinationError(
                    f"the destination {dest} holds an ndstack store written with other "
                    "settings or from another array; pass --overwrite to replace it"
                )
            return "complete"
        else:
            with open(manifest_file) as f:
                old = json.load(f)
            if old.get("settings") != settings:
                raise DestinationError(
                    f"the destination {dest} holds an unfinished ndstack store written with "
                    "other settings or from another array; pass --overwrite to replace it"
                )
            changed = _first_change(old.get("source", {}), fingerprint)
            if changed:
                raise SourceChangedError(
                    f"cannot resume into {dest}: the source changed since the first run "
                    f"({changed}); pass --overwrite to start again"
                )
            _remove_partials(dest)
            return "resume"
    else:
        shutil.rmtree(record_dir(dest), ignore_errors=True)  # stale: its store is gone
    try:
        os.makedirs(dest, exist_ok=True)
        os.makedirs(os.path.join(record_dir(dest), "done"), exist_ok=True)
        manifest = {"ndstack": _version(), "settings": settings, "source": fingerprint}
        _atomic_write(manifest_file, json.dumps(manifest).encode())
    except PermissionError:
        raise WriteError(f"cannot write to {dest}: permission denied") from None
    except OSError as exc:
        if isinstance(exc, NdstackError):
            raise
        raise WriteError(f"cannot write to {dest}: {exc.strerror or exc}") from None
    return "new"


def _first_change(old: dict, new: dict) -> str | None:
    if "files" not in old or "files" not in new:
        return None if old.get("token") == new.get("token") else "the array's graph differs"
    old_files = {f[0]: f[1:] for f in old["files"]}
    new_files = {f[0]: f[1:] for f in new["files"]}
    for name in sorted(set(old_files) | set(new_files)):
        if old_files.get(name) != new_files.get(name):
            if name not in new_files:
                return f"{name} is gone"
            if name not in old_files:
                return f"{name} is new"
            return f"{name} changed size or modification time"
    return None


def _remove_store(dest: str) -> None:
    """Delete what ndstack wrote into ``dest``: its metadata, arrays and record only."""
    shutil.rmtree(record_dir(dest), ignore_errors=True)
    for entry in os.listdir(dest):
        path = os.path.join(dest, entry)
        ours = entry in ("c", *METADATA_FILES) or (entry.isdigit() and os.path.isdir(path))
        if not ours:
            continue
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


def _remove_partials(dest: str) -> None:
    for root, _, files in [*os.walk(dest), *os.walk(record_dir(dest))]:
        for f in files:
            if f.endswith(".partial"):
                # a task of an earlier run in this process may still be finishing its
                # write (its result is identical and atomic): gone is as good as removed
                try:
                    os.remove(os.path.join(root, f))
                except FileNotFoundError:
                    pass


def _read_marker(path: str) -> dict[str, Any]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _version() -> str:
    from . import __version__

    return __version__
