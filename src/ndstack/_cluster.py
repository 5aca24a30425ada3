"""Run ndstack's work on Dask distributed: a remote scheduler, or a local cluster.

The threaded scheduler of the calling process is the default and needs nothing here.

A local cluster listens on 127.0.0.1 only (scheduler, workers, nannies, dashboard): the
scheduler runs whatever tasks it is sent and the dashboard shows file names, so neither
should be reachable from other machines unasked. To use other machines, start a
scheduler yourself (``dask scheduler``, dask-jobqueue, a cloud service), where you
choose who reaches it, and pass its address as ``scheduler``; to watch a local
dashboard from elsewhere, tunnel to it (``ssh -L 8787:127.0.0.1:PORT host``).
"""

from __future__ import annotations

import math
import numbers
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from ._redact import reason
from .errors import ParameterError

__all__ = ["check_cluster_options", "cluster", "require_picklable"]

#: Where a local cluster listens: this machine only.
LOCAL_HOST = "127.0.0.1"


# Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, to hand freed memory
# back to the system at once. For ndstack's tasks that is costly twice over: each block
# (a file's stack, MBs) lands in freshly faulted pages, and, because setting any malloc
# tunable turns off glibc's adaptive mmap threshold, every allocation above 128 KiB is a
# fresh mmap: Blosc's zstd allocates its workspace per 128 KiB block, and ran at half
# speed on workers (0.15 vs 0.32 GB/s per thread, measured). Workers that ndstack starts
# keep up to 64 MiB of freed memory and allocate below 32 MiB from the heap.
WORKER_MALLOC_ENV = {"MALLOC_TRIM_THRESHOLD_": 64 << 20, "MALLOC_MMAP_THRESHOLD_": 32 << 20}


def check_cluster_options(
    scheduler: str | None = None,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    memory_limit: str | float | None = "auto",
) -> None:
    """Raise a :class:`ParameterError` for options a cluster cannot start with.

    ``workers`` and ``threads_per_worker``: whole numbers from 1. ``memory_limit``:
    ``"auto"``, ``None`` or 0 (no limit), a number of bytes, a size (``"4GB"``,
    ``"500MiB"``) or a fraction of this machine's memory (``0.5``), as Dask reads it.
    """
    if scheduler is not None and workers is not None:
        raise ParameterError("give a scheduler address or a number of workers, not both")
    for name, value in (("workers", workers), ("threads per worker", threads_per_worker)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1
        ):
            raise ParameterError(f"{name}: expected a whole number from 1, got {value!r}")
    _check_memory_limit(memory_limit)


def _check_memory_limit(value: Any) -> None:
    """A limit Dask can read: bytes, a size, a fraction <= 1 of the memory, 'auto', None."""
    if value is None or value == "auto":
        return
    expected = (
        "expected 'auto', a size such as 4GB or 500MiB, a number of bytes, or a fraction "
        "of this machine's memory such as 0.5"
    )
    try:
        number = float(value)
    except (TypeError, ValueError):
        if not isinstance(value, str):
            raise ParameterError(f"memory limit {value!r}: {expected}") from None
        from dask.utils import parse_bytes

        try:
            number = float(parse_bytes(value))
        except (ValueError, TypeError):
            raise ParameterError(f"memory limit {value!r}: {expected}") from None
    if isinstance(value, bool) or not math.isfinite(number) or number < 0:
        raise ParameterError(f"memory limit {value!r}: {expected}")


def cluster(
    scheduler: str | None = None,
    *,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    memory_limit: str | float | None = "auto",
    quiet: bool = False,
) -> AbstractContextManager[Any]:
    """Use a Dask distributed cluster for everything computed inside the block.

    Parameters
    ----------
    scheduler
        Address of a running scheduler (``tcp://host:8786``; started with
        ``dask scheduler`` by hand, by dask-jobqueue on an HPC, or by a cloud service).
    workers, threads_per_worker, memory_limit
        Without ``scheduler``: start a ``LocalCluster`` of ``workers`` processes here and
        stop it afterwards. Processes suit code that holds the GIL (ITK, pure-Python
        readers); threads (the default without this context) suit NumPy, the codecs and
        tifffile, which release it. It listens on 127.0.0.1 only (see the module's
        notes). The options are checked when this is called, before anything starts
        (:func:`check_cluster_options`).
    quiet
        Do not print the dashboard link.

    Returns
    -------
    context manager
        Gives a ``distributed.Client``, or ``None`` when neither ``scheduler`` nor
        ``workers`` is given.

    Examples
    --------
    >>> with ndstack.cluster(workers=4, memory_limit="4GB"):  # doctest: +SKIP
    ...     ndstack.to_zarr(ndstack.open("experiment/"), "experiment.ome.zarr")
    """
    check_cluster_options(scheduler, workers, threads_per_worker, memory_limit)
    return _cluster(scheduler, workers, threads_per_worker, memory_limit, quiet)


@contextmanager
def _cluster(
    scheduler: str | None,
    workers: int | None,
    threads_per_worker: int | None,
    memory_limit: str | float | None,
    quiet: bool,
) -> Iterator[Any]:
    if scheduler is None and workers is None:
        yield None
        return
    from distributed import Client, LocalCluster

    local = None
    if scheduler is not None:
        client = Client(scheduler)
    else:
        import dask

        env = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in WORKER_MALLOC_ENV.items()}
        with dask.config.set(env):
            local = LocalCluster(
                n_workers=int(workers or 1),
                threads_per_worker=threads_per_worker or 1,
                memory_limit=memory_limit,
                processes=True,
                host=LOCAL_HOST,
                dashboard_address=f"{LOCAL_HOST}:0",
            )
        client = Client(local)
    try:
        if not quiet:
            print(f"ndstack: dask dashboard: {client.dashboard_link}", file=sys.stderr)
        yield client
    finally:
        client.close()
        if local is not None:
            local.close()


def require_picklable(obj: Any, what: str) -> None:
    """On a Dask cluster, ``obj`` goes to worker processes: say now, in one line, if it
    cannot (a function whose module holds an unpicklable object, such as ITK's), rather
    than with a 124-line serialisation error when computing. Without a cluster: nothing."""
    if "distributed" not in sys.modules:
        return
    from distributed import default_client

    try:
        default_client()
    except ValueError:
        return
    import cloudpickle

    try:
        cloudpickle.dumps(obj)
    except Exception as exc:
        raise ParameterError(
            f"{what} cannot be sent to the cluster's worker processes ({reason(exc, 160)}); import "
            "what it needs inside the function, or compute without the cluster"
        ) from None
