"""What ``haulage stats`` reports, as data: the range, the series, the breakdown.

Why separate from the command and the renderers: one :class:`Report` feeds
the text table, JSON, CSV and the plot, and the tests compare the Reports of
two backends (Parquet and BigQuery) with each other and with counts made
from the input lines. Everything here talks to a backend only through the
queries of :mod:`.query`.

Days: a day counts when the dataset has any download row on it (of any
project). Daily averages divide by those days, because a day the pipeline
has no data for is a gap in collection, not a day nobody downloaded.

The figures beyond the counts, defined once here for the CLI and the page:

* ``avg_week`` = daily average × 7 and ``avg_month`` = daily average × 30:
  rates, not calendar sums;
* ``change``: each figure against the same figure of the previous period of
  the same length (the calendar days just before ``start``), as a fraction
  ((now − before) / before); for ``bot_pct`` (the "Bot %" card,
  100 × (1 − human / total)) the difference in percentage points. None when
  the previous period has no data or the figure was 0;
* ``environments``: distinct (agent fingerprint, country, TLS protocol, TLS
  cipher) tuples among the project's downloads in the range; None when no
  row in the range has a fingerprint (data written before the column);
* ``freshness_days``: whole UTC days from the newest day with data in the
  dataset to today (UTC); 0–1 normal, 2–3 minor lag, 4 or more delayed.
"""

from __future__ import annotations

import datetime as dt
import difflib
from dataclasses import dataclass, fields
from typing import Any, Optional, Sequence

from .backends import Backend
from .query import (DOWNLOADS_TABLE, FIELDS, SIMPLE_TABLE, Field, UnknownField, counts_query, days_query,
                          environments_query, newest_day_query, normalize_project, projects_query, resolve_fields,
                          simple_query)

# the series people read, in the order they are shown; 'ci' is classification.ci
SERIES: tuple[str, ...] = ("total", "without_mirrors", "human", "ci", "automation", "mirror", "unknown", "bots")
# the traffic classes (a partition of total), in schema.md's order of precedence
TRAFFIC: tuple[str, ...] = ("mirror", "ci", "automation", "human", "unknown")
# the averages as rates: days in a week and in a (30-day) month
WEEK_DAYS, MONTH_DAYS = 7, 30
# freshness: the newest day with data is this many days old at most for each label
FRESHNESS: tuple[tuple[int, str], ...] = ((1, "normal"), (3, "minor lag"))
DELAYED = "delayed"


def freshness_label(age_days: int) -> str:
    """0–1 days: normal; 2–3: minor lag; 4 or more: delayed."""
    for limit, label in FRESHNESS:
        if age_days <= limit:
            return label
    return DELAYED


def relative_change(now: float, before: Optional[float]) -> Optional[float]:
    """(now − before) / before, rounded to 4 places; None without a base to compare with."""
    if before is None or before == 0:
        return None
    return round((now - before) / before, 4)


class StatsError(Exception):
    """A question the data cannot answer (exit 1) or a bad option (exit 2); the message says why."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class UnknownProject(StatsError):
    """The project has no downloads in the dataset at all; ``suggestions`` are close names that do."""

    def __init__(self, message: str, suggestions: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.suggestions = tuple(suggestions)


class NoDownloadsInRange(StatsError):
    """The project has downloads, on other days than the range: ``first_day``..``last_day``."""

    def __init__(self, message: str, first_day: str, last_day: str) -> None:
        super().__init__(message)
        self.first_day, self.last_day = first_day, last_day


@dataclass(frozen=True)
class Counts:
    """The counted series for one group of rows (see query.COUNTED)."""

    total: int = 0
    without_mirrors: int = 0
    human: int = 0
    ci: int = 0
    automation: int = 0
    mirror: int = 0
    unknown: int = 0
    traffic_ci: int = 0  # traffic = 'ci' (ci above is the CI flag, which a mirror may also carry)
    bots: int = 0

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> "Counts":
        return cls(**{f.name: int(row[f.name] or 0) for f in fields(cls)})

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(**{f.name: getattr(self, f.name) + getattr(other, f.name) for f in fields(self)})

    def traffic(self, name: str) -> int:
        """Rows of one traffic class (the classes add up to total)."""
        return self.traffic_ci if name == "ci" else getattr(self, name)

    def series(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in SERIES}


@dataclass(frozen=True)
class DaySpec:
    """The days asked for: ``--from``/``--to`` (each optional) or ``--days N`` (ending at ``--to``)."""

    start: Optional[dt.date] = None
    end: Optional[dt.date] = None
    last: Optional[int] = None


@dataclass(frozen=True)
class Period:
    """The previous period of the same length, for the changes."""

    start: dt.date
    end: dt.date
    days: tuple[str, ...] = ()  # days in start..end with data
    totals: Counts = Counts()
    environments: Optional[int] = None

    def per_day(self, name: str) -> Optional[float]:
        return getattr(self.totals, name) / len(self.days) if self.days else None

    @property
    def bot_pct(self) -> Optional[float]:
        return 100 * (1 - self.totals.human / self.totals.total) if self.totals.total else None


@dataclass(frozen=True)
class Report:
    """The answer for one project over one range of days."""

    project: str
    source: str
    start: dt.date
    end: dt.date
    days: tuple[str, ...]  # days in start..end that the dataset has data for
    daily: tuple[tuple[str, Counts], ...]  # one entry per day in ``days``
    totals: Counts
    by: tuple[str, ...] = ()
    breakdown: "Groups" = ()
    previous: Optional[Period] = None
    environments: Optional[int] = None
    environments_unknown_days: int = 0  # days in range with rows that have no fingerprint
    simple_daily: Optional[tuple[int, ...]] = None  # simple requests per day of ``days``; None: no table
    newest_day: Optional[str] = None  # newest day with data in the whole dataset
    today: Optional[dt.date] = None  # the UTC day freshness is measured on

    def per_day(self, name: str) -> float:
        return getattr(self.totals, name) / len(self.days)

    def per_week(self, name: str) -> float:
        return self.per_day(name) * WEEK_DAYS

    def per_month(self, name: str) -> float:
        return self.per_day(name) * MONTH_DAYS

    @property
    def bot_share(self) -> float:
        """Known bots and missing agents, as a fraction of total."""
        return self.totals.bots / self.totals.total if self.totals.total else 0.0

    @property
    def bot_pct(self) -> float:
        """The "Bot %" card: 100 × (1 − human / total), everything that is not a person."""
        return 100 * (1 - self.totals.human / self.totals.total) if self.totals.total else 0.0

    @property
    def simple_total(self) -> Optional[int]:
        return None if self.simple_daily is None else sum(self.simple_daily)

    @property
    def downloads_per_lookup(self) -> Optional[float]:
        """Downloads per ``simple`` index request of the project (None without look-ups)."""
        simple = self.simple_total
        return round(self.totals.total / simple, 2) if simple else None

    @property
    def freshness_days(self) -> Optional[int]:
        if self.newest_day is None or self.today is None:
            return None
        return (self.today - dt.date.fromisoformat(self.newest_day)).days

    @property
    def freshness(self) -> Optional[str]:
        age = self.freshness_days
        return None if age is None else freshness_label(age)

    def changes(self) -> dict[str, Any]:
        """Each card against the previous period (see the module docstring)."""
        before = self.previous or Period(self.start, self.end)
        out: dict[str, Any] = {
            "downloads": {n: relative_change(getattr(self.totals, n), getattr(before.totals, n) if before.days else None)
                          for n in SERIES},
        }
        for key, factor in (("daily_average", 1), ("avg_week", WEEK_DAYS), ("avg_month", MONTH_DAYS)):
            out[key] = {n: relative_change(self.per_day(n) * factor,
                                           None if before.per_day(n) is None else before.per_day(n) * factor)
                        for n in SERIES}
        pct = before.bot_pct
        out["bot_pct"] = None if pct is None else round(self.bot_pct - pct, 2)
        out["environments"] = (relative_change(self.environments, before.environments)
                               if self.environments is not None else None)
        return out

    @property
    def has_gaps(self) -> bool:
        """Whether some days between the first and last day have no data."""
        first, last = dt.date.fromisoformat(self.days[0]), dt.date.fromisoformat(self.days[-1])
        return (last - first).days + 1 != len(self.days)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "project": self.project,
            "source": self.source,
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "days": len(self.days),
            **self.totals.series(),
            "bot_share": round(self.bot_share, 4),
            "bot_pct": round(self.bot_pct, 2),
            "traffic": {name: self.totals.traffic(name) for name in TRAFFIC},
            "daily_average": {name: round(self.per_day(name), 2) for name in SERIES},
            "avg_week": {name: round(self.per_week(name), 2) for name in SERIES},
            "avg_month": {name: round(self.per_month(name), 2) for name in SERIES},
            "environments": self.environments,
            "environments_unknown_days": self.environments_unknown_days,
            "simple_requests": self.simple_total,
            "downloads_per_lookup": self.downloads_per_lookup,
            "newest_day": self.newest_day,
            "freshness_days": self.freshness_days,
            "freshness": self.freshness,
            "previous": None if self.previous is None else {
                "from": self.previous.start.isoformat(), "to": self.previous.end.isoformat(),
                "days": len(self.previous.days)},
            "change": self.changes(),
            "daily": [{"day": day, **counts.series(),
                       **({} if self.simple_daily is None else {"simple_requests": self.simple_daily[i]})}
                      for i, (day, counts) in enumerate(self.daily)],
        }
        if self.by:
            out["by"] = list(self.by)
            out["breakdown"] = [{**dict(zip(self.by, keys)), **counts.series()} for keys, counts in self.breakdown]
        return out


# --------------------------------------------------------------------------


def _span(days: Sequence[str]) -> str:
    return f"{days[0]}..{days[-1]}" if days else "no days at all"


class _Asker:
    """Runs the queries for one report, remembering what it already asked."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self._all_days: Optional[dict[str, int]] = None

    def days(self, day_range: Optional[tuple[dt.date, dt.date]]) -> dict[str, int]:
        """Day → download rows (all projects), for the range or for all days."""
        if self._all_days is not None:
            if day_range is None:
                return self._all_days
            first, last = day_range[0].isoformat(), day_range[1].isoformat()
            return {day: n for day, n in self._all_days.items() if first <= day <= last}
        rows = self.backend.run(days_query(self.backend.dialect, day_range))
        found = dict(sorted((row["day"], row["downloads"]) for row in rows if row["day"] is not None))
        if day_range is None:
            self._all_days = found
        return found

    def all_days(self) -> list[str]:
        return sorted(self.days(None))

    def newest_day(self) -> Optional[str]:
        """The newest day with download rows in the whole dataset."""
        if self._all_days is not None:
            return max(self._all_days, default=None)
        (row,) = self.backend.run(newest_day_query(self.backend.dialect))
        return row["day"]


def _resolve_range(spec: DaySpec, asker: _Asker) -> tuple[dt.date, dt.date]:
    """Fill in the open ends of the range from the days the dataset has."""
    if spec.start and spec.end and not spec.last:
        return spec.start, spec.end
    known = asker.all_days()
    if not known:
        raise StatsError(f"the dataset {asker.backend.describe()} has no download rows at all")
    first, last = dt.date.fromisoformat(known[0]), dt.date.fromisoformat(known[-1])
    if spec.last:
        end = spec.end or last
        return end - dt.timedelta(days=spec.last - 1), end
    start = spec.start or min(first, spec.end or first)
    end = spec.end or max(last, start)
    return start, end


def _explain_empty(project: str, start: dt.date, end: dt.date, asker: _Asker) -> StatsError:
    """Why the project has no rows in the range: unknown name, or other days."""
    rows = asker.backend.run(projects_query(asker.backend.dialect))
    spans: dict[str, tuple[str, str, int]] = {}
    for row in rows:
        if row["project"] is None:
            continue
        name = normalize_project(row["project"])
        first, last, n = row["first_day"], row["last_day"], row["downloads"]
        if name in spans:
            f0, l0, n0 = spans[name]
            first, last, n = min(first, f0), max(last, l0), n + n0
        spans[name] = (first, last, n)
    dataset = f"the dataset has days {_span(asker.all_days())}"
    if project in spans:
        first, last, _ = spans[project]
        on = f"on {first}" if first == last else f"on days {first}..{last}"
        return NoDownloadsInRange(f"no downloads of {project!r} between {start} and {end}; "
                                  f"{project!r} has downloads {on}; {dataset}", first, last)
    close = difflib.get_close_matches(project, list(spans), n=5, cutoff=0.6)
    hint = "; did you mean " + ", ".join(repr(c) for c in close) + "?" if close else ""
    return UnknownProject(f"project {project!r} not found in {asker.backend.describe()} "
                          f"({len(spans)} projects, {dataset.removeprefix('the dataset has ')}){hint}", close)


def _sort_key(fields_: Sequence[Field]):
    """Days and months in order first; then the biggest groups first; NULL last."""
    chrono = [i for i, f in enumerate(fields_) if f.chronological]
    other = [i for i, f in enumerate(fields_) if not f.chronological]

    def key(item: tuple[tuple[Any, ...], Counts]) -> tuple:
        keys, counts = item
        nulls_last = lambda i: (keys[i] is None, str(keys[i]))  # noqa: E731
        return (*[nulls_last(i) for i in chrono], -counts.total, *[nulls_last(i) for i in other])

    return key


Groups = tuple[tuple[tuple[Any, ...], Counts], ...]


def breakdown_groups(backend: Backend, project: str, fields_: Sequence[Field], start: dt.date,
                     end: dt.date) -> Groups:
    """The counted series of ``project`` grouped by ``fields_`` over start..end, in report order."""
    rows = backend.run(counts_query(backend.dialect, normalize_project(project), fields_, (start, end)))
    groups = [(tuple(row[f"g{i}"] for i in range(len(fields_))), Counts.from_row(row)) for row in rows]
    return tuple(sorted(groups, key=_sort_key(fields_)))


def _utc_today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()


def build_report(backend: Backend, project: str, spec: DaySpec, by: Sequence[str] = (),
                 today: Optional[dt.date] = None) -> Report:
    """Ask ``backend`` everything the report needs; raise StatsError when there is nothing to show.

    ``today`` (default: the current UTC day) is what freshness is measured against.
    """
    name = normalize_project(project)
    if not name or name == "-":
        raise StatsError(f"PROJECT {project!r}: expected a project name, e.g. requests", exit_code=2)
    try:
        fields_ = resolve_fields(by)
    except UnknownField as exc:
        raise StatsError(str(exc), exit_code=2) from None
    asker = _Asker(backend)
    start, end = _resolve_range(spec, asker)
    if end < start:
        raise StatsError(f"--from {start} is after --to {end}", exit_code=2)
    # the previous period of the same length, for the changes: one scan covers both
    length = end - start + dt.timedelta(days=1)
    before = (start - length, start - dt.timedelta(days=1))
    with_data = asker.days((before[0], end))
    present = [day for day in with_data if start.isoformat() <= day <= end.isoformat()]
    if not present:
        raise StatsError(f"no downloads at all between {start} and {end}; the dataset has days {_span(asker.all_days())}")
    present_before = tuple(day for day in with_data if day < start.isoformat())

    dialect = backend.dialect
    rows = backend.run(counts_query(dialect, name, (FIELDS["day"],), (before[0], end)))
    by_day = {row["g0"]: Counts.from_row(row) for row in rows}
    daily = tuple((day, by_day.get(day, Counts())) for day in present)
    totals = sum((counts for _, counts in daily), Counts())
    if totals.total == 0:
        raise _explain_empty(name, start, end, asker)
    totals_before = sum((by_day.get(day, Counts()) for day in present_before), Counts())

    environments: Optional[int] = None
    environments_before: Optional[int] = None
    # without the column at all, every day with downloads is a day of unknown environments
    unknown_days = sum(1 for _, counts in daily if counts.total)
    if backend.has_column(DOWNLOADS_TABLE, "agent_fingerprint", (before[0], end)):
        (row,) = backend.run(environments_query(dialect, name, (before, (start, end))))
        unknown_days = row["unknown_days_1"]
        # no fingerprinted row at all and some without: the count would be a made-up 0
        if row["environments_1"] or not unknown_days:
            environments = row["environments_1"]
        if present_before and row["unknown_days_0"] == 0:
            environments_before = row["environments_0"]

    simple_daily: Optional[tuple[int, ...]] = None
    if backend.has_table(SIMPLE_TABLE):
        simple = {row["g0"]: row["simple_requests"] for row in backend.run(simple_query(dialect, name, (start, end)))}
        simple_daily = tuple(int(simple.get(day, 0)) for day in present)

    newest = asker.newest_day()

    breakdown = breakdown_groups(backend, name, fields_, start, end) if fields_ else ()
    return Report(name, backend.describe(), start, end, tuple(present), daily, totals,
                  tuple(f.name for f in fields_), breakdown,
                  previous=Period(before[0], before[1], present_before, totals_before, environments_before),
                  environments=environments, environments_unknown_days=unknown_days, simple_daily=simple_daily,
                  newest_day=newest, today=today or _utc_today())

