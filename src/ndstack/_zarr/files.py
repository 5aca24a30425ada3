"""Writing files so that a kill at any moment leaves the old file or the new one whole."""

from __future__ import annotations

import errno
import json
import os
import uuid
from typing import Any

from .._redact import reason, redact
from ..errors import WriteError
from .paths import get, is_url, put, put_all

__all__ = ["atomic_write", "atomic_write_all", "read_json_object"]

#: the rename that makes a written file appear (a hook: tests make it fail like a full disk)
_replace = os.replace


def atomic_write(path: str, payload: bytes) -> None:
    """Write ``payload`` under a temporary name, then rename it to ``path``; a full disk is
    a :class:`WriteError` that says how to resume. On object storage (a URL) one PUT,
    which is atomic: readers see the old object or the new one, never a part."""
    if is_url(path):
        try:
            put(path, payload)
        except Exception as exc:
            raise WriteError(f"cannot write {redact(path)}: {reason(exc)}") from None
        return
    tmp = f"{path}.{uuid.uuid4().hex[:8]}.partial"
    try:
        try:
            f = open(tmp, "wb")
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            f = open(tmp, "wb")
        with f:
            f.write(payload)
        _replace(tmp, path)
    except OSError as exc:
        try:
            os.remove(tmp)
        except OSError:
            pass
        if exc.errno == errno.ENOSPC:
            raise WriteError(
                f"disk full while writing {path}; free some space and run the same "
                "command again to resume"
            ) from None
        raise WriteError(f"cannot write {path}: {exc.strerror or exc}") from None


def atomic_write_all(items: list[tuple[str, bytes]]) -> None:
    """:func:`atomic_write` of every ``(path, payload)``; on object storage the PUTs go
    out together (fsspec keeps many requests in flight), since each one waits for the
    network far longer than it takes to send."""
    if len(items) < 2 or not is_url(items[0][0]):
        for path, payload in items:
            atomic_write(path, payload)
        return
    try:
        put_all(items)
    except Exception as exc:
        first = items[0][0].rsplit("/", 1)[0]
        raise WriteError(f"cannot write under {redact(first)}: {reason(exc)}") from None


def read_json_object(path: str) -> dict[str, Any]:
    """The JSON object in ``path``. Raises FileNotFoundError when it is absent, another
    OSError when it cannot be read, ValueError when it holds no JSON object."""
    raw = get(path)
    try:
        value = json.loads(raw)
    except RecursionError:
        raise ValueError(f"{path}: JSON nested too deeply") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: a JSON {type(value).__name__}, not an object")
    return value
