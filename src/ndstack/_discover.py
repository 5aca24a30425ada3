"""Find the image files of a source: a folder, a glob, a list of paths or an fsspec URL.

Discovery only lists names (and sizes, which the cheap consistency check of TIFFs uses);
it never opens a file. The result is a :class:`Source`: a root, the paths relative to it
(sorted), their sizes, and the filesystem to open them with (``None`` for local paths).
Local files that are not TIFFs by name are not stat-ed (size ``-1``): compressed rasters
differ in size anyway, so their check reads headers, and one ``stat`` per file is a third
of the time it takes to open 1,000 PNGs.
"""

from __future__ import annotations

import glob as _glob
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ._axes import TIFF_EXTENSIONS, is_tiff_name
from ._redact import redact
from .errors import NdstackError, NoImagesError

__all__ = ["Source", "discover"]

#: Files that are never images, whatever the reader.
_JUNK_EXTENSIONS = (
    ".txt",
    ".json",
    ".xml",
    ".csv",
    ".log",
    ".md",
    ".ini",
    ".yaml",
    ".yml",
    ".db",
    ".pdf",
    ".html",
    ".py",
    ".zarr",
    ".zattrs",
    ".zgroup",
    ".zarray",
    ".nfo",
)
_JUNK_NAMES = ("thumbs.db", "desktop.ini")
_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Source:
    """The files of one source, sorted by name (axis order comes from parsed values)."""

    root: str
    names: tuple[str, ...]  # relative to root, '/'-separated
    sizes: tuple[int, ...]  # -1 where not listed: local files not named like TIFFs
    fs: Any = None  # an fsspec filesystem, or None for local files
    description: str = ""

    def path(self, name: str) -> str:
        """The full path (or fsspec path) of one relative name."""
        return join_path(self.root, name, self.fs)


def join_path(root: str, name: str, fs: Any = None) -> str:
    """A relative name under ``root``: an OS path, or an fsspec path when ``fs`` is set."""
    if fs is None:
        return os.path.join(root, name)
    return f"{root.rstrip('/')}/{name}" if root else name


def is_image_name(name: str, extensions: Sequence[str] | None) -> bool:
    """Whether a relative path looks like an image worth reading.

    Hidden files and folders, thumbnails (``_thumb``) and known non-image files are
    skipped; with ``extensions`` only those endings are kept.

    >>> [is_image_name(n, (".tif",)) for n in
    ...  ["a/img_1.tif", ".hidden.tif", "a/.git/x.tif", "img_thumb.tif", "notes.txt"]]
    [True, False, False, False, False]
    """
    if name.startswith(".") or "/." in name:
        return False
    base = name.rpartition("/")[2].lower()
    return _keep_base(base, None if extensions is None else tuple(extensions))


def _keep_base(lower: str, extensions: tuple[str, ...] | None) -> bool:
    """The per-file test on a lower-cased base name (hot: runs once per file)."""
    if extensions is not None:
        if not lower.endswith(extensions):
            return False
    elif lower.endswith(_JUNK_EXTENSIONS):
        return False
    if lower in _JUNK_NAMES:
        return False
    if "_thumb" in lower:
        stem = lower.rsplit(".", 1)[0]
        if stem.endswith("_thumb") or "_thumb_" in stem:
            return False
    return True


def discover(
    source: Any,
    *,
    extensions: Sequence[str] | None = TIFF_EXTENSIONS,
    trust: bool = False,
    progress: bool | None = False,
) -> Source:
    """List the image files of ``source``.

    Parameters
    ----------
    source
        A folder (searched recursively; symbolic links are followed, loops are not),
        a glob (``**`` allowed), a list of paths, or an fsspec URL (``memory://``,
        ``s3://``, ...; needs fsspec and the filesystem's package). A path that exists
        is taken as it is, even when its name holds glob characters (``run[1]``), and
        such parts of a glob's folder are matched literally (``run[1]/*.tif``).
    extensions
        File endings to keep; ``None`` keeps everything but known non-image files.
    trust
        Take a list of local paths as it is: no file is looked at (``check="none"``
        with a given file shape: a million names from a listing open in seconds); a
        missing file is then an error when it is read.
    progress
        Count the files listed from a folder on stderr when the listing takes more than
        a second (``None``: when stderr is a terminal).

    Raises
    ------
    NoImagesError
        When the source does not exist or holds no image file.
    """
    if isinstance(source, (list, tuple)):
        return _from_list([os.fspath(p) for p in source], extensions, trust)
    text = os.fspath(source)
    if "://" in text and not text.startswith("file://"):
        return _from_fsspec(text, extensions)
    text = text.removeprefix("file://")
    if _GLOB_CHARS & set(text) and not os.path.exists(text):
        root = _glob_root(text, exists=os.path.exists)
        pattern = _glob.escape(root) + text[len(root) :] if root != "." else text
        matches = _glob.glob(pattern, recursive=True)
        files = [m for m in matches if os.path.isfile(m)]
        if not files:
            raise NoImagesError(f"the glob {text!r} matches no file")
        return _finish(root, [os.path.relpath(f, root) for f in files], None, extensions, text)
    if os.path.isdir(text):
        from ._progress import Ticker

        tick = Ticker(f"listing {text}", enabled=progress)
        names, sizes = _walk(text, extensions, tick if tick.enabled else None)
        tick.done(len(names))
        if not names:
            raise NoImagesError(_empty_message(text, extensions))
        return _sorted(text, names, sizes, None, f"folder {text}")
    if os.path.isfile(text):
        return _from_list([text], extensions)
    raise NoImagesError(f"{text!r} does not exist (expected a folder, a glob, a file or a URL)")


def _empty_message(where: str, extensions: Sequence[str] | None) -> str:
    if extensions is None:
        return f"no image file in {where!r}"
    return f"no image file in {where!r} (looked for {', '.join(extensions)})"


def _walk(
    top: str, extensions: Sequence[str] | None, tick: Any = None
) -> tuple[list[str], list[int]]:
    """Recursive listing with sizes (of TIFFs); follows links to folders, never loops;
    ``tick(count)`` every 4,096 entries."""
    exts = None if extensions is None else tuple(e.lower() for e in extensions)
    names: list[str] = []
    sizes: list[int] = []
    seen: set[tuple[int, int]] = set()
    stack = [("", top)]
    while stack:
        rel, path = stack.pop()
        try:
            st = os.stat(path)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue  # a symbolic-link loop, or the same folder reached twice
        seen.add((st.st_dev, st.st_ino))
        try:
            entries = (
                list(os.scandir(path)) if tick is None else _listed_ticking(path, tick, len(names))
            )
        except OSError:
            continue
        if tick is not None:
            tick(len(names) + len(entries))
        for e in entries:  # hot loop: one pass per file, cheapest tests first
            n = e.name
            if n.startswith("."):
                continue
            low = n.lower()
            try:
                if exts is not None and low.endswith(exts) and "_thumb" not in low:
                    keep = True
                else:
                    keep = (exts is None or "_thumb" in low) and _keep_base(low, exts)
                if keep and e.is_file():
                    names.append(rel + n)
                    sizes.append(e.stat().st_size if low.endswith(TIFF_EXTENSIONS) else -1)
                elif e.is_dir():
                    stack.append((f"{rel}{n}/", e.path))
            except OSError:
                continue  # a dangling link
    return names, sizes


def _listed_ticking(path: str, tick: Any, before: int) -> list[os.DirEntry]:
    """One folder's entries, ticking while a long listing goes on."""
    out = []
    with os.scandir(path) as it:
        for e in it:
            out.append(e)
            if not len(out) & 4095:
                tick(before + len(out))
    return out


def _glob_root(pattern: str, exists: Any = None) -> str:
    """The folder part of a glob: its leading parts without glob characters (or, with
    ``exists``, parts that exist as they are written, glob characters and all)."""
    parts = pattern.replace(os.sep, "/").split("/")
    fixed: list[str] = []
    for i, p in enumerate(parts[:-1]):
        if _GLOB_CHARS & set(p) and not (exists and exists("/".join(parts[: i + 1]) or "/")):
            break
        fixed.append(p)
    root = "/".join(fixed)
    if root == "" and pattern.startswith("/"):
        root = "/"
    return root or "."


def _from_list(paths: list[str], extensions: Sequence[str] | None, trust: bool = False) -> Source:
    if not paths:
        raise NoImagesError("the list of files is empty")
    if any("://" in p and not p.startswith("file://") for p in paths):
        return _from_fsspec_list(paths, extensions)
    paths = [p.removeprefix("file://") for p in paths]
    if not trust:
        for p in paths:
            if not os.path.isfile(p):
                raise NoImagesError(f"{p!r} does not exist or is not a file")
    full = [os.path.abspath(p) for p in paths]
    root = os.path.commonpath([os.path.dirname(p) for p in full])
    cut = len(root.rstrip(os.sep)) + 1
    rel = [p[cut:].replace(os.sep, "/") for p in full]
    return _finish(root, rel, None, extensions, f"{len(paths)} listed files", trust)


def _finish(
    root: str,
    names: Iterable[str],
    fs: Any,
    extensions: Sequence[str] | None,
    desc: str,
    trust: bool = False,
) -> Source:
    keep = [n.replace(os.sep, "/") for n in names]
    keep = [n for n in keep if is_image_name(n, extensions)]
    if not keep:
        raise NoImagesError(_empty_message(desc, extensions))
    if trust:
        sizes = [-1] * len(keep)
    elif fs is None:
        sizes = [_local_size(root, n) for n in keep]
    else:
        sizes = [_remote_size(fs, join_path(root, n, fs)) for n in keep]
    return _sorted(root, keep, sizes, fs, desc)


def _local_size(root: str, name: str) -> int:
    """A listed TIFF's size; -1 (not listed) for other formats, whose check reads headers."""
    return os.stat(os.path.join(root, name)).st_size if is_tiff_name(name) else -1


def _remote_size(fs: Any, path: str) -> int:
    """The size of one listed remote file; a missing one is named in ndstack's words."""
    try:
        return int(fs.size(path) or 0)
    except FileNotFoundError:
        raise NoImagesError(f"{redact(path)} does not exist") from None


def _sorted(root: str, names: list[str], sizes: list[int], fs: Any, desc: str) -> Source:
    # Plain (C-speed) sort for a deterministic order: positions along each axis come
    # from the parsed values, which are ordered by number, so files need no natural sort.
    pairs = sorted(zip(names, sizes))
    return Source(
        root=root,
        names=tuple(p[0] for p in pairs),
        sizes=tuple(p[1] for p in pairs),
        fs=fs,
        description=desc,
    )


def _listed(list_them: Any, what: Any, extensions: Sequence[str] | None, name: str) -> Source:
    """``list_them(what, extensions)``, its unexpected errors as one NoImagesError."""
    try:
        return list_them(what, extensions)
    except (NdstackError, OSError):  # already in ndstack's words, or the system's
        raise
    except Exception as exc:  # an invalid URL, a filesystem package not installed ...
        raise NoImagesError(f"cannot list {name!r}: {type(exc).__name__}: {exc}") from exc


def _from_fsspec(url: str, extensions: Sequence[str] | None) -> Source:
    return _listed(_list_fsspec, url, extensions, url)


def _list_fsspec(url: str, extensions: Sequence[str] | None) -> Source:
    from ._zarr.paths import filesystem

    fs, path = filesystem(url)
    if _GLOB_CHARS & set(path) and not fs.exists(path):
        root = _glob_root(path)
        found = fs.glob(path, detail=True)
    elif fs.isdir(path):
        root = path
        found = fs.find(path, detail=True)
    elif fs.exists(path):
        return _from_fsspec_list([url], extensions)
    else:
        raise NoImagesError(f"{url!r} does not exist")
    root = root.rstrip("/")
    names, sizes = [], []
    for full, info in found.items():
        if info.get("type", "file") != "file":
            continue
        rel = full[len(root) :].lstrip("/") if root else full
        if is_image_name(rel, extensions):
            names.append(rel)
            sizes.append(int(info.get("size") or 0))
    if not names:
        raise NoImagesError(_empty_message(url, extensions))
    return _sorted(root, names, sizes, fs, url)


def _from_fsspec_list(urls: list[str], extensions: Sequence[str] | None) -> Source:
    return _listed(_list_fsspec_files, urls, extensions, urls[0])


def _list_fsspec_files(urls: list[str], extensions: Sequence[str] | None) -> Source:
    from ._zarr.paths import filesystem

    fs, _ = filesystem(urls[0])
    full = []
    for u in urls:
        other, path = filesystem(u)
        if type(other) is not type(fs) or other.storage_options != fs.storage_options:
            raise NoImagesError(
                f"{u!r} is on another filesystem than {urls[0]!r}; list URLs of one "
                "filesystem (one scheme, host and options)"
            )
        full.append(path)
    root = common_dir(full)
    names = [p[len(root) + 1 :] if root else p for p in full]
    if any(join_path(root, n, fs) != p for n, p in zip(names, full)):
        root, names = "", full  # e.g. URLs on two hosts: "http:/" is no folder
    return _finish(root, names, fs, extensions, f"{len(urls)} listed URLs")


def common_dir(paths: Sequence[str]) -> str:
    """The longest common folder of ``/``-separated paths, kept as written.

    Unlike ``os.path.commonpath`` it keeps ``//`` (``http://host/...``) and never
    normalizes, so that every path is ``root + "/" + name`` again.

    >>> common_dir(["http://h:1/a/b/x.tif", "http://h:1/a/c/y.tif"])
    'http://h:1/a'
    >>> common_dir(["bucket/x.tif", "bucket/y.tif"]), common_dir(["x.tif", "y.tif"])
    ('bucket', '')
    >>> common_dir(["http://h1/x.tif", "http://h2/y.tif"])  # no common folder
    ''
    """
    folders = [p.split("/")[:-1] for p in paths]
    common: list[str] = []
    for parts in zip(*folders):
        if any(p != parts[0] for p in parts):
            break
        common.append(parts[0])
    root = "/".join(common)
    return "" if root.endswith(":/") else root
