"""What ``haulage stats`` reports, as data: the range, the series, the breakdown.

Why separate from the command and the renderers: one :class:`Report` feeds
the text table, JSON, CSV and the plot, and the tests compare the Reports of
two backends (Parquet and BigQuery) with each other and with counts made
from the input lines. Everything here talks to a backend only through the
queries of :mod:`.stats_query`.

Days: a day counts when the dataset has any download row on it (of any
project). Daily averages divide by those days, because a day the pipeline
has no data for is a gap in collection, not a day nobody downloaded.
"""

from __future__ import annotations

import datetime as dt
import difflib
from dataclasses import dataclass, fields
from typing import Any, Optional, Sequence

from .stats_backends import Backend
from .stats_query import (FIELDS, Field, UnknownField, counts_query, days_query, normalize_project, projects_query,
                          resolve_fields)

# the series people read, in the order they are shown; 'ci' is classification.ci
SERIES: tuple[str, ...] = ("total", "without_mirrors", "human", "ci", "automation", "mirror", "unknown", "bots")
# the traffic classes (a partition of total), in schema.md's order of precedence
TRAFFIC: tuple[str, ...] = ("mirror", "ci", "automation", "human", "unknown")


class StatsError(Exception):
    """A question the data cannot answer (exit 1) or a bad option (exit 2); the message says why."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class Counts:
    """The counted series for one group of rows (see stats_query.COUNTED)."""

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
    breakdown: tuple[tuple[tuple[Any, ...], Counts], ...] = ()

    def per_day(self, name: str) -> float:
        return getattr(self.totals, name) / len(self.days)

    @property
    def bot_share(self) -> float:
        return self.totals.bots / self.totals.total if self.totals.total else 0.0

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
            "traffic": {name: self.totals.traffic(name) for name in TRAFFIC},
            "daily_average": {name: round(self.per_day(name), 2) for name in SERIES},
            "daily": [{"day": day, **counts.series()} for day, counts in self.daily],
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
        if day_range is None and self._all_days is not None:
            return self._all_days
        rows = self.backend.run(days_query(self.backend.dialect, day_range))
        found = dict(sorted((row["day"], row["downloads"]) for row in rows if row["day"] is not None))
        if day_range is None:
            self._all_days = found
        return found

    def all_days(self) -> list[str]:
        return sorted(self.days(None))


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
        return StatsError(f"no downloads of {project!r} between {start} and {end}; "
                          f"{project!r} has downloads {on}; {dataset}")
    close = difflib.get_close_matches(project, list(spans), n=5, cutoff=0.6)
    hint = "; did you mean " + ", ".join(repr(c) for c in close) + "?" if close else ""
    return StatsError(f"project {project!r} not found in {asker.backend.describe()} "
                      f"({len(spans)} projects, {dataset.removeprefix('the dataset has ')}){hint}")


def _sort_key(fields_: Sequence[Field]):
    """Days and months in order first; then the biggest groups first; NULL last."""
    chrono = [i for i, f in enumerate(fields_) if f.chronological]
    other = [i for i, f in enumerate(fields_) if not f.chronological]

    def key(item: tuple[tuple[Any, ...], Counts]) -> tuple:
        keys, counts = item
        nulls_last = lambda i: (keys[i] is None, str(keys[i]))  # noqa: E731
        return (*[nulls_last(i) for i in chrono], -counts.total, *[nulls_last(i) for i in other])

    return key


def build_report(backend: Backend, project: str, spec: DaySpec, by: Sequence[str] = ()) -> Report:
    """Ask ``backend`` everything the report needs; raise StatsError when there is nothing to show."""
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
    present = list(asker.days((start, end)))
    if not present:
        raise StatsError(f"no downloads at all between {start} and {end}; the dataset has days {_span(asker.all_days())}")

    dialect = backend.dialect
    rows = backend.run(counts_query(dialect, name, (FIELDS["day"],), (start, end)))
    by_day = {row["g0"]: Counts.from_row(row) for row in rows}
    daily = tuple((day, by_day.get(day, Counts())) for day in present)
    totals = sum((counts for _, counts in daily), Counts())
    if totals.total == 0:
        raise _explain_empty(name, start, end, asker)

    breakdown: tuple[tuple[tuple[Any, ...], Counts], ...] = ()
    if fields_:
        rows = backend.run(counts_query(dialect, name, fields_, (start, end)))
        groups = [(tuple(row[f"g{i}"] for i in range(len(fields_))), Counts.from_row(row)) for row in rows]
        breakdown = tuple(sorted(groups, key=_sort_key(fields_)))
    return Report(name, backend.describe(), start, end, tuple(present), daily, totals,
                  tuple(f.name for f in fields_), breakdown)
