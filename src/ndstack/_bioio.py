"""Vendor and container formats through bioio and its plugins (the ``bioio`` extra).

A folder of ``.czi``, ``.nd2``, ``.lif`` ... files assembles across names like TIFFs do:
each file is probed with ``bioio.BioImage`` (dims, shape, dtype, physical pixel sizes)
and read lazily through its dask data, so a selection reads what the plugin reads for it
(in the chunks the plugin gives). A file with
several scenes of one shape gives them as a leading in-file axis ``P``. ``reader="bioio"``
routes any files through bioio (an OME-TIFF too, by bioio's reading of its metadata).
URLs (``http(s)://``, ``s3://`` ...) go to bioio whole, with the storage options given
for their bucket.

bioio is imported only here, only when such files are opened.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._redact import reason
from ._tiff import FileInfo
from .errors import CorruptFileError, FileMismatchError, LayoutError, MissingDependencyError

__all__ = ["PLUGINS", "Bioio", "BioioReader"]

#: endings no built-in reader takes, and the bioio plugin that reads each
PLUGINS: dict[str, str] = {
    ".czi": "bioio-czi",
    ".nd2": "bioio-nd2",
    ".lif": "bioio-lif",
    ".dv": "bioio-dv",
    ".sldy": "bioio-sldy",
    ".ims": "bioio-imaris",
}


def _url(path: str, fs: Any) -> str:
    """A path bioio opens: local as it is, in an fsspec filesystem as a full URL."""
    if fs is None or "://" in path:
        return path
    return str(fs.unstrip_protocol(path))


def _image(path: str, fs: Any = None) -> Any:
    """``bioio.BioImage(path)``; a missing bioio or plugin is named, anything else that
    fails is a :class:`CorruptFileError` naming the file (``on_error="fill"`` applies)."""
    plugin = _plugin_for(path)
    if not _installed("bioio"):
        raise MissingDependencyError(
            f"{path}: reading it needs bioio: pip install 'ndstack[bioio]' {plugin}".rstrip()
        )
    if plugin and not _installed(plugin.replace("-", "_")):
        raise MissingDependencyError(
            f"{path}: reading it needs the bioio plugin: pip install {plugin}"
        )
    from bioio import BioImage

    from ._zarr.paths import options_of

    url = _url(path, fs)
    # storage options given for the URL's bucket travel to bioio's fsspec
    kwargs = {"fs_kwargs": options_of(url)} if fs is not None else {}
    try:
        return BioImage(url, **kwargs)
    except Exception as exc:  # bioio and its plugins raise their own errors
        raise CorruptFileError(f"{path}: bioio cannot read it ({reason(exc)})") from None


@functools.cache
def _installed(module: str) -> bool:
    """Whether a module can be imported (looked up once per process, not per read)."""
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _plugin_for(path: str) -> str:
    low = path.lower()
    return next((p for e, p in PLUGINS.items() if low.endswith(e)), "")


def _scene_shapes(img: Any) -> list[tuple[tuple[int, ...], str, str]]:
    out = []
    for scene in img.scenes:
        img.set_scene(scene)
        out.append((tuple(int(n) for n in img.shape), img.dims.order, str(img.dtype)))
    img.set_scene(img.scenes[0])
    return out


@dataclass(frozen=True)
class Bioio:
    """The bioio :class:`~._formats.Format`: vendor endings, or any file when asked."""

    name: str = "bioio"
    extensions: tuple[str, ...] = tuple(PLUGINS)

    def probe(self, path: str, fs: Any = None) -> FileInfo:
        img = _image(path, fs)
        shapes = _scene_shapes(img) if len(img.scenes) > 1 else []
        if len(set(shapes)) > 1:
            raise LayoutError(
                f"{path}: its {len(shapes)} scenes differ in shape or dtype "
                f"({sorted(set(shapes))}); open them one by one"
            )
        shape = tuple(int(n) for n in img.shape)
        axes = str(img.dims.order)
        if shapes:
            shape, axes = (len(shapes), *shape), "P" + axes
        sizes = {
            ax: float(v)
            for ax, v in zip("ZYX", img.physical_pixel_sizes)
            if v is not None and ax in axes and float(v) > 0
        }
        return FileInfo(
            shape=shape,
            dtype=np.dtype(img.dtype).name,
            axes=axes,
            pixel_sizes=sizes,
            unit="micrometer" if sizes else None,
            channel_names=tuple(str(c) for c in (img.channel_names or ())),
        )

    def reader(self, info: FileInfo, fs: Any = None) -> BioioReader:
        return BioioReader(info, fs)


@dataclass(frozen=True)
class BioioReader:
    """Reads a selection of one file through bioio's dask data (picklable: no handle)."""

    info: FileInfo
    fs: Any = None

    def read(self, path: str, sel: Any) -> np.ndarray:
        img = _image(path, self.fs)
        scenes = self.info.axes.startswith("P")
        n_scenes = self.info.shape[0] if scenes else 1
        if len(img.scenes) != n_scenes:
            raise FileMismatchError(
                f"{path}: expected {n_scenes} scene(s) like the first file, found {len(img.scenes)}"
            )
        parts = []
        for scene in sel[0] if scenes else [None]:
            if scene is not None:
                img.set_scene(img.scenes[int(scene)])
            data = img.get_image_dask_data(self.info.axes[1:] if scenes else self.info.axes)
            expected = self.info.shape[1:] if scenes else self.info.shape
            if tuple(data.shape) != expected or data.dtype != np.dtype(self.info.dtype):
                raise FileMismatchError(
                    f"{path}: expected shape {expected} dtype {self.info.dtype} like the "
                    f"first file, found shape {tuple(data.shape)} dtype {data.dtype}"
                )
            for k, idx in enumerate(sel[1:] if scenes else sel):  # outer selection
                if len(idx) != data.shape[k] or np.any(idx != np.arange(data.shape[k])):
                    data = data[(slice(None),) * k + (np.asarray(idx),)]
            parts.append(np.asarray(data.compute(scheduler="synchronous")))
        return np.stack(parts) if scenes else parts[0]
