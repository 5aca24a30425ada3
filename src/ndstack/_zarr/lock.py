"""One run per destination: a lock file beside the store, with stale-lock recovery.

The lock is ``.DEST.ndstack.lock`` next to ``DEST`` (the real path: a link to a store and
the store share one lock), created with ``O_CREAT | O_EXCL`` (atomic on local disks and
on NFS v3+, where ``flock`` is not dependable). It holds the owner's host, boot id, pid
namespace, pid, the process's start time and a run id; while a run holds it, a thread
touches it every :data:`HEARTBEAT_SECONDS`. A second run finds it and stops with
:class:`LockedError`.

A lock is *stale* when its owner is provably gone: on the same machine and process space
(same host, boot id and pid namespace), when no process with its pid and start time
exists; otherwise (another host on a shared filesystem, another container), when nobody
has touched it for :data:`STALE_SECONDS`. Taking over a stale lock is itself guarded by a
short-lived ``O_EXCL`` *break* file, so of two runs that both find it stale only one
replaces it, and a live lock is never removed.

A run that lost its lock (it was suspended for longer than :data:`STALE_SECONDS` and
another run took over) finds out in :meth:`Lock.check` before it writes the metadata
that makes a store complete.
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

from .._redact import reason, redact
from ..errors import LockedError, StorageError, WriteError
from .files import read_json_object
from .paths import get, is_url, modified, put, put_new, remove

__all__ = [
    "HEARTBEAT_SECONDS",
    "STALE_SECONDS",
    "Lock",
    "acquire",
    "check",
    "lock_path",
    "release",
]

HEARTBEAT_SECONDS = 30.0
STALE_SECONDS = 300.0


def beside(dest: str, suffix: str) -> str:
    """``.NAME<suffix>`` next to ``dest`` (links resolved): the lock, the record."""
    if is_url(dest):
        head, tail = dest.rstrip("/").rsplit("/", 1)
        return f"{head}/.{tail}{suffix}"
    head, tail = os.path.split(os.path.realpath(dest).rstrip(os.sep))
    return os.path.join(head, f".{tail}{suffix}")


def lock_path(dest: str) -> str:
    """The lock file beside ``dest``."""
    return beside(dest, ".ndstack.lock")


def _read(path: str) -> dict[str, Any] | None:
    """The lock's content; None when there is no lock, {} when it cannot be read now."""
    try:
        return read_json_object(path)
    except FileNotFoundError:
        return None
    except StorageError:
        raise  # object storage did not answer: say so, do not guess
    except (OSError, ValueError):
        return {}  # being written, damaged, or a transient error: judged by its age alone


def _machine() -> dict[str, Any]:
    """What identifies this machine and process space beyond the host name."""
    out: dict[str, Any] = {"host": socket.gethostname()}
    with contextlib.suppress(OSError):
        with open("/proc/sys/kernel/random/boot_id") as f:
            out["boot"] = f.read().strip()
    with contextlib.suppress(OSError):
        out["pidns"] = os.stat("/proc/self/ns/pid").st_ino
    return out


def _start_time(pid: int) -> str | None:
    """A process's start time (clock ticks since boot), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(owner: dict[str, Any]) -> bool:
    try:
        pid = int(owner["pid"])
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, ValueError, TypeError, OverflowError):
        return True  # exists but is someone else's, or unreadable: assume alive
    started = owner.get("ticks")
    return started is None or _start_time(pid) in (None, started)


#: run ids of the locks this process holds (a lock of this process's pid whose run is not
#: here was left by a run that failed to remove it, e.g. while the storage was away)
_HELD: set[str] = set()


def _stale(path: str, owner: dict[str, Any]) -> bool:
    here = _machine()
    same_space = all(owner.get(k) == here.get(k) for k in ("host", "boot", "pidns"))
    if owner and same_space and "pid" in owner:
        if owner.get("pid") == os.getpid() and owner.get("ticks") == _start_time(os.getpid()):
            return owner.get("run") not in _HELD
        return not _alive(owner)
    try:
        age = time.time() - modified(path)
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
    owner = {**_machine(), "pid": os.getpid(), "ticks": _start_time(os.getpid()),
             "run": run_id, "started": time.time()}  # fmt: skip
    if is_url(path):  # a conditional PUT: created whole, or refused when it exists
        try:
            return put_new(path, json.dumps(owner).encode())
        except Exception as exc:
            raise WriteError(
                f"cannot write to {redact(dest)}: its lock cannot be created ({reason(exc)})"
            ) from None
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    except OSError as exc:
        raise WriteError(
            f"cannot write to {dest}: its lock {path} cannot be created ({exc.strerror or exc})"
        ) from None
    with os.fdopen(fd, "w") as f:
        json.dump(owner, f)
    return True


def _touch(path: str) -> None:
    """Mark the lock alive: its modification time on disk; on object storage the same
    object written again (objects have no mtime to set)."""
    if is_url(path):
        put(path, get(path))
    else:
        os.utime(path)


class Lock:
    """A held destination lock; a daemon thread touches it until :meth:`release`."""

    def __init__(self, dest: str, path: str, run_id: str) -> None:
        self.dest, self.path, self.run_id = dest, path, run_id  # in _HELD: acquire()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="ndstack-lock", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                owner = _read(self.path)
            except StorageError:
                continue  # a passing network error: the next beat
            if owner is None or (owner and owner.get("run") != self.run_id):
                return  # released, perhaps by a worker that finished the run; or lost
            with contextlib.suppress(Exception):  # a passing network error: next beat
                _touch(self.path)

    def release(self) -> None:
        """Stop the heartbeat and remove the lock if it is still ours (idempotent)."""
        self._stop.set()
        _HELD.discard(self.run_id)
        release(self.path, self.run_id)


def check(dest: str, path: str, run_id: str) -> None:
    """Raise :class:`LockedError` unless ``run_id`` still holds the lock at ``path``."""
    for _ in range(5):  # a lock being rewritten, or a passing NFS error, reads as {}
        owner = _read(path)
        if owner is None or owner:
            break
        time.sleep(0.1)
    if owner is not None and owner and owner.get("run") == run_id:
        return
    raise LockedError(
        f"{dest}: this run lost its lock (it was paused for longer than {STALE_SECONDS:.0f} s "
        f"and {_describe(owner or {})} took over); nothing more was written"
    )


def release(path: str, run_id: str) -> None:
    """Remove the lock at ``path`` if ``run_id`` holds it (callable from any process).

    When the storage cannot be reached the lock stays: a later run of this process sees
    it as left behind, one of another process once its owner is gone or it went stale."""
    for _ in range(5):
        try:
            owner = _read(path)
        except StorageError:
            return
        if owner is None or owner:
            break
        time.sleep(0.1)
    if owner is not None and owner.get("run") == run_id:
        with contextlib.suppress(OSError):
            remove(path)


def acquire(dest: str) -> Lock:
    """Take the lock of ``dest``, or raise :class:`LockedError` naming its holder."""
    run_id = uuid.uuid4().hex
    path = lock_path(dest)
    _HELD.add(run_id)  # before it exists: another thread here must see it as alive
    try:
        for _ in range(5):
            if _create(dest, path, run_id):
                return Lock(dest, path, run_id)
            _judge(dest, path)
    except BaseException:
        _HELD.discard(run_id)
        raise
    _HELD.discard(run_id)
    raise LockedError(f"{dest}: could not take the lock {path}; another run keeps taking it")


def _judge(dest: str, path: str) -> None:
    """A lock that exists: refuse a live one, break a stale one (then try again)."""
    owner = _read(path)
    if owner is None:
        return  # released meanwhile
    if not _stale(path, owner):
        raise LockedError(
            f"{dest} is being written by {_describe(owner)}; wait for it to finish "
            f"(if no such run exists, delete {path})"
        )
    _break(path, owner)


def _break(path: str, owner: dict[str, Any]) -> None:
    """Remove a stale lock, guarded so that a live one (made meanwhile) is never removed."""
    guard = path + ".break"
    if not _create_guard(guard):
        # another run is breaking it now; a guard left by a killed breaker expires
        with contextlib.suppress(OSError):
            if time.time() - modified(guard) > 60:
                remove(guard)
        time.sleep(0.05)
        return
    try:
        if _read(path) == owner and _stale(path, owner):  # still the same stale lock
            remove(path)
    finally:
        with contextlib.suppress(OSError):
            remove(guard)


def _create_guard(guard: str) -> bool:
    """Create the break guard exclusively; False when it exists."""
    if is_url(guard):
        return put_new(guard, b"")
    try:
        fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    os.close(fd)
    return True
