"""Keep freed memory for reuse: glibc's malloc set for a process that frees and reallocates big buffers.

Why: every block of lines, every joined batch and every Arrow buffer of a few
MB is allocated, filled and freed thousands of times in a run. glibc serves
allocations of 128 KiB and more with fresh ``mmap`` pages (and gives the top
of the heap back to the system past 128 KiB free), so each such buffer is
paid again in page faults: measured here, joining the lines of a block took
four times as long with the defaults as with the settings below, and a
local run spent about a tenth of its CPU time in the kernel.

The rule: allocations up to :data:`MMAP_THRESHOLD` come from the heap, and
the heap keeps up to :data:`TRIM_THRESHOLD` of free memory at its top, so a
freed block is reused as it is. The process's peak memory is unchanged; it
just keeps that much back from the system between blocks. Elsewhere than
glibc (or where ``mallopt`` refuses) nothing changes.
"""

from __future__ import annotations

import ctypes

__all__ = ["keep_freed_memory", "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

MMAP_THRESHOLD = 32 << 20
"""Allocations up to this size come from the heap (glibc's maximum for this setting on 64-bit)."""

TRIM_THRESHOLD = 128 << 20
"""Free memory the heap keeps at its top before giving any back to the system."""

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_done = False


def keep_freed_memory() -> bool:
    """Apply the settings once per process; True when glibc accepted them."""
    global _done
    if _done:
        return True
    try:
        mallopt = _libc().mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done


def _libc() -> ctypes.CDLL:
    """glibc by its soname; ``ctypes.util.find_library`` only if that fails (it runs ``ldconfig -p``,
    a child process that costs more CPU than the rest of this module)."""
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        from ctypes.util import find_library

        return ctypes.CDLL(find_library("c") or "libc.so.6")
