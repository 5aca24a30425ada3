"""Benchmark: the D1-like dataset to and from object storage (a local S3 API server).

In one run, on one S3 server (moto_server on 127.0.0.1, started here, in memory):

- ndstack.to_zarr(arr, "s3://...")  beside  dask.array.store into a zarr v3 array on
  zarr's FsspecStore (what ``da.to_zarr`` does), same chunks, Blosc zstd 3 + bit-shuffle,
  no pyramid (the peer writes none);
- the same ndstack conversion to the local disk: the ceiling the issue names (>= 70%);
- the server alone: the chunks ndstack stores, PUT by 2 threads with 16 requests in
  flight each, nothing encoded: what this server takes at most;
- reading each store back: ndstack.open beside da.from_zarr (sum of every pixel);
- when obstore is installed (``pip install obstore``), the peer's conversion and reading
  on zarr's other store layer, ``ObjectStore`` (obstore, in Rust), beside ``FsspecStore``.

Runs alternate (ndstack, peer, local) so that a slow spell of the machine hits all.

    python bench/cloud.py                 # D1 with 20 stacks per channel (60 files, 0.5 GB)
    python bench/cloud.py --stacks 60     # larger
    python bench/cloud.py --repeat 1

Target (issue "Beyond one machine's disk"): >= 2x the peer's throughput to S3 and >= 70%
of the local-disk conversion.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
CHUNKS = (1, 1, 32, 256, 256)  # what ndstack chooses for 64x256x256 uint16 files: 4 MiB


def start_moto() -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    exe = os.path.join(os.path.dirname(sys.executable), "moto_server")
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
            return proc, url
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto_server did not start")


def _obstore(url: str, read_only: bool):
    """zarr's ObjectStore (obstore, Rust) for ``s3://bucket/prefix``, or None without it."""
    try:
        from obstore.store import S3Store
        from zarr.storage import ObjectStore
    except ImportError:
        return None
    bucket, _, prefix = url.removeprefix("s3://").partition("/")
    s3 = S3Store(bucket, prefix=prefix, endpoint=os.environ["AWS_ENDPOINT_URL"],
                 region="us-east-1", client_options={"allow_http": True})  # fmt: skip
    return ObjectStore(s3, read_only=read_only)


def peer_convert(arr, url: str, backend: str = "fsspec") -> float:
    import dask.array as da
    import zarr
    from zarr.storage import FsspecStore

    t = time.perf_counter()
    if backend == "obstore":
        store = _obstore(url, read_only=False)
    else:
        store = FsspecStore.from_url(url, read_only=False)
    z = zarr.create_array(
        store=store, shape=arr.shape, chunks=CHUNKS, dtype=arr.dtype,
        compressors=[zarr.codecs.BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")],
        dimension_names=list(arr.dims), overwrite=True,
    )  # fmt: skip
    da.store(arr.data.rechunk(CHUNKS), z, lock=False)
    return time.perf_counter() - t


def server_alone(url: str, payloads: list[bytes]) -> float:
    """PUT the payloads (no encoding): 2 threads, each sending batches of 16 at once."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(url)
    batches = [payloads[i : i + 16] for i in range(0, len(payloads), 16)]

    def send(k: int) -> None:
        fs.pipe({f"{path}/{k}-{i}": p for i, p in enumerate(batches[k])})

    t = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(send, range(len(batches))))
    return time.perf_counter() - t


def read_back(kind: str, url: str) -> float:
    import dask.array as da
    import zarr
    from zarr.storage import FsspecStore

    import ndstack

    t = time.perf_counter()
    if kind == "ndstack.open":
        ndstack.open(url).data.sum().compute()
    elif kind == "da.from_zarr (obstore)":
        store = _obstore(url, read_only=True)
        da.from_zarr(zarr.open_array(store=store, mode="r")).sum().compute()
    else:
        store = FsspecStore.from_url(url, read_only=True)
        da.from_zarr(zarr.open_array(store=store, mode="r")).sum().compute()
    return time.perf_counter() - t


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data", default="bench-data")
    p.add_argument("--stacks", type=int, default=20, help="D1 stacks per channel")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()

    sys.path.insert(0, HERE)
    from open_read import warm_d1

    source, files = warm_d1(args.data, args.stacks)
    proc, endpoint = start_moto()
    os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench",
                       "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1"})  # fmt: skip
    import fsspec

    import ndstack

    fsspec.filesystem("s3").mkdir("bench")
    arr = ndstack.open(source)
    nbytes = arr.nbytes
    print(f"D1: {len(files)} files, {nbytes / 1e9:.2f} GB, Blosc zstd 3 bit-shuffle, chunks "
          f"{CHUNKS}; S3: moto_server at {endpoint}\n")  # fmt: skip
    local_dir = tempfile.mkdtemp(dir=args.data)
    times: dict[str, list[float]] = {"ndstack -> S3": [], "peer -> S3": [], "ndstack -> disk": [],
                                     "server alone": []}  # fmt: skip
    reads: dict[str, list[float]] = {"ndstack.open": [], "da.from_zarr": []}
    with_obstore = _obstore("s3://bench/x", True) is not None
    if with_obstore:  # zarr's other store layer, measured beside FsspecStore
        times["peer (obstore) -> S3"] = []
        reads["da.from_zarr (obstore)"] = []
    try:
        for rep in range(args.repeat):
            t = time.perf_counter()
            ndstack.to_zarr(arr, f"s3://bench/nd{rep}.ome.zarr", levels=1, overwrite=True)
            times["ndstack -> S3"].append(time.perf_counter() - t)
            times["peer -> S3"].append(peer_convert(arr, f"s3://bench/peer{rep}.zarr"))
            if with_obstore:
                times["peer (obstore) -> S3"].append(
                    peer_convert(arr, f"s3://bench/obs{rep}.zarr", "obstore")
                )
            t = time.perf_counter()
            ndstack.to_zarr(arr, os.path.join(local_dir, f"l{rep}.zarr"), levels=1)
            times["ndstack -> disk"].append(time.perf_counter() - t)
            chunks = []
            for root, _, names in os.walk(os.path.join(local_dir, f"l{rep}.zarr", "0", "c")):
                chunks += [open(os.path.join(root, n), "rb").read() for n in names]
            times["server alone"].append(
                server_alone(f"s3://bench/raw{rep}", chunks) * nbytes / sum(map(len, chunks))
            )  # scaled to the same bytes in as the conversions
            reads["ndstack.open"].append(read_back("ndstack.open", f"s3://bench/nd{rep}.ome.zarr"))
            reads["da.from_zarr"].append(read_back("da.from_zarr", f"s3://bench/peer{rep}.zarr"))
            if with_obstore:
                reads["da.from_zarr (obstore)"].append(
                    read_back("da.from_zarr (obstore)", f"s3://bench/peer{rep}.zarr")
                )
            line = "  ".join(f"{k} {nbytes / v[-1] / 1e9:.3f}" for k, v in times.items())
            print(f"  run {rep + 1} GB/s: {line}")
            fs = fsspec.filesystem("s3")
            for prefix in (f"nd{rep}.ome.zarr", f"peer{rep}.zarr", f"raw{rep}", f"obs{rep}.zarr"):
                if fs.exists(f"bench/{prefix}"):
                    fs.rm(f"bench/{prefix}", recursive=True)
    finally:
        shutil.rmtree(local_dir, ignore_errors=True)
        proc.terminate()
    med = {k: nbytes / statistics.median(v) / 1e9 for k, v in {**times, **reads}.items()}
    print(f"\n  medians of {args.repeat} runs (GB/s of uncompressed pixels):")
    for k, v in med.items():
        print(f"  {k:22s} {v:6.3f}")
    print(
        f"\n  ndstack -> S3 / peer -> S3:       {med['ndstack -> S3'] / med['peer -> S3']:.2f}x"
        "  (target >= 2x)"
    )
    print(
        f"  ndstack -> S3 / ndstack -> disk:  "
        f"{med['ndstack -> S3'] / med['ndstack -> disk']:.0%}  (target >= 70%)"
    )
    print(
        f"  ndstack -> S3 / server alone:     "
        f"{med['ndstack -> S3'] / med['server alone']:.0%}  (what this server takes)"
    )
    print(f"  read back: ndstack.open / da.from_zarr: "
          f"{med['ndstack.open'] / med['da.from_zarr']:.2f}x")  # fmt: skip
    print(f"\n  rerun: python bench/cloud.py --stacks {args.stacks} --repeat {args.repeat}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
