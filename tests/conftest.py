"""Shared helpers: every dataset is generated in tmp_path with tifffile."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
import zarr

LLS = (
    "ex6-2_CamA_ch{c}_CAM1_stack{s:04d}_{wl}nm_{msec:07d}msec_{abs:010d}msecAbs"
    "_000x_000y_000z_0000t.tif"
)
WAVELENGTHS = (488, 560, 642)


def lls_name(c: int, s: int) -> str:
    msec = 131245 + 2013 * s
    return LLS.format(c=c, s=s, wl=WAVELENGTHS[c], msec=msec, abs=1423040 + msec + 210 * c)


def write_lls(folder: Path, n_stacks: int = 4, shape=(6, 20, 24), seed: int = 0) -> dict:
    """3 channels x n_stacks ImageJ stacks; returns {(t, c): array} as written."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    truth = {}
    for c in range(3):
        for s in range(n_stacks):
            data = rng.integers(0, 4000, size=shape, dtype=np.uint16)
            tifffile.imwrite(
                folder / lls_name(c, s),
                data,
                imagej=True,
                resolution=(1 / 0.104, 1 / 0.104),
                metadata={"spacing": 0.4, "unit": "um", "axes": "ZYX"},
            )
            truth[(s, c)] = data
    return truth


def write_files(
    folder: Path, names: Iterable[str], make: Callable[[str], np.ndarray], **kw
) -> dict:
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for n in names:
        p = folder / n
        p.parent.mkdir(parents=True, exist_ok=True)
        data = make(n)
        tifffile.imwrite(p, data, **{"photometric": "minisblack", **kw})
        out[n] = data
    return out


def bytes_read() -> int:
    """Bytes this process has read so far, page cache included (Linux /proc/self/io)."""
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under folder with size and mtime: to prove nothing was written."""
    out = {}
    for root, _, files in os.walk(folder):
        for f in files:
            st = os.stat(os.path.join(root, f))
            out[os.path.join(root, f)] = (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def lls(tmp_path: Path) -> tuple[Path, dict]:
    folder = tmp_path / "lls"
    return folder, write_lls(folder)


@pytest.fixture
def fail_writes_after(monkeypatch):
    """``fail_writes_after(n)``: the store's data files (chunks and shards, not the records)
    fail after ``n`` were written, as on a full disk (or with ``error``); the returned
    function heals the disk again."""
    import errno

    from ndstack._zarr import files

    real = files._replace

    def arm(n: int, error: BaseException | None = None):
        written = {"n": 0}

        def replace(src, dst):
            if ".ndstack" not in str(dst):
                written["n"] += 1
                if written["n"] > n:
                    raise error or OSError(errno.ENOSPC, "No space left on device")
            return real(src, dst)

        monkeypatch.setattr(files, "_replace", replace)
        return lambda: monkeypatch.setattr(files, "_replace", real)

    return arm


def chunk_files(store: Path) -> dict[str, bytes]:
    """Every file under every array's chunk folder, by relative path: the array contents
    (temporary leftovers included, so that they count as a difference)."""
    out = {}
    for root, dirs, files in os.walk(store):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if f"{os.sep}c" in root[len(str(store)) :] + os.sep:
            for f in files:
                p = Path(root) / f
                out[str(p.relative_to(store))] = p.read_bytes()
    return out


def validate_ngff(store: Path) -> None:
    from ome_zarr_models.v05.bioformats2raw import BioFormats2Raw
    from ome_zarr_models.v05.image import Image

    group = zarr.open_group(store, mode="r")
    if "bioformats2raw.layout" in group.attrs["ome"]:
        BioFormats2Raw.from_zarr(group)
        for name in group.group_keys():
            Image.from_zarr(group[name])
    else:
        Image.from_zarr(group)


def positions(folder: Path) -> Path:
    """Micro-Manager-like planes: 2 channels, 3 positions, 2 times, 2 z (P splits images)."""
    names = [
        f"img_channel{c:03d}_position{p:03d}_time{t:09d}_z{z:03d}.tif"
        for c in range(2)
        for p in range(3)
        for t in range(2)
        for z in range(2)
    ]
    write_files(folder, names, lambda n: np.full((6, 8), sum(map(ord, n)) % 251, np.uint8))
    return folder


def mean2(a: np.ndarray) -> np.ndarray:
    """Oracle: 2x2 mean of the last two axes, odd edges repeated, rounded."""
    a = a.astype(np.float64)
    if a.shape[-2] % 2:
        a = np.concatenate([a, a[..., -1:, :]], axis=-2)
    if a.shape[-1] % 2:
        a = np.concatenate([a, a[..., :, -1:]], axis=-1)
    return (a[..., ::2, ::2] + a[..., 1::2, ::2] + a[..., ::2, 1::2] + a[..., 1::2, 1::2]) / 4


@contextlib.contextmanager
def serve_http(directory: Path) -> Iterator[str]:
    """A real HTTP server for ``directory`` on 127.0.0.1 (a free port); yields its URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(directory))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto_server(env: dict[str, str] | None = None) -> tuple[Any, str]:
    """A real S3 API server (moto_server) on a free port of 127.0.0.1, answering; returns
    the process and its URL (``env``: the server's environment, e.g. with signature
    checks on). Skips where moto[server] is not installed."""
    import shutil
    import subprocess
    import sys
    import time
    import urllib.request

    exe = shutil.which("moto_server", path=os.path.dirname(sys.executable)) or shutil.which(
        "moto_server"
    )
    if exe is None:
        pytest.skip("moto[server] is not installed")
    port = _free_port()
    proc = subprocess.Popen(
        [exe, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
            return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.1)


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real S3 API server (moto_server) on 127.0.0.1 for the whole session."""
    pytest.importorskip("s3fs")
    proc, url = start_moto_server()
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch) -> Iterator[str]:
    """A fresh bucket on the local S3 server, credentials in the standard variables the
    way users keep them; yields ``s3://BUCKET``. Other tests never see the variables."""
    import uuid

    import s3fs

    for key, value in {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    s3fs.S3FileSystem.clear_instance_cache()
    bucket = f"b{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem().mkdir(bucket)
    yield f"s3://{bucket}"
    s3fs.S3FileSystem.clear_instance_cache()


class TcpRelay:
    """A TCP relay on 127.0.0.1 in front of a server: it can be slowed down (``delay``
    seconds before each piece sent on) and cut (every connection closed, new ones
    refused), like a network or a server going away, then opened again on the same port.
    """

    def __init__(self, target_port: int) -> None:
        import socket

        self.target_port = target_port
        self.delay = 0.0
        self.port = _free_port()
        self._socket = socket
        self._conns: list[Any] = []
        self._lock = threading.Lock()
        self._server: Any = None
        self.open()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def open(self) -> None:
        srv = self._socket.socket()
        srv.setsockopt(self._socket.SOL_SOCKET, self._socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(64)
        self._server = srv
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()

    def cut(self) -> None:
        """Close the listening socket and every connection: requests fail at once."""
        with self._lock:
            conns, self._conns = self._conns, []
            srv, self._server = self._server, None
        for s in [srv, *conns]:
            with contextlib.suppress(OSError):
                s.shutdown(self._socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def _accept(self, srv: Any) -> None:
        import time

        while True:
            try:
                client, _ = srv.accept()
            except OSError:
                return
            try:
                upstream = self._socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._server is not srv:
                    client.close()
                    upstream.close()
                    return
                self._conns += [client, upstream]

            def pump(a: Any, b: Any) -> None:
                try:
                    while data := a.recv(65536):
                        if self.delay:
                            time.sleep(self.delay)
                        b.sendall(data)
                except OSError:
                    pass
                finally:
                    for s in (a, b):
                        with contextlib.suppress(OSError):
                            s.close()

            threading.Thread(target=pump, args=(client, upstream), daemon=True).start()
            threading.Thread(target=pump, args=(upstream, client), daemon=True).start()


def pytest_unconfigure(config) -> None:
    """aiohttp sessions of fsspec's async filesystems (S3, HTTP) are closed by the garbage
    collector at exit, and asyncio logs each as "Unclosed client session" after pytest's
    summary; nothing is wrong, and nothing is left to see after the tests."""
    import logging

    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
