"""Object storage: writing and reading stores on a real S3 API server (moto) on 127.0.0.1."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import ndstack
from ndstack.cli import main
from ndstack.errors import (
    DestinationError,
    NdstackError,
    NoImagesError,
    SourceChangedError,
    UnfinishedStoreError,
    WriteError,
)

from .conftest import write_lls


@pytest.fixture
def lls_arr(tmp_path: Path):
    write_lls(tmp_path / "src", n_stacks=3, shape=(6, 40, 48))
    return ndstack.open(tmp_path / "src")


def test_convert_to_s3_and_read_back(lls_arr, s3: str, tmp_path: Path) -> None:
    url = f"{s3}/run1/x.ome.zarr"
    summary = ndstack.to_zarr(lls_arr, url, chunks={"Z": 2, "Y": 16, "X": 16}, levels=2)
    assert summary["tasks"] > 1 and summary["dest"] == url
    back = ndstack.open(url)
    xr.testing.assert_identical(back.drop_attrs(), lls_arr.drop_attrs().compute())
    report = ndstack.verify(lls_arr, url, sample="all")
    assert report.checked == report.blocks > 1
    # nothing local was made from the URL, and the record and lock are gone
    assert not (Path.cwd() / "s3:").exists()
    import s3fs

    listing = s3fs.S3FileSystem().ls(s3.removeprefix("s3://") + "/run1")
    assert [p.rsplit("/", 1)[1] for p in listing] == ["x.ome.zarr"]


def _objects(url: str) -> dict[str, bytes]:
    """Every object under ``url`` by key relative to it."""
    import s3fs

    fs = s3fs.S3FileSystem()
    fs.invalidate_cache()
    prefix = url.removeprefix("s3://").rstrip("/") + "/"
    return {k[len(prefix) :]: fs.cat_file(k) for k in fs.find(prefix)}


def _chunks(objects: dict[str, bytes]) -> dict[str, bytes]:
    """The chunk objects (the array contents) of a store's objects."""
    return {k: v for k, v in objects.items() if "/c/" in f"/{k}"}


def test_a_missing_bucket_is_one_line_before_any_work(lls_arr, s3: str, tmp_path, capsys):
    with pytest.raises(WriteError, match="bucket does not exist"):
        ndstack.to_zarr(lls_arr, "s3://no-such-bucket-here/x.ome.zarr")
    code = main(["convert", str(tmp_path / "src"), "s3://no-such-bucket-here/x.zarr", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no-such-bucket-here" in err
    assert not (Path.cwd() / "s3:").exists() and not list(Path.cwd().glob("s3*"))


def test_no_credentials_is_one_line(lls_arr, s3: str, monkeypatch, tmp_path) -> None:
    import s3fs

    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask a cloud's metadata
    s3fs.S3FileSystem.clear_instance_cache()
    with pytest.raises(WriteError, match="credentials"):
        ndstack.to_zarr(lls_arr, f"{s3}/x.ome.zarr")


def test_credentials_in_a_url_are_refused_and_never_shown(lls_arr, s3: str, capsys) -> None:
    bucket = s3.removeprefix("s3://")
    url = f"s3://AKIDEXAMPLE:wJalrSECRETKEY@{bucket}/x.ome.zarr"
    with pytest.raises(DestinationError, match="credentials") as info:
        ndstack.to_zarr(lls_arr, url)
    assert "wJalrSECRETKEY" not in str(info.value)
    assert main(["info", url]) == 2
    assert "wJalrSECRETKEY" not in "".join(capsys.readouterr())
    assert _objects(s3) == {}


def test_no_secret_reaches_an_object(lls_arr, s3: str) -> None:
    ndstack.to_zarr(lls_arr, f"{s3}/x.ome.zarr")
    objects = _objects(s3)
    assert any(k.endswith("zarr.json") for k in objects)
    for secret in (b"testing-secret", b"AWS_SECRET"):
        assert not [k for k, v in objects.items() if secret in v]


def test_a_url_that_is_not_a_store(s3: str) -> None:
    import s3fs

    s3fs.S3FileSystem().pipe_file(f"{s3.removeprefix('s3://')}/notes/readme.txt", b"hello")
    with pytest.raises(NoImagesError):
        ndstack.open(f"{s3}/notes")
    with pytest.raises(NoImagesError):
        ndstack.open(f"{s3}/nothing-here.zarr")


def test_overwrite_removes_only_what_ndstack_wrote(lls_arr, s3: str) -> None:
    import s3fs

    fs = s3fs.S3FileSystem()
    url = f"{s3}/x.ome.zarr"
    ndstack.to_zarr(lls_arr, url, levels=1)
    fs.pipe_file(f"{url.removeprefix('s3://')}/user-notes.txt", b"mine")
    with pytest.raises(DestinationError, match="pass --overwrite"):
        ndstack.to_zarr(lls_arr.isel(T=slice(0, 2)), url, levels=1)
    ndstack.to_zarr(lls_arr.isel(T=slice(0, 2)), url, levels=1, overwrite=True)
    assert ndstack.open(url).sizes["T"] == 2
    assert _objects(url)["user-notes.txt"] == b"mine"


def test_the_server_going_away_mid_write_then_resume(lls_arr, s3: str, moto_endpoint, monkeypatch):
    """The run stops with a clear error; the next run resumes to the bytes of a run that
    was never interrupted."""
    import threading

    import s3fs

    from .conftest import TcpRelay

    ndstack.to_zarr(lls_arr, f"{s3}/whole.ome.zarr", chunks={"Z": 2}, levels=2)
    relay = TcpRelay(int(moto_endpoint.rsplit(":", 1)[1]))
    monkeypatch.setenv("AWS_ENDPOINT_URL", relay.url)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    s3fs.S3FileSystem.clear_instance_cache()
    url = f"{s3}/cut.ome.zarr"
    relay.delay = 0.01  # slow enough to cut it in the middle

    def cut_after_first_block() -> None:  # watched straight at the server, not the relay
        direct = s3fs.S3FileSystem(endpoint_url=moto_endpoint, skip_instance_cache=True)
        _wait_for_a_done_marker(direct, s3, "cut.ome.zarr")
        relay.cut()

    watcher = threading.Thread(target=cut_after_first_block)
    watcher.start()
    with pytest.raises(NdstackError) as info:
        ndstack.to_zarr(lls_arr, url, chunks={"Z": 2}, levels=2)
    assert str(info.value).count("\n") == 0 and "cut.ome.zarr" in str(info.value)
    watcher.join()
    relay.delay = 0.0
    relay.open()
    s3fs.S3FileSystem.clear_instance_cache()
    # the lock of the cut run is its own process's: a new run in this process takes over
    summary = ndstack.to_zarr(lls_arr, url, chunks={"Z": 2}, levels=2)
    assert summary["skipped"] > 0 and summary["tasks"] > 0
    assert _chunks(_objects(url)) == _chunks(_objects(f"{s3}/whole.ome.zarr"))
    ndstack.verify(lls_arr, url, sample="all")


def test_storage_options_instead_of_the_environment(lls_arr, s3: str, moto_endpoint, monkeypatch,
                                                   tmp_path, capsys) -> None:  # fmt: skip
    """Python's storage_options= and the CLI's --storage-option, with nothing in the
    environment: the endpoint and keys reach every request (workers' tasks included) and
    no object, record, summary or output line."""
    import s3fs

    for key in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    s3fs.S3FileSystem.clear_instance_cache()
    secret = "sEcReT-only-in-options"
    options = {"endpoint_url": moto_endpoint, "key": "AKIDOPTIONS", "secret": secret}
    url = f"{s3}/opts.ome.zarr"
    summary = ndstack.to_zarr(lls_arr, url, storage_options=options, levels=1)
    assert secret not in repr(summary)
    back = ndstack.open(url, storage_options=options)
    np.testing.assert_array_equal(back.values, lls_arr.values)
    ndstack.verify(lls_arr, url, storage_options=options)
    args = [f"--storage-option=endpoint_url={moto_endpoint}", "--storage-option=key=AKIDOPTIONS",
            f"--storage-option=secret={secret}"]  # fmt: skip
    cli_url = f"{s3}/cli.ome.zarr"
    assert main(["convert", str(tmp_path / "src"), cli_url, "--quiet", *args]) == 0
    assert main(["info", cli_url, *args]) == 0
    assert main(["verify", str(tmp_path / "src"), cli_url, *args]) == 0
    out, err = capsys.readouterr()
    assert secret not in out + err and "cli.ome.zarr" in out
    objects = _objects_with(s3, options)
    assert any(k.startswith("cli.ome.zarr/") for k in objects)
    assert not [k for k, v in objects.items() if secret.encode() in v]


def _objects_with(url: str, options: dict) -> dict[str, bytes]:
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=options["endpoint_url"], key=options["key"],
                           secret=options["secret"], skip_instance_cache=True)  # fmt: skip
    prefix = url.removeprefix("s3://").rstrip("/") + "/"
    return {k[len(prefix) :]: fs.cat_file(k) for k in fs.find(prefix)}


def test_kill_9_on_object_storage_then_resume(lls_arr, s3: str, moto_endpoint, tmp_path) -> None:
    """A run killed at any moment leaves a store that opens as unfinished, never as
    complete; a changed source is refused; the same source resumes to the same bytes; the
    store is valid OME-Zarr (the validator reads a copy of its objects)."""
    import os
    import signal
    import subprocess
    import sys

    import s3fs

    from .conftest import TcpRelay, validate_ngff

    ndstack.to_zarr(lls_arr, f"{s3}/whole.ome.zarr", chunks={"Z": 2})
    relay = TcpRelay(int(moto_endpoint.rsplit(":", 1)[1]))
    relay.delay = 0.01
    url = f"{s3}/killed.ome.zarr"
    env = {**os.environ, "AWS_ENDPOINT_URL": relay.url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ndstack.cli", "convert", str(tmp_path / "src"), url,
         "--chunks", "Z=2", "--quiet"], env=env, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    _wait_for_a_done_marker(s3fs.S3FileSystem(), s3, "killed.ome.zarr")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    relay.cut()
    with pytest.raises(UnfinishedStoreError):
        ndstack.open(url)
    assert main(["info", url]) == 2
    # a source changed since the killed run is refused; the same source resumes
    src = sorted((tmp_path / "src").iterdir())[0]
    original, stat = src.read_bytes(), src.stat()
    src.write_bytes(original[:-2] + b"\1\1")
    with pytest.raises(SourceChangedError):
        ndstack.to_zarr(ndstack.open(tmp_path / "src"), url, chunks={"Z": 2})
    src.write_bytes(original)
    os.utime(src, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the very same file again
    summary = ndstack.to_zarr(ndstack.open(tmp_path / "src"), url, chunks={"Z": 2})
    assert summary["skipped"] > 0 and summary["tasks"] > 0
    assert _chunks(_objects(url)) == _chunks(_objects(f"{s3}/whole.ome.zarr"))
    copy = tmp_path / "copy.ome.zarr"
    for key, value in _objects(url).items():
        (copy / key).parent.mkdir(parents=True, exist_ok=True)
        (copy / key).write_bytes(value)
    validate_ngff(copy)


def _wait_for_a_done_marker(fs, s3: str, store: str) -> None:
    """Until a run into ``store`` has finished one task (a done marker in its record)."""
    import time

    done = f"{s3.removeprefix('s3://')}/.{store}.ndstack/done"
    for _ in range(600):
        fs.invalidate_cache()
        if fs.exists(done) and fs.ls(done):
            return
        time.sleep(0.05)


def test_wrong_credentials_are_one_line_before_any_work(lls_arr, monkeypatch, tmp_path, capsys):
    """A server that checks signatures (moto with authentication on) refuses unknown keys:
    the first request, the lock, fails with one line; nothing local is made."""
    import s3fs

    from .conftest import start_moto_server

    proc, url = start_moto_server({**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAWRONGWRONGWRONG0")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret-key")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
        s3fs.S3FileSystem.clear_instance_cache()
        with pytest.raises(WriteError, match="lock cannot be created") as info:
            ndstack.to_zarr(lls_arr, "s3://lab/x.ome.zarr")
        assert "\n" not in str(info.value) and "wrong-secret-key" not in str(info.value)
        code = main(["convert", str(tmp_path / "src"), "s3://lab/y.ome.zarr", "--quiet"])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "wrong-secret-key" not in err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]
    finally:
        proc.terminate()
        proc.wait()
        s3fs.S3FileSystem.clear_instance_cache()


def test_process_writes_to_a_bucket(lls_arr, s3: str, tmp_path) -> None:
    url = f"{s3}/mip.ome.zarr"
    assert main(["process", str(tmp_path / "src"), url, "--project", "dim=Z", "--quiet"]) == 0
    expected = ndstack.ops.project(lls_arr, "Z", how="max")
    np.testing.assert_array_equal(ndstack.open(url).values, expected.values)
    assert main(["verify", str(tmp_path / "src"), url]) != 0  # a processed store is no copy


# ------------------------------------------------------------------ review: the holes found
def test_pattern_characters_never_delete_another_store(lls_arr, s3: str) -> None:
    """fsspec takes * ? [ in names it deletes as patterns: such destinations are refused,
    and deleting a store removes exactly its own keys (exp1 is not exp10)."""
    import s3fs

    for name in ("sample[1].ome.zarr", "exp*.ome.zarr", "a]b.zarr"):
        with pytest.raises(DestinationError, match=r"\* \? \[ or \]"):
            ndstack.to_zarr(lls_arr, f"{s3}/{name}")
    ndstack.to_zarr(lls_arr, f"{s3}/exp1", levels=1)
    ndstack.to_zarr(lls_arr, f"{s3}/exp10", levels=1)
    before = _objects(f"{s3}/exp10")
    ndstack.to_zarr(lls_arr.isel(T=slice(0, 1)), f"{s3}/exp1", levels=1, overwrite=True)
    assert _objects(f"{s3}/exp10") == before
    from ndstack._zarr.paths import remove_tree

    with pytest.raises(DestinationError):
        remove_tree(f"{s3}/exp*")
    bucket = s3.removeprefix("s3://")
    s3fs.S3FileSystem().pipe_file(f"{bucket}/exp1/x[0]", b"a key holding a pattern")
    s3fs.S3FileSystem().pipe_file(f"{bucket}/exp10/x0", b"must stay")
    before = _objects(f"{s3}/exp10")
    remove_tree(f"{s3}/exp1")
    assert _objects(f"{s3}/exp1") == {} and _objects(f"{s3}/exp10") == before
    assert s3fs.S3FileSystem().exists(f"{s3.removeprefix('s3://')}/exp10/zarr.json")


@pytest.mark.parametrize(
    "url", ["s3://AKIDEXAMPLE:wJalr/SECRETKEY@bucket/x.zarr", "gs://tok:SECRETKEY@b/x"]
)
def test_credentials_holding_a_slash_are_refused_too(url: str, capsys) -> None:
    with pytest.raises(DestinationError, match="credentials") as info:
        ndstack.to_zarr(np.zeros((2, 4, 4), "u1"), url, dims=("Z", "Y", "X"))
    assert "SECRETKEY" not in str(info.value)
    with pytest.raises(NoImagesError, match="credentials") as info:
        ndstack.open(url)
    assert "SECRETKEY" not in str(info.value)
    assert main(["info", url]) == 2
    assert "SECRETKEY" not in "".join(capsys.readouterr())


def test_storage_that_ignores_conditional_writes_is_refused(lls_arr) -> None:
    import fsspec
    from fsspec.implementations.memory import MemoryFileSystem

    class Sloppy(MemoryFileSystem):
        """Create-if-absent that overwrites, as some S3-compatible servers and older
        drivers do (a stand-in for such a server: none runs here)."""

        protocol = ("sloppy",)
        root_marker = "/"

        def pipe_file(self, path, value, mode="overwrite", **kwargs):
            return super().pipe_file(path, value, mode="overwrite", **kwargs)

    fsspec.register_implementation("sloppy", Sloppy, clobber=True)
    with pytest.raises(WriteError, match="ignores conditional writes"):
        ndstack.to_zarr(lls_arr, "sloppy://lab/x.ome.zarr")
    assert not Sloppy().exists("/lab/x.ome.zarr/zarr.json")


def test_a_read_from_a_server_that_went_away_is_a_storage_error(lls_arr, s3, moto_endpoint,
                                                                monkeypatch) -> None:  # fmt: skip
    """Not "damaged" and not "missing chunk": the network, named, in one line."""
    import s3fs

    from ndstack.errors import CorruptFileError, StorageError

    from .conftest import TcpRelay

    url = f"{s3}/x.ome.zarr"
    ndstack.to_zarr(lls_arr, url, levels=1)
    relay = TcpRelay(int(moto_endpoint.rsplit(":", 1)[1]))
    monkeypatch.setenv("AWS_ENDPOINT_URL", relay.url)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    s3fs.S3FileSystem.clear_instance_cache()
    arr = ndstack.open(url)
    relay.cut()
    with pytest.raises(StorageError, match=r"x\.ome\.zarr") as info:
        arr.values
    assert not isinstance(info.value, CorruptFileError) and "\n" not in str(info.value)


def test_ngff_04_on_s3_and_verify_names_a_missing_chunk_object(lls_arr, s3: str) -> None:
    import s3fs

    from ndstack.errors import VerifyError

    url = f"{s3}/v2.ome.zarr"
    ndstack.to_zarr(lls_arr, url, format="ome-zarr-0.4", levels=1)
    back = ndstack.open(url)
    np.testing.assert_array_equal(back.values, lls_arr.values)
    assert ".zattrs" in _objects(url)
    chunk = sorted(k for k in _objects(url) if k.startswith("0/") and k[-1].isdigit())[3]
    s3fs.S3FileSystem().rm_file(f"{url.removeprefix('s3://')}/{chunk}")
    with pytest.raises(VerifyError, match=f"chunk {chunk} is missing"):
        ndstack.verify(lls_arr, url)


@pytest.mark.parametrize(("url", "extra"), [("gcs://b/x.zarr", "gcs"), ("az://c/x.zarr", "azure")])
def test_a_missing_cloud_client_names_the_extra(url: str, extra: str, lls_arr) -> None:
    import importlib.util
    import re

    from ndstack.errors import MissingDependencyError

    package = {"gcs": "gcsfs", "azure": "adlfs"}[extra]
    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed")
    with pytest.raises(MissingDependencyError, match=re.escape(f"ndstack[{extra}]")):
        ndstack.to_zarr(lls_arr, url)
    with pytest.raises(MissingDependencyError, match=re.escape(f"ndstack[{extra}]")):
        ndstack.open(url)
