"""The napari panel: the processing steps shown on the canvas, and "Save as OME-Zarr".

A dock widget (npe2 contribution ``ndstack.steps_panel``, or :func:`steps_panel`) that
holds the source the layers came from and a list of steps in the grammar of
``ndstack process`` (``deskew angle=31.5``; one parser for the CLI, ``view`` and this
panel). Adding, removing, moving or changing a step re-renders the layers lazily, at the
position the sliders stand: only the shown timepoint is computed.

"Save as OME-Zarr" runs ``ndstack process SOURCE DEST --step ...`` in a child process:
the full conversion of the processed data, with the writer's guarantees (one run per
store, resumable). Cancelling stops that process; saving to the same store again resumes
it. The bar shows the finished tasks (the done markers of the run's record).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from typing import Any

import numpy as np

from ._steps import STEPS, parse_params, run_steps

__all__ = ["StepsPanel", "steps_panel"]

#: the child that saves: ndstack's command line, its arguments read from stdin
_CHILD = "import json, sys; from ndstack.cli import main; sys.exit(main(json.load(sys.stdin)))"


def steps_panel(napari_viewer: Any) -> Any:
    """npe2 widget command: the panel's widget, over the source of the viewer's ndstack
    layers (the panel object rides on the widget, which keeps it alive)."""
    panel = StepsPanel(napari_viewer)
    panel.widget.ndstack_panel = panel
    return panel.widget


def _qt() -> Any:
    from qtpy import QtCore, QtWidgets

    return QtCore, QtWidgets


class StepsPanel:
    """The steps panel. Its ``widget`` is the Qt widget napari docks; its methods are
    what the buttons call (and what scripts and tests can call)."""

    def __init__(
        self, viewer: Any, source: Any = None, pattern: str | None = None, *, data: Any = None
    ) -> None:
        """``source``: the path, glob or URL the steps start from (default: that of the
        viewer's ndstack layers); or ``data``: a DataArray built in Python (the steps
        start from it as it is; saving then needs ``source`` too, to rebuild it)."""
        QtCore, QtWidgets = _qt()
        self.viewer = viewer
        self.data = data
        self.source = source if source is not None or data is not None else _layer_source(viewer)
        self.pattern = pattern
        self.steps: list[tuple[str, str]] = []  # (name, "k=v,k=v") as typed
        self._save: subprocess.Popen[bytes] | None = None
        self._save_dest: str | None = None
        self._log: Any = None  # the saving child's output (a temporary file)
        self._total = 0

        w = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(w)
        self.list = QtWidgets.QListWidget()
        layout.addWidget(self.list)
        row = QtWidgets.QHBoxLayout()
        self.kind = QtWidgets.QComboBox()
        self.kind.addItems(list(STEPS))
        self.params = QtWidgets.QLineEdit()
        self.params.setPlaceholderText("angle=31.5 (k=v,k=v)")
        add = QtWidgets.QPushButton("Add")
        add.clicked.connect(lambda: self._guard(self.add_step, self.kind.currentText(),
                                                self.params.text()))  # fmt: skip
        row.addWidget(self.kind)
        row.addWidget(self.params)
        row.addWidget(add)
        layout.addLayout(row)
        buttons = QtWidgets.QHBoxLayout()
        for text, action in (("Remove", self._remove_selected), ("Up", lambda: self._move(-1)),
                             ("Down", lambda: self._move(1))):  # fmt: skip
            b = QtWidgets.QPushButton(text)
            b.clicked.connect(lambda _=False, a=action: self._guard(a))
            buttons.addWidget(b)
        layout.addLayout(buttons)
        crop = QtWidgets.QPushButton("Crop to the drawn box")
        crop.setToolTip("draw a rectangle with a Shapes layer, then add it as a crop step")
        crop.clicked.connect(lambda: self._guard(self.crop_to_box))
        layout.addWidget(crop)
        save = QtWidgets.QPushButton("Save as OME-Zarr...")
        save.clicked.connect(lambda: self._guard(self._ask_and_save))
        cancel = QtWidgets.QPushButton("Cancel saving")
        cancel.clicked.connect(lambda: self._guard(self.cancel_save))
        layout.addWidget(save)
        layout.addWidget(cancel)
        self.progress = QtWidgets.QProgressBar()
        layout.addWidget(self.progress)
        self.status = QtWidgets.QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.widget = w
        self._timer = QtCore.QTimer(w)
        self._timer.setInterval(300)
        self._timer.timeout.connect(self.poll_save)
        w.destroyed.connect(self._stop_child)  # the dock closed: stop saving

    # ------------------------------------------------------------------ steps
    def add_step(self, name: str, params: str = "") -> None:
        """Add a step (checked first: a bad one changes nothing) and re-render."""
        parse_params(name, params)
        self.steps.append((name, params))
        self.render()

    def remove_step(self, index: int) -> None:
        del self.steps[index]
        self.render()

    def move_step(self, index: int, by: int) -> None:
        j = index + by
        if 0 <= j < len(self.steps):
            self.steps[index], self.steps[j] = self.steps[j], self.steps[index]
            self.render()

    def set_step(self, index: int, params: str) -> None:
        """Change a step's parameters (checked first) and re-render."""
        parse_params(self.steps[index][0], params)
        self.steps[index] = (self.steps[index][0], params)
        self.render()

    def crop_to_box(self) -> None:
        """Add a crop step from the last rectangle drawn on the canvas (a Shapes layer):
        its Y and X extent in the pixels of the data shown, clipped to the data."""
        shapes = [lay for lay in self.viewer.layers if type(lay).__name__ == "Shapes"]
        if not shapes or not len(shapes[-1].data):
            raise ValueError("draw a rectangle first (a Shapes layer, the rectangle tool)")
        image = next(lay for lay in self.viewer.layers if _is_ndstack(lay))
        corners = shapes[-1].data[-1]  # world coordinates of the last shape
        pixels = [image.world_to_data(c) for c in corners]
        y = [p[-2] for p in pixels]
        x = [p[-1] for p in pixels]
        ny, nx = image.data.shape[-2:] if not image.multiscale else image.data[0].shape[-2:]
        y0, y1 = max(0, int(min(y))), min(ny, int(np.ceil(max(y))))
        x0, x1 = max(0, int(min(x))), min(nx, int(np.ceil(max(x))))
        if y1 <= y0 or x1 <= x0:
            raise ValueError("the box lies outside the data")
        self.add_step("crop", f"Y={y0}:{y1},X={x0}:{x1}")

    def processed(self) -> Any:
        """The source (or ``data``) with the steps applied, lazily."""
        from ._open import open as _open

        if self.data is None and self.source is None:
            raise ValueError(
                "no source to process: the layers were not read from a path or URL; "
                "give one, or the DataArray (StepsPanel(viewer, data=arr))"
            )
        parsed = [(name, parse_params(name, text)) for name, text in self.steps]
        base = self.data if self.data is not None else _open(self.source, pattern=self.pattern)
        return run_steps(base, parsed)

    def render(self) -> None:
        """Replace ndstack's layers by the processed data's (lazy: what is shown), with
        the sliders where they stood."""
        from ._napari import add_layers

        arr = self.processed()
        old = [lay for lay in self.viewer.layers if _is_ndstack(lay)]
        at = _slider_position(self.viewer, old[0]) if old else None
        for layer in old:
            self.viewer.layers.remove(layer)
        add_layers(self.viewer, arr, at=at)
        self.list.clear()
        self.list.addItems([f"{name} {text}".strip() for name, text in self.steps])
        self.status.setText(f"{len(self.steps)} step(s); dims {dict(arr.sizes)}")

    def _remove_selected(self) -> None:
        row = self.list.currentRow()
        if row >= 0:
            self.remove_step(row)

    def _move(self, by: int) -> None:
        row = self.list.currentRow()
        if row >= 0:
            self.move_step(row, by)
            self.list.setCurrentRow(row + by)

    # ------------------------------------------------------------------ saving
    def save(self, dest: str, *, overwrite: bool = False) -> None:
        """Start the conversion of the processed data to ``dest`` in a child process."""
        if self._save is not None and self._save.poll() is None:
            raise RuntimeError("a save is running; cancel it first")
        if self.data is not None or not isinstance(self.source, (str, os.PathLike)):
            raise ValueError(
                "saving runs 'ndstack process' on a source path or URL: this panel works on "
                "a DataArray built in Python; save it with ndstack.to_zarr"
            )
        arr = self.processed()  # the steps checked here, and the tasks counted
        self._total = max(1, int(_blocks(arr)))
        args = ["process", os.fspath(self.source), os.fspath(dest), "--quiet"]
        if self.pattern:
            args += ["--pattern", self.pattern]
        for name, text in self.steps:
            args.append(f"--{name.replace('_', '-')}" + (f"={text}" if text else ""))
        from ._zarr.paths import options_of

        for url in (os.fspath(self.source), os.fspath(dest)):  # the options given here
            for key, value in options_of(url).items():
                args.append(f"--storage-option={key}={value}")
        if overwrite:
            args.append("--overwrite")
        self._save_dest = os.fspath(dest)
        self._log = tempfile.TemporaryFile()
        # the command line goes through stdin: a URL's password or a storage option never
        # shows in the process list
        self._save = subprocess.Popen(
            [sys.executable, "-c", _CHILD], stdin=subprocess.PIPE,
            stdout=self._log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        assert self._save.stdin is not None
        self._save.stdin.write(json.dumps(args).encode())
        self._save.stdin.close()
        self.progress.setValue(0)
        self.status.setText(f"saving to {self._save_dest} ...")
        self._timer.start()

    def poll_save(self) -> int | None:
        """Update the bar; the child's exit code once it ended, else None."""
        if self._save is None:
            return None
        done = _done_markers(self._save_dest or "")
        self.progress.setValue(min(100, int(100 * done / self._total)))
        code = self._save.poll()
        if code is None:
            return None
        self._timer.stop()
        self._log.seek(0)
        text = self._log.read().decode(errors="replace").strip().splitlines()
        self._log.close()
        self._save = None
        if code == 0:
            self.progress.setValue(100)
            self.status.setText(text[-1] if text else f"saved {self._save_dest}")
        else:
            self.status.setText(text[-1] if text else f"saving failed (exit code {code})")
        return code

    def wait_save(self, timeout: float | None = None) -> int | None:
        if self._save is None:
            return None
        self._save.wait(timeout)
        return self.poll_save()

    def cancel_save(self) -> None:
        """Stop a running save; saving to the same store again resumes it."""
        self._timer.stop()
        if self._save is None:
            return
        if self._save.poll() is not None:  # it ended meanwhile: say how
            self.poll_save()
            return
        self._save.terminate()
        self._save.wait()
        self._log.close()
        self._save = None
        self.status.setText(f"cancelled: save to {self._save_dest} again to resume")

    def _stop_child(self, *_: Any) -> None:
        """The widget is gone (its Qt objects with it): stop a running save, touching
        nothing of Qt."""
        if self._save is not None and self._save.poll() is None:
            self._save.terminate()
            self._save.wait()

    def _ask_and_save(self) -> None:  # pragma: no cover - a person picks the folder
        _, QtWidgets = _qt()
        dest = QtWidgets.QFileDialog.getSaveFileName(self.widget, "Save as OME-Zarr")[0]
        if dest:
            self.save(dest if dest.endswith(".zarr") else dest + ".ome.zarr")

    def _guard(self, action: Any, *args: Any) -> None:
        """Run a button's action; a bad step or option is shown, not raised into Qt."""
        try:
            action(*args)
        except Exception as exc:
            from ._redact import for_output

            self.status.setText(for_output(str(exc)))


def _is_ndstack(layer: Any) -> bool:
    return getattr(getattr(layer, "source", None), "reader_plugin", None) == "ndstack" or (
        "ndstack" in (getattr(layer, "metadata", None) or {})
    )


def _layer_source(viewer: Any) -> Any:
    """The path or URL the viewer's ndstack layers were read from (napari's record of
    it); None for layers made from a list or a DataArray (what is on screen could not be
    rebuilt from a folder's name)."""
    for layer in viewer.layers:
        if _is_ndstack(layer):
            path = getattr(getattr(layer, "source", None), "path", None)
            if path:
                return path
    return None


def _slider_position(viewer: Any, layer: Any) -> dict[str, int]:
    """Where the sliders stand, as an index per dim of ``layer``."""
    labels = list(layer.axis_labels)
    index = layer.world_to_data(viewer.dims.point[-layer.ndim :])
    return {d: int(np.rint(i)) for d, i in zip(labels, index) if d not in ("Y", "X")}


def _blocks(arr: Any) -> int:
    import math

    return math.prod(arr.data.numblocks)


def _done_markers(dest: str) -> int:
    from ._zarr.paths import join, list_names
    from ._zarr.resume import record_dir

    if not dest:
        return 0
    try:
        return len(list_names(join(record_dir(dest), "done")))
    except Exception:  # the record is made by the child: not there yet, or gone when done
        return 0
