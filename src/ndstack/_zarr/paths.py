"""Where a store lives: a local folder, or a URL read through fsspec (s3://, http(s)://, ...).

Paths stay strings everywhere (they go into the task graph, never a handle): a local path
is used with ``os`` as before, a URL is opened through fsspec, whose filesystem instances
are cached per protocol and options, so a worker makes one client, not one per read.
Credentials come from where each cloud's users keep them (``AWS_*`` environment variables,
profiles and config files, read by the filesystem package), or from ``storage_options``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .._redact import reason, redact
from .._util import local_path, url_scheme
from ..errors import (
    DestinationError,
    MissingDependencyError,
    NdstackError,
    NoImagesError,
    StorageError,
    WriteError,
)

__all__ = [
    "GLOB_CHARS",
    "READ_ONLY_SCHEMES",
    "as_local",
    "exists",
    "files_exist",
    "filesystem",
    "find",
    "get",
    "get_many",
    "is_file",
    "is_storage_error",
    "is_url",
    "join",
    "list_names",
    "modified",
    "options_of",
    "parent",
    "put",
    "put_all",
    "put_new",
    "read_head",
    "refuse_credentials",
    "remove",
    "remove_tree",
    "stamp",
    "storage_errors",
    "tail",
    "use_options",
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


def refuse_credentials(url: str, error: type[Exception]) -> None:
    """Refuse credentials written into an object-storage URL (``s3://KEY:SECRET@bucket``):
    the cloud clients do not read them there, and error messages would carry them. Basic
    authentication in ``http(s)://user:pass@host`` is the web's own, and is redacted."""
    from urllib.parse import urlsplit

    scheme = url_scheme(url)
    if scheme in (None, "http", "https", "ftp", "file", "local"):
        return
    parts = urlsplit(url)
    # an AWS secret may hold "/": the user info then reaches into what urlsplit calls
    # the path, so any "@" before the query counts (as redact() takes it)
    if "@" in parts.netloc + parts.path:
        raise error(
            f"{redact(url)} carries credentials in the URL, where they would be seen (logs, "
            "shell history); give them in the environment (AWS_ACCESS_KEY_ID, ...), a "
            "profile, storage_options= or --storage-option"
        )


#: packages whose exceptions mean "the storage did not answer as asked" (the network, the
#: server, permissions, credentials), not a bug
_CLIENT_MODULES = ("botocore", "aiobotocore", "aiohttp", "s3fs", "gcsfs", "google", "azure",
                   "adlfs", "requests", "urllib3", "fsspec")  # fmt: skip


def is_storage_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure of the storage (network, server, permission), as
    opposed to absent data or a bug."""
    if isinstance(exc, (FileNotFoundError, FileExistsError, IsADirectoryError, NdstackError)):
        return isinstance(exc, StorageError)
    if isinstance(exc, (OSError, TimeoutError)):
        return True
    return any(c.__module__.split(".")[0] in _CLIENT_MODULES for c in type(exc).__mro__)


@contextlib.contextmanager
def _answering(path: str) -> Any:
    """Errors of a request to ``path`` in ndstack's words: absent stays
    :class:`FileNotFoundError` (and exists, :class:`FileExistsError`); a failure of the
    storage (no connection, no permission, no credentials, a server error) is a
    :class:`StorageError` naming the URL (redacted) and the first line of the reason;
    anything else (a bug) goes on as it is."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:
        if not is_storage_error(exc):
            raise
        raise StorageError(f"{redact(path)}: {reason(exc)}") from None


def storage_errors(path: str) -> Any:
    """:func:`_answering` for a URL; nothing for a local path (its errors are its own)."""
    return _answering(path) if is_url(path) else contextlib.nullcontext()


def as_local(path: str) -> str:
    """A ``file://`` or ``local://`` URL as its path; anything else as it is."""
    local = local_path(path)
    return path if local is None else local


#: storage options given for a location (scheme, bucket or host), in this process only
_OPTIONS: dict[tuple[str, str], dict[str, Any]] = {}


def _location(url: str) -> tuple[str, str]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return (parts.scheme.lower(), parts.netloc)


def use_options(url: str, options: Mapping[str, Any] | None) -> None:
    """Use ``options`` (``storage_options`` of fsspec: ``endpoint_url``, ``key``,
    ``profile``, ``anon`` ...) for every request to ``url``'s bucket (or host) made by this
    process from now on. Write tasks and stored arrays carry their options and call this
    where they run, so that workers use them too; they are never written anywhere."""
    if options and is_url(url):
        _OPTIONS[_location(url)] = dict(options)


def options_of(url: str) -> dict[str, Any]:
    """The storage options given for ``url``'s bucket (or host), if any."""
    return dict(_OPTIONS.get(_location(url), {})) if is_url(url) else {}


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem of ``url`` and the path in it (with the options given for
    its bucket, :func:`use_options`); a missing client package is a
    :class:`~ndstack.errors.MissingDependencyError` naming the extra to install."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(url, **options_of(url))
    except ImportError:
        scheme = url_scheme(url) or ""
        package, extra = _EXTRAS.get(scheme, (f"the fsspec driver for {scheme}://", ""))
        hint = f" (pip install 'ndstack[{extra}]')" if extra else ""
        raise MissingDependencyError(f"{redact(url)}: {scheme}:// needs {package}{hint}") from None
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


def read_head(path: str, limit: int) -> bytes | None:
    """Up to ``limit + 1`` bytes of the file at ``path``; None when there is none.

    A folder where a file should be raises :class:`IsADirectoryError`.
    """
    if not is_url(path):
        try:
            with open(path, "rb") as f:
                return f.read(limit + 1)
        except (FileNotFoundError, NotADirectoryError):
            return None
    fs, p = filesystem(path)
    with _answering(path):
        try:  # one ranged GET: absent, or at most limit + 1 bytes
            return bytes(fs.cat_file(p, start=0, end=limit + 1))[: limit + 1]
        except FileNotFoundError:
            return None


def exists(path: str) -> bool:
    """Whether a file, folder or object exists at ``path``."""
    return os.path.exists(path) if not is_url(path) else _remote_is_file(path)


def is_file(path: str) -> bool:
    """Whether ``path`` is a file or an object (a prefix alone is not)."""
    return os.path.isfile(path) if not is_url(path) else _remote_is_file(path)


def _remote_is_file(url: str) -> bool:
    fs, p = filesystem(url)
    with _answering(url):
        fs.invalidate_cache(p)  # another process may have written it since a listing
        try:
            return bool(fs.isfile(p))
        except FileNotFoundError:
            return False


def files_exist(paths: Sequence[str]) -> list[bool]:
    """Whether each file exists: a stat each on disk, concurrent requests for URLs
    (object storage answers in milliseconds, many at once)."""
    if len(paths) < 2 or not is_url(paths[0]):
        return [is_file(p) for p in paths]
    with ThreadPoolExecutor(max_workers=min(16, len(paths))) as pool:
        return list(pool.map(is_file, paths))


def stamp(path: str) -> str:
    """What changes when the file at ``path`` is rewritten: its mtime on disk, its ETag
    (or modification time and size) on object storage."""
    if not is_url(path):
        return str(os.stat(path).st_mtime_ns)
    fs, p = filesystem(path)
    with _answering(path):
        info = fs.info(p)
    parts = [info.get(k) for k in ("ETag", "etag", "LastModified", "mtime", "last_modified")]
    return repr([str(v) for v in parts if v is not None] + [str(info.get("size"))])


def zarr_store(path: str, *, read_only: bool = True) -> Any:
    """What ``zarr.open_array(store=...)`` takes for ``path``: the path itself on disk,
    zarr's own ``FsspecStore`` for a URL (with the options given for it)."""
    if not is_url(path):
        return path
    from zarr.storage import FsspecStore

    filesystem(path)  # a missing client package: ndstack's one line
    with _answering(path):
        return FsspecStore.from_url(path, storage_options=options_of(path), read_only=read_only)


# ------------------------------------------------------------------------ writing
#: URL schemes that can be read but never written
READ_ONLY_SCHEMES = ("http", "https")


def put(path: str, payload: bytes) -> None:
    """Write one object whole (a PUT is atomic on object storage)."""
    fs, p = filesystem(path)
    with _answering(path):
        fs.pipe_file(p, payload)


def put_new(path: str, payload: bytes) -> bool:
    """Create ``path`` only if it does not exist: a conditional PUT (``If-None-Match: *``);
    False when it exists.

    A store that ignores the condition would let two runs both "create" it: the first
    creation is checked by trying again, which must be refused; if it is not, a
    :class:`WriteError` says that this storage cannot hold a lock.
    """
    fs, p = filesystem(path)
    with _answering(path):
        if not _create(fs, p, payload):
            return False
        if _create(fs, p, payload):  # created "again": the condition was ignored
            raise WriteError(
                f"{redact(path)}: this storage ignores conditional writes (If-None-Match), "
                "so ndstack cannot make sure that one run at a time writes a store there; "
                "write to a local folder or to storage that supports them (AWS S3, MinIO, "
                "GCS) and copy"
            )
    return True


def _create(fs: Any, path: str, payload: bytes) -> bool:
    """One conditional creation; False when the object exists."""
    try:
        fs.pipe_file(path, payload, mode="create")
    except FileExistsError:
        return False
    return True


def put_all(items: Sequence[tuple[str, bytes]]) -> None:
    """PUT every ``(url, payload)`` of one filesystem, many in flight at once, and return
    only once every request has ended: a failure is raised after the others finished, so
    no write of a failed run lands after the run has stopped."""
    if not items:
        return
    fs, _ = filesystem(items[0][0])
    paths = [filesystem(u)[1] for u, _ in items]
    with _answering(items[0][0]):
        if getattr(fs, "async_impl", False):
            from fsspec.asyn import _run_coros_in_chunks, sync

            coros = [fs._pipe_file(p, payload) for p, (_, payload) in zip(paths, items)]
            results = sync(fs.loop, _run_coros_in_chunks, coros, batch_size=fs.batch_size,
                           nofiles=True, return_exceptions=True)  # fmt: skip
            failed = [r for r in results if isinstance(r, BaseException)]
            if failed:
                raise failed[0]
        else:
            for p, (_, payload) in zip(paths, items):
                fs.pipe_file(p, payload)


def get(path: str) -> bytes:
    """The bytes of ``path``; FileNotFoundError when it is absent."""
    if not is_url(path):
        with open(path, "rb") as f:
            return f.read()
    fs, p = filesystem(path)
    with _answering(path):
        return bytes(fs.cat_file(p))


def get_many(paths: Sequence[str]) -> list[bytes | None]:
    """The bytes of each path (None where it cannot be read); on object storage the GETs
    go out together."""
    if len(paths) < 2 or not is_url(paths[0]):
        out: list[bytes | None] = []
        for p in paths:
            try:
                out.append(get(p))
            except OSError:
                out.append(None)
        return out
    fs, _ = filesystem(paths[0])
    keys = [filesystem(p)[1] for p in paths]
    with _answering(paths[0]):
        found = fs.cat(keys, on_error="return")
    return [v if isinstance(v, bytes) else None for v in (found.get(k) for k in keys)]


def modified(path: str) -> float:
    """When ``path`` was last written (seconds since the epoch); FileNotFoundError."""
    if not is_url(path):
        return os.stat(path).st_mtime
    fs, p = filesystem(path)
    with _answering(path):
        fs.invalidate_cache(p)
        return float(fs.modified(p).timestamp())


def remove(path: str) -> None:
    """Remove one file or object; nothing happens when it is absent."""
    if not is_url(path):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        return
    fs, p = filesystem(path)
    with _answering(path), contextlib.suppress(FileNotFoundError):
        fs.rm_file(p)


#: characters fsspec expands as a pattern in the paths it deletes (and lists)
GLOB_CHARS = frozenset("*?[]")


def remove_tree(path: str) -> None:
    """Remove a folder (every object under a prefix) and what it holds, if any.

    On object storage exactly the keys listed under ``path + "/"`` are deleted (in bulk
    requests): fsspec's ``rm`` would take ``*``, ``?`` and ``[`` in a name as a pattern
    and delete what matches elsewhere, so such a name is never given to it (a key that
    holds one is deleted by itself).
    """
    if not is_url(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    if GLOB_CHARS & set(path):
        raise DestinationError(f"{redact(path)}: a name with * ? [ or ] is never deleted")
    fs, p = filesystem(path)
    prefix = p.rstrip("/") + "/"
    with _answering(path):
        fs.invalidate_cache(p)
        try:
            keys = [k for k in fs.find(prefix) if k.startswith(prefix)]
        except FileNotFoundError:
            keys = []
        plain = [k for k in keys if not GLOB_CHARS & set(k)]
        if plain:  # no pattern in them: fsspec deletes exactly these (S3: 1,000 a request)
            with contextlib.suppress(FileNotFoundError):
                fs.rm(plain)
        for key in (k for k in keys if GLOB_CHARS & set(k)):
            with contextlib.suppress(FileNotFoundError):
                fs.rm_file(key)
        fs.invalidate_cache(p)


def list_names(path: str) -> list[str]:
    """The names directly inside folder (or prefix) ``path``; [] when there is none."""
    if not is_url(path):
        try:
            return os.listdir(path)
        except (FileNotFoundError, NotADirectoryError):
            return []
    fs, p = filesystem(path)
    with _answering(path):
        fs.invalidate_cache(p)
        try:
            entries = fs.ls(p, detail=False)
        except FileNotFoundError:
            return []
    base = p.rstrip("/")
    return [e.rstrip("/").rsplit("/", 1)[-1] for e in entries if e.rstrip("/") != base]


def find(path: str) -> list[str]:
    """Every object under prefix ``path``, relative to it (``/``-separated)."""
    fs, p = filesystem(path)
    prefix = p.rstrip("/") + "/"
    with _answering(path):
        fs.invalidate_cache(p)
        try:
            names = fs.find(prefix)
        except FileNotFoundError:
            return []
    return [n[len(prefix) :] for n in names if n.startswith(prefix)]


def tail(path: str, size: int) -> bytes:
    """The last ``size`` bytes of ``path`` (fewer if it is smaller); FileNotFoundError."""
    if not is_url(path):
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - size))
            return f.read()
    fs, p = filesystem(path)
    with _answering(path):
        return bytes(fs.tail(p, size))
