"""Benchmark: many tiny files (issue "Scale"), ndstack beside a bare loop, per N.

Writes N one-plane TIFFs of 16 x 16 uint16 (512 bytes of pixels; names img_tTTTTT_zZZ.tif,
ten Z per T) once under --data, then, each step in a fresh process (peak memory is the
process's own), on a warm page cache:

- open: ``ndstack.open(folder)`` (median of 3 after a first one) and its peak memory;
- convert: open + ``ndstack.to_zarr`` on the local threads, its peak memory (the client's
  on a cluster), the files written and the size of the write graph;
- the bare loop (the peer): list the folder, then for each file ``tifffile.imread``, Blosc
  zstd 3 + bit-shuffle (as ndstack writes), write to a temporary name and rename: one
  output file per input; on 1 and 2 threads, the better one counts;
- with ``--workers 2``: the same convert on a local Dask cluster of 2 single-threaded
  worker processes (started before the clock runs);
- 1,000,000 names from a listing (the paths need not exist) opened with
  ``check="none"``, a reader, ``file_shape`` and ``dtype``;
- ``verify`` of the largest N's store: a sample, and ``sample="all"``;
- reading: the D1-like bulk sum is ``bench/open_read.py``'s (its ratio is printed there).

    python bench/scale.py                       # N = 1,000, 10,000, 100,000; 1,000,000 names
    python bench/scale.py --n 1000 10000 --names 0 --workers 0

Targets (2 cores): convert <= 1.25x the bare loop at every N (<= 2x on --workers 2);
client peak < 300 MB at N = 100,000 (open + convert); open of 100,000 files < 1.5 s;
1,000,000 names < 15 s and < 2 GB; per-file cost not rising with N.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

Z = 10
PLANE = (16, 16)


def make(folder: str, n: int) -> str:
    """N one-plane TIFFs (one template, its pixels replaced), written once."""
    import tifffile

    done = os.path.join(folder, ".complete")
    if os.path.exists(done):
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.zeros(PLANE, np.uint16), photometric="minisblack")
    head = buf.getvalue()
    with tifffile.TiffFile(io.BytesIO(head)) as tif:
        at = tif.pages[0].dataoffsets[0]
    size = int(np.prod(PLANE)) * 2
    rng = np.random.default_rng(0)
    for i in range(n):
        t, z = divmod(i, Z)
        raw = rng.integers(0, 4000, PLANE, dtype="<u2").tobytes()
        with open(os.path.join(folder, f"img_t{t:05d}_z{z:02d}.tif"), "wb") as f:
            f.write(head[:at] + raw + head[at + size :])
    open(done, "w").close()
    return folder


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def files_under(path: str) -> int:
    return sum(len(f) for _, _, f in os.walk(path))


# ----------------------------------------------------------------------------- children
def child_open(folder: str) -> dict[str, Any]:
    import ndstack

    t0 = time.perf_counter()
    ndstack.open(folder)
    first = time.perf_counter() - t0
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        ndstack.open(folder)
        times.append(time.perf_counter() - t0)
    return {"first": first, "open": statistics.median(times), "peak_mb": peak_mb()}


def _warm() -> None:
    """Import what a conversion uses (the bare loop's imports are off its clock too)."""
    import dask.array  # noqa: F401
    import imagecodecs  # noqa: F401
    import tifffile  # noqa: F401
    import xarray  # noqa: F401
    import zarr  # noqa: F401

    import ndstack._open
    import ndstack._zarr.write  # noqa: F401


def child_convert(folder: str, dest: str, workers: int) -> dict[str, Any]:
    import ndstack

    _warm()
    cluster = client = None
    if workers:
        from distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        )
        client = Client(cluster)
        client.run(_warm)  # the workers' imports, before the clock too
    t0 = time.perf_counter()
    arr = ndstack.open(folder)
    summary = ndstack.to_zarr(arr, dest, progress=False)
    seconds = time.perf_counter() - t0
    out = {"convert": seconds, "peak_mb": peak_mb(), "tasks": summary["tasks"],
           "files_written": files_under(dest)}  # fmt: skip
    if client is not None:
        client.close()
        cluster.close()
    return out


def child_graph(folder: str, dest: str) -> dict[str, Any]:
    """The write graph a scheduler would get: tasks and pickled bytes."""
    import cloudpickle

    import ndstack

    delayed = ndstack.to_zarr(ndstack.open(folder), dest, compute=False, progress=False)
    graph = dict(delayed.__dask_graph__())
    return {"graph_tasks": len(graph), "graph_bytes": len(cloudpickle.dumps(graph))}


def child_bare(folder: str, dest: str, threads: int) -> dict[str, Any]:
    """Read, encode, write each file: no Dask, no Zarr, no checks."""
    import imagecodecs
    import tifffile

    os.makedirs(dest, exist_ok=True)

    def one(item: tuple[int, str]) -> None:
        i, path = item
        data = tifffile.imread(path)
        payload = imagecodecs.blosc_encode(
            data, 3, compressor="zstd", shuffle=2, typesize=data.dtype.itemsize, numthreads=1
        )
        tmp = os.path.join(dest, f"{i}.partial")
        with open(tmp, "wb") as f:
            f.write(payload)
        os.replace(tmp, os.path.join(dest, str(i)))

    t0 = time.perf_counter()
    names = sorted(e.name for e in os.scandir(folder) if e.name.endswith(".tif"))
    items = [(i, os.path.join(folder, n)) for i, n in enumerate(names)]
    if threads == 1:
        for item in items:
            one(item)
    else:
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, items))
    return {"bare": time.perf_counter() - t0}


def child_names(count: int) -> dict[str, Any]:
    import tifffile

    import ndstack

    names = [f"/listing/run1/img_t{i // Z:07d}_z{i % Z:02d}.tif" for i in range(count)]
    t0 = time.perf_counter()
    arr = ndstack.open(
        names, reader=tifffile.imread, file_shape=PLANE, dtype="uint16", check="none"
    )
    return {"names": time.perf_counter() - t0, "peak_mb": peak_mb(), "shape": list(arr.shape)}


def child_verify(folder: str, dest: str) -> dict[str, Any]:
    import ndstack

    arr = ndstack.open(folder)
    out = {}
    for sample in ("auto", "all"):
        t0 = time.perf_counter()
        report = ndstack.verify(arr, dest, sample=sample)
        out[sample] = time.perf_counter() - t0
        out[f"{sample}_checked"] = report.checked
    out["peak_mb"] = peak_mb()
    return out


CHILDREN = {"open": child_open, "convert": child_convert, "graph": child_graph,
            "bare": child_bare, "names": child_names, "verify": child_verify}  # fmt: skip


def run(kind: str, *args: Any) -> dict[str, Any]:
    """One step in a fresh process (its own peak memory), its JSON result back."""
    cmd = [sys.executable, os.path.abspath(__file__), "--child", kind, *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{kind} {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- main
def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", default="bench-data", help="where the files live (made once)")
    p.add_argument("--n", type=int, nargs="+", default=[1000, 10000, 100000])
    p.add_argument("--names", type=int, default=1_000_000, help="names from a listing (0: skip)")
    p.add_argument("--workers", type=int, default=2, help="cluster workers (0: skip)")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        kind, *rest = args.child
        fn = CHILDREN[kind]
        conv = [int(a) if a.isdigit() else a for a in rest]
        print(json.dumps(fn(*conv)))
        return 0

    rows = []
    scratch = tempfile.mkdtemp(prefix="ndstack-scale-", dir=args.data)
    try:
        for n in args.n:
            folder = make(os.path.join(args.data, f"tiny-{n}"), n)
            dest = os.path.join(scratch, f"s{n}.zarr")
            row: dict[str, Any] = {"n": n}
            row.update(run("open", folder))
            row["open_peak_mb"] = row.pop("peak_mb")
            bare = [run("bare", folder, os.path.join(scratch, f"b{n}-{t}"), t)["bare"]
                    for t in (1, 2)]  # fmt: skip
            shutil.rmtree(os.path.join(scratch, f"b{n}-1"), ignore_errors=True)
            shutil.rmtree(os.path.join(scratch, f"b{n}-2"), ignore_errors=True)
            row["bare1"], row["bare2"] = bare
            row.update(run("convert", folder, dest, 0))
            if args.workers:
                cdest = os.path.join(scratch, f"w{n}.zarr")
                row["workers"] = run("convert", folder, cdest, args.workers)["convert"]
                shutil.rmtree(cdest, ignore_errors=True)
            row.update(run("graph", folder, os.path.join(scratch, f"g{n}.zarr")))
            if n == max(args.n):
                row["verify"] = run("verify", folder, dest)
            rows.append(row)
            shutil.rmtree(dest, ignore_errors=True)
            print(json.dumps(row), flush=True)
        names = run("names", args.names) if args.names else None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print("\n## many tiny files: 16 x 16 uint16 one-plane TIFFs (2 cores, warm page cache)")
    head = ("N", "open s", "open MB", "convert s", "bare s (1/2 thr)", "ratio",
            f"{args.workers} workers s", "ratio", "peak MB", "files out", "tasks",
            "graph KB", "us/file")  # fmt: skip
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        best = min(r["bare1"], r["bare2"])
        w = r.get("workers")
        cells = [f"{r['n']:,}", f"{r['open']:.3f}", f"{r['open_peak_mb']:.0f}",
                 f"{r['convert']:.2f}", f"{r['bare1']:.2f} / {r['bare2']:.2f}",
                 f"{r['convert'] / best:.2f}x", f"{w:.2f}" if w else "-",
                 f"{w / best:.2f}x" if w else "-", f"{r['peak_mb']:.0f}",
                 f"{r['files_written']:,}", f"{r['tasks']}", f"{r['graph_bytes'] / 1e3:.0f}",
                 f"{r['convert'] / r['n'] * 1e6:.0f}"]  # fmt: skip
        print("| " + " | ".join(cells) + " |")
    by_n = {r["n"]: r for r in rows}
    if 10000 in by_n and 100000 in by_n:
        a, b = by_n[10000], by_n[100000]
        growth = (b["convert"] / b["n"]) / (a["convert"] / a["n"])
        print(f"per-file convert cost, 100k against 10k: {growth:.2f}x")
        print(f"per-file open cost, 100k against 10k: "
              f"{(b['open'] / b['n']) / (a['open'] / a['n']):.2f}x")  # fmt: skip
    last = rows[-1] if rows else None
    if last and "verify" in last:
        v = last["verify"]
        print(f"verify of the {last['n']:,}-file store: sample {v['auto']:.2f} s "
              f"({v['auto_checked']} blocks), all {v['all']:.2f} s ({v['all_checked']} blocks), "
              f"peak {v['peak_mb']:.0f} MB")  # fmt: skip
    if names:
        print(f"{args.names:,} names from a listing (check='none'): {names['names']:.2f} s, "
              f"peak {names['peak_mb']:.0f} MB, shape {tuple(names['shape'])}")  # fmt: skip
    print("\ntargets: convert <= 1.25x the bare loop (best of 1/2 threads) at every N, "
          f"<= 2x on {args.workers} workers; peak < 300 MB at 100,000; open 100,000 < 1.5 s; "
          "1,000,000 names < 15 s, < 2 GB")  # fmt: skip
    print("rerun: python bench/scale.py --n " + " ".join(map(str, args.n))
          + f" --names {args.names} --workers {args.workers}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
