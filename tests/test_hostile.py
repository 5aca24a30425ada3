"""Hostile stores: many mutations of one valid store; no command ever prints a traceback.

Each mutation damages one thing a store's metadata, record or chunks can carry. Every
CLI command that reads a store (as a source or as a destination) must answer with exit
code 0, 1 or 2 and, on error, one line naming what is wrong: never a traceback, never
a hang, never a write outside the store.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import ndstack
from ndstack.cli import main

from .conftest import snapshot, write_files


def _edit(path: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(store: Path) -> None:
        file = store / path
        meta = json.loads(file.read_text())
        change(meta)
        file.write_text(json.dumps(meta))

    return apply


def _write(path: str, text: str | bytes) -> Callable[[Path], None]:
    def apply(store: Path) -> None:
        file = store / path
        if isinstance(text, bytes):
            file.write_bytes(text)
        else:
            file.write_text(text)

    return apply


def _set(*keys: str, value) -> Callable[[dict], None]:
    def change(meta: dict) -> None:
        node = meta
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value

    return change


def _first_chunk(store: Path) -> Path:
    return next(p for p in sorted((store / "0" / "c").rglob("*")) if p.is_file())


def _garble_chunk(store: Path) -> None:
    chunk = _first_chunk(store)
    chunk.write_bytes(b"\x02\x01" + bytes(len(chunk.read_bytes()) - 2))


def _remove_chunk(store: Path) -> None:
    _first_chunk(store).unlink()


def _folder_named_zarr_json(store: Path) -> None:
    (store / "0" / "zarr.json").unlink()
    (store / "0" / "zarr.json").mkdir()


def _unfinished_garbage(store: Path) -> None:
    (store / ".ndstack-unfinished").write_text("{broken")


def _record_garbage(store: Path) -> None:
    (store / ".ndstack-unfinished").write_text(json.dumps({"store": "x", "written": ["0"]}))
    record = store.parent / f".{store.name}.ndstack"
    (record / "done").mkdir(parents=True, exist_ok=True)
    (record / "manifest.json").write_text("not json at all")


def _outside(store: Path) -> Path:
    """An empty folder beside the store that nothing may ever write into."""
    folder = store.parent / "outside"
    folder.mkdir(exist_ok=True)
    return folder


def _symlink_level(store: Path) -> None:
    shutil.rmtree(store / "1")
    (store / "1").symlink_to(_outside(store), target_is_directory=True)


def _unlisted_symlink_level(store: Path) -> None:
    """A level the store does not list as its own, linked out of the store."""
    _symlink_level(store)
    meta = json.loads((store / "zarr.json").read_text())
    meta["attributes"]["ndstack"]["written"].remove("1")
    (store / "zarr.json").write_text(json.dumps(meta))


def _symlinked_record(store: Path) -> None:
    (store / ".ndstack-unfinished").write_text(json.dumps({"store": "x", "written": ["0"]}))
    (store.parent / f".{store.name}.ndstack").symlink_to(_outside(store), target_is_directory=True)


ATTRS = ("attributes",)
MS = (*ATTRS, "ome", "multiscales")
GRID = ("chunk_grid", "configuration", "chunk_shape")


def _ms(change: Callable[[dict], None]) -> Callable[[Path], None]:
    """Change the first multiscale of the root image."""
    return _edit("zarr.json", lambda m: change(m["attributes"]["ome"]["multiscales"][0]))


def _dataset(path) -> Callable[[Path], None]:
    return _ms(lambda ms: ms["datasets"][0].update(path=path))


MUTATIONS: dict[str, Callable[[Path], None]] = {
    "root not json": _write("zarr.json", "{not json"),
    "root empty": _write("zarr.json", ""),
    "root a list": _write("zarr.json", "[]"),
    "root deeply nested": _write("zarr.json", "[" * 100_000 + "]" * 100_000),
    "root binary": _write("zarr.json", b"\xff\xfe\x00garbage"),
    "node type banana": _edit("zarr.json", _set("node_type", value="banana")),
    "attributes a list": _edit("zarr.json", _set("attributes", value=[1, 2])),
    "ome a string": _edit("zarr.json", _set(*ATTRS, "ome", value="x")),
    "multiscales a string": _edit("zarr.json", _set(*MS, value="x")),
    "multiscales empty": _edit("zarr.json", _set(*MS, value=[])),
    "datasets missing": _ms(lambda ms: ms.pop("datasets")),
    "dataset path ..": _dataset("../x"),
    "dataset path absolute": _dataset("/etc"),
    "dataset path a number": _dataset(3),
    "axes wrong": _ms(lambda ms: ms.update(axes=5)),
    "ndstack a string": _edit("zarr.json", _set(*ATTRS, "ndstack", value="x")),
    "ndstack dims a number": _edit("zarr.json", _set(*ATTRS, "ndstack", "dims", value=7)),
    "ndstack coords wrong": _edit(
        "zarr.json", _set(*ATTRS, "ndstack", "coords", value={"T": {"dims": 1}})
    ),
    "ndstack written escapes": _edit(
        "zarr.json", _set(*ATTRS, "ndstack", "written", value=["..", "/"])
    ),
    "level negative shape": _edit("0/zarr.json", _set("shape", value=[-1, 3, 16, 20])),
    "level shape strings": _edit("0/zarr.json", _set("shape", value=["a", "b"])),
    "level zero chunks": _edit("0/zarr.json", _set(*GRID, value=[0, 0, 0, 0])),
    "level chunk rank": _edit("0/zarr.json", _set(*GRID, value=[1])),
    "level bad dtype": _edit("0/zarr.json", _set("data_type", value="float128x")),
    "level bad fill": _edit("0/zarr.json", _set("fill_value", value="abc")),
    "level bad codec": _edit("0/zarr.json", _set("codecs", value=[{"name": "nope"}])),
    "level 1 absurd": _edit("1/zarr.json", _set("shape", value=[10**9] * 4)),
    "level 1 other rank": _edit("1/zarr.json", _set("shape", value=[2, 3])),
    "level 0 not json": _write("0/zarr.json", "{"),
    "level 0 a folder": _folder_named_zarr_json,
    "chunk garbled": _garble_chunk,
    "chunk missing": _remove_chunk,
    "unfinished marker garbage": _unfinished_garbage,
    "record garbage": _record_garbage,
    "level a symlink": _symlink_level,
    "unlisted level a symlink": _unlisted_symlink_level,
    "record a symlink": _symlinked_record,
}


@pytest.fixture(scope="module")
def valid(tmp_path_factory) -> tuple[Path, Path]:
    """A source folder and a valid two-level store written from it."""
    root = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(1)
    write_files(
        root / "src",
        [f"img_t{t}.tif" for t in range(4)],
        lambda n: rng.integers(0, 999, (3, 16, 20), dtype=np.uint16),
    )
    ndstack.to_zarr(ndstack.open(root / "src"), root / "valid.zarr", levels=2)
    return root / "src", root / "valid.zarr"


@pytest.fixture(params=sorted(MUTATIONS))
def hostile(request, valid, tmp_path: Path) -> tuple[Path, Path, str]:
    """A damaged copy of the valid store (one mutation per test)."""
    src, store = valid
    copy = tmp_path / "hostile.zarr"
    shutil.copytree(store, copy, symlinks=True)
    MUTATIONS[request.param](copy)
    return src, copy, request.param


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    code = main(args)  # an exception escaping main is the failure this test looks for
    err = capsys.readouterr().err
    assert isinstance(code, int) and code in (0, 1, 2), (args, code, err)
    assert "Traceback" not in err, err
    if code == 2:
        lines = [line for line in err.splitlines() if line.startswith("ndstack: error:")]
        assert len(lines) == 1, err
    return code, err


def test_no_command_prints_a_traceback_for_a_hostile_store(hostile, tmp_path, capsys) -> None:
    src, store, _ = hostile
    outside = snapshot(src)
    run_cli(["info", str(store)], capsys)
    run_cli(["convert", str(store), str(tmp_path / "out.zarr"), "--quiet"], capsys)
    run_cli(["verify", str(src), str(store)], capsys)
    run_cli(["verify", str(src), str(store), "--all"], capsys)
    run_cli(["preview", str(store), "-o", str(tmp_path / "p.png")], capsys)
    run_cli(["convert", str(src), str(store), "--quiet"], capsys)  # as destination
    run_cli(["convert", str(src), str(store), "--quiet", "--overwrite"], capsys)
    assert snapshot(src) == outside  # the source is only ever read
    beside = tmp_path / "outside"
    assert not beside.exists() or list(beside.iterdir()) == []  # nothing written out of it


def test_damage_is_named(valid, tmp_path, capsys) -> None:
    """Spot checks that the one line names the damaged file."""
    src, store = valid
    for name, needle in [
        ("root not json", "zarr.json: not valid JSON"),
        ("level 1 absurd", "does not fit under level 0"),
        ("dataset path ..", "leaves the image"),
        ("chunk missing", "chunk 0/c/0/0/0/0 is missing"),
        ("level bad dtype", "0/zarr.json"),
    ]:
        copy = tmp_path / name.replace(" ", "_")
        shutil.copytree(store, copy)
        MUTATIONS[name](copy)
        code, err = run_cli(["verify", str(src), str(copy), "--all"], capsys)
        assert code in (1, 2) and needle in err, (name, err)
