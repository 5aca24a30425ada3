"""``ndstack.open``: many image files as one lazy, labelled N-D array."""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from ._axes import is_tiff_name, rank
from ._discover import Source, discover
from ._formats import Format, format_of, sniff
from ._formats import extensions as known_endings
from ._formats import named as named_format
from ._grid import (
    FileAxis,
    FileGrid,
    FunctionReader,
    GridAxis,
    Place,
    TileAxis,
    grid_array,
    place_key,
)
from ._names import MAJORITY, TILE_AXES, Layout, parse_names
from ._redact import redact
from ._tiff import FileInfo, read_bytes
from .errors import (
    CorruptFileError,
    FileMismatchError,
    LayoutError,
    NoImagesError,
    ParameterError,
)

if TYPE_CHECKING:
    import xarray as xr

    from ._ome import OmeDataset

__all__ = ["MissingFilesWarning", "open"]

#: rank of each axis in the output (OME order; positions and unknown axes in front)
_DEFAULT_FILE_AXES = {2: "YX", 3: "ZYX", 4: "CZYX", 5: "TCZYX"}


class MissingFilesWarning(UserWarning):
    """Some positions of the grid have no file (or an unreadable one) and are filled."""


class SkippedFilesWarning(UserWarning):
    """Files of another name structure than a clear majority were left out."""


#: What to do with a file that cannot be read or differs: stop, or fill it and record it.
OnError = Literal["raise", "fill"]
#: How much of every file's headers :func:`open` reads before building the array.
Check = Literal["auto", "headers", "none"]
#: x/y tile indices in names: stitched into one plane, or kept as dims.
Tiles = Literal["stitch", "axes"]


def open(
    source: Any,
    pattern: str | None = None,
    *,
    reader: Callable[[str], Any] | str | None = None,
    chunks: Mapping[str, int] | None = None,
    fill_value: float = 0,
    on_error: OnError = "raise",
    check: Check = "auto",
    tiles: Tiles = "stitch",
    file_axes: str | None = None,
    file_shape: Sequence[int] | None = None,
    dtype: Any = None,
    extensions: Sequence[str] | None = None,
    storage_options: Mapping[str, Any] | None = None,
    pixel_size: Mapping[str, float] | None = None,
    progress: bool | None = None,
) -> xr.DataArray:
    """Open many image files as one lazy ``xarray.DataArray`` over a Dask array.

    Nothing but headers is read. Axes and coordinates come from the file names (inferred,
    or from ``pattern``), the axes inside the files and the pixel sizes from the first
    file's metadata.

    Parameters
    ----------
    source
        A folder (searched recursively), a glob, a list of paths, or an fsspec URL.
    pattern
        ``None`` to infer the axes from the names; else a template such as
        ``"{name}_ch{C:d}_{cam}_stack{T:d}_{wavelength}nm_*.tif"`` or a regular expression with
        named groups. Single capital letters (``T``, ``C``, ``Z``, ``P``; ``X``/``Y`` for
        tiles) are axes; other fields are coordinates of the axes they follow, constants,
        or (when they vary on their own) axes of their own name, as in inference.
        A template is matched whole: against base names, or against paths relative
        to the source when it holds ``/``. A regex is searched for (``re.search``: it
        may match part of the name; anchor it with ``^``/``$``) in the path relative to
        the source. Files it does not match are skipped.
    reader
        Any function ``path -> ndarray``; called once on the first file to learn the
        shape and dtype. Or the name of a format (``"bioio"``: every file through bioio
        and its plugins). Default: the format each file's ending names (TIFF, PNG, JPEG
        and other rasters, vendor formats through bioio, registered formats).
    chunks
        Block sizes per dim: of in-file axes (``{"Z": 8}`` splits stacks), or of name
        axes (``{"T": 100}``: blocks of 100 files). Default: one block per file; for more
        than 256 files of under 256 KiB each, blocks of several files (about 4 MiB,
        growing along the innermost name axes first), where a task per file would cost
        more than the read. A selection made in one step reads only what it selects
        either way.
    fill_value
        Value of positions without a file (and of unreadable files with
        ``on_error="fill"``).
    on_error
        ``"raise"`` (default): a file that differs or cannot be read raises, naming the
        file. ``"fill"``: such files are filled with ``fill_value`` and listed in
        ``attrs["bad_files"]`` (or warned about, when found only while reading).
    check
        ``"auto"`` (default): every file's size is compared with the first file's, and
        files of another size have their headers read and compared. ``"headers"``: read
        every file's headers. ``"none"``: trust the names (and with ``reader=``,
        ``file_shape`` and ``dtype``, a list of paths is taken as it is: no file is
        looked at, so a million names open in seconds; a missing one fails when read).
    tiles
        ``"stitch"`` (default): ``x``/``y`` tile indices are assembled into one larger
        plane, without overlap. ``"axes"``: keep ``tile_y``/``tile_x`` as dims.
    file_axes
        Letters of the axes inside each file, when the reader cannot say (default for a
        function reader: ``YX``, ``ZYX``, ``CZYX``, ``TCZYX`` by number of dims).
    file_shape, dtype
        With ``reader=``: the shape and dtype every file has, so that opening calls the
        reader on no file at all. Every read is still checked against them.
    extensions
        File endings to take (default: every ending a format reads; with ``reader=``,
        every file except known non-images).
    storage_options
        For URLs (``s3://``, ``gs://``, ``https://`` ...): fsspec options of their
        filesystem (``endpoint_url``, ``anon``, ``profile`` ...), used for every request to
        that bucket or host from this process and carried by the tasks that read it;
        never written or shown. Without them the cloud's own configuration applies.
    pixel_size
        Pixel sizes to give or correct, per dim, in ``pixel_unit`` (µm unless the files
        say otherwise), e.g. ``{"Z": 0.3, "Y": 0.104, "X": 0.104}``: for a function reader
        (which gives none), files without calibration, or a wrong one. The others stay as
        the files say; ``attrs["pixel_size_given"]`` lists the dims given here.
    progress
        Count the files listed and the headers read on stderr while that takes more
        than a second (a long listing on a network filesystem); default: when stderr is
        a terminal. ``False``: never.

    Returns
    -------
    xarray.DataArray
        ``.data`` is a Dask array, one chunk per file by default. ``attrs`` hold the
        source, the pattern, the pixel sizes (``pixel_size``, ``pixel_unit``), constants
        from the names, missing and bad files, and how each axis was found.

    Raises
    ------
    NoImagesError, PatternError, LayoutError, FileMismatchError, CorruptFileError
        All subclasses of :class:`ndstack.errors.NdstackError`.

    Notes
    -----
    A selection made in one indexing step (``arr.isel(T=0, C=1, Z=10)`` or
    ``arr[0, 1, 10]``) is pushed down to the reads and reads one plane; a chained
    selection (``arr.isel(T=0).isel(Z=10)``, or ``arr.sel(C=1).isel(Z=10)``) reads the
    whole file behind the first step: Dask 2026.8 fuses only one indexing step into a read.

    Examples
    --------
    >>> arr = ndstack.open("experiment/")  # doctest: +SKIP
    >>> arr.isel(T=0, C=1, Z=10).values  # one step: reads one plane of one file  # doctest: +SKIP
    """
    from ._zarr.paths import as_local, refuse_credentials, use_options
    from ._zarr.read import is_store, open_store

    if isinstance(source, str):
        refuse_credentials(source, NoImagesError)
    for url in [source] if isinstance(source, str) else source if isinstance(source, list) else []:
        use_options(str(url), storage_options)

    if on_error not in ("raise", "fill"):
        raise ValueError(f"on_error must be 'raise' or 'fill', not {on_error!r}")
    given = _check_pixel_sizes(pixel_size)
    if is_store(source):  # a store written by ndstack.to_zarr: one line back
        stored = open_store(as_local(os.fspath(source)), on_error=on_error)
        return _with_pixel_sizes(stored, given)
    if check not in ("auto", "headers", "none"):
        raise ValueError(f"check must be 'auto', 'headers' or 'none', not {check!r}")
    if tiles not in ("stitch", "axes"):
        raise ValueError(f"tiles must be 'stitch' or 'axes', not {tiles!r}")
    forced = named_format(reader) if isinstance(reader, str) else None  # reader="bioio"
    if forced is not None and file_axes is not None:
        raise ParameterError(
            f"file_axes= does not apply to reader={reader!r}: the format names the dims"
        )
    func = None if isinstance(reader, str) else reader
    exts = extensions if extensions is not None else (known_endings() if reader is None else None)
    # check="none" with a reader that needs no probe: a list is taken as it is
    trust = check == "none" and func is not None and file_shape is not None and dtype is not None
    src = discover(source, extensions=exts, trust=trust, progress=progress)
    src, other_format = _one_format(src) if reader is None else (src, [])
    if reader is None and pattern is None and src.fs is None:
        from ._ome import find_dataset

        dataset = find_dataset(src.root, src.names, fill_value)
        if dataset is not None:  # the files' own OME-XML describes them all: it wins
            dataset = replace(dataset, planes=replace(dataset.planes, on_error=on_error))
            return _with_pixel_sizes(_open_ome(dataset, src, chunks, fill_value), given)
    layout = parse_names(src.names, pattern)
    if other_format:
        why = f"of another format than the {len(src.names)} others"
        layout = replace(
            layout,
            unmatched=(*other_format, *layout.unmatched),
            skip_reason="; ".join(r for r in (why, layout.skip_reason) if r),
        )
    names = [src.names[i] for i in layout.used]
    sizes = [src.sizes[i] for i in layout.used]

    bad: dict[int, str] = {}
    if func is not None:
        from ._cluster import require_picklable

        require_picklable(func, f"the reader {getattr(func, '__qualname__', func)!r}")
    if func is not None and file_shape is not None and dtype is not None:
        first = 0
        file_reader = FunctionReader(func, tuple(int(n) for n in file_shape), np.dtype(dtype).name)
        axes = file_axes or _DEFAULT_FILE_AXES.get(len(file_reader.shape), "")
        info = _with_axes(
            FileInfo(file_reader.shape, file_reader.dtype, axes, {}, None), axes, "file_shape"
        )
    elif file_shape is not None or dtype is not None:
        raise ValueError("file_shape= and dtype= go together, and with reader=")
    else:
        first, info, file_reader, fmt = _probe_first(
            src, names, func, file_axes, on_error, bad, forced
        )
        if fmt is not None and fmt is not format_of(names[first]):
            forced = fmt  # every file is read and checked as what the first one is
    if func is None and check != "none":
        _check_files(src, names, sizes, info, first, check, on_error, bad, forced, progress)

    layout = _block_axes(layout, info.axes, tiles)
    dims, sources, grid_names = _arrangement(layout, info, tiles)
    files = np.full(layout.shape, None, dtype=object)
    if layout.axes:
        files[tuple(layout.index.T)] = np.asarray(names, dtype=object)
    else:  # one file, no grid: a 0-d grid holding its name (not an array of names)
        files[()] = names[0]
    for i in bad:
        files[tuple(layout.index[i])] = None
    grid = FileGrid(
        root=src.root,
        files=files,
        reader=file_reader,
        file_shape=info.shape,
        sources=sources,
        dtype=np.dtype(info.dtype),
        fill_value=fill_value,
        on_error=on_error,
        fs=src.fs,
    )
    data = _to_dask(grid, dims, sources, info, chunks, src, names, sizes, reader)
    missing = _missing(layout, files)
    out = _to_xarray(
        data, dims, layout, info, src, pattern, names, missing, bad, grid_names, fill_value
    )
    return _with_pixel_sizes(out, given)


def _check_pixel_sizes(pixel_size: Mapping[str, float] | None) -> dict[str, float]:
    """``pixel_size=`` checked: dim names to positive, finite numbers."""
    if pixel_size is None:
        return {}
    if not isinstance(pixel_size, Mapping):
        raise ParameterError(
            f"pixel_size must map dims to sizes, e.g. {{'Z': 0.3, 'Y': 0.1}}, not {pixel_size!r}"
        )
    out = {}
    for dim, size in pixel_size.items():
        if dim not in ("Z", "Y", "X"):
            raise ParameterError(
                f"pixel_size names {dim!r}: pixel sizes are for the space dims Z, Y and X"
            )
        ok = isinstance(size, (int, float, np.integer, np.floating)) and not isinstance(size, bool)
        if not ok or not np.isfinite(size) or size <= 0:
            raise ParameterError(f"pixel_size {dim}={size!r}: sizes are positive numbers")
        out[str(dim)] = float(size)
    return out


def _with_pixel_sizes(arr: xr.DataArray, given: dict[str, float]) -> xr.DataArray:
    """``arr`` with the pixel sizes given by the user, each for a dim it has."""
    if not given:
        return arr
    unknown = [d for d in given if d not in arr.dims]
    if unknown:
        raise ParameterError(
            f"pixel_size names {', '.join(map(repr, unknown))}, which the array does not "
            f"have; its dims are {', '.join(map(str, arr.dims))}"
        )
    attrs = dict(arr.attrs)
    attrs["pixel_size"] = {**dict(attrs.get("pixel_size") or {}), **given}
    attrs["pixel_unit"] = attrs.get("pixel_unit") or "micrometer"
    attrs["pixel_size_given"] = sorted(given)
    attrs.pop("pixel_note", None)  # the note said why the files gave none
    out = arr.copy()
    out.attrs = attrs
    return out


def _one_format(src: Source) -> tuple[Source, list[str]]:
    """The files of the source's one format, and the others: files of other formats
    beside a clear majority (a ``preview.png`` among TIFFs) are left out; without one,
    a mix is refused, naming an example of each format."""
    ending = src.names[0][src.names[0].rfind(".") :].lower()
    longer = any(e.endswith(ending) and e != ending for e in known_endings())
    if "." in ending and not longer and all(n.lower().endswith(ending) for n in src.names):
        return src, []  # one ending, no longer one to tell apart: one format, one pass
    kinds: dict[str | None, list[int]] = {}
    for i, n in enumerate(src.names):
        kinds.setdefault(getattr(format_of(n), "name", None), []).append(i)
    if len(kinds) == 1:
        return src, []
    main = max(kinds.values(), key=len)
    if len(main) < MAJORITY * len(src.names):
        shown = "; ".join(f"{k or 'unknown'}: {src.names[v[0]]!r} ({len(v)} files)"
                          for k, v in kinds.items())  # fmt: skip
        raise LayoutError(
            f"the source mixes image formats ({shown}); pass extensions= to choose, e.g. "
            f"extensions=['.png']"
        )
    keep = set(main)
    others = [n for i, n in enumerate(src.names) if i not in keep]
    return (
        replace(
            src,
            names=tuple(src.names[i] for i in main),
            sizes=tuple(src.sizes[i] for i in main),
        ),
        others,
    )


def _probe_first(
    src: Source,
    names: list[str],
    reader: Callable[[str], Any] | None,
    file_axes: str | None,
    on_error: str,
    bad: dict[int, str],
    forced: Format | None = None,
) -> tuple[int, FileInfo, Any, Format | None]:
    """Probe the first readable file; with ``on_error='fill'`` skip unreadable ones.

    Returns its position, its headers, the reader for all files and the format that
    read it (by ending, or by its magic bytes where the ending lies: a TIFF named
    ``.png``)."""
    for i, name in enumerate(names):
        path = src.path(name)
        try:
            if reader is None:
                fmt = forced or _format(path)
                try:
                    info = fmt.probe(path, src.fs)
                except CorruptFileError:
                    real = None if forced else _sniffed(path, src.fs)
                    if real is None or real.name == fmt.name:
                        raise
                    fmt, info = real, real.probe(path, src.fs)  # the ending lies
                if file_axes is not None:
                    info = _with_axes(info, file_axes, path)
                return i, info, fmt.reader(info, src.fs), fmt
            fr = _probe_function(reader, path)
            axes = file_axes or _DEFAULT_FILE_AXES.get(len(fr.shape))
            if axes is None:
                raise LayoutError(
                    f"{path}: the reader returned {len(fr.shape)} dims {fr.shape}; "
                    "pass file_axes= to name them"
                )
            info = FileInfo(shape=fr.shape, dtype=fr.dtype, axes=axes, pixel_sizes={}, unit=None)
            return i, _with_axes(info, axes, path), fr, None
        except (CorruptFileError, FileMismatchError) as exc:
            if on_error != "fill":
                raise
            bad[i] = str(exc)
    raise CorruptFileError(f"none of the {len(names)} files could be read; first error: {bad[0]}")


def _sniffed(path: str, fs: Any) -> Format | None:
    """The format a file's first bytes name, or None (unreadable, or no known magic)."""
    try:
        return sniff(read_bytes(path, fs, 16))
    except OSError:
        return None


def _format(path: str) -> Format:
    """The format that reads ``path`` (by its ending; see :mod:`._formats`)."""
    fmt = format_of(path)
    if fmt is None:
        raise CorruptFileError(
            f"{path}: no format reads this ending (known: {', '.join(known_endings())}); "
            "pass reader= (any function path -> ndarray)"
        )
    return fmt


def _with_axes(info: FileInfo, axes: str, path: str) -> FileInfo:
    if len(axes) != len(info.shape) or len(set(axes)) != len(axes):
        raise LayoutError(f"{path}: file_axes={axes!r} does not fit the file's shape {info.shape}")
    from dataclasses import replace

    return replace(info, axes=axes.upper())


def _probe_function(reader: Callable[[str], Any], path: str) -> FunctionReader:
    try:
        data = np.asarray(reader(path))
    except Exception as exc:
        name = getattr(reader, "__qualname__", repr(reader))
        raise CorruptFileError(f"{path}: the reader {name} failed: {exc}") from None
    if data.ndim < 2:
        raise LayoutError(f"{path}: the reader returned {data.ndim} dims; an image needs 2 or more")
    return FunctionReader(reader, tuple(data.shape), data.dtype.name)


def _check_files(
    src: Source,
    names: list[str],
    sizes: list[int],
    info: FileInfo,
    first: int,
    check: str,
    on_error: str,
    bad: dict[int, str],
    forced: Format | None = None,
    progress: bool | None = None,
) -> None:
    """Compare every file with the first: by size, then by headers where sizes differ
    (counted on stderr when that takes more than a second, see :class:`Ticker`)."""
    ref = sizes[first]
    todo = [i for i in range(len(names)) if i not in bad and i != first]
    if check == "auto":
        if forced is not None or not is_tiff_name(names[first]):
            return  # compressed rasters differ in size anyway: each read checks its shape
        todo = [i for i in todo if sizes[i] != ref]
    if not todo:
        return

    def one(i: int) -> Exception | None:
        path = src.path(names[i])
        try:
            found = (forced or _format(path)).probe(path, src.fs)
        except CorruptFileError as exc:
            return exc
        if found.shape != info.shape or found.dtype != info.dtype:
            known = f" ({sizes[i]} bytes against {ref})" if min(sizes[i], ref) >= 0 else ""
            return FileMismatchError(
                f"{path}: expected shape {info.shape} dtype {info.dtype} like "
                f"{names[first]}, found shape {found.shape} dtype {found.dtype}{known}"
            )
        return None

    from ._progress import Ticker

    tick = Ticker("reading headers", enabled=progress)
    with ThreadPoolExecutor(max_workers=min(8, len(todo))) as pool:
        results = []
        for err in pool.map(one, todo):
            results.append(err)
            if not len(results) & 1023:
                tick(len(results), len(todo))
    tick.done(len(results))
    for i, err in zip(todo, results):
        if err is None:
            continue
        if on_error != "fill":
            raise err
        bad[i] = str(err)


def _block_axes(layout: Layout, file_axes: str, tiles: str) -> Layout:
    """The layout with each name axis that is also an axis inside the files (``z`` in
    ``mydata_..._3z.tif`` of 3-D blocks) renamed ``tile_<letter>`` when ``tiles="axes"``
    keeps blocks as dims; with ``"stitch"`` it stays, to be stitched along that axis."""
    same = [a.name for a in layout.axes if a.name in file_axes]
    if tiles != "axes" or not same:
        return layout
    new = {d: f"tile_{d.lower()}" for d in same}
    return replace(
        layout,
        axes=tuple(
            replace(a, name=new[a.name], how=a.how + f" (block index along {a.name})")
            if a.name in new
            else a
            for a in layout.axes
        ),
        coords=tuple(replace(c, dims=tuple(new.get(d, d) for d in c.dims)) for c in layout.coords),
    )


def _arrangement(
    layout: Layout, info: FileInfo, tiles: str
) -> tuple[list[str], tuple[Place, ...], list[str]]:
    """Output dims, where each comes from, and which name axes stay dims.

    A name axis that is also an axis inside the files is a block index along it: x/y tile
    indices (``tile_x``, ``tile_y``) and a ``Z`` (or ``T``, ``C``) of blocks are stitched
    like ``da.block`` (``tiles="stitch"``); with ``tiles="axes"`` :func:`_block_axes` has
    renamed them ``tile_<letter>`` and they stay dims. Dims sort by their rank in the
    usual axis order; between equal ranks the name axes come first (in name order), then
    the in-file axes (in file order).
    """
    name_dims = list(layout.dims)
    file_axes = info.axes
    stitch = {}
    if tiles == "stitch":
        for t, ax in zip(TILE_AXES, "YX"):
            if t in name_dims and ax in file_axes:
                stitch[t] = ax
        stitch.update({d: d for d in name_dims if d in file_axes})
    entries: list[tuple[tuple[float, int, int], str, Place]] = []
    for i, d in enumerate(name_dims):
        if d not in stitch:
            entries.append(((rank(d), 0, i), d, GridAxis(i)))
    for j, ax in enumerate(file_axes):
        tile = next((t for t, a in stitch.items() if a == ax), None)
        src: Place = TileAxis(name_dims.index(tile), j) if tile else FileAxis(j)
        entries.append(((rank(ax), 1, j), ax, src))
    entries.sort(key=lambda e: e[0])
    grid_names = [d for d in name_dims if d not in stitch]
    return [e[1] for e in entries], tuple(e[2] for e in entries), grid_names


def _checked_chunks(chunks: Mapping[str, int] | None, dims: Sequence[str]) -> dict[str, int]:
    """``chunks=`` as a dict, each key one of ``dims``."""
    out = dict(chunks or {})
    unknown = set(out) - set(dims)
    if unknown:
        raise ValueError(f"chunks names unknown dims {sorted(unknown)}; dims are {list(dims)}")
    return out


def _token(
    src: Source, names: list[str], sizes: list[int], info: FileInfo | str, extra: Sequence[Any]
) -> str:
    h = hashlib.blake2b(digest_size=12)
    h.update(repr((src.root, info, tuple(extra))).encode())
    h.update("\0".join(names).encode("utf-8", "surrogateescape"))
    h.update(np.asarray(sizes, dtype=np.int64).tobytes())
    # names and sizes, plus the first file's modification time: a dataset rewritten in
    # place with the same names and sizes gets a new graph name (one stat, not one per file)
    if src.fs is None:
        try:
            mtimes = [os.stat(os.path.join(src.root, n)).st_mtime_ns for n in names[:1]]
            h.update(repr(mtimes).encode())
        except OSError:
            pass
    return h.hexdigest()


def _to_dask(
    grid: FileGrid,
    dims: list[str],
    sources: tuple[Place, ...],
    info: FileInfo,
    chunks: Mapping[str, int] | None,
    src: Source,
    names: list[str],
    sizes: list[int],
    reader: Any,
) -> Any:
    chunks = _checked_chunks(chunks, dims)
    shape = grid.shape
    # files on object storage stay a block each: a task reads its objects one after
    # another, and many requests in flight are what makes them fast
    grouped = _small_file_blocks(dims, sources, shape, info, chunks) if src.fs is None else {}
    out_chunks = []
    for d, s, n in zip(dims, sources, shape):
        match s:
            case GridAxis():
                out_chunks.append(chunks.get(d, grouped.get(d, 1)))
            case TileAxis(_, j):
                out_chunks.append(chunks.get(d, info.shape[j]))
            case FileAxis():
                out_chunks.append(chunks.get(d, n))
    extra = (
        dims,
        tuple(place_key(s) for s in sources),  # plain tuples: the same name as before
        out_chunks,
        grid.fill_value,
        # not on_error: it changes only what happens to unreadable files, and the array's
        # name is its identity for to_zarr (a run that stopped on a bad file resumes
        # with on_error="fill")
        reader if isinstance(reader, str) else getattr(reader, "__qualname__", None),
    )
    return grid_array(
        grid, tuple(out_chunks), "ndstack-open-" + _token(src, names, sizes, info, extra)
    )


#: files smaller than this, more than the writer's GROUP_ABOVE of them, are read several
#: to a block of about its TARGET_CHUNK_BYTES (so that its chunks and the blocks agree)
SMALL_FILE_BYTES = 256 << 10


def _small_file_blocks(
    dims: Sequence[str],
    sources: Sequence[Place],
    shape: Sequence[int],
    info: FileInfo,
    chunks: Mapping[str, int],
) -> dict[str, int]:
    """Blocks of several files along the name axes, for many small local files.

    A Dask task per file of 512 bytes costs more than reading it: summing 20,000 such
    files took 11 s in one-file blocks and 1.6 s in blocks of 100 T (2 cores). With more
    than ``GROUP_ABOVE`` (256) files of under :data:`SMALL_FILE_BYTES`, and no name axis
    chunked by the caller, the name axes grow from the innermost outwards (each whole
    before the next) to about ``TARGET_CHUNK_BYTES`` (4 MiB) a block, as the writer's
    chunks of small planes do (:func:`._util.grown`). A selection made in one step
    still reads only the files (and planes) it selects; napari's view still has a
    plane per chunk.
    """
    from ._util import grown
    from ._zarr.plan import GROUP_ABOVE, TARGET_CHUNK_BYTES

    grid = [i for i, s in enumerate(sources) if isinstance(s, GridAxis)]
    count = math.prod(shape[i] for i in grid)
    itemsize = np.dtype(info.dtype).itemsize
    file_bytes = math.prod(info.shape) * itemsize
    if {dims[i] for i in grid} & set(chunks) or count <= GROUP_ABOVE:
        return {}
    if file_bytes >= SMALL_FILE_BYTES:
        return {}
    # one file's block: a file along each name axis, one tile along a stitched axis
    one = [
        1 if isinstance(s, GridAxis) else info.shape[s.file] if isinstance(s, TileAxis) else n
        for s, n in zip(sources, shape)
    ]
    out = grown(one, shape, grid[::-1], itemsize, TARGET_CHUNK_BYTES)
    return {dims[i]: out[i] for i in grid if out[i] > 1}


def _missing(layout: Layout, files: np.ndarray) -> list[str]:
    """Grid positions without a readable file (unreadable ones were set to None)."""
    empty = np.argwhere(files == None)  # noqa: E711 - elementwise on an object array
    return [", ".join(f"{a.name}={a.values[i]}" for a, i in zip(layout.axes, pos)) for pos in empty]


def _to_xarray(
    data: Any,
    dims: list[str],
    layout: Layout,
    info: FileInfo,
    src: Source,
    pattern: str | None,
    names: list[str],
    missing: list[str],
    bad: dict[int, str],
    grid_names: list[str],
    fill_value: float,
) -> xr.DataArray:
    import xarray as xr

    coords: dict[str, Any] = {}
    how: dict[str, str] = {}
    for ax in layout.axes:
        how[ax.name] = ax.how
        if ax.name in grid_names:
            coords[ax.name] = (ax.name, _coord_array(ax.values))
        else:
            along = {"tile_y": "Y", "tile_x": "X"}.get(ax.name, ax.name)
            how[ax.name] += f" (blocks stitched along {along})"
    for c in layout.coords:
        if all(d in grid_names for d in c.dims):
            coord_attrs = {"units": c.units} if c.units else {}
            coords[c.name] = (c.dims, c.values, coord_attrs)
            how[c.name] = c.how
    for letter in info.axes:
        how.setdefault(letter, "inside each file")
    n_c = info.shape[info.axes.index("C")] if "C" in info.axes else 0
    if n_c and "C" not in coords and data.shape[dims.index("C")] == n_c:
        # the channel names the first file gives (not where names stitch C blocks)
        named = _channel_coord(info.channel_names, n_c)
        if named is not None:
            coords["C"] = ("C", named)
            how["C"] += ", channel names from its metadata"
    bad_files = [f"{names[i]}: {msg}" for i, msg in sorted(bad.items())]
    attrs: dict[str, Any] = {
        "source": redact(src.description or src.root),
        "root": redact(src.root),
        "pattern": pattern,
        "layout": layout.mode,
        "files": len(names) - len(bad),
        "file_shape": list(info.shape),
        "file_axes": info.axes,
        "pixel_size": dict(info.pixel_sizes),
        "pixel_unit": info.unit,
        **({"pixel_note": info.pixel_note} if info.pixel_note else {}),
        "constants": {k: _python_scalar(v) for k, v in layout.constants.items()},
        "missing": missing,
        "bad_files": bad_files,
        "skipped": len(layout.unmatched),
        **(
            {"skipped_files": list(layout.unmatched[:20]), "skipped_reason": layout.skip_reason}
            if layout.unmatched and layout.mode == "inferred"
            else {}
        ),
        "axis_sources": how,
        "fill_value": fill_value,
    }
    if missing:
        shown = "; ".join(missing[:5]) + ("; ..." if len(missing) > 5 else "")
        warnings.warn(
            f"{len(missing)} of {int(np.prod(layout.shape))} grid positions have no readable "
            f"file and read as {fill_value} ({shown}); see attrs['missing']",
            MissingFilesWarning,
            stacklevel=3,
        )
    if layout.unmatched and layout.mode == "inferred":
        shown = ", ".join(repr(n) for n in layout.unmatched[:3])
        more = ", ..." if len(layout.unmatched) > 3 else ""
        warnings.warn(
            f"left out {len(layout.unmatched)} files {layout.skip_reason}: {shown}{more}; "
            "see attrs['skipped_files'], or pass pattern= to say which files belong",
            SkippedFilesWarning,
            stacklevel=3,
        )
    return xr.DataArray(data, dims=dims, coords=coords, attrs=attrs, name="image")


def _open_ome(
    dataset: OmeDataset, src: Source, chunks: Mapping[str, int] | None, fill_value: float
) -> xr.DataArray:
    """The array of a multi-file OME-TIFF data set: one chunk per plane (``chunks=`` may
    join planes), dims, channel names and pixel sizes from its OME-XML."""
    import dask.array as da
    import xarray as xr

    planes = dataset.planes
    dims = list(dataset.dims)
    lead = planes.file.ndim
    chunks = _checked_chunks(chunks, dims)
    out_chunks = tuple(
        chunks.get(d, 1 if i < lead else n) for i, (d, n) in enumerate(zip(dims, planes.shape))
    )
    members = set(planes.files)
    sizes = dict(zip(src.names, src.sizes))
    extra = (dims, planes.shape, str(planes.dtype), out_chunks, dataset.first)
    token = _token(src, list(planes.files), [sizes.get(n, -1) for n in planes.files], "ome", extra)
    data = da.from_array(
        planes,
        chunks=out_chunks,
        name="ndstack-ome-" + token,
        asarray=False,
        fancy=True,
        meta=np.empty((0,) * len(dims), dtype=planes.dtype),
        inline_array=False,
    )
    coords: dict[str, Any] = {d: (d, np.arange(n)) for d, n in zip(dims[:lead], planes.file.shape)}
    how = {d: f"OME-XML of {dataset.first} ({len(planes.files)} files)" for d in dims}
    if "C" in dims[:lead]:
        named = _channel_coord(dataset.channel_names, planes.file.shape[dims.index("C")])
        if named is not None:
            coords["C"] = ("C", named)
            how["C"] += ", channel names"
    skipped = [n for n in src.names if n not in members]
    missing = list(dataset.missing)
    attrs: dict[str, Any] = {
        "source": redact(src.description or src.root),
        "root": redact(src.root),
        "pattern": None,
        "layout": "ome",
        "files": len(planes.files),
        "file_shape": list(planes.plane_shape),
        "file_axes": "".join(dims[lead:]),
        "pixel_size": {d: v for d, v in dataset.pixel_sizes.items() if d in dims},
        "pixel_unit": dataset.unit,
        "constants": {},
        "missing": missing,
        "bad_files": [],
        "skipped": len(skipped),
        **(
            {
                "skipped_files": skipped[:20],
                "skipped_reason": f"not part of the data set the OME-XML of {dataset.first} "
                "describes",
            }
            if skipped
            else {}
        ),
        "axis_sources": how,
        "fill_value": fill_value,
    }
    if missing:
        warnings.warn(
            f"{len(missing)} of {planes.file.size} planes that the OME-XML of "
            f"{dataset.first} declares are not in its files (absent or cut short); read as "
            f"{fill_value} ({'; '.join(missing[:5])}); see attrs['missing']",
            MissingFilesWarning,
            stacklevel=3,
        )
    if skipped:
        warnings.warn(
            f"left out {len(skipped)} files {attrs['skipped_reason']}: "
            + ", ".join(repr(n) for n in skipped[:3]),
            SkippedFilesWarning,
            stacklevel=3,
        )
    return xr.DataArray(data, dims=dims, coords=coords, attrs=attrs, name="image")


def _channel_coord(names: Sequence[str], n_c: int) -> np.ndarray | None:
    """Channel names as the ``C`` coordinate, when there is one distinct name a channel."""
    if len(names) == n_c and all(names) and len(set(names)) == n_c:
        return np.asarray(list(names))
    return None


def _coord_array(values: tuple[object, ...]) -> np.ndarray:
    if all(isinstance(v, (int, np.integer)) for v in values):
        return np.asarray(values, dtype=np.int64)
    if all(isinstance(v, (int, float, np.number)) for v in values):
        return np.asarray(values, dtype=float)
    return np.asarray([str(v) for v in values])


def _python_scalar(v: Any) -> Any:
    """A NumPy scalar as Python's (attrs stay plain Python values)."""
    if isinstance(v, np.generic):
        return v.item()
    return v
