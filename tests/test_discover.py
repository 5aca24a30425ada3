"""Discovery: a path that exists is what it names, glob characters and all."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ndstack
from ndstack._discover import discover
from ndstack.cli import main
from ndstack.errors import NoImagesError

from .conftest import write_files


def _stack(folder: Path, n: int, value: int) -> None:
    write_files(folder, [f"img_t{t}.tif" for t in range(n)], lambda _: np.full((3, 4), value, "u1"))


@pytest.mark.parametrize("name", ["run[1]", "a*b", "x?", "[ab]", "run[!1]"])
def test_a_folder_named_with_glob_characters_opens_as_that_folder(tmp_path: Path, name) -> None:
    _stack(tmp_path / name, 3, 7)
    for decoy in ("run1", "axb", "xy", "a", "b", "run2"):  # what a glob would match instead
        _stack(tmp_path / decoy, 2, 1)
    src = discover(tmp_path / name)
    assert src.root == str(tmp_path / name)
    assert src.names == ("img_t0.tif", "img_t1.tif", "img_t2.tif")
    arr = ndstack.open(tmp_path / name)
    assert arr.shape == (3, 3, 4) and int(arr.max()) == 7


def test_glob_characters_in_an_existing_folder_of_a_glob_are_literal(tmp_path: Path) -> None:
    _stack(tmp_path / "run[1]", 3, 7)
    _stack(tmp_path / "run1", 2, 1)
    src = discover(str(tmp_path / "run[1]" / "img_t[01].tif"))
    assert src.root == str(tmp_path / "run[1]") and src.names == ("img_t0.tif", "img_t1.tif")
    assert discover(str(tmp_path / "run[1]" / "*.tif")).names[-1] == "img_t2.tif"
    assert len(discover(str(tmp_path / "run*" / "*.tif")).names) == 5  # a real glob still globs


def test_a_file_named_with_glob_characters(tmp_path: Path, capsys) -> None:
    _stack(tmp_path, 1, 5)
    (tmp_path / "img_t0.tif").rename(tmp_path / "img[0].tif")
    assert discover(str(tmp_path / "img[0].tif")).names == ("img[0].tif",)
    assert main(["info", str(tmp_path / "img[0].tif")]) == 0
    assert "1 file" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://user:pa/ss@word@127.0.0.1:1/x/", "cannot list 'http://***@127.0.0.1:1/x/'"),
        ("nosuchprotocol://bucket/x", "nosuchprotocol://bucket/x: Protocol not known"),
    ],
)
def test_urls_that_cannot_be_listed_are_one_line(url: str, message: str, capsys) -> None:
    """An invalid URL or an unknown protocol: a traceback before."""
    with pytest.raises(NoImagesError, match=message.replace("*", r"\*").replace("?", r"\?")):
        discover(url)
    assert main(["info", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "pa/ss" not in err


def test_a_list_of_http_urls_opens_like_the_folder(tmp_path: Path) -> None:
    """The EM analysis's input: a list of URLs (``//`` kept, names cut right)."""
    pytest.importorskip("aiohttp")
    from .conftest import serve_http, write_files

    names = [f"sub{p}/img_t{t}.tif" for p in range(2) for t in range(3)]
    write_files(tmp_path / "srv", names, lambda n: np.full((4, 5), len(n) + int(n[-5]), "u2"))
    local = ndstack.open(tmp_path / "srv")
    with serve_http(tmp_path / "srv") as url:
        arr = ndstack.open([f"{url}/{n}" for n in names])
        assert arr.dims == local.dims and arr.shape == local.shape
        np.testing.assert_array_equal(arr.values, local.values)
        with pytest.raises(NoImagesError, match=r"127\.0\.0\.1:\d+/sub0/gone\.tif does not exist"):
            ndstack.open([f"{url}/{names[0]}", f"{url}/sub0/gone.tif"])


def test_urls_of_two_filesystems_are_refused() -> None:
    with pytest.raises(NoImagesError, match="another filesystem"):
        ndstack.open(["memory://a/x.tif", "http://127.0.0.1:1/y.tif"])
