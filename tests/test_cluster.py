"""Dask distributed: a real scheduler and workers on 127.0.0.1, a worker killed mid-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import ndstack

from .conftest import chunk_files, write_files

pytestmark = pytest.mark.timeout(240)


def _dataset(folder: Path, n: int, shape=(16, 128, 128)) -> None:
    rng = np.random.default_rng(11)
    write_files(
        folder,
        [f"vol_t{t:03d}.tif" for t in range(n)],
        lambda _: rng.integers(0, 4000, shape, dtype=np.uint16),
    )


def _wait_for(path: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear")
        time.sleep(0.05)


def _convert_cmd(source: Path, dest: Path, address: str) -> list[str]:
    return [sys.executable, "-m", "ndstack.cli", "convert", str(source), str(dest),
            "--scheduler", address, "--quiet"]  # fmt: skip


@pytest.fixture
def dask_cluster(tmp_path: Path):
    """`dask scheduler` and two `dask worker` processes, as a user would start them."""
    sched_file = tmp_path / "scheduler.json"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--dashboard-address",
                "127.0.0.1:0",
                "--scheduler-file",
                str(sched_file),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )
    ]
    _wait_for(sched_file)
    address = json.loads(sched_file.read_text())["address"]
    for _ in range(2):
        procs.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "distributed.cli.dask_worker",
                    address,
                    "--nthreads",
                    "1",
                    "--no-nanny",
                    "--host",
                    "127.0.0.1",
                    "--dashboard-address",
                    "127.0.0.1:0",
                    "--memory-limit",
                    "1GB",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,
            )
        )
    from distributed import Client

    with Client(address, timeout=30) as c:
        c.wait_for_workers(2, timeout=60)
    try:
        yield address, procs[1:]
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_convert_on_a_scheduler_equals_a_local_run(tmp_path: Path, dask_cluster) -> None:
    address, _ = dask_cluster
    folder = tmp_path / "src"
    _dataset(folder, 12)
    local = tmp_path / "local.zarr"
    ndstack.to_zarr(ndstack.open(folder), local)
    remote = tmp_path / "remote.zarr"
    proc = subprocess.run(
        _convert_cmd(folder, remote, address),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "dask dashboard: http://" in proc.stderr
    assert chunk_files(remote) == chunk_files(local)
    xr.testing.assert_identical(ndstack.open(remote).compute(), ndstack.open(local).compute())


def test_files_filled_on_remote_workers_are_recorded(tmp_path: Path, dask_cluster) -> None:
    """A worker's warnings stay in its log: the fill must reach the store by its record."""
    from distributed import Client

    address, _ = dask_cluster
    folder = tmp_path / "src"
    _dataset(folder, 6)
    bad = folder / "vol_t004.tif"
    bad.write_bytes(bad.read_bytes()[:400])  # header intact, pixels gone
    dest = tmp_path / "filled.zarr"
    arr = ndstack.open(folder, check="none", on_error="fill")
    with Client(address, timeout=30):
        ndstack.to_zarr(arr, dest, progress=False)
    back = ndstack.open(dest)
    assert [m for m in back.attrs["filled_while_reading"] if bad.name in m]
    assert (back.isel(T=4).values == 0).all() and back.isel(T=3).values.any()


def test_losing_a_worker_mid_conversion(tmp_path: Path, dask_cluster) -> None:
    address, workers = dask_cluster
    folder = tmp_path / "src"
    _dataset(folder, 60)
    local = tmp_path / "local.zarr"
    ndstack.to_zarr(ndstack.open(folder), local)
    remote = tmp_path / "remote.zarr"
    done = tmp_path / ".remote.zarr.ndstack" / "done"
    proc = subprocess.Popen(
        _convert_cmd(folder, remote, address),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if done.exists() and len(os.listdir(done)) >= 10:
            workers[0].send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    killed = workers[0].wait(timeout=10) == -signal.SIGKILL
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err
    assert killed, "the worker was not killed while the conversion ran"
    assert not list(remote.rglob("*.partial"))
    assert chunk_files(remote) == chunk_files(local)


def _start_rss_sampler() -> None:
    import threading

    import psutil

    state = {"peak": 0, "run": True}

    def loop() -> None:
        proc = psutil.Process()
        while state["run"]:
            state["peak"] = max(state["peak"], proc.memory_info().rss)
            time.sleep(0.005)

    threading.Thread(target=loop, daemon=True).start()
    globals()["_rss_state"] = state


def _stop_rss_sampler() -> int:
    state = globals()["_rss_state"]
    state["run"] = False
    return int(state["peak"])


def test_local_cluster_with_a_memory_limit_smaller_than_the_data(tmp_path: Path) -> None:
    folder = tmp_path / "big"
    _dataset(folder, 160, shape=(32, 256, 256))  # 160 x 4 MiB = 671 MB
    arr = ndstack.open(folder)
    # per worker; both together hold less than the dataset. A worker takes ~140 MB with
    # its libraries, and Dask pauses a worker at 80% of its limit.
    limit = 256 * 2**20
    assert 2 * limit < arr.nbytes
    with ndstack.cluster(workers=2, threads_per_worker=1, memory_limit=limit, quiet=True) as client:
        # ru_maxrss survives exec and would report this test process's size: sample the
        # workers' own resident memory instead, every 5 ms, while they convert
        client.run(_start_rss_sampler)
        summary = ndstack.to_zarr(arr, tmp_path / "big.zarr")
        peaks = list(client.run(_stop_rss_sampler).values())
    assert summary["tasks"] == 160
    assert all(p < limit for p in peaks), f"peak RSS per worker {peaks} over {limit}"
    np.testing.assert_array_equal(ndstack.open(tmp_path / "big.zarr").values, arr.values)


def test_everything_in_the_graph_pickles(lls, tmp_path: Path) -> None:
    import cloudpickle

    folder, _ = lls
    work = ndstack.to_zarr(ndstack.open(folder), tmp_path / "p.zarr", compute=False)
    restored = cloudpickle.loads(cloudpickle.dumps(work))
    summary = restored.compute(scheduler="processes", num_workers=2)
    assert summary["tasks"] == 12


def test_cli_workers_flag_starts_and_stops_a_local_cluster(lls, tmp_path: Path, capsys) -> None:
    from ndstack.cli import main

    folder, _ = lls
    dest = tmp_path / "w.zarr"
    assert main(["convert", str(folder), str(dest), "--workers", "2", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "dask dashboard: http://" in captured.err and "wrote" in captured.out
    xr.testing.assert_identical(ndstack.open(dest).compute(), ndstack.open(folder).compute())
    assert main(["convert", str(folder), str(dest), "--workers", "2", "--scheduler", "x"]) == 2


def test_local_cluster_workers_keep_glibc_adaptive_allocation() -> None:
    """dask's nanny sets MALLOC_TRIM_THRESHOLD_, which halves Blosc's speed unless the mmap
    threshold is set too (bench/cluster.py measures it): workers ndstack starts get both."""
    from ndstack._cluster import WORKER_MALLOC_ENV

    with ndstack.cluster(workers=1, quiet=True) as client:
        seen = client.run(lambda: {k: os.environ.get(k) for k in WORKER_MALLOC_ENV})
    assert list(seen.values()) == [{k: str(v) for k, v in WORKER_MALLOC_ENV.items()}]


@pytest.mark.parametrize(
    "options",
    [
        {"workers": -1},  # hung before
        {"workers": 0},
        {"workers": 1.5},
        {"workers": 2, "threads_per_worker": 0},
        {"workers": 2, "memory_limit": "banana"},
        {"workers": 2, "memory_limit": "-1GB"},
        {"workers": 2, "memory_limit": -5},
        {"workers": 2, "memory_limit": float("nan")},
        {"workers": 2, "scheduler": "tcp://127.0.0.1:1"},
    ],
)
def test_cluster_options_are_refused_before_anything_starts(options) -> None:
    from ndstack.errors import ParameterError

    t0 = time.monotonic()
    with pytest.raises(ParameterError) as err:
        ndstack.cluster(**options)  # raises on the call: nothing is entered or started
    assert time.monotonic() - t0 < 1 and "\n" not in str(err.value)


@pytest.mark.parametrize("limit", ["auto", "4GB", "500MiB", "0.5", 0.5, 4_000_000_000, 0, None])
def test_memory_limits_dask_reads_are_accepted(limit) -> None:
    from ndstack._cluster import check_cluster_options

    check_cluster_options(workers=2, threads_per_worker=1, memory_limit=limit)
    assert ndstack.cluster() is not None  # a context; nothing started


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--workers", "-1"], "--workers: expected a whole number from 1, got '-1'"),
        (["--workers", "0"], "--workers: expected a whole number from 1, got '0'"),
        (["--threads-per-worker", "0"], "--threads-per-worker: expected a whole number from 1"),
        (["--workers", "2", "--memory-limit", "banana"], "memory limit 'banana': expected 'auto'"),
        (["--scheduler", "tcp://127.0.0.1:1", "--workers", "2"], "not both"),
    ],
)
def test_cli_cluster_options_one_line_before_any_work(
    lls, tmp_path: Path, capsys, option, message
) -> None:
    from ndstack.cli import main

    folder, _ = lls
    dest = tmp_path / "out.zarr"
    t0 = time.monotonic()
    code = main(["convert", str(folder), str(dest), "--quiet", *option])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("ndstack: error: ") and err.count("\n") == 1, err
    assert message in err and time.monotonic() - t0 < 5
    assert not dest.exists()


def _listeners(proc) -> set[tuple[str, int]]:
    import psutil

    out = set()
    for p in [proc, *proc.children(recursive=True)]:
        try:
            conns = p.net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        out |= {(c.laddr.ip, c.laddr.port) for c in conns if c.status == psutil.CONN_LISTEN}
    return out


def test_a_local_cluster_listens_on_this_machine_only() -> None:
    from urllib.parse import urlparse

    import psutil

    me = psutil.Process()
    before = _listeners(me)
    with ndstack.cluster(workers=1, quiet=True) as client:
        assert client.scheduler.address.startswith("tcp://127.0.0.1:")
        assert urlparse(client.dashboard_link).hostname == "127.0.0.1"
        deadline = time.monotonic() + 30
        while not me.children() and time.monotonic() < deadline:  # the nanny's worker
            time.sleep(0.05)
        new = _listeners(me) - before
    assert len(new) >= 3  # scheduler, dashboard, nanny, worker
    assert {ip for ip, _ in new} == {"127.0.0.1"}, new


def test_a_function_that_cannot_travel_to_workers_is_named_at_once() -> None:
    import threading

    import xarray as xr
    from distributed import Client, LocalCluster

    from ndstack import ops
    from ndstack.errors import ParameterError

    lock = threading.Lock()  # like a module-level ITK object: it cannot be pickled

    def uses_the_lock(block):
        with lock:
            return block

    arr = xr.DataArray(np.zeros((2, 4, 4)), dims=("Z", "Y", "X"))
    ops.apply(uses_the_lock, arr)  # no cluster: fine, threads share the lock
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        with pytest.raises(ParameterError, match=r"'.*uses_the_lock' cannot be sent"):
            ops.apply(uses_the_lock, arr)


def test_a_cluster_reads_and_writes_object_storage_only(dask_cluster, s3, moto_endpoint,
                                                        tmp_path: Path) -> None:  # fmt: skip
    """The cloud recipe: source in a bucket, Dask workers, store in a bucket. The workers
    were started without any credentials or endpoint (the client gives them as storage
    options) and with no path of the client's disk in the graph."""
    import s3fs

    address, _ = dask_cluster  # started before the s3 fixture set AWS_*: workers lack them
    folder = tmp_path / "src"
    _dataset(folder, 6)
    bucket = s3.removeprefix("s3://")
    s3fs.S3FileSystem().put(str(folder) + "/", f"{bucket}/src/", recursive=True)
    local = tmp_path / "local.zarr"
    ndstack.to_zarr(ndstack.open(folder), local)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    none = str(tmp_path / "none")
    env.update(AWS_SHARED_CREDENTIALS_FILE=none, AWS_CONFIG_FILE=none,
               AWS_EC2_METADATA_DISABLED="true")  # fmt: skip
    options = [f"--storage-option=endpoint_url={moto_endpoint}", "--storage-option=key=k",
               "--storage-option=secret=s"]  # fmt: skip
    dest = f"{s3}/out.ome.zarr"
    proc = subprocess.run(
        [sys.executable, "-m", "ndstack.cli", "convert", f"{s3}/src/", dest, "--scheduler",
         address, "--quiet", *options],
        capture_output=True, text=True, check=False, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    fs = s3fs.S3FileSystem()
    fs.invalidate_cache()
    prefix = f"{bucket}/out.ome.zarr/"
    remote = {k[len(prefix) :]: fs.cat_file(k) for k in fs.find(prefix) if "/c/" in k}
    assert remote and remote == chunk_files(local)
    xr.testing.assert_equal(ndstack.open(dest).compute(), ndstack.open(local).compute())
