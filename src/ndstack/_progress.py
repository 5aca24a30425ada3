"""Progress on stderr: a bar for writes on Dask's local schedulers (bytes, GB/s, ETA), and
a running count for long opens (listing, checking headers)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["Ticker", "progress_bar"]

_WIDTH = 30


def _draw(done: float, total: int, t0: float, end: str = "") -> None:
    elapsed = max(time.perf_counter() - t0, 1e-9)
    frac = min(1.0, done / total) if total else 1.0
    rate = done / elapsed
    eta = (total - done) / rate if rate > 0 else float("inf")
    bar = "#" * int(frac * _WIDTH) + "." * (_WIDTH - int(frac * _WIDTH))
    eta_s = f"{eta:5.0f} s" if eta != float("inf") else "    ? s"
    sys.stderr.write(
        f"\r[{bar}] {done / 1e9:6.2f}/{total / 1e9:.2f} GB {rate / 1e9:5.2f} GB/s ETA {eta_s}{end}"
    )
    sys.stderr.flush()


@contextmanager
def progress_bar(total_bytes: int, tasks: int, *, enabled: bool | None = None) -> Iterator[None]:
    """Count finished write tasks (``ndstack-write-*`` keys); draw only on a terminal.

    Bytes are shown as finished tasks times the average block size.
    """
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        yield
        return
    from dask.callbacks import Callback

    state: dict[str, float] = {"done": 0, "drawn": 0.0}
    per_task = total_bytes / max(1, tasks)
    t0 = time.perf_counter()

    def posttask(key: Any, result: Any, *_: Any) -> None:
        name = key[0] if isinstance(key, tuple) else key
        if str(name).startswith("ndstack-write"):
            state["done"] += per_task
            now = time.perf_counter()
            if now - state["drawn"] > 0.1:
                state["drawn"] = now
                _draw(state["done"], total_bytes, t0)

    with Callback(posttask=posttask):
        yield
    _draw(total_bytes, total_bytes, t0, end="\n")


class Ticker:
    """A running count on one line of stderr, for steps that may take long (listing a
    million files on a network filesystem, reading every header).

    Nothing is drawn unless ``enabled`` (default: stderr is a terminal) and the step has
    taken ``after`` seconds; then at most ten times a second, and :meth:`done` ends the
    line. Callers tick every few thousand items, so a quick step costs nothing.
    """

    def __init__(self, what: str, *, enabled: bool | None = None, after: float = 1.0) -> None:
        self.what = what
        self.enabled = sys.stderr.isatty() if enabled is None else bool(enabled)
        self.after = after
        self.t0 = time.monotonic()
        self.drawn = 0.0
        self.shown = False
        self.width = 0  # of the last line drawn

    def __call__(self, count: int, total: int | None = None) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.t0 < self.after or now - self.drawn < 0.1:
            return
        self.drawn, self.shown = now, True
        of = f" of {total:,}" if total else ""
        self._line(f"{self.what}: {count:,}{of} ({now - self.t0:.0f} s)")

    def done(self, count: int) -> None:
        """End the line, if one was drawn, with the final count."""
        if self.shown:
            self._line(f"{self.what}: {count:,} ({time.monotonic() - self.t0:.1f} s)", "\n")
            self.shown = False

    def _line(self, text: str, end: str = "") -> None:
        """Draw over the line, padded to the last one's length (no leftover digits)."""
        pad = " " * max(0, self.width - len(text))
        self.width = len(text)
        sys.stderr.write(f"\r{text}{pad}{end}")
        sys.stderr.flush()
