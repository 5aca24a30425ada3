"""The destination of a conversion: create, resume or refuse; the record beside the store.

The record (``.DEST.ndstack/`` next to ``DEST``) holds the settings, a fingerprint of the
source files (size, modification time) and one marker per finished task. It lives beside
the store, not in it, so that the store stays a clean Zarr hierarchy, and it is removed
once the store is complete; a complete store records its settings in its own metadata.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from typing import Any

from .._util import version
from ..errors import (
    DamagedStoreError,
    DestinationError,
    NdstackError,
    SourceChangedError,
    WriteError,
)
from .files import atomic_write, read_json_object
from .layout import METADATA_FILES, UNFINISHED, entry_names
from .lock import beside
from .paths import get_many, is_file, is_url, join, list_names, remove, remove_tree
from .read import stored_attrs
from .schema import StoredAttrs
from .sources import _unstamped, source_digest

__all__ = ["finish_store", "record_dir"]


def record_dir(dest: str) -> str:
    """The folder beside ``dest`` that records an unfinished conversion."""
    return beside(dest, ".ndstack")


def _manifest_path(dest: str) -> str:
    return join(record_dir(dest), "manifest.json")


def _entries(dest: str) -> list[str]:
    """What the destination folder (or prefix) holds; [] when there is none."""
    if is_url(dest):
        return list_names(dest)
    return os.listdir(dest) if os.path.isdir(dest) else []


def _load_json(path: str) -> dict[str, Any] | None:
    """A JSON object from ``path``; None if absent; a one-line error if damaged."""
    try:
        return read_json_object(path)
    except FileNotFoundError:
        return None
    except ValueError:
        raise DamagedStoreError(f"{path}: damaged (not JSON); delete it to start again") from None


def _completed(dest: str) -> StoredAttrs | None:
    """The checked ``ndstack`` attributes of a complete store ndstack wrote, if ``dest`` is
    one (damaged ones raise, naming the file: such a folder is nobody's to delete)."""
    try:
        return stored_attrs(dest)
    except DamagedStoreError:
        raise
    except NdstackError:
        return None


def _safe_entries(entries: Any, where: str) -> list[str]:
    """Top-level names a store lists as its own: plain names, nothing that climbs out."""
    if not entry_names(entries):
        raise DamagedStoreError(
            f"{where}: the list of what ndstack wrote is damaged (found {_short(entries)}, "
            "expected plain names of entries of the store)"
        )
    return list(entries)


def _owned_of_complete(stored: StoredAttrs) -> list[str]:
    """What a complete store lists as written by ndstack (older stores: from their
    settings: one folder per level, or per image of a bioformats2raw layout)."""
    if stored.written is not None:
        return list(stored.written)
    names = list(METADATA_FILES)
    if stored.settings.get("format") == "zarr":
        return [*names, "c"]
    levels = stored.settings.get("levels", 1)
    count = stored.n_images if stored.split_dims else levels if isinstance(levels, int) else 1
    return [*names, *(str(i) for i in range(count))]


def _prepare_destination(
    dest: str, settings: dict, fingerprint: dict, overwrite: bool, owned: list[str]
) -> tuple[str, str]:
    """Create, resume or refuse: ``("new" | "resume" | "complete", store id)``.

    What ndstack owns is proven inside the destination, never by the record beside it
    alone: an unfinished store holds :data:`UNFINISHED` with the same id as the record, a
    complete one its ``ndstack`` attributes. Only the entries a store lists as its own
    are ever deleted (``overwrite``), and a new store is never written into an entry that
    is not its own. The caller holds the destination's lock.
    """
    manifest_file = _manifest_path(dest)
    digest = source_digest(fingerprint)
    if is_file(dest) if is_url(dest) else os.path.lexists(dest) and not os.path.isdir(dest):
        raise DestinationError(f"the destination {dest} exists and is not a folder")
    if _entries(dest):
        marker = _load_json(join(dest, UNFINISHED))
        complete = _completed(dest) if marker is None else None
        if marker is None and complete is None:
            raise DestinationError(
                f"the destination {dest} exists, is not empty and was not written by "
                "ndstack; choose another folder (nothing was changed)"
            )
        if marker is not None:
            where = join(dest, UNFINISHED)
            owned_before = _safe_entries(marker.get("written"), where)
            if overwrite:
                _check_new_entries(dest, owned, owned_before)
                _remove_store(dest, owned_before, str(marker.get("store", "")))
            else:
                manifest = _load_json(manifest_file)
                if manifest is None or manifest.get("store") != marker.get("store"):
                    raise DestinationError(
                        f"the destination {dest} holds an unfinished ndstack store whose "
                        f"record ({record_dir(dest)}) is gone or belongs to another store; "
                        "pass --overwrite to start again"
                    )
                changed = _first_change(manifest.get("source", {}), fingerprint)
                if changed:
                    raise SourceChangedError(
                        f"cannot resume into {dest}: the source changed since the first run "
                        f"({changed}); pass --overwrite to start again"
                    )
                _same_settings(dest, manifest.get("settings"), settings, "an unfinished")
                _refuse_links(dest, owned_before)
                _remove_partials(dest)
                return "resume", str(marker["store"])
        else:
            assert complete is not None
            owned_before = _owned_of_complete(complete)
            if not overwrite:
                recorded = (complete.source or {}).get("digest")
                if recorded is not None and recorded != digest:
                    raise DestinationError(
                        f"the destination {dest} holds a complete ndstack store made from "
                        "another source (or the source changed since); pass --overwrite to "
                        "replace it"
                    )
                _same_settings(dest, complete.settings, settings, "a complete")
                if recorded != digest or _unstamped(fingerprint):
                    what = (
                        "does not record its source"
                        if recorded is None
                        else "cannot prove its source unchanged (no modification stamps)"
                        if recorded == digest
                        else "was made from another source (or the source changed since)"
                    )
                    raise DestinationError(
                        f"the destination {dest} holds a complete ndstack store that {what}; "
                        "pass --overwrite to replace it"
                    )
                return "complete", complete.store or ""
            _check_new_entries(dest, owned, owned_before)
            _remove_store(dest, owned_before, complete.store or "")
    store_id = uuid.uuid4().hex
    record = record_dir(dest)
    if not is_url(record) and os.path.islink(record):
        raise DestinationError(f"{record} is a symbolic link; ndstack will not write through it")
    remove_tree(record)  # stale: its store is gone
    try:
        if not is_url(dest):  # object storage has no folders to make
            os.makedirs(dest, exist_ok=True)
            os.makedirs(os.path.join(record, "done"), exist_ok=True)
        # the record first, then the marker inside the store: a kill between the two
        # leaves a store with no marker (not ndstack's), never a marker without a record
        manifest = {"ndstack": version(), "store": store_id, "settings": settings,
                    "source": fingerprint}  # fmt: skip
        atomic_write(manifest_file, json.dumps(manifest).encode())
        marker_body = {"store": store_id, "written": owned}
        atomic_write(join(dest, UNFINISHED), json.dumps(marker_body).encode())
    except PermissionError:
        raise WriteError(f"cannot write to {dest}: permission denied") from None
    except OSError as exc:
        if isinstance(exc, NdstackError):
            raise
        raise WriteError(f"cannot write to {dest}: {exc.strerror or exc}") from None
    return "new", store_id


def _same_settings(dest: str, old: Any, new: dict[str, Any], which: str) -> None:
    """Refuse a store written with other settings, naming the first that differs."""
    if old == new:
        return
    old = old if isinstance(old, dict) else {}
    key = next((k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)), "?")
    raise DestinationError(
        f"the destination {dest} holds {which} ndstack store written with other settings "
        f"or from another array ({key}: {_short(old.get(key))} there, {_short(new.get(key))} "
        "now); pass --overwrite to replace it"
    )


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_new_entries(dest: str, owned: list[str], owned_before: list[str]) -> None:
    """Before anything is deleted: the new store's entries are the old store's or free, and
    no entry of either is a symbolic link (nothing is written through one)."""
    there = set(_entries(dest)) if is_url(dest) else None
    taken = [
        e
        for e in owned
        if e not in owned_before
        and (e in there if there is not None else os.path.lexists(os.path.join(dest, e)))
    ]
    if taken:
        raise DestinationError(
            f"the destination {dest} holds {taken[0]!r}, which this conversion would write "
            "and which ndstack did not write; move it away (nothing was changed)"
        )
    _refuse_links(dest, sorted(set(owned) | set(owned_before)))


def _refuse_links(dest: str, entries: list[str]) -> None:
    """The store's own entries and its record hold no symbolic link: writes never leave
    the destination (a user's links beside the store are none of its business). Object
    storage has no links."""
    if is_url(dest):
        return
    tops = [os.path.join(dest, e) for e in entries] + [record_dir(dest)]
    for top in tops:
        if os.path.islink(top):
            raise DestinationError(
                f"{top} is a symbolic link where the store writes; ndstack writes only inside "
                "the destination and will not write through it (nothing was changed)"
            )
        for root, dirs, files in os.walk(top):
            for name in (*dirs, *files):
                path = os.path.join(root, name)
                if os.path.islink(path):
                    raise DestinationError(
                        f"{path} is a symbolic link inside the store; ndstack writes only "
                        "inside the destination and will not write through it"
                    )


def finish_store(dest: str) -> None:
    """The store is complete: its unfinished marker goes, then the record beside it."""
    remove(join(dest, UNFINISHED))
    remove_tree(record_dir(dest))


def _first_change(old: dict, new: dict) -> str | None:
    """What differs between two source fingerprints, naming the file or source."""
    old_files = {f[0]: f[1:] for f in old.get("files", [])}
    new_files = {f[0]: f[1:] for f in new.get("files", [])}
    for name in sorted(set(old_files) | set(new_files)):
        if old_files.get(name) != new_files.get(name):
            if name not in new_files:
                return f"{name} is gone"
            if name not in old_files:
                return f"{name} is new"
            (size0, stamp0), (size1, stamp1) = old_files[name][:2], new_files[name][:2]
            return (
                f"{name} changed size or modification time: {size0} bytes, {stamp0} then; "
                f"{size1} bytes, {stamp1} now"
            )
    old_others, new_others = old.get("others", {}), new.get("others", {})
    for key in sorted(set(old_others) | set(new_others)):
        if old_others.get(key) != new_others.get(key):
            return f"the source {key} changed (its files' sizes or times)"
    if old.get("token") != new.get("token"):
        return "the array differs"
    if _unstamped(new):
        name = next(f[0] for f in new["files"] if len(f) > 2 and f[2] is None)
        return f"{name} reports no modification time or ETag: a rewrite cannot be ruled out"
    return None


def _remove_store(dest: str, owned: list[str], store_id: str) -> None:
    """Delete what ndstack wrote into ``dest``: the entries the store lists, its record.

    The store is first marked unfinished (its id, what it owns): a kill in the middle
    leaves a store that is refused as unfinished, never one that looks complete, and a
    later ``--overwrite`` can finish the job. The marker goes last. A symbolic link is
    removed as a link; what it points to is never touched.
    """
    marker = join(dest, UNFINISHED)
    atomic_write(marker, json.dumps({"store": store_id, "written": owned}).encode())
    remove_tree(record_dir(dest))
    root_meta = [e for e in METADATA_FILES if e in owned]
    for entry in [*(e for e in owned if e not in root_meta), *root_meta]:
        path = join(dest, entry)
        if is_url(path):  # an object, or a prefix of objects
            remove(path)
            remove_tree(path)
        elif os.path.islink(path) or os.path.isfile(path):
            os.remove(path)
        elif os.path.isdir(path):
            shutil.rmtree(path)
    remove(marker)


def _remove_partials(dest: str) -> None:
    """Temporary files of writes that were cut short (object storage has none: a PUT
    is whole or absent)."""
    if is_url(dest):
        return
    for root, _, files in [*os.walk(dest), *os.walk(record_dir(dest))]:
        for f in files:
            if f.endswith(".partial"):
                # a task of an earlier run in this process may still be finishing its
                # write (its result is identical and atomic): gone is as good as removed
                try:
                    os.remove(os.path.join(root, f))
                except FileNotFoundError:
                    pass


def read_markers(paths: list[str]) -> list[dict[str, Any]]:
    """The records of done markers ({} for one that cannot be read); on object storage
    fetched together, not one request after another."""
    out = []
    for raw in get_many(paths):
        try:
            value = json.loads(raw) if raw is not None else {}
        except (ValueError, RecursionError):
            value = {}
        out.append(value if isinstance(value, dict) else {})
    return out
