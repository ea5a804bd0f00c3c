"""RFC 1123 timestamps (``Thu, 07 Jan 2021 20:54:54 GMT``) to epoch seconds.

``strptime`` costs several microseconds per call; a log file holds only a few
thousand distinct seconds, so the parser keeps a small memo in front of a
fixed-position slicer that does the calendar arithmetic itself.
"""

from __future__ import annotations

__all__ = ["BadTimestamp", "days_from_civil", "parse_rfc1123", "TimestampCache", "iso_from_epoch"]


_MONTHS = {
    "Jan": 1, "Feb": 2, "Mar": 3, "Apr": 4, "May": 5, "Jun": 6,
    "Jul": 7, "Aug": 8, "Sep": 9, "Oct": 10, "Nov": 11, "Dec": 12,
}
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class BadTimestamp(ValueError):
    """The text is not an RFC 1123 GMT timestamp."""


def days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 for a proleptic Gregorian date (Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def parse_rfc1123(text: str) -> tuple[int, str]:
    """Return ``(epoch_seconds, iso8601_utc)`` for ``'Thu, 07 Jan 2021 20:54:54 GMT'``.

    Strict on shape (the CDN always writes the same 29 characters) but tolerant
    of a wrong weekday name, which carries no information we keep.
    """
    if (
        len(text) != 29
        or text[3:5] != ", "
        or text[7] != " "
        or text[11] != " "
        or text[16] != " "
        or text[19] != ":"
        or text[22] != ":"
        or text[25:] != " GMT"
        or text[:3] not in _WEEKDAYS
    ):
        raise BadTimestamp(text)
    month = _MONTHS.get(text[8:11])
    digits = text[5:7] + text[12:16] + text[17:19] + text[20:22] + text[23:25]
    if month is None or not digits.isascii() or not digits.isdigit():
        raise BadTimestamp(text)
    day = int(text[5:7])
    year = int(text[12:16])
    hour = int(text[17:19])
    minute = int(text[20:22])
    second = int(text[23:25])
    if (
        year < 1970
        or day < 1
        or day > _DAYS_IN_MONTH[month - 1]
        or (month == 2 and day == 29 and not _is_leap(year))
        or hour > 23
        or minute > 59
        or second > 60
    ):
        raise BadTimestamp(text)
    if second == 60:  # a leap second folds into the next one, as BigQuery does
        second = 59
    epoch = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    iso = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}Z"
    return epoch, iso


class TimestampCache:
    """Memo of parsed timestamps, cleared wholesale when it grows past ``limit``.

    A plain dict is the fastest lookup Python has; clearing it when full is
    cheaper than LRU bookkeeping and, since log lines arrive in time order,
    loses nothing that is still hot. On a miss only the time of day is
    parsed: the date part (``Thu, 07 Jan 2021``) has its own memo, since a
    file spans a handful of days at most.
    """

    __slots__ = ("memo", "_days", "_limit")

    def __init__(self, limit: int = 65536) -> None:
        self.memo: dict[str, tuple[int, str]] = {}
        self._days: dict[str, tuple[int, str]] = {}
        self._limit = limit

    def get(self, text: str) -> tuple[int, str]:
        """``(epoch seconds, ISO 8601 text)`` of an RFC 1123 timestamp, memoised (CDN lines repeat the same second)."""
        hit = self.memo.get(text)
        if hit is not None:
            return hit
        value = self._parse(text)
        if len(self.memo) >= self._limit:
            self.memo.clear()
        self.memo[text] = value
        return value

    def _parse(self, text: str) -> tuple[int, str]:
        day = self._days.get(text[:16])
        if day is None:
            epoch, iso = parse_rfc1123(text)  # full validation once per day
            if len(self._days) >= 4096:
                self._days.clear()
            day = self._days[text[:16]] = (epoch - epoch % 86400, iso[:11])
        clock = text[17:25]
        if (
            len(text) != 29
            or text[16] != " "
            or text[25:] != " GMT"
            or clock[2] != ":"
            or clock[5] != ":"
            or not (digits := clock[:2] + clock[3:5] + clock[6:]).isdigit()
            or not digits.isascii()
        ):
            raise BadTimestamp(text)
        hour, minute, second = int(clock[:2]), int(clock[3:5]), int(clock[6:])
        if hour > 23 or minute > 59 or second > 60:
            raise BadTimestamp(text)
        if second == 60:
            return parse_rfc1123(text)
        return day[0] + hour * 3600 + minute * 60 + second, f"{day[1]}{clock}Z"


def iso_from_epoch(epoch: int) -> str:
    """ISO 8601 UTC text for epoch seconds (used for ``received_at``)."""
    import datetime

    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
