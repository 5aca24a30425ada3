"""One run per destination: a lock file beside the store, with stale-lock recovery.

The lock is ``.DEST.ndstack.lock`` next to ``DEST``, created with ``O_CREAT | O_EXCL``
(atomic on local disks and on NFS v3+, where ``flock`` is not dependable). It holds the
host, process id and run id of its owner; while a run holds it, a thread touches it every
:data:`HEARTBEAT_SECONDS`. A second run finds it and stops with :class:`LockedError`.

A lock is *stale* when its owner is gone: on the same host, when no process has its pid;
from another host (a shared filesystem), when it has not been touched for
:data:`STALE_SECONDS`. A stale lock is taken over by renaming it aside (only one of two
racing runs can rename it) and creating a fresh one.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from typing import Any

from .errors import LockedError

__all__ = ["HEARTBEAT_SECONDS", "STALE_SECONDS", "Lock", "acquire", "lock_path", "release"]

HEARTBEAT_SECONDS = 30.0
STALE_SECONDS = 300.0


def lock_path(dest: str) -> str:
    """The lock file beside ``dest``."""
    head, tail = os.path.split(os.path.abspath(dest).rstrip(os.sep))
    return os.path.join(head, f".{tail}.ndstack.lock")


def _read(path: str) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            value = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}  # being written, or damaged: judged by its age alone
    return value if isinstance(value, dict) else {}


def _alive(pid: Any) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError, OverflowError):
        return True  # exists but is someone else's, or unreadable: assume alive
    return True


def _stale(path: str, owner: dict[str, Any]) -> bool:
    if owner.get("host") == socket.gethostname() and "pid" in owner:
        return not _alive(owner["pid"])
    try:
        age = time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        return True
    return age > STALE_SECONDS


def _describe(owner: dict[str, Any]) -> str:
    if not owner:
        return "another run"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("started", 0)))
    return f"process {owner.get('pid')} on {owner.get('host')} (since {started})"


def _create(dest: str, path: str, run_id: str) -> bool:
    """Create the lock; False if it exists."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    except OSError as exc:
        from .errors import WriteError

        raise WriteError(
            f"cannot write to {dest}: its lock {path} cannot be created ({exc.strerror or exc})"
        ) from None
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "run": run_id,
             "started": time.time()}  # fmt: skip
    with os.fdopen(fd, "w") as f:
        json.dump(owner, f)
    return True


class Lock:
    """A held destination lock; a daemon thread touches it until :meth:`release`."""

    def __init__(self, path: str, run_id: str) -> None:
        self.path, self.run_id = path, run_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="ndstack-lock", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            if (_read(self.path) or {}).get("run") != self.run_id:
                return  # released (perhaps by a worker that finished the run)
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def release(self) -> None:
        """Stop the heartbeat and remove the lock if it is still ours (idempotent)."""
        self._stop.set()
        release(self.path, self.run_id)


def release(path: str, run_id: str) -> None:
    """Remove the lock at ``path`` if ``run_id`` holds it (callable from any process)."""
    owner = _read(path)
    if owner is not None and owner.get("run") == run_id:
        with contextlib.suppress(OSError):
            os.remove(path)


def acquire(dest: str) -> Lock:
    """Take the lock of ``dest``, or raise :class:`LockedError` naming its holder."""
    run_id = uuid.uuid4().hex
    path = lock_path(dest)
    for _ in range(5):
        if _create(dest, path, run_id):
            return Lock(path, run_id)
        owner = _read(path)
        if owner is None:
            continue  # released meanwhile
        if not _stale(path, owner):
            raise LockedError(
                f"{dest} is being written by {_describe(owner)}; wait for it to finish "
                f"(if no such run exists, delete {path})"
            )
        aside = f"{path}.stale-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(path, aside)
        except FileNotFoundError:
            continue  # another run took it over first
        moved = _read(aside) or {}
        if moved.get("run") != owner.get("run"):
            # a live lock was created between our look and the rename: give it back
            with contextlib.suppress(OSError):
                os.link(aside, path)
            with contextlib.suppress(OSError):
                os.remove(aside)
            continue
        with contextlib.suppress(OSError):
            os.remove(aside)
    raise LockedError(f"{dest}: could not take the lock {path}; another run keeps taking it")
