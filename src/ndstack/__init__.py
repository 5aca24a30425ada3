"""ndstack: many image files as one lazy, labelled N-D array.

>>> import ndstack
>>> arr = ndstack.open("experiment/")            # doctest: +SKIP
>>> print(ndstack.format_info(ndstack.info(arr)))  # doctest: +SKIP
"""

from __future__ import annotations

from . import errors, ops
from ._cluster import cluster
from ._formats import register_format
from ._info import Info, format_info, info
from ._names import parse_names
from ._napari import view
from ._open import MissingFilesWarning, SkippedFilesWarning, open
from ._preview import preview
from ._tiff import FileInfo
from ._zarr.results import VerifyReport, WriteSummary
from ._zarr.verify import verify
from ._zarr.write import to_zarr

__all__ = [
    "FileInfo",
    "Info",
    "MissingFilesWarning",
    "SkippedFilesWarning",
    "VerifyReport",
    "WriteSummary",
    "__version__",
    "cluster",
    "errors",
    "format_info",
    "info",
    "open",
    "ops",
    "parse_names",
    "preview",
    "register_format",
    "to_zarr",
    "verify",
    "view",
]

__version__ = "0.1.0"  # the one source: pyproject.toml reads it (dynamic)
