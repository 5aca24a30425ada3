"""Where a store lives: a local folder, or a URL read through fsspec (s3://, http(s)://, ...).

Paths stay strings everywhere (they go into the task graph, never a handle): a local path
is used with ``os`` as before, a URL is opened through fsspec, whose filesystem instances
are cached per protocol and options, so a worker makes one client, not one per read.
Credentials come from where each cloud's users keep them (``AWS_*`` environment variables,
profiles and config files, read by the filesystem package), or from ``storage_options``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .._redact import reason, redact
from .._util import local_path, url_scheme
from ..errors import DamagedStoreError, MissingDependencyError, NoImagesError

__all__ = [
    "as_local",
    "exists",
    "files_exist",
    "filesystem",
    "is_url",
    "join",
    "parent",
    "read_head",
    "stamp",
    "zarr_store",
]

#: the package each protocol needs, and the extra of ndstack that installs it
_EXTRAS = {
    "s3": ("s3fs", "s3"),
    "s3a": ("s3fs", "s3"),
    "gs": ("gcsfs", "gcs"),
    "gcs": ("gcsfs", "gcs"),
    "az": ("adlfs", "azure"),
    "abfs": ("adlfs", "azure"),
    "http": ("aiohttp", "http"),
    "https": ("aiohttp", "http"),
}


def is_url(path: str) -> bool:
    """Whether ``path`` is a URL to read through fsspec (``file://`` is a local path)."""
    return url_scheme(path) is not None and local_path(path) is None


def as_local(path: str) -> str:
    """A ``file://`` or ``local://`` URL as its path; anything else as it is."""
    local = local_path(path)
    return path if local is None else local


def filesystem(url: str, storage_options: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    """The fsspec filesystem of ``url`` and the path in it; a missing client package is a
    :class:`~ndstack.errors.MissingDependencyError` naming the extra to install."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    except ImportError:
        scheme = url_scheme(url) or ""
        package, extra = _EXTRAS.get(scheme, (f"the fsspec driver for {scheme}://", ""))
        hint = f" (pip install 'ndstack[{extra}]')" if extra else ""
        raise MissingDependencyError(
            f"{redact(url)}: reading {scheme}:// needs {package}{hint}"
        ) from None
    except ValueError as exc:  # an unknown protocol
        raise NoImagesError(f"cannot open {redact(url)}: {reason(exc)}") from None


def join(base: str, *names: str) -> str:
    """``base/name/...``: ``os.path.join`` for a path, ``/`` kept as written for a URL."""
    if not is_url(base):
        return os.path.join(base, *names)
    return "/".join([base.rstrip("/"), *names])


def parent(path: str) -> str:
    """The folder above ``path`` (for a URL, never above its bucket or host)."""
    if not is_url(path):
        return os.path.dirname(os.path.abspath(path))
    scheme_end = path.index("://") + 3
    head, rest = path[:scheme_end], path[scheme_end:].rstrip("/")
    return head + rest.rsplit("/", 1)[0] if "/" in rest else path


def read_head(
    path: str, limit: int, storage_options: Mapping[str, Any] | None = None
) -> bytes | None:
    """Up to ``limit + 1`` bytes of the file at ``path``; None when there is none.

    A folder where a file should be raises :class:`IsADirectoryError`.
    """
    if not is_url(path):
        try:
            with open(path, "rb") as f:
                return f.read(limit + 1)
        except (FileNotFoundError, NotADirectoryError):
            return None
    fs, p = filesystem(path, storage_options)
    try:
        info = fs.info(p)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise DamagedStoreError(f"{redact(path)}: cannot be read ({reason(exc)})") from None
    if info.get("type") == "directory":
        raise IsADirectoryError(path)
    size = info.get("size")
    if size is not None and size > limit:
        return b"\0" * (limit + 1)  # too large: the caller refuses it by its length
    return fs.cat_file(p)[: limit + 1]


def exists(path: str, storage_options: Mapping[str, Any] | None = None) -> bool:
    """Whether a file (or object) exists at ``path``."""
    if not is_url(path):
        return os.path.exists(path)
    fs, p = filesystem(path, storage_options)
    try:
        return bool(fs.isfile(p))
    except FileNotFoundError:
        return False


def files_exist(
    paths: Sequence[str], storage_options: Mapping[str, Any] | None = None
) -> list[bool]:
    """Whether each file exists: a stat each on disk, concurrent requests for URLs
    (object storage answers in milliseconds, many at once)."""
    if not paths or not is_url(paths[0]):
        return [os.path.isfile(p) for p in paths]
    if len(paths) == 1:
        return [exists(paths[0], storage_options)]
    with ThreadPoolExecutor(max_workers=min(16, len(paths))) as pool:
        return list(pool.map(lambda p: exists(p, storage_options), paths))


def stamp(path: str, storage_options: Mapping[str, Any] | None = None) -> str:
    """What changes when the file at ``path`` is rewritten: its mtime on disk, its ETag
    (or modification time and size) on object storage."""
    if not is_url(path):
        return str(os.stat(path).st_mtime_ns)
    fs, p = filesystem(path, storage_options)
    info = fs.info(p)
    parts = [info.get(k) for k in ("ETag", "etag", "LastModified", "mtime", "last_modified")]
    return repr([str(v) for v in parts if v is not None] + [str(info.get("size"))])


def zarr_store(path: str, storage_options: Mapping[str, Any] | None = None) -> Any:
    """What ``zarr.open_array(store=...)`` takes for ``path``: the path itself on disk,
    zarr's own ``FsspecStore`` (read-only) for a URL."""
    if not is_url(path):
        return path
    from zarr.storage import FsspecStore

    filesystem(path, storage_options)  # a missing client package: ndstack's one line
    return FsspecStore.from_url(path, storage_options=dict(storage_options or {}), read_only=True)
