"""RFC 1123 timestamps of a whole column at once, by the same rules as :func:`~haulage.parsers.timestamps.parse_rfc1123`.

A Python call per text would cost more than the rest of the line, and even
finding the distinct texts (a busy log file has a few hundred distinct
seconds, a sparse one nearly one per line) costs more than parsing every
row here. The texts are laid out as a ``(n, 29)`` byte matrix (a column of
valid texts already is one, without a copy) and every rule is a numpy
comparison over columns of it:

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

__all__ = ["parse_rfc1123_column", "parse_rfc1123_matrix"]

_WIDTH = 29
_FIXED_AT = np.array([3, 4, 7, 11, 16, 19, 22, 25, 26, 27, 28])
_FIXED_BYTES = np.frombuffer(b",    :: GMT", np.uint8)  # what stands at each of _FIXED_AT
_DIGITS_AT = np.array([5, 6, 12, 13, 14, 15, 17, 18, 20, 21, 23, 24])  # DD, YYYY, HH, MM, SS


def _names(names: tuple[bytes, ...]) -> np.ndarray:
    """Three-letter names as the uint32 a 4-byte row (three letters, then 0) reads as."""
    return np.array([int.from_bytes(name + b"\0", "little") for name in names], np.uint32)


_WEEKDAYS = _names((b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun"))
_MONTH_CODES = _names((b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"))
_MONTH_ORDER = np.argsort(_MONTH_CODES)
_MONTH_SORTED = _MONTH_CODES[_MONTH_ORDER]
_DAYS_IN_MONTH = np.array([31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _three_letters(m: np.ndarray, at: int) -> np.ndarray:
    """Bytes ``at .. at + 2`` of every row as one uint32 each (comparable with :func:`_names`)."""
    word = np.zeros((len(m), 4), np.uint8)
    word[:, :3] = m[:, at : at + 3]
    return word.view(np.uint32).ravel()


def _days_from_civil(year: np.ndarray, month: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 (Hinnant's algorithm, as in timestamps.days_from_civil)."""
    year = year - (month <= 2)
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + np.where(month > 2, -3, 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


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
    epochs[candidates], valid[candidates] = parse_rfc1123_matrix(data[offsets[candidates][:, None] + np.arange(_WIDTH)])
    return epochs, valid


def parse_rfc1123_matrix(m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(epoch seconds, valid)`` for each row of an ``(n, 29)`` byte matrix, one text per row (0 where invalid)."""
    ok = (m[:, _FIXED_AT] == _FIXED_BYTES).all(axis=1)
    digits = m[:, _DIGITS_AT].astype(np.int16) - 48
    ok &= ((digits >= 0) & (digits <= 9)).all(axis=1)
    ok &= np.isin(_three_letters(m, 0), _WEEKDAYS)
    month_code = _three_letters(m, 8)
    found = np.minimum(np.searchsorted(_MONTH_SORTED, month_code), 11)
    ok &= _MONTH_SORTED[found] == month_code
    month = _MONTH_ORDER[found] + 1
    day = digits[:, 0] * 10 + digits[:, 1]
    year = digits[:, 2].astype(np.int64) * 1000 + digits[:, 3] * 100 + digits[:, 4] * 10 + digits[:, 5]
    hour, minute = digits[:, 6] * 10 + digits[:, 7], digits[:, 8] * 10 + digits[:, 9]
    second = digits[:, 10] * 10 + digits[:, 11]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    ok &= (year >= 1970) & (day >= 1) & (day <= _DAYS_IN_MONTH[month - 1])
    ok &= ~((month == 2) & (day == 29) & ~leap)
    ok &= (hour <= 23) & (minute <= 59) & (second <= 60)
    second = np.minimum(second, 59)
    epoch = _days_from_civil(year, month, day.astype(np.int64)) * 86400 + hour.astype(np.int64) * 3600 + minute * 60 + second
    return np.where(ok, epoch, 0), ok
