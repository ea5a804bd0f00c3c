"""Progress lines for long batch runs: files, lines, days, rate, ETA.

One tracker per worker process. The reader creates it and counts files and
lines; the sink, fused into the same process, reports the days it writes.
"""

from __future__ import annotations

import logging
import time
from typing import Optional

__all__ = ["Progress", "note_day"]


_LOG = logging.getLogger("haulage")
_current: Optional["Progress"] = None
worker_name = ""
"""Set in each worker process of a parallel local run ("1/2"), so its progress lines say whose they are."""


class Progress:
    """Rate-limited progress lines on the log."""

    def __init__(self, total_files: int, total_bytes: int, every_seconds: float = 5.0) -> None:
        global _current
        self.total_files = total_files
        self.total_bytes = total_bytes
        self.every = every_seconds
        self.files = self.lines = self.bytes = 0
        self.days: set[str] = set()
        self.started = self._last = time.monotonic()
        _current = self

    def add(self, files: int = 0, lines: int = 0, nbytes: int = 0, force: bool = False) -> None:
        """Count files, lines and bytes read, and log a progress line when it is time (or ``force``)."""
        self.files += files
        self.lines += lines
        self.bytes += nbytes
        now = time.monotonic()
        if force or now - self._last >= self.every:
            self._last = now
            elapsed = max(now - self.started, 1e-9)
            rate = self.lines / elapsed
            eta = ""
            if self.bytes and self.total_bytes > self.bytes:
                eta = f", ETA {(self.total_bytes - self.bytes) * elapsed / self.bytes:,.0f}s"
            _LOG.info(
                "progress%s: %d/%d files, %s lines, %d days, %s lines/s%s",
                f" (worker {worker_name})" if worker_name else "",
                self.files, self.total_files, f"{self.lines:,}", len(self.days), f"{rate:,.0f}", eta,
            )


def note_day(day: str) -> None:
    """Record a day being written, for the progress line (no-op without a tracker)."""
    if _current is not None:
        _current.days.add(day)
