"""RFC 1123 timestamps of a whole column at once, by the same rules as :func:`~haulage.parsers.timestamps.parse_rfc1123`.

A Python call per text would cost more than the rest of the line, and even
finding the distinct texts (a busy log file has a few hundred distinct
seconds, a sparse one nearly one per line) costs more than parsing every
row here. The texts are laid out as a ``(n, 29)`` byte matrix (a column of
valid texts already is one, without a copy) and every rule is a numpy
operation over the whole matrix or a column of it — no searches, no
divisions (the calendar is tables indexed by year and month):

* exactly 29 bytes shaped ``Ddd, DD Mmm YYYY HH:MM:SS GMT`` (any of the seven
  weekday names, whether or not it fits the date: it carries nothing kept);
* ASCII digits where digits go, a known month name, year ≥ 1970, a day that
  exists in that month (29 February only in leap years), hour ≤ 23,
  minute ≤ 59, second ≤ 60;
* second 60 (a leap second) folds into 59, as BigQuery does.

Anything else is invalid. The row parser's function is the reference; the
property tests compare the two on generated and damaged texts.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

__all__ = ["RFC1123_WIDTH", "parse_rfc1123_column", "parse_rfc1123_matrix"]

RFC1123_WIDTH = _WIDTH = 29
"""Bytes of every valid text."""
_PADDED = 32  # a row padded with zeros to four little-endian uint64 words


def _bounds(shape: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Per byte of a padded row, the least value and the span of values allowed there.

    ``shape`` spells the text with ``9`` for a digit, ``A`` for a letter of a
    name (checked whole afterwards, so any byte passes here) and any other byte
    for itself; the three padding bytes must be 0.
    """
    low = np.zeros(_PADDED, np.uint8)
    span = np.zeros(_PADDED, np.uint8)
    for at, byte in enumerate(shape):
        if byte == ord("9"):
            low[at], span[at] = ord("0"), 9
        elif byte == ord("A"):
            low[at], span[at] = 0, 255
        else:
            low[at] = byte
    return low, span


_LOW, _SPAN = _bounds(b"AAA, 99 AAA 9999 99:99:99 GMT")
_ALL_BYTES_OK = np.uint64(0x0101010101010101)  # four bool bytes of a word, all True
_THREE_BYTES = np.uint64(0xFFFFFF)


def _names(names: tuple[bytes, ...]) -> np.ndarray:
    """Three-letter names as the uint64 their three bytes read as, little-endian."""
    return np.array([int.from_bytes(name, "little") for name in names], np.uint64)


_WEEKDAYS = _names((b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"))
_MONTH_CODES = _names((b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"))
_UNKNOWN_MONTH = 12


def _month_by_last_letters() -> np.ndarray:
    """Month index (0-11) by the month name's last two letters, read as a uint16; 12 for any other pair.

    The twelve names differ in their last two letters, so this table and one
    check of the whole name against :data:`_MONTH_CODES` recognise a month
    without a search.
    """
    table = np.full(1 << 16, _UNKNOWN_MONTH, np.intp)
    table[(_MONTH_CODES >> np.uint64(8)).astype(np.intp)] = np.arange(12)
    assert len(set((_MONTH_CODES >> np.uint64(8)).tolist())) == 12
    return table


_MONTH_BY_LAST_LETTERS = _month_by_last_letters()
_MONTH_CODE_OR_NONE = np.append(_MONTH_CODES, np.uint64(1 << 63))  # index 12 never matches three bytes
_FIRST_YEAR, _LAST_YEAR = 1970, 9999  # four digits, and nothing before the epoch is valid
_YEARS = np.arange(_FIRST_YEAR, _LAST_YEAR + 1)
_LEAP = ((_YEARS % 4 == 0) & ((_YEARS % 100 != 0) | (_YEARS % 400 == 0))).astype(np.int64)
_YEAR_START = np.concatenate([[0], np.cumsum(365 + _LEAP)[:-1]])  # days from 1970-01-01 to 1 January
_MONTH_LENGTHS = np.array([[31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]])
_MONTH_LENGTH = _MONTH_LENGTHS.ravel()  # index: 12 * leap + month - 1
_MONTH_START = np.hstack([np.concatenate([[0], np.cumsum(row)[:-1]]) for row in _MONTH_LENGTHS])  # days to the 1st


def _two_digits(padded: np.ndarray, at: int) -> np.ndarray:
    """The number bytes ``at`` and ``at + 1`` of every row spell (meaningless where they are not digits)."""
    return padded[:, at].astype(np.int32) * 10 + padded[:, at + 1] - (ord("0") * 11)


def parse_rfc1123_column(texts: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """``(epoch seconds, valid)`` for every element of a string array (no nulls)."""
    n = len(texts)
    epochs = np.zeros(n, np.int64)
    valid = np.zeros(n, bool)
    if n == 0:
        return epochs, valid
    offsets = np.frombuffer(texts.buffers()[1], np.int32, n + 1, texts.offset * 4)
    data = np.frombuffer(texts.buffers()[2], np.uint8) if texts.buffers()[2] is not None else np.zeros(0, np.uint8)
    lengths = np.diff(offsets)
    if (lengths == _WIDTH).all():  # the usual column: the data buffer is already the (n, 29) matrix
        return parse_rfc1123_matrix(data[offsets[0] : offsets[-1]].reshape(n, _WIDTH))
    candidates = np.flatnonzero(lengths == _WIDTH)
    if not len(candidates):
        return epochs, valid
    fitting = texts.take(pa.array(candidates.astype(np.int32)))  # one copy: their bytes are the (k, 29) matrix
    matrix = np.frombuffer(fitting.buffers()[2], np.uint8, len(candidates) * _WIDTH).reshape(-1, _WIDTH)
    epochs[candidates], valid[candidates] = parse_rfc1123_matrix(matrix)
    return epochs, valid


def parse_rfc1123_matrix(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(epoch seconds, valid)`` for each row of an ``(n, 29)`` byte matrix, one text per row (0 where invalid).

    Each row is copied into 32 zeroed bytes, so that one comparison over the
    whole matrix checks every byte's shape (:data:`_LOW`, :data:`_SPAN`) and
    the row's verdict is the AND of four uint64 words of booleans; the names
    are three bytes of a word compared with the known ones.
    """
    n = len(m)
    padded = np.zeros((n, _PADDED), np.uint8)
    padded[:, :_WIDTH] = m
    shaped = (padded - _LOW) <= _SPAN  # uint8 arithmetic wraps: below _LOW becomes large
    words = shaped.view(np.uint64)
    ok = (words[:, 0] & words[:, 1] & words[:, 2] & words[:, 3]) == _ALL_BYTES_OK
    text = padded.view(np.uint64)
    ok &= np.isin(text[:, 0] & _THREE_BYTES, _WEEKDAYS)
    month_code = text[:, 1] & _THREE_BYTES
    month = _MONTH_BY_LAST_LETTERS[month_code >> np.uint64(8)]
    ok &= _MONTH_CODE_OR_NONE[month] == month_code
    month = np.minimum(month, 11)  # 0-based; an unknown name's row is invalid already
    day, hour, minute, second = (_two_digits(padded, at) for at in (5, 17, 20, 23))
    year = _two_digits(padded, 12) * 100 + _two_digits(padded, 14)
    ok &= (year >= _FIRST_YEAR) & (hour <= 23) & (minute <= 59) & (second <= 60)
    years = np.clip(year - _FIRST_YEAR, 0, _LAST_YEAR - _FIRST_YEAR)  # in range even where the text is not
    in_year = 12 * _LEAP[years] + month
    ok &= (day >= 1) & (day <= _MONTH_LENGTH[in_year])
    days = _YEAR_START[years] + _MONTH_START[in_year] + (day - 1)
    epoch = days * 86400 + (hour * 3600 + minute * 60 + np.minimum(second, 59))  # second 60 folds into 59
    return np.where(ok, epoch, 0), ok
