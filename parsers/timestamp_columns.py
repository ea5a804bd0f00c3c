"""RFC 1123 timestamps of a whole column at once, by the same rules as :func:`~haulage.parsers.timestamps.parse_rfc1123`.

A busy log file has a few hundred distinct seconds, but a sparse one (or a
replay of a quiet day) has nearly one per line, and a Python call per
distinct text would then cost more than the rest of the line. Here the texts
are laid out as a ``(m, 29)`` byte matrix and every rule is a numpy
comparison over a column of it:

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

__all__ = ["parse_rfc1123_column"]

_WIDTH = 29
_WEEKDAYS = np.array([int.from_bytes(d, "big") for d in (b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat", b"Sun")])
_MONTH_NAMES = (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec")
_MONTH_CODES = np.array([int.from_bytes(m, "big") for m in _MONTH_NAMES])
_MONTH_ORDER = np.argsort(_MONTH_CODES)
_MONTH_SORTED = _MONTH_CODES[_MONTH_ORDER]
_DAYS_IN_MONTH = np.array([31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
_FIXED = {3: b",", 4: b" ", 7: b" ", 11: b" ", 16: b" ", 19: b":", 22: b":", 25: b" ", 26: b"G", 27: b"M", 28: b"T"}
_DIGITS = (5, 6, 12, 13, 14, 15, 17, 18, 20, 21, 23, 24)


def _three_letters(m: np.ndarray, at: int) -> np.ndarray:
    return (m[:, at].astype(np.int64) << 16) | (m[:, at + 1].astype(np.int64) << 8) | m[:, at + 2]


def _number(m: np.ndarray, start: int, width: int) -> np.ndarray:
    value = np.zeros(len(m), np.int64)
    for i in range(start, start + width):
        value = value * 10 + (m[:, i].astype(np.int64) - 48)
    return value


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
    candidates = np.flatnonzero(np.diff(offsets) == _WIDTH)
    if not len(candidates):
        return epochs, valid
    m = data[offsets[candidates][:, None] + np.arange(_WIDTH)]
    ok = np.isin(_three_letters(m, 0), _WEEKDAYS)
    for at, byte in _FIXED.items():
        ok &= m[:, at] == byte[0]
    for at in _DIGITS:
        ok &= (m[:, at] >= 48) & (m[:, at] <= 57)
    month_code = _three_letters(m, 8)
    found = np.minimum(np.searchsorted(_MONTH_SORTED, month_code), 11)
    ok &= _MONTH_SORTED[found] == month_code
    month = _MONTH_ORDER[found] + 1
    day, year = _number(m, 5, 2), _number(m, 12, 4)
    hour, minute, second = _number(m, 17, 2), _number(m, 20, 2), _number(m, 23, 2)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    ok &= (year >= 1970) & (day >= 1) & (day <= _DAYS_IN_MONTH[month - 1])
    ok &= ~((month == 2) & (day == 29) & ~leap)
    ok &= (hour <= 23) & (minute <= 59) & (second <= 60)
    second = np.minimum(second, 59)
    epoch = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    epochs[candidates] = np.where(ok, epoch, 0)
    valid[candidates] = ok
    return epochs, valid
