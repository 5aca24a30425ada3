"""Write an array to Zarr v3 / OME-Zarr 0.5 at the speed of the codec, resumably.

One Dask task per source block: it encodes the block's Zarr chunks (Blosc through
imagecodecs, which releases the GIL, so every core compresses), writes each chunk file
atomically (temporary name, then rename), computes the lower pyramid levels from the same
block in memory (the source is read once for all levels), and finally drops a *done*
marker. Dask blocks are aligned to Zarr chunks, so no two tasks ever write one chunk, and
a task that runs twice writes the same bytes.

Layout of a store::

    DEST/zarr.json                  root: OME-Zarr image (or bioformats2raw layout), last
    DEST/0/zarr.json, DEST/0/c/...  pyramid level 0 (1, 2, ... below it)
    DEST/.ndstack-unfinished        while it is written: the store's id and entries
    .DEST.ndstack/manifest.json     beside the store while it is written: source
    .DEST.ndstack/done/...          fingerprint, settings, one marker per finished task
    .DEST.ndstack.lock              beside the store while a run owns it

The record lives beside the store, not in it, so that the store stays a clean Zarr
hierarchy; it is removed once the store is complete. Running the same conversion again
resumes it: leftover temporary files are removed, finished tasks are skipped, and the
metadata is written once everything is done.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
import uuid
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from .._grid import ReadFailedWarning
from .._ngff import (
    ImagePlan,
    plan_image,
)
from ..errors import DestinationError, NoImagesError, ParameterError, WriteError
from .lock import Lock, acquire, release
from .lock import check as check_lock
from .metadata import _create_arrays, _write_metadata
from .paths import (
    GLOB_CHARS,
    READ_ONLY_SCHEMES,
    filesystem,
    is_url,
    list_names,
    options_of,
    refuse_credentials,
    storage_errors,
    use_options,
)
from .plan import (
    Codec,
    Format,
    Plan,
    _aligned,
    _choose_levels,
    _default_shards,
    _grown_chunks,
    _owned_entries,
    _shard_blocks,
    _zarr_chunks,
    check_codec,
    make_plan,
)
from .results import WriteSummary
from .resume import (
    _prepare_destination,
    _remove_partials,
    finish_store,
    read_markers,
    record_dir,
)
from .sources import (
    check_destination_against_source,
    regrouped,
    source_digest,
    source_fingerprint,
    sources_of,
    straight_from,
)
from .tasks import _marker_name, _write_mapped

__all__ = ["to_zarr"]

#: files smaller than this, grouped several to a task, are read by one thread at a time
SMALL_READ_BYTES = 64 << 10


def to_zarr(
    arr: Any,
    dest: str | os.PathLike[str],
    *,
    dims: Sequence[str] | None = None,
    format: Format = "ome-zarr",
    codec: Codec = "zstd",
    clevel: int = 3,
    chunks: Mapping[str, int] | None = None,
    shards: Mapping[str, int] | Literal[False] | None = None,
    levels: int | Literal["auto"] = "auto",
    overwrite: bool = False,
    compute: bool = True,
    progress: bool | None = None,
    storage_options: Mapping[str, Any] | None = None,
) -> Any:
    """Write an array to a Zarr v3 store laid out as OME-Zarr 0.5 (or 0.4, or plain Zarr).

    Parameters
    ----------
    arr
        A DataArray from :func:`ndstack.open` (or processed from one), or a Dask/NumPy
        array with ``dims``.
    dest
        A local folder (or a ``file://`` URL); missing parent folders are made. If it
        holds an unfinished conversion of the same array with the same settings, the
        conversion resumes; a complete store of the same array and source is left as it
        is ("all done before"); anything else is refused unless ``overwrite``. One run at a
        time owns it (a lock file beside it, see :mod:`ndstack._zarr.lock`).
    format
        ``"ome-zarr"`` (default): an NGFF 0.5 image with a pyramid, or one image per
        position in the ``bioformats2raw.layout`` when the dims do not fit one image.
        ``"ome-zarr-0.4"``: the same as NGFF 0.4 on Zarr v2 (``.zattrs``, chunks under
        ``0/1/2`` with "/" separators), for viewers that do not read Zarr v3 yet; no
        sharding. ``"zarr"``: one plain Zarr v3 array in the original dim order, no
        pyramid.
    codec, clevel
        Blosc compressor (``zstd`` default, ``lz4``, ``lz4hc``, ``zlib``, ``blosclz``) with
        bit-shuffle, or ``"none"``.
    chunks
        Zarr chunk size per dim; default: whole planes, Z halved until a chunk is at most
        4 MiB; small planes (a chunk under 2 MiB, more than 256 chunks) grow together,
        along Z, then T, then the other dims, to about 4 MiB, so that a chunk and its
        write task span several files (dims given here keep their size). Dask blocks are
        rechunked so that they hold whole Zarr chunks; an array straight from
        :func:`ndstack.open` is read again from its files in those blocks (one task reads
        a block's files), anything else is rechunked by Dask.
    shards
        Group chunks into shards (Zarr v3 sharding), for datasets with very many chunks:
        the shard size per dim in elements, e.g. ``{"T": 8}``; other dims: one source
        block. Each task writes exactly one shard. Default (``None``): none, unless the
        store would hold more than 10,000 chunks (``plan.SHARD_ABOVE``, over all its
        images): then shards of whole planes grown along Z, T and the other dims to
        about 64 MiB (Zarr v3 formats; a ``"ome-zarr-0.4"`` store, or one whose plane
        alone is larger, keeps one file per chunk). ``False`` (or ``{}``): never.
    levels
        Pyramid levels (``1`` = none) or ``"auto"``: halve Y and X until a plane fits in
        512 pixels.
    overwrite
        Replace a store that ndstack wrote. A folder ndstack did not write is never
        deleted.
    compute
        ``False`` returns a ``dask.delayed`` object; computing it writes the chunks and
        then the metadata, on whatever scheduler the caller chooses. The destination stays
        locked until it has run (or this process ends).
    progress
        Show a progress bar on stderr; default: when stderr is a terminal.
    storage_options
        For a URL destination: fsspec options of its filesystem (``endpoint_url``,
        ``profile``, ``key``/``secret`` ...), used for every request to its bucket from
        this process and carried by the write tasks to wherever they run; never written
        or shown. Without them the cloud's own configuration applies (``AWS_*``
        variables, profiles, ...).

    Returns
    -------
    dict
        Summary: ``dest``, ``bytes_in``, ``bytes_out``, ``ratio``, ``seconds``,
        ``gb_per_s``, ``tasks`` (written now) and ``skipped`` (already done earlier);
        ``complete_before`` when the store was already complete (``skipped``: all its
        blocks). A :class:`~ndstack.WriteSummary`, which reads as that dict too. With
        ``compute=False`` the delayed result has the same keys less ``seconds`` and
        ``gb_per_s`` (and ``written_now``, the bytes written by this run).
    """
    t0 = time.perf_counter()
    da_arr = _as_dataarray(arr, dims)
    dest = _destination(os.fspath(dest))
    use_options(dest, storage_options)
    _check_options(da_arr.dims, format, codec, clevel, chunks, shards, levels)
    dtype = np.dtype(da_arr.dtype)
    if dtype.kind not in "biufc":
        raise ParameterError(f"cannot write dtype {dtype} with codec {codec}: numbers only")
    sources = sources_of(da_arr)  # one walk of the graph for the checks and the fingerprint
    grid = sources.grid
    check_destination_against_source(dest, sources)

    if format != "zarr":
        plan_img = plan_image(da_arr.dims)
    else:
        plan_img = ImagePlan(tuple(da_arr.dims), (), None)
    ordered = da_arr.transpose(*plan_img.split_dims, *plan_img.image_dims)
    order = [da_arr.dims.index(d) for d in ordered.dims]

    def regroup(_: Any, blocks: tuple[int, ...]) -> Any:
        """The array in these blocks (in the store's dim order): from the files where
        it comes straight from them."""
        source = regrouped(da_arr.data, da_arr.dims, dict(zip(ordered.dims, blocks)), grid)
        return source.transpose(order) if order != sorted(order) else source

    n_split = len(plan_img.split_dims)
    data = _aligned(ordered.data, ordered.dims, dict(chunks or {}), n_split, regroup)
    image_shape = data.shape[len(plan_img.split_dims) :]
    image_blocks = data.chunks[len(plan_img.split_dims) :]
    zchunks = _zarr_chunks(
        plan_img.image_dims, [c[0] for c in image_blocks], dtype.itemsize, dict(chunks or {})
    )
    grown = _grown_chunks(
        plan_img.image_dims, zchunks, image_shape, dtype.itemsize, dict(chunks or {}),
        [c[0] for c in image_blocks],
    )  # fmt: skip
    # tasks that each read many small files run one at a time on the local threads:
    # small reads are bound by the interpreter and system calls, and threads only contend
    # (20,000 files of 512 bytes: 1.1 s on one thread, 2.1 s on two, 2.7 s on three)
    serial = (
        grown != zchunks
        and math.prod(zchunks) * dtype.itemsize < SMALL_READ_BYTES
        and grid is not None
        and grid.fs is None  # local files; object storage wants requests in parallel
        and straight_from(da_arr.data, grid)  # reads alone, nothing computed besides
    )
    if grown != zchunks:  # small planes: a chunk (and a task) spans several of them
        grew = {d: g for d, g, z in zip(plan_img.image_dims, grown, zchunks) if g != z}
        data = _aligned(ordered.data, ordered.dims, {**(chunks or {}), **grew}, n_split, regroup)
        image_blocks = data.chunks[n_split:]
        zchunks = grown
    if shards is None and format != "ome-zarr-0.4":  # very many chunks: shards by default
        images = math.prod(data.shape[:n_split])
        shards = _default_shards(plan_img.image_dims, zchunks, image_shape, dtype.itemsize, images)
    if shards:
        data, image_blocks = _shard_blocks(
            data, ordered.dims, zchunks, dict(shards), n_split, regroup
        )
    n_levels = _choose_levels(format, levels, plan_img, image_shape, image_blocks)
    plan = make_plan(
        dest=dest, format=format, plan_img=plan_img, shape=image_shape, blocks=image_blocks,
        zchunks=zchunks, n_levels=n_levels, dtype=dtype, codec=codec, clevel=clevel,
        arr=da_arr, sharded=bool(shards),
    )  # fmt: skip
    plan = dataclasses.replace(plan, options=options_of(dest))
    settings = {
        "format": format, "codec": codec, "clevel": clevel, "chunks": list(zchunks),
        "levels": n_levels, "dims": list(da_arr.dims), "shape": list(da_arr.shape),
        "dtype": dtype.name, "shards": {k: int(v) for k, v in (shards or {}).items()},
        # what the array is: Dask's deterministic name of its graph (the selection, the
        # processing, the files' names and sizes), so that arr.isel(T=0) is not arr
        "array": str(getattr(da_arr.data, "name", "")),
    }  # fmt: skip
    fingerprint = source_fingerprint(da_arr, sources)
    done_dir = os.path.join(record_dir(dest), "done")
    owned = _owned_entries(plan)
    if not is_url(dest):
        try:
            os.makedirs(os.path.dirname(dest), exist_ok=True)
        except OSError as exc:
            raise WriteError(f"cannot write to {dest}: {exc.strerror or exc}") from None
    lock = acquire(dest)  # one run per destination, until finish() or an error
    try:
        state, store_id = _prepare_destination(dest, settings, fingerprint, overwrite, owned)
        if state != "complete":
            plan = dataclasses.replace(plan, store_id=store_id)
    except BaseException:
        lock.release()
        raise
    if state == "complete":
        lock.release()
        return WriteSummary(dest=dest, bytes_in=0, bytes_out=0, ratio=1.0, seconds=0.0,
                            gb_per_s=0.0, tasks=0, skipped=int(np.prod(data.numblocks)),
                            complete_before=True)  # fmt: skip
    provenance = {"store": store_id, "written": owned,
                  "source": {"digest": source_digest(fingerprint),
                             "files": len(fingerprint.get("files", []))}}  # fmt: skip
    try:
        return _run(
            da_arr, data, plan, plan_img, settings, provenance, grid, dest, done_dir,
            state == "resume", compute, progress, t0, lock, serial,
        )  # fmt: skip
    except BaseException:
        lock.release()
        raise


def _run(
    da_arr: Any, data: Any, plan: Plan, plan_img: ImagePlan, settings: dict[str, Any],
    provenance: dict[str, Any], grid: Any, dest: str, done_dir: str, resumed: bool,
    compute: bool, progress: bool | None, t0: float, lock: Lock, serial: bool = False,
) -> Any:  # fmt: skip
    """Write the blocks not done yet, then the metadata; the lock is released at the end."""
    import dask

    dtype = np.dtype(da_arr.dtype)
    lock_path, run_id = lock.path, lock.run_id
    with storage_errors(dest):  # object storage that does not answer: one line
        _create_arrays(plan, plan_img)  # those not there yet: a run may die creating them

    # One fused task per Dask block: read, encode, write every level, mark done. Only the
    # blocks without a marker are computed, so a resumed run reads only what is missing.
    n_split = len(plan_img.split_dims)
    split_shape = data.shape[:n_split]
    written = data.map_blocks(
        _write_mapped,
        plan=plan,
        split_shape=split_shape,
        done_dir=done_dir,
        dtype=np.int64,
        chunks=(1,) * data.ndim,
        meta=np.empty((0,) * data.ndim, dtype=np.int64),
        name=f"ndstack-write-{uuid.uuid4().hex[:12]}",
    )
    pending: list[tuple[int, ...]] = []
    filled_before: list[str] = []  # files filled by an earlier, interrupted run
    pending_in = skipped_in = skipped_out = skipped = 0
    sizes = np.meshgrid(*[np.asarray(c) for c in data.chunks], indexing="ij")
    block_bytes = np.prod(sizes, axis=0) * dtype.itemsize
    done = set(list_names(done_dir)) if resumed else set()  # one listing, not a stat each
    names = {idx: _marker_name(idx, n_split, split_shape) for idx in np.ndindex(*data.numblocks)}
    found = [idx for idx, name in names.items() if name in done]
    records = dict(zip(found, read_markers([os.path.join(done_dir, names[i]) for i in found])))
    for idx in names:
        if idx in records:
            record = records[idx]
            skipped += 1
            skipped_in += record.get("in", int(block_bytes[idx]))
            skipped_out += record.get("out", 0)
            filled_before.extend(record.get("filled", []))
            continue
        pending.append(idx)
        pending_in += int(block_bytes[idx])

    caught: dict[str, list[Any]] = {"warnings": []}

    def finish(results: list[np.ndarray], *, lost_workers_possible: bool = True) -> dict[str, Any]:
        use_options(plan.dest, plan.options)  # where this runs: a worker, perhaps
        bytes_out = int(sum(int(r.sum()) for r in results))
        # files that failed while being read and were filled (on_error="fill"): from the
        # tasks' markers (any machine, earlier runs too), and warnings caught here
        filled = list(filled_before)
        if grid is None or grid.on_error == "fill":
            markers = [os.path.join(done_dir, names[idx]) for idx in pending]
            for record in read_markers(markers):
                filled.extend(record.get("filled", []))
        filled.extend(
            str(w.message) for w in caught["warnings"] if issubclass(w.category, ReadFailedWarning)
        )
        filled = list(dict.fromkeys(filled))  # each file once, in the order found
        final = da_arr
        if filled:  # files that failed while being read, filled (on_error="fill")
            final = da_arr.copy()
            final.attrs = {**da_arr.attrs, "filled_while_reading": filled}
        # a worker lost in the middle of a write leaves its temporary file behind (its task
        # ran again elsewhere): clean up before the store is declared complete. In one
        # process a failed write stops the run, and the next run cleans up as it resumes.
        if lost_workers_possible:
            _remove_partials(dest)
        check_lock(dest, lock_path, run_id)  # a run that lost its lock completes nothing
        with storage_errors(dest):
            _write_metadata(plan, plan_img, final, settings, provenance)
        finish_store(dest)  # complete: the unfinished marker and the record go
        release(lock_path, run_id)  # by path: finish() may run on a worker
        return {
            "dest": dest,
            "bytes_in": pending_in + skipped_in,
            "bytes_out": bytes_out + skipped_out,
            "ratio": (pending_in + skipped_in) / max(1, bytes_out + skipped_out),
            "written_now": pending_in,
            "tasks": len(pending),
            "skipped": skipped,
        }

    if not compute:
        delayed_blocks = written.to_delayed(optimize_graph=True)
        # the lock is held until the delayed has run (finish releases it), or until this
        # process ends: dropping the delayed does not release it, since its tasks may be
        # running on a cluster (client.compute, persist) after the object is gone
        return dask.delayed(finish, pure=False)([delayed_blocks[idx] for idx in pending])
    from .._progress import progress_bar

    rec: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always", ReadFailedWarning)
            caught["warnings"] = rec
            client = _distributed_client()
            if client is not None:  # a cluster: its own progress bar, tasks on its workers
                delayed_blocks = written.to_delayed(optimize_graph=True)
                futures = client.compute([delayed_blocks[idx] for idx in pending])
                if progress or (progress is None and sys.stderr.isatty()):
                    from distributed import progress as show_progress

                    show_progress(futures)
                try:
                    results = client.gather(futures)
                except BaseException:
                    # tasks already running on workers go on after a failure: wait until
                    # none runs before the lock is released (they also check the marker)
                    client.cancel(futures)
                    _wait_until_idle(client, written.name)
                    raise
                summary = finish(results)  # here: the metadata, then the lock released
            else:
                # Locally, one plain graph of the fused read+write tasks on the threaded
                # scheduler, and the metadata after it: wrapping 600 tasks in Delayed objects
                # cost 0.3 s per 5 GB (measured), time in which no core compresses.
                graph = _optimized_graph(written)
                keys = [(written.name, *idx) for idx in pending]
                with progress_bar(pending_in, len(pending), enabled=progress):
                    results = _threaded_get(graph, keys, remote=is_url(dest), serial=serial)
                summary = finish(results, lost_workers_possible=False)
            lock.release()  # stops the heartbeat thread (finish removed the lock file)
    finally:  # hand the warnings on to the caller, after recording them, even on error
        for w in rec:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    seconds = time.perf_counter() - t0
    written_now = summary.pop("written_now")
    return WriteSummary(
        **summary, seconds=seconds, gb_per_s=written_now / seconds / 1e9 if seconds else 0.0
    )


def _destination(dest: str) -> str:
    """Where to write: an absolute local path (``file://`` URLs become paths), or a URL
    of object storage (``s3://``, ``gs://``, ``az://``, ``memory://``, ...), checked
    before anything is read or written. Read-only URLs (``http(s)://``) are refused, and
    no local path is ever made from a URL (no folder named ``s3:/bucket/...``)."""
    from .._redact import redact
    from .._util import local_path, url_scheme

    if not dest.strip():
        raise DestinationError("the destination is empty; name the store to write")
    local = local_path(dest)
    if local is not None:
        return os.path.abspath(local)
    scheme = url_scheme(dest)
    shown = redact(dest)
    if scheme in ("file", "local"):
        raise DestinationError(f"the destination {shown} names another host")
    if scheme in READ_ONLY_SCHEMES:
        raise DestinationError(
            f"the destination {shown} is an {scheme}:// URL, which ndstack reads but cannot "
            "write; write to object storage (s3://, gs://, az://) or a local folder"
        )
    refuse_credentials(dest, DestinationError)
    if "?" in dest or "#" in dest:
        raise DestinationError(f"the destination {shown} has a query or fragment; name the store")
    if GLOB_CHARS & set(dest):
        raise DestinationError(
            f"the destination {shown} holds * ? [ or ], which object storage clients take as "
            "a pattern (and would delete what matches); choose a name without them"
        )
    try:
        filesystem(dest)  # an unknown scheme, or its client package missing
    except NoImagesError as exc:
        raise DestinationError(str(exc)) from None
    url = dest.rstrip("/")
    if "/" not in url.split("://", 1)[1]:
        raise DestinationError(
            f"the destination {shown} is a whole bucket; name a store inside it "
            f"(e.g. {shown.rstrip('/')}/data.ome.zarr)"
        )
    return url


def _check_options(
    dims: Sequence[Any], format: str, codec: str, clevel: Any,
    chunks: Mapping[str, Any] | None, shards: Mapping[str, Any] | None, levels: Any,
) -> None:  # fmt: skip
    """Every writing option checked before anything is read or written."""

    def positive(value: Any) -> bool:
        return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0

    check_codec(format, codec, clevel, bool(shards))
    for what, sizes in (("chunks", chunks), ("shards", shards)):
        for d, n in (sizes or {}).items():
            if d not in dims:
                raise ParameterError(f"{what} name the dim {d!r}; dims are {tuple(dims)}")
            if not positive(n):
                raise ParameterError(f"{what}: {d}={n!r}; sizes are whole numbers from 1")
    if levels != "auto" and not positive(levels):
        raise ParameterError(f"levels must be 'auto' or a whole number from 1, not {levels!r}")


def _distributed_client() -> Any:
    """The active distributed Client, if the caller set one up (ndstack.cluster)."""
    if "distributed" not in sys.modules:
        return None
    from distributed import default_client

    try:
        return default_client()
    except ValueError:
        return None


def _optimized_graph(arr: Any) -> dict:
    """The array's graph as a plain dict, culled and with each read fused into its write."""
    from dask.utils import ensure_dict

    keys = arr.__dask_keys__()
    return ensure_dict(arr.__dask_optimize__(arr.__dask_graph__(), keys))


def _threaded_get(
    graph: dict, keys: list[Any], *, remote: bool = False, serial: bool = False
) -> list[Any]:
    """Run ``keys`` on the scheduler Dask is configured with (threads by default).

    On the default threaded scheduler ndstack uses one thread more than cores:
    compression releases the GIL, and the extra thread reads the next block and runs the
    Python around it while the others compress (measured: +20% on 2 cores). A scheduler
    or thread count the user configured is left as it is. Writing to object storage
    (``remote``), a task spends most of its time waiting for its PUTs: four threads a core
    keep the cores encoding meanwhile; tasks that read many small files (``serial``)
    run on one thread. Where no scheduler is configured
    and distributed was never imported, no Client can exist: Dask's own look-up would
    import distributed to find that out (0.25 – 0.45 s here), so it is skipped.
    """
    import dask
    import dask.threaded

    configured = dask.config.get("scheduler", None) or dask.config.get("get", None)
    get = dask.base.get_scheduler() if configured or "distributed" in sys.modules else None
    if get is None or get is dask.threaded.get:
        cores = os.cpu_count() or 1
        workers = dask.config.get("num_workers", None) or (
            4 * cores if remote else 1 if serial else cores + 1
        )
        # our own pool: when a task fails, Dask raises at once while the others are still
        # writing; shutting the pool down waits for them before the lock is released
        from concurrent.futures import ThreadPoolExecutor

        pool = ThreadPoolExecutor(workers, thread_name_prefix="ndstack-write")
        try:
            return list(dask.threaded.get(graph, keys, pool=pool))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return list(get(graph, keys))


def _executing(dask_worker: Any) -> list[str]:
    """The keys a worker's threads are running now (cancelled ones too)."""
    return [str(ts.key) for ts in getattr(dask_worker.state, "executing", ())]


def _wait_until_idle(client: Any, name: str, timeout: float = 600.0) -> None:
    """Wait until no worker thread runs a task of this write (keys named ``name``): a
    cancelled task goes on running on its worker, only its result is dropped."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            running = client.run(_executing)
        except Exception:
            return
        if not any(name in key for keys in running.values() for key in keys):
            return
        time.sleep(0.1)


def _as_dataarray(arr: Any, dims: Sequence[str] | None) -> Any:
    import dask.array as da
    import xarray as xr

    if isinstance(arr, xr.DataArray):
        if not isinstance(arr.data, da.Array):  # in memory: Dask names it by its content
            arr = arr.chunk()
        return arr if dims is None else arr.rename(dict(zip(arr.dims, dims)))
    if dims is None:
        raise ValueError("a plain array needs dims=, e.g. ('T', 'C', 'Z', 'Y', 'X')")
    data = arr if isinstance(arr, da.Array) else da.from_array(np.asarray(arr))
    return xr.DataArray(data, dims=tuple(dims))
