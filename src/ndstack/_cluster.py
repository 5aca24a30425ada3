"""Run ndstack's work on Dask distributed: a remote scheduler, or a local cluster.

The threaded scheduler of the calling process is the default and needs nothing here.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["cluster"]


# Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, to hand freed memory
# back to the system at once. For ndstack's tasks that is costly twice over: each block
# (a file's stack, MBs) lands in freshly faulted pages, and, because setting any malloc
# tunable turns off glibc's adaptive mmap threshold, every allocation above 128 KiB is a
# fresh mmap: Blosc's zstd allocates its workspace per 128 KiB block, and ran at half
# speed on workers (0.15 vs 0.32 GB/s per thread, measured). Workers that ndstack starts
# keep up to 64 MiB of freed memory and allocate below 32 MiB from the heap.
WORKER_MALLOC_ENV = {"MALLOC_TRIM_THRESHOLD_": 64 << 20, "MALLOC_MMAP_THRESHOLD_": 32 << 20}


@contextmanager
def cluster(
    scheduler: str | None = None,
    *,
    workers: int | None = None,
    threads_per_worker: int | None = None,
    memory_limit: str | int | None = "auto",
    quiet: bool = False,
) -> Iterator[Any]:
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
        tifffile, which release it.
    quiet
        Do not print the dashboard link.

    Yields
    ------
    distributed.Client or None
        ``None`` when neither ``scheduler`` nor ``workers`` is given.

    Examples
    --------
    >>> with ndstack.cluster(workers=4, memory_limit="4GB"):  # doctest: +SKIP
    ...     ndstack.to_zarr(ndstack.open("experiment/"), "experiment.ome.zarr")
    """
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
                dashboard_address=":0",
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
