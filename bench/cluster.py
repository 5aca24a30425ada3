"""Benchmark: the same conversion on the threaded scheduler, a local cluster of worker
processes, and a separate `dask scheduler` + `dask worker` processes on this machine.

    python bench/cluster.py               # D1 with 50 stacks per channel (1.26 GB)
    python bench/cluster.py --stacks 200  # the whole 5 GB D1

Prints seconds and GB/s side by side, and the scheduler's overhead per task (a graph of
no-op tasks through each scheduler).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def noop(x: int) -> int:
    return x


def overhead_per_task(n: int = 2000) -> float:
    import dask

    tasks = [dask.delayed(noop)(i) for i in range(n)]
    t0 = time.perf_counter()
    dask.compute(*tasks)
    return (time.perf_counter() - t0) / n


def convert(source: str, dest: str) -> float:
    import ndstack

    shutil.rmtree(dest, ignore_errors=True)
    arr = ndstack.open(source)
    t0 = time.perf_counter()
    ndstack.to_zarr(arr, dest, progress=False)
    return time.perf_counter() - t0


def external_workers(source: str, dest: str, env: dict[str, str]) -> tuple[float, float]:
    """`dask scheduler` + two `dask worker` processes started with ``env``."""
    import ndstack

    tmp = tempfile.mkdtemp()
    sched_file = os.path.join(tmp, "scheduler.json")
    cmd = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
           "--port", "0", "--scheduler-file", sched_file]  # fmt: skip
    out = subprocess.DEVNULL
    procs = [subprocess.Popen(cmd, stdout=out, stderr=out, env=env)]
    try:
        while not os.path.exists(sched_file):
            time.sleep(0.05)
        address = json.load(open(sched_file))["address"]
        worker = [sys.executable, "-m", "distributed.cli.dask_worker", address,
                  "--nthreads", "1", "--host", "127.0.0.1"]  # fmt: skip
        for _ in range(2):
            procs.append(subprocess.Popen(worker, stdout=out, stderr=out, env=env))
        with ndstack.cluster(address, quiet=True) as client:
            client.wait_for_workers(2)
            return convert(source, dest), overhead_per_task()
    finally:
        for proc in procs:
            proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", default="bench-data")
    p.add_argument("--stacks", type=int, default=50)
    args = p.parse_args()
    sys.path.insert(0, HERE)
    from open_read import D1_DIR, make_d1

    import ndstack

    source = os.path.join(args.data, D1_DIR.format(stacks=args.stacks))
    files = make_d1(source, args.stacks)
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(1 << 24):
                pass
    nbytes = len(files) * 64 * 256 * 256 * 2
    dest = os.path.join(args.data, "cluster-out.zarr")
    rows = []

    t = convert(source, dest)
    rows.append(("threads (default)", t, overhead_per_task()))

    with ndstack.cluster(workers=2, threads_per_worker=1, quiet=True):
        t = convert(source, dest)
        rows.append(("--workers 2 (LocalCluster)", t, overhead_per_task()))

    from ndstack._cluster import WORKER_MALLOC_ENV

    # dask's nanny leaves its worker settings in this process's environment: workers
    # started by hand get a clean one, as they would on a cluster
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    # what the README tells cluster users: the nanny's pre-spawn settings in a config file
    config_dir = tempfile.mkdtemp()
    with open(os.path.join(config_dir, "ndstack-workers.yaml"), "w") as f:
        f.write("distributed:\n  nanny:\n    pre-spawn-environ:\n")
        f.writelines(f"      {k}: {v}\n" for k, v in WORKER_MALLOC_ENV.items())
    tuned = {**clean, "DASK_CONFIG": config_dir}
    for label, env in (("dask's default environment", clean), ("ndstack's malloc settings", tuned)):
        t = external_workers(source, dest, env)
        rows.append((f"--scheduler, 2 workers, {label}", *t))
    shutil.rmtree(dest, ignore_errors=True)

    print(
        f"converting D1 ({len(files)} files, {nbytes / 1e9:.2f} GB), Blosc zstd 3 + bit-shuffle\n"
    )
    base = rows[0][1]
    for name, t, per_task in rows:
        print(
            f"  {name:52s} {t:7.2f} s  {nbytes / t / 1e9:6.3f} GB/s  ({base / t:4.2f}x threads)"
            f"  scheduler overhead {per_task * 1e6:7.0f} us/task"
        )
    print("\nrerun: python bench/cluster.py " + " ".join(sys.argv[1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
