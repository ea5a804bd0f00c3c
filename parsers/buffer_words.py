"""Up to eight bytes at many offsets of one buffer, as one uint64 each — two aligned numpy gathers, not a loop.

Why: the columnar parser compares short fields (``download``, ``(null)``)
and copies fixed-width ones (a country code, a TLS version) at tens of
thousands of offsets per block. Gathering them byte by byte costs one numpy
pass per byte, and numpy's gather from an unaligned ``uint64`` view takes a
slow element-by-element path; two gathers from the buffer's aligned
``uint64`` words and a shift give all eight bytes at once.

Rule: ``words_at(data, at, width)[k]`` is ``int.from_bytes(data[at[k] :
at[k] + width], "little")`` for every ``k`` — bytes past the end of
``data`` read as 0 — for ``0 <= at[k] <= len(data)`` and ``width <= 8``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["words_at"]

_WORD = 8


def _from_words(aligned: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The eight bytes at each offset, from the word holding the first and the next one (both clipped to the last word)."""
    word = at >> 3
    shift = ((at << 3) & 63).view(np.uint64)  # bits of the first word before the offset
    low = np.take(aligned, word, mode="clip") >> shift
    high = np.take(aligned, word + 1, mode="clip")
    # (high << 1) << (63 - shift) is high << (64 - shift), and 0 when shift is 0
    return low | ((high << np.uint64(1)) << (np.uint64(63) - shift))


def words_at(data: np.ndarray, at: np.ndarray, width: int = _WORD) -> np.ndarray:
    """The ``width`` bytes (≤ 8) at each offset ``at`` of the uint8 array ``data``, as little-endian uint64."""
    if not 0 < width <= _WORD:
        raise ValueError(f"width must be 1 to {_WORD}, got {width}")
    at = np.asarray(at, np.int64)
    whole = len(data) // _WORD
    aligned = data[: whole * _WORD].view(np.uint64) if whole else None
    if aligned is None or not aligned.flags.aligned:  # (never for a bytes object's buffer)
        out, rest = np.zeros(len(at), np.uint64), np.arange(len(at))
    else:
        out = _from_words(aligned, at)
        # offsets whose eight bytes run past the whole words (the buffer's last few bytes) read
        # the last word twice above: they are redone byte by byte
        rest = np.flatnonzero(at + _WORD > whole * _WORD)
        out[rest] = 0
    if len(rest):  # the last few bytes of the buffer: byte by byte
        for k in range(width):
            where = at[rest] + k
            present = where < len(data)
            out[rest[present]] |= data[where[present]].astype(np.uint64) << np.uint64(8 * k)
    if width < _WORD:
        out &= np.uint64((1 << (8 * width)) - 1)
    return out
