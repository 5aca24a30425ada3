"""The napari plugin: manifest, reader through npe2, laziness; napari itself optional."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import ndstack
from ndstack._napari import get_reader, layer_data

from .conftest import lls_name


@pytest.fixture
def make_viewer():
    """``make_viewer()``: a napari viewer, shown (under xvfb-run: hidden canvases never
    paint, and removing layers of a hidden one can crash), closed after the test;
    skips where napari or a display is missing."""
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb" if os.environ.get("DISPLAY") else "offscreen")
    made = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        napari = pytest.importorskip("napari")

        def make():
            try:
                viewer = napari.Viewer(show=True)
            except Exception as exc:  # pragma: no cover - no Qt platform or no OpenGL
                pytest.skip(f"napari cannot start here: {exc}")
            made.append(viewer)
            return viewer

        yield make
        for viewer in made:
            if getattr(viewer.window, "_qt_window", None) is not None:  # still open
                viewer.close()


def _npe2():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # npe2's own pydantic notices
        return pytest.importorskip("npe2")


def test_manifest_validates_with_npe2() -> None:
    _npe2()
    npe2_cli = Path(sys.executable).parent / "npe2"
    proc = subprocess.run(
        [str(npe2_cli), "validate", "ndstack"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "valid" in proc.stdout


def test_reader_declines_what_is_not_its_own(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty").mkdir()
    assert get_reader(str(tmp_path / "notes.txt")) is None
    assert get_reader(str(tmp_path / "empty")) is None
    assert get_reader([str(tmp_path / "notes.txt")]) is None


def test_reader_through_npe2_gives_channel_layers_lazily(lls, monkeypatch) -> None:
    npe2 = _npe2()
    from ndstack import _tiff

    folder, truth = lls
    reads = []
    real = _tiff.TiffReader.read

    def counting(self, path, sel):
        out = real(self, path, sel)
        reads.append(out.shape)
        return out

    monkeypatch.setattr(_tiff.TiffReader, "read", counting)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        npe2.PluginManager.instance().discover()  # finds ndstack's entry point
        layers = npe2.read([str(folder)], stack=False, plugin_name="ndstack")
    assert len(layers) == 1
    data, meta, kind = layers[0]
    assert kind == "image" and isinstance(data, da.Array) and data.shape == (4, 3, 6, 20, 24)
    assert meta["channel_axis"] == 1 and meta["name"] == ["488nm", "560nm", "642nm"]
    assert meta["scale"] == pytest.approx([1.0, 0.4, 0.104, 0.104])
    assert meta["axis_labels"] == ["T", "Z", "Y", "X"] and meta["multiscale"] is False
    assert len(meta["contrast_limits"]) == 3
    # contrast from one plane per channel: 3 reads of one page each, nothing more
    assert len(reads) == 3 and all(shape == (1, 20, 24) for shape in reads)
    np.testing.assert_array_equal(np.asarray(data[2, 1]), truth[(2, 1)])


@pytest.mark.parametrize("fmt", ["ome-zarr", "ome-zarr-0.4"])
def test_reader_on_a_pyramid_store_is_multiscale(tmp_path: Path, fmt: str) -> None:
    rng = np.random.default_rng(1)
    data = rng.integers(0, 500, size=(2, 1100, 700), dtype=np.uint16)
    arr = xr.DataArray(
        da.from_array(data, chunks=(1, 1100, 700)),
        dims=("C", "Y", "X"),
        coords={"C": ["DAPI", "GFP"]},
        attrs={"pixel_size": {"Y": 0.5, "X": 0.5}},
    )
    ndstack.to_zarr(arr, tmp_path / "p.zarr", format=fmt)
    assert get_reader(str(tmp_path / "p.zarr")) is not None
    ((levels, meta, _),) = layer_data(str(tmp_path / "p.zarr"))
    assert meta["multiscale"] is True and [lv.shape for lv in levels] == [
        (2, 1100, 700),
        (2, 550, 350),
        (2, 275, 175),
    ]
    assert meta["name"] == ["DAPI", "GFP"] and meta["scale"] == [0.5, 0.5]


def test_reader_on_a_store_of_positions_is_one_level(tmp_path: Path) -> None:
    """Image folders 0, 1, 2 of the bioformats2raw layout are positions, not levels."""
    data = np.arange(3 * 2 * 2 * 2 * 6 * 8, dtype=np.uint16).reshape(3, 2, 2, 2, 6, 8)
    dims = ("P", "T", "C", "Z", "Y", "X")  # six dims: P splits the data into images
    arr = xr.DataArray(da.from_array(data, chunks=(1, 1, 1, 2, 6, 8)), dims=dims)
    ndstack.to_zarr(arr, tmp_path / "pos.zarr")
    assert (tmp_path / "pos.zarr" / "2" / "0").is_dir()
    ((layer, meta, _),) = layer_data(str(tmp_path / "pos.zarr"))
    assert meta["multiscale"] is False
    np.testing.assert_array_equal(np.asarray(layer), data)


def test_napari_shows_the_data_headless(lls, tmp_path: Path, monkeypatch) -> None:
    """End to end: napari offscreen, the reader's layers, a screenshot that is not blank.

    ``make test`` runs it under xvfb-run; it skips where napari (ndstack[viewer]), a
    display or an OpenGL driver is missing.
    """
    import os

    # under xvfb-run (make test) Qt draws with OpenGL on the virtual X server; Qt's
    # "offscreen" platform has no OpenGL context, so it is only a fallback
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb" if os.environ.get("DISPLAY") else "offscreen")
    from ndstack import _tiff

    reads: list[tuple[str, tuple[int, ...]]] = []
    real = _tiff.TiffReader.read

    def counting(self, path, sel):
        out = real(self, path, sel)
        reads.append((os.path.basename(path), out.shape))
        return out

    monkeypatch.setattr(_tiff.TiffReader, "read", counting)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        napari = pytest.importorskip("napari")
        folder, _ = lls
        try:
            viewer = napari.Viewer(show=True)  # a hidden window never paints its canvas
        except Exception as exc:  # no Qt platform or no OpenGL
            pytest.skip(f"napari cannot start here: {exc}")
        try:
            from qtpy.QtWidgets import QApplication

            for data, meta, _ in layer_data(str(folder)):
                viewer.add_image(data, **meta)
            for _ in range(20):  # let Qt draw
                QApplication.processEvents()
            names = [layer.name for layer in viewer.layers]
            shot = viewer.screenshot(canvas_only=True)
            # moving the time slider reads one plane per channel, nothing else
            reads.clear()
            viewer.dims.set_current_step(0, 3)
            for _ in range(20):
                QApplication.processEvents()
            slider_reads = list(reads)
        except Exception as exc:
            viewer.close()
            pytest.skip(f"napari cannot render here (no OpenGL driver?): {exc}")
        viewer.close()
    assert names == ["488nm", "560nm", "642nm"]
    # one plane of one file per channel, although napari turns Dask's fusion off
    assert sorted(name for name, _ in slider_reads) == sorted(lls_name(c, 3) for c in range(3))
    assert all(shape == (1, 20, 24) for _, shape in slider_reads), slider_reads
    assert shot.ndim == 3 and shot[..., :3].std() > 1


def test_ndstack_view_adds_the_reader_layers(lls, monkeypatch) -> None:
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "xcb" if os.environ.get("DISPLAY") else "offscreen")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        napari = pytest.importorskip("napari")
        folder, _ = lls
        made = []

        class Recording(napari.Viewer):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, show=False)
                made.append(self)

        monkeypatch.setattr(napari, "Viewer", Recording)
        monkeypatch.setattr(napari, "run", lambda: None)
        try:
            from ndstack._napari import view

            view(str(folder))
        except Exception as exc:
            if not made:
                pytest.skip(f"napari cannot start here: {exc}")
            raise
        finally:
            for v in made:
                layers = [layer.name for layer in v.layers]
                readers = {layer.source.reader_plugin for layer in v.layers}
                v.close()
    assert layers == ["488nm", "560nm", "642nm"]
    assert readers == {"ndstack"}  # napari knows them as ndstack's, as with plugin="ndstack"


def test_the_manifest_names_every_ending_the_reader_takes() -> None:
    from pathlib import Path

    import yaml

    import ndstack
    from ndstack._axes import TIFF_EXTENSIONS

    manifest = yaml.safe_load((Path(ndstack.__file__).parent / "napari.yaml").read_text())
    patterns = set(manifest["contributions"]["readers"][0]["filename_patterns"])
    for ending in TIFF_EXTENSIONS:
        assert {f"*{ending}", f"*{ending.upper()}"} <= patterns


def _hyperstacks(folder: Path, n_t: int = 3) -> None:
    """A folder of multi-channel TIFFs: one ImageJ ZCYX hyperstack per timepoint."""
    import tifffile

    folder.mkdir(parents=True)
    rng = np.random.default_rng(5)
    for t in range(n_t):
        tifffile.imwrite(
            folder / f"cells_t{t:03d}.tif",
            rng.integers(0, 1000, (5, 2, 16, 16), dtype=np.uint16),
            imagej=True,
            resolution=(1 / 0.25, 1 / 0.25),
            metadata={"axes": "ZCYX", "spacing": 1.5, "unit": "um"},
        )


def _napari_viewer(monkeypatch):
    """A hidden napari viewer with napari's settings in memory only (never the user's)."""
    import os

    os.environ.setdefault("QT_QPA_PLATFORM", "xcb" if os.environ.get("DISPLAY") else "offscreen")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        napari = pytest.importorskip("napari")
        from napari import settings

        monkeypatch.setattr(settings, "_SETTINGS", settings.NapariSettings(config_path=None))
        try:
            return napari.Viewer(show=False)
        except Exception as exc:  # no Qt platform
            pytest.skip(f"napari cannot start here: {exc}")


def test_napari_opens_folders_and_stores_with_ndstack_once_chosen(tmp_path, monkeypatch) -> None:
    """napari's own viewer.open, no plugin named: with the one-time choice the README
    documents, a folder of multi-channel TIFFs and a store open with ndstack's reader."""
    folder = tmp_path / "cells"
    _hyperstacks(folder)
    store = tmp_path / "cells.ome.zarr"
    ndstack.to_zarr(ndstack.open(folder), store, progress=False)
    viewer = _napari_viewer(monkeypatch)
    from napari.errors import MultipleReaderError
    from napari.settings import get_settings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # no choice made yet: napari offers ndstack's reader beside its own
            with pytest.raises(MultipleReaderError, match="ndstack"):
                viewer.open(str(folder), plugin=None)
            plugins = get_settings().plugins
            found, shapes = {}, []

            def open_(key: str, path: str) -> None:
                layers = viewer.open(path, plugin=None)
                found[key] = [
                    (layer.name, [float(s) for s in layer.scale], layer.source.reader_plugin)
                    for layer in layers
                ]
                shapes.extend(layer.data.shape for layer in layers)
                viewer.layers.clear()

            plugins.extension2reader = {**plugins.extension2reader, "*/": "ndstack"}
            open_("folder/", f"{folder}{os.sep}")
            open_("folder", str(folder))
            plugins.extension2reader = {"*.zarr/": "ndstack"}  # stores only
            open_("store", str(store))
    finally:
        viewer.close()
    scale = [1.0, 1.5, 0.25, 0.25]  # T, then Z, Y, X from the ImageJ calibration
    want = [("0", scale, "ndstack"), ("1", scale, "ndstack")]  # one layer per channel
    assert found == {"folder/": want, "folder": want, "store": want}
    assert shapes == [(3, 5, 16, 16)] * 6


def test_ndstack_view_layers_are_the_ndstack_readers(tmp_path, monkeypatch) -> None:
    """``ndstack view`` gives what napari's open with plugin="ndstack" gives, and napari
    records ndstack as the reader of each layer."""
    from ndstack._napari import add_layers

    folder = tmp_path / "cells"
    _hyperstacks(folder)
    viewer = _napari_viewer(monkeypatch)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")

            def seen(layers):
                out = [
                    (layer.name, [float(s) for s in layer.scale], list(layer.contrast_limits),
                     layer.source.reader_plugin, layer.source.path)
                    for layer in layers
                ]  # fmt: skip
                viewer.layers.clear()
                return out

            mine_seen = seen(add_layers(viewer, f"{folder}{os.sep}"))
            theirs_seen = seen(viewer.open(f"{folder}{os.sep}", plugin="ndstack"))
    finally:
        viewer.close()
    assert mine_seen == theirs_seen
    assert [s[3] for s in mine_seen] == ["ndstack", "ndstack"]


def test_a_folder_without_channels_is_named_after_the_folder(tmp_path: Path) -> None:
    """``viewer.open("folder/")``: the layer is named "folder", not "" (the trailing /)."""
    import tifffile

    folder = tmp_path / "plane"
    folder.mkdir()
    for t in range(2):
        tifffile.imwrite(folder / f"img_t{t}.tif", np.zeros((8, 8), np.uint16))
    for path in (f"{folder}{os.sep}", str(folder)):
        ((_, meta, _),) = layer_data(path)
        assert meta["name"] == "plane"


def test_view_shows_processed_data_like_the_reader(lls, monkeypatch) -> None:
    """ndstack.view of ANY DataArray: a deskewed, cropped array gets one layer per
    channel named from the coordinates, the deskewed Z spacing as its scale, axis labels,
    lazy data, and the caller's layer options over ndstack's."""
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb" if os.environ.get("DISPLAY") else "offscreen")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        napari = pytest.importorskip("napari")
        folder, _ = lls
        arr = ndstack.open(folder)
        processed = ndstack.ops.crop(ndstack.ops.deskew(arr, angle=31.5), X=(0, 30))
        try:
            viewer = napari.Viewer(show=False)
        except Exception as exc:  # pragma: no cover - no display at all
            pytest.skip(f"napari cannot start here: {exc}")
        try:
            out = ndstack.view(processed, viewer=viewer, block=False, blending="additive")
            assert out is viewer
            assert [layer.name for layer in viewer.layers] == ["488nm", "560nm", "642nm"]
            px = processed.attrs["pixel_size"]
            assert px["Z"] != arr.attrs["pixel_size"]["Z"]  # deskew's own Z spacing
            for layer in viewer.layers:
                assert list(layer.scale) == pytest.approx([1.0, px["Z"], px["Y"], px["X"]])
                assert list(layer.axis_labels) == ["T", "Z", "Y", "X"]
                assert layer.blending == "additive"
                assert isinstance(layer.data, da.Array) and layer.data.shape[-1] == 30
        finally:
            viewer.close()


def test_view_and_process_parse_steps_alike_and_refuse_bad_ones_first(lls, tmp_path) -> None:
    from ndstack.cli import _parsed_steps, _parser

    folder, _ = lls
    steps = ["--deskew", "angle=31.5", "--crop", "X=0:10", "--project", "dim=Z"]
    viewed = _parser().parse_args(["view", str(folder), *steps])
    processed = _parser().parse_args(["process", str(folder), str(tmp_path / "o.zarr"), *steps])
    assert viewed.steps == processed.steps and _parsed_steps(viewed) == _parsed_steps(processed)
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["QT_QPA_PLATFORM"] = "nonexistent-platform"  # a window would fail, not this
    proc = subprocess.run(
        [sys.executable, "-m", "ndstack.cli", "view", str(folder), "--deskew", "angle=95"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "angle" in proc.stderr


def test_view_computes_one_timepoint_then_only_what_the_sliders_ask(lls) -> None:
    """deskew -> deconvolve -> crop shown with ndstack.view: opening reads the files of
    one timepoint, once each (the sliders start there); a T step reads the new
    timepoint's files once each; a Z step and going back read nothing (a counting
    reader sees every read)."""
    import collections
    import threading
    import time

    import tifffile

    os.environ.setdefault("QT_QPA_PLATFORM", "xcb" if os.environ.get("DISPLAY") else "offscreen")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        napari = pytest.importorskip("napari")
        from qtpy.QtWidgets import QApplication

        folder, _ = lls
        reads: collections.Counter[str] = collections.Counter()
        lock = threading.Lock()

        def counting(path: str) -> np.ndarray:
            with lock:
                reads[Path(path).name] += 1
            return tifffile.imread(path)

        arr = ndstack.open(folder, reader=counting, file_axes="ZYX", pixel_size={"Z": 0.4,
                           "Y": 0.104, "X": 0.104})  # fmt: skip
        reads.clear()
        psf = np.zeros((3, 3, 3), np.float32)
        psf[1, 1, 1], psf[0, 1, 1], psf[2, 1, 1] = 0.5, 0.25, 0.25
        shown = ndstack.ops.crop(
            ndstack.ops.deconvolve(ndstack.ops.deskew(arr, angle=31.5), psf, iterations=2),
            X=(0, 30),
        )
        try:
            viewer = napari.Viewer(show=False)
        except Exception as exc:  # pragma: no cover - no display at all
            pytest.skip(f"napari cannot start here: {exc}")

        def settle() -> None:
            for _ in range(3):
                QApplication.processEvents()
                time.sleep(0.2)
            QApplication.processEvents()

        def stack(t: int) -> str:
            return f"_stack{t:04d}_"

        try:
            ndstack.view(shown, viewer=viewer, block=False)
            settle()
            assert viewer.dims.current_step[0] == 0
            assert sorted(reads) == sorted(lls_name(c, 0) for c in range(3))
            assert set(reads.values()) == {1}
            reads.clear()
            t_axis = 0
            step = list(viewer.dims.current_step)
            step[t_axis] = 1
            viewer.dims.current_step = tuple(step)
            settle()
            assert all(stack(1) in n for n in reads) and len(reads) == 3, reads
            assert set(reads.values()) == {1}
            reads.clear()
            step[1] += 1  # Z
            viewer.dims.current_step = tuple(step)
            settle()
            step[t_axis] = 0  # back
            viewer.dims.current_step = tuple(step)
            settle()
            assert not reads, reads
        finally:
            viewer.close()


def test_the_readme_workflow_end_to_end_with_a_screenshot(tmp_path: Path) -> None:
    """The README's seed workflow: open -> deskew -> deconvolve -> view, shown for real
    (under xvfb-run) and photographed; the processed frame differs from the raw one, and
    the deskewed one is wider (the shear). With NDSTACK_SCREENSHOT=path the picture is
    kept there: README's docs/view-deskew-deconvolve.png is this test's."""
    from ndstack._demo import write_demo

    os.environ.setdefault("QT_QPA_PLATFORM", "xcb" if os.environ.get("DISPLAY") else "offscreen")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        napari = pytest.importorskip("napari")
        from qtpy.QtWidgets import QApplication

        write_demo(str(tmp_path / "lls"), timepoints=2, shape=(24, 96, 96))
        arr = ndstack.open(tmp_path / "lls", chunks={"Z": 1})
        psf = np.zeros((5, 5, 5), np.float32)
        psf[2, 1:4, 1:4], psf[1:4, 2, 2] = 1.0, 1.0
        processed = ndstack.ops.deconvolve(
            ndstack.ops.deskew(arr, angle=31.5), psf / psf.sum(), iterations=5
        )
        shots = []
        for data in (arr, processed):
            try:
                viewer = napari.Viewer(show=True)  # a hidden window never paints its canvas
            except Exception as exc:  # pragma: no cover - no Qt platform or no OpenGL
                pytest.skip(f"napari cannot start here: {exc}")
            try:
                ndstack.view(data, viewer=viewer, block=False)
                viewer.dims.ndisplay = 2
                for _ in range(20):
                    QApplication.processEvents()
                shots.append(viewer.screenshot(canvas_only=True))
                extent = viewer.layers[0].extent.world[1][-1]
            finally:
                viewer.close()
            shots[-1] = (shots[-1], extent)
    (raw, raw_width), (shot, width) = shots
    assert shot.ndim == 3 and shot[..., :3].std() > 1
    assert width > raw_width * 1.3  # deskewed: wider along X
    assert np.abs(shot.astype(int) - raw.astype(int)).mean() > 1
    keep = os.environ.get("NDSTACK_SCREENSHOT")
    if keep:
        import imageio.v3 as iio

        iio.imwrite(keep, shot)


def test_the_steps_panel_renders_saves_cancels_and_resumes(lls, tmp_path: Path, make_viewer):
    """The panel: a step added changes the canvas; a bad step changes nothing and says
    why; Save writes the store `ndstack process` writes with the same steps; a cancelled
    save resumes when saved again."""
    from ndstack._panel import StepsPanel

    viewer = make_viewer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from qtpy.QtWidgets import QApplication

        folder, _ = lls

        def settle() -> None:
            for _ in range(20):
                QApplication.processEvents()

        try:
            ndstack.view(str(folder), viewer=viewer, block=False)
            panel = StepsPanel(viewer)
            viewer.window.add_dock_widget(panel.widget, name="steps")
            assert panel.source == str(folder)
            settle()
            before = viewer.screenshot(canvas_only=True)
            width = viewer.layers[0].data.shape[-1]
            panel.add_step("deskew", "angle=31.5")
            settle()
            after = viewer.screenshot(canvas_only=True)
            assert viewer.layers[0].data.shape[-1] > width
            assert [layer.name for layer in viewer.layers] == ["488nm", "560nm", "642nm"]
            assert np.abs(after.astype(int) - before.astype(int)).mean() > 0.5
            panel.params.setText("angle=95")  # refused: nothing changes, the panel says why
            panel._guard(panel.add_step, "deskew", "angle=95")
            assert panel.steps == [("deskew", "angle=31.5")] and "angle" in panel.status.text()
            # a box drawn on the canvas becomes a crop step in the data's pixels
            scale = viewer.layers[0].scale[-2:]
            viewer.add_shapes(
                [[[4 * scale[0], 6 * scale[1]], [4 * scale[0], 30 * scale[1]],
                  [15 * scale[0], 30 * scale[1]], [15 * scale[0], 6 * scale[1]]]],
                shape_type="rectangle",
            )  # fmt: skip
            panel.crop_to_box()
            assert panel.steps[-1] == ("crop", "Y=4:15,X=6:30")
            assert viewer.layers[-1].data.shape[-2:] == (11, 24)
            panel.remove_step(1)
            panel.add_step("project", "dim=Z")

            # a re-render keeps the sliders where they stood
            viewer.dims.set_current_step(0, 2)  # T
            panel.set_step(0, "angle=30")
            assert viewer.dims.current_step[0] == 2

            # Save: cancelled after its first finished task, saved again: resumed
            panel.remove_step(1)  # the projection: deconvolve the stacks
            panel.add_step("deconvolve", "psf=" + str(_psf_file(tmp_path)) + ",iterations=40")
            expected = tmp_path / "cli.ome.zarr"
            from ndstack.cli import main

            steps = [f"--{n}={t}" for n, t in panel.steps]
            assert main(["process", str(folder), str(expected), *steps, "--quiet"]) == 0
            dest = tmp_path / "panel.ome.zarr"
            from ndstack._panel import _done_markers

            panel.save(str(dest))
            for _ in range(3000):
                if _done_markers(str(dest)) or panel._save.poll() is not None:
                    break
                time.sleep(0.01)
            assert _done_markers(str(dest)), "the save ended before a task was seen"
            panel.cancel_save()
            assert "cancelled" in panel.status.text()
            panel.save(str(dest))
            assert panel.wait_save(timeout=300) == 0, panel.status.text()
            assert "done before" in panel.status.text()  # resumed, not started again
            xr.testing.assert_identical(
                ndstack.open(dest).drop_attrs(), ndstack.open(expected).drop_attrs()
            )
        finally:
            viewer.close()


def _psf_file(tmp_path: Path) -> Path:
    import tifffile

    psf = np.zeros((3, 3, 3), np.float32)
    psf[1, 1, 1], psf[0, 1, 1], psf[2, 1, 1] = 0.5, 0.25, 0.25
    path = tmp_path / "psf.tif"
    tifffile.imwrite(path, psf)
    return path


def test_the_steps_panel_works_on_what_is_shown(lls, tmp_path: Path, make_viewer) -> None:
    """Layers from a list of files have no folder to reopen: the panel says so instead
    of reopening the whole folder; given the DataArray, it processes exactly that (a
    corrected pixel size included) and refuses to save it through the command line."""
    from ndstack._panel import StepsPanel

    viewer = make_viewer()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folder, _ = lls
        try:
            files = sorted(str(p) for p in folder.iterdir())[:3]
            ndstack.view(files, viewer=viewer, block=False)
            panel = StepsPanel(viewer)
            panel._guard(panel.add_step, "crop", "X=0:10")
            assert panel.source is None and "no source" in panel.status.text()
            assert viewer.layers[0].data.shape[-1] == 24  # unchanged
        finally:
            viewer.close()
        viewer = make_viewer()
        try:
            arr = ndstack.open(folder, pixel_size={"Z": 0.8})
            ndstack.view(arr, viewer=viewer, block=False)
            panel = StepsPanel(viewer, data=arr)
            panel.add_step("deskew", "angle=31.5")
            expected = ndstack.ops.deskew(arr, angle=31.5)
            assert viewer.layers[0].data.shape[-1] == expected.sizes["X"]
            panel._guard(panel.save, str(tmp_path / "x.ome.zarr"))
            assert "ndstack.to_zarr" in panel.status.text()
        finally:
            viewer.close()
