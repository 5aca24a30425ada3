"""No secret leaves the process: URLs' credentials are redacted in every message and output."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

import ndstack
from ndstack._redact import for_output, redact
from ndstack.cli import main
from ndstack.errors import CorruptFileError, NdstackError, NoImagesError

from .conftest import serve_http, write_files

SECRET = "wJalrXUtnFEMI"  # in every secret below, so that a leak is easy to find

# query keys whose value must go, wherever the key stands in the query
SECRET_KEYS = [
    "token", "access_token", "api_key", "apikey", "key", "secret", "password", "sig",
    "signature", "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token",
    "X-Goog-Signature", "X-Goog-Credential", "auth", "sv", "se", "sp", "client_secret",
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # user info: passwords with '/' and '@' (AWS secret keys hold '/')
        (f"s3://AKIAEXAMPLE:{SECRET}/K7MDENG@bPx@bucket/data", "s3://***@bucket/data"),
        (f"https://user:p@ss/{SECRET}@host.org/x.tif", "https://***@host.org/x.tif"),
        (f"https://{SECRET}@github.com/x.tif", "https://***@github.com/x.tif"),
        (f"'https://u:{SECRET}@h/x' does not exist", "'https://***@h/x' does not exist"),
        (f"http://user:pa%2Fss%40{SECRET}@127.0.0.1:8000/d/", "http://***@127.0.0.1:8000/d/"),
        # every secret query key, first or later in the query
        *[(f"https://h/a.tif?{k}={SECRET}", f"https://h/a.tif?{k}=***") for k in SECRET_KEYS],
        *[
            (f"https://h/a.tif?x=1&{k}={SECRET}%2B/=&y=2", f"https://h/a.tif?x=1&{k}=***&y=2")
            for k in SECRET_KEYS
        ],
        # a whole Azure SAS token
        (
            "https://acct.blob.core.windows.net/c/a.tif?sv=2022-11-02&ss=b&srt=o&sp=r"
            f"&se=2024-01-01T00:00:00Z&st=2023-01-01T00:00:00Z&spr=https&sig={SECRET}%3D",
            "https://acct.blob.core.windows.net/c/a.tif?sv=***&ss=***&srt=***&sp=***"
            "&se=***&st=***&spr=***&sig=***",
        ),
        # printed options and headers
        (f"{{'key': 'AKIA', 'secret': '{SECRET}/x'}}", "{'key': '***', 'secret': '***'}"),
        (f'{{"token": "{SECRET}", "anon": false}}', '{"token": "***", "anon": false}'),
        (f"Authorization: Bearer {SECRET}.abc-def", "Authorization: Bearer ***"),
        # nothing to hide: unchanged
        ("/data/run_1/img_t0.tif", "/data/run_1/img_t0.tif"),
        ("s3://bucket/key/img.tif", "s3://bucket/key/img.tif"),
        ("https://host/a.tif?x=1", "https://host/a.tif?x=1"),
        ("https://host/a.tif?x=1&page=2#top", "https://host/a.tif?x=1&page=2#top"),
        ("step gaussian: sigma=0 is not valid", "step gaussian: sigma=0 is not valid"),
        ("expected DIM=SIZE[,DIM=SIZE], got 'Z=0'", "expected DIM=SIZE[,DIM=SIZE], got 'Z=0'"),
        ("a@b.tif in /data/mail@x", "a@b.tif in /data/mail@x"),  # '@' without a scheme
        ("expected key=value, got 'how'", "expected key=value, got 'how'"),  # not in a query
        (f"S3FileSystem(token={SECRET}, anon=False)", "S3FileSystem(token=***, anon=False)"),
    ],
)  # fmt: skip
def test_redact_table(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact(expected) == expected  # idempotent: an error pickles through it again


def test_error_messages_are_redacted_one_line_and_still_pickle() -> None:
    exc = NoImagesError(f"'https://u:{SECRET}@h/a\nb.tif?token={SECRET}' does not exist")
    assert SECRET not in str(exc) and "\n" not in str(exc)
    assert str(exc) == "'https://***@h/a\\nb.tif?token=***' does not exist"
    back = pickle.loads(pickle.dumps(exc))
    assert type(back) is NoImagesError and str(back) == str(exc)
    assert isinstance(back, FileNotFoundError)
    err = CorruptFileError("img\r\x1b[2J.tif: not a TIFF")  # a terminal escape in a name
    assert str(err) == "img\\r\\x1b[2J.tif: not a TIFF" and isinstance(err, OSError)
    assert for_output("plain text") == "plain text"


def test_a_file_name_with_a_newline_does_not_split_the_error(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "src"
    folder.mkdir()
    (folder / "bad\nname.tif").write_text("not a tiff")
    code = main(["info", str(folder)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("ndstack: error: ")
    assert "bad\\nname.tif" in err


@pytest.fixture
def http_source(tmp_path: Path):
    """A folder of TIFFs served over HTTP on 127.0.0.1; the URL carries a password."""
    pytest.importorskip("aiohttp")
    root = tmp_path / "srv"
    write_files(root / "data", [f"img_t{t}.tif" for t in range(2)], lambda n: np.ones((4, 5), "u1"))

    with serve_http(root) as url:
        yield url.replace("http://", f"http://user:pa%2Fss%40{SECRET}@") + "/data/"


def _files_holding(folder: Path, text: str) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


def test_a_password_in_a_url_reaches_no_output(http_source: str, tmp_path: Path, capsys) -> None:
    arr = ndstack.open(http_source)
    assert arr.shape == (2, 4, 5)
    d = ndstack.info(arr)
    assert SECRET not in json.dumps(d) and d["source"].startswith("http://***@127.0.0.1")
    assert SECRET not in ndstack.format_info(d)
    for args in (["info", http_source], ["info", http_source, "--json"]):
        assert main(args) == 0
        out, err = capsys.readouterr()
        assert SECRET not in out + err and "***@127.0.0.1" in out
    store = tmp_path / "out.ome.zarr"
    assert main(["convert", http_source, str(store), "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert SECRET not in out + err
    assert _files_holding(tmp_path / "out.ome.zarr", SECRET) == []
    assert _files_holding(tmp_path, SECRET) == []  # records beside the store too
    assert main(["info", http_source + "nothing-here/"]) == 2
    err = capsys.readouterr().err
    assert SECRET not in err and "***@127.0.0.1" in err


def test_an_unfinished_record_holds_no_password(http_source, tmp_path, monkeypatch) -> None:
    """The record beside a store, read while it exists (an interrupted run)."""
    import dask

    real = ndstack._zarr.tasks._write_block

    def stop(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr("ndstack._zarr.tasks._write_block", stop)
    with pytest.raises(KeyboardInterrupt), dask.config.set(scheduler="synchronous"):
        ndstack.to_zarr(ndstack.open(http_source), tmp_path / "cut.zarr")
    record = tmp_path / ".cut.zarr.ndstack"
    assert (record / "manifest.json").exists()
    assert _files_holding(tmp_path, SECRET) == []
    monkeypatch.setattr("ndstack._zarr.tasks._write_block", real)
    ndstack.to_zarr(ndstack.open(http_source), tmp_path / "cut.zarr")  # resumes
    assert _files_holding(tmp_path, SECRET) == []


def test_a_password_in_a_url_stays_out_of_attrs(http_source: str) -> None:
    arr = ndstack.open(http_source)
    assert SECRET not in repr(arr.attrs)
    assert int(arr.sum()) == 2 * 4 * 5  # the files are still read, with the credentials


def test_every_ndstack_error_goes_through_the_one_redaction() -> None:
    import ndstack.errors as errors

    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, NdstackError)
        assert SECRET not in str(cls(f"https://u:{SECRET}@h/x"))
