"""The exception hierarchy of ndstack.

Every error ndstack raises on bad input is an :class:`NdstackError`. Each class also
inherits the matching builtin, so ``except FileNotFoundError`` or ``except ValueError``
keep working for callers who do not know ndstack. Messages carry the evidence: the file,
what was expected and what was found.

All classes take a single message argument, so they pickle and travel back from Dask
workers intact. The message is made safe to print once, here: credentials in URLs are
redacted and control characters (a newline in a file name) escaped, so that every
message is one line and no secret leaves in it.
"""

from __future__ import annotations

from ._redact import for_output

__all__ = [
    "CorruptFileError",
    "DamagedStoreError",
    "DestinationError",
    "DuplicatePositionError",
    "FileMismatchError",
    "LayoutError",
    "LockedError",
    "MissingDependencyError",
    "NdstackError",
    "NoImagesError",
    "ParameterError",
    "PatternError",
    "SourceChangedError",
    "StorageError",
    "UnfinishedStoreError",
    "VerifyError",
    "WriteError",
]


class NdstackError(Exception):
    """Base class of every error ndstack raises on bad input."""

    def __init__(self, message: object = "") -> None:
        super().__init__(for_output(str(message)))


class NoImagesError(NdstackError, FileNotFoundError):
    """The source names no image file: empty folder, glob without match, no images."""


class ParameterError(NdstackError, ValueError):
    """An option or parameter is out of range: a size of 0, an unknown dim, a bad limit."""


class PatternError(NdstackError, ValueError):
    """A user pattern is invalid, matches nothing, or leaves a field unexplained."""


class LayoutError(NdstackError, ValueError):
    """The file names cannot be arranged into one grid of axes."""


class DuplicatePositionError(LayoutError):
    """Two files map to the same position of the grid."""


class FileMismatchError(NdstackError, ValueError):
    """A file's shape or dtype differs from the first file's."""


class CorruptFileError(NdstackError, OSError):
    """A file cannot be read: not an image, truncated, or damaged."""


class DestinationError(NdstackError, FileExistsError):
    """The destination exists and cannot be used, or lies inside the source."""


class LockedError(DestinationError):
    """Another run is writing the same destination."""


class DamagedStoreError(CorruptFileError):
    """A store's metadata is damaged or untrustworthy (bad JSON, shapes, paths)."""


class UnfinishedStoreError(NdstackError, OSError):
    """The store is still being written, or its writing was interrupted: resume it first."""


class MissingDependencyError(NdstackError, ImportError):
    """An optional extra is needed (napari for viewing, matplotlib for previews, ...)."""


class SourceChangedError(NdstackError, ValueError):
    """A conversion cannot resume: the source or the settings differ from the first run."""


class WriteError(NdstackError, OSError):
    """Writing failed (permissions, disk full); what was written stays resumable."""


class VerifyError(NdstackError, ValueError):
    """The destination differs from the source, or chunks are missing."""


class StorageError(NdstackError, OSError):
    """Object storage (or an HTTP server) could not be reached or refused a request: no
    bucket, no permission, no credentials, the server went away. Resumable."""
