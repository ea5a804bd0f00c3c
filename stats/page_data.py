"""Everything one project page shows, asked of a backend with ``haulage stats``' own queries.

Why a separate step from the HTML: the page and ``haulage stats --json``
must agree number for number, so the page takes its figures from the same
:func:`~haulage.stats.report.build_report` (and the breakdowns from
the same :func:`~haulage.stats.report.breakdown_groups` that
``--by`` uses); this module only chooses the range and the breakdowns.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional

from .backends import Backend
from .query import resolve_fields
from .report import DaySpec, Groups, Report, breakdown_groups, build_report

__all__ = ["RANGES", "DEFAULT_RANGE", "BREAKDOWNS", "ProjectPage", "project_page", "range_spec"]

# range key → the last N days (ending at the newest day in the dataset), or None for every day
RANGES: dict[str, Optional[int]] = {"7d": 7, "30d": 30, "90d": 90, "all": None}
DEFAULT_RANGE = "all"  # haulage stats without --from/--to/--days: every day in the dataset

# the breakdowns shown as bars, by their --by names
BREAKDOWNS: tuple[str, ...] = ("installer", "python", "system", "cpu", "country", "cloud", "version", "package-type")


@dataclass(frozen=True)
class ProjectPage:
    """The report of one range and its breakdowns (field name → groups, biggest first)."""

    report: Report
    range_key: str
    breakdowns: dict[str, Groups]


def range_spec(range_key: str) -> DaySpec:
    """The DaySpec that ``haulage stats`` gets for the same range: ``--days N`` or no option."""
    last = RANGES[range_key]
    return DaySpec(last=last) if last else DaySpec()


def project_page(backend: Backend, project: str, range_key: str = DEFAULT_RANGE,
                 today: Optional[dt.date] = None) -> ProjectPage:
    """Ask everything for one page; raises StatsError (UnknownProject, NoDownloadsInRange, …)."""
    report = build_report(backend, project, range_spec(range_key), today=today)
    fields = resolve_fields(BREAKDOWNS)
    # the breakdowns are independent scans: let them overlap (DuckDB and the
    # BigQuery client both take concurrent queries from several threads)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {field.name: pool.submit(breakdown_groups, backend, report.project, (field,), report.start, report.end)
                   for field in fields}
        breakdowns = {name: future.result() for name, future in futures.items()}
    return ProjectPage(report, range_key, breakdowns)
