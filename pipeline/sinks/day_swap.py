"""Atomic replacement of a directory by another (Linux ``renameat2``).

``os.rename`` cannot replace a non-empty directory, and "move the old one
away, move the new one in" leaves a moment with no directory at all.
``renameat2(RENAME_EXCHANGE)`` swaps two paths in one step, so a reader
listing a day folder sees either the old day or the new one, never a mix.
Where the call is missing (non-Linux, old glibc), the two-rename fallback is
used and said so in the log.
"""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import shutil

from .parquet_commit import fsync_dir

__all__ = ["exchange", "finish_day_swap", "replace_directory"]

_LOG = logging.getLogger("haulage")
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2

try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _renameat2 = _libc.renameat2
    _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    _renameat2.restype = ctypes.c_int
except (OSError, AttributeError):  # pragma: no cover - depends on the platform
    _renameat2 = None


def exchange(a: str, b: str) -> bool:
    """Swap directories ``a`` and ``b`` atomically; False if the OS cannot."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), a)


def replace_directory(new: str, live: str, graveyard: str) -> None:
    """Put ``new`` where ``live`` is; the previous ``live`` ends at ``graveyard``.

    ``graveyard`` must not exist; the caller deletes it afterwards. The
    folders holding the three paths are fsynced before returning, so the new
    day is durable before anything of the old one is deleted.
    """
    parents = {os.path.dirname(p) for p in (new, live, graveyard)}
    if not os.path.exists(live):
        os.makedirs(os.path.dirname(live), exist_ok=True)
        os.rename(new, live)
    elif exchange(new, live):
        os.rename(new, graveyard)  # `new` now holds the old day
    else:
        _LOG.warning("atomic directory exchange unavailable; replacing %s with two renames", live)
        os.rename(live, graveyard)
        os.rename(new, live)
    for parent in sorted(parents):
        if os.path.isdir(parent):
            fsync_dir(parent)


def finish_day_swap(staged: str, live: str, graveyard: str, commit: str) -> None:
    """Complete an interrupted :func:`replace_directory` of a replay commit (idempotent).

    ``staged`` still holding only the commit's own files (``part-<commit>-…``)
    means the swap has not happened: do it. ``staged`` holding anything else
    means it is the old day, left there by the exchange: move it away.
    Gone: the swap is done. The graveyard is deleted in every case.
    """
    if os.path.isdir(staged):
        names = [n for n in os.listdir(staged) if not n.startswith(".")]
        if names and all(n.startswith(f"part-{commit}-") for n in names):
            shutil.rmtree(graveyard, ignore_errors=True)
            replace_directory(staged, live, graveyard)
        else:
            shutil.rmtree(graveyard, ignore_errors=True)
            os.rename(staged, graveyard)
            fsync_dir(os.path.dirname(staged))
    shutil.rmtree(graveyard, ignore_errors=True)
