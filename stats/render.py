"""``haulage stats`` output: a table for people, JSON and CSV for programs.

Why the text says what each series means: "downloads" on the usual pages
mixes mirrors, CI and bots with people; a maintainer reading these numbers
should see at a glance which line answers "how many people installed it".
"""

from __future__ import annotations

import csv
import io
import json
import textwrap
from dataclasses import replace
from typing import Any, Optional, Sequence

from .report import EXACT, SERIES, Counts, Report

__all__ = [
    "LABELS", "NONE", "DEFAULT_TEXT_LIMIT", "LEGEND", "cell", "render_text", "limited", "render_json",
    "render_csv",
]


LABELS: dict[str, str] = {
    "total": "total",
    "without_mirrors": "without mirrors",
    "human": "human",
    "ci": "ci",
    "automation": "automation",
    "mirror": "mirror",
    "unknown": "unknown",
    "bots": "bots",
}
NONE = "(none)"
DEFAULT_TEXT_LIMIT = 30

LEGEND = (
    "human: installers and browsers outside CI · ci: the client said it runs in CI · "
    "automation: scripts, OS tools, bots · mirror: bandersnatch, devpi, Artifactory, … · "
    "bots: known crawlers and no agent (part of automation)"
)


def cell(value: Any) -> str:
    """A group key for people: NULL as (none), booleans as true/false."""
    if value is None:
        return NONE
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "-"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int) -> list[str]:
    """Columns padded to width; the first ``left`` columns left-aligned, the rest right."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    out = []
    for r in [header, *rows]:
        parts = [v.ljust(w) if i < left else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))]
        out.append("  ".join(parts).rstrip())
    return out


def render_text(report: Report, limit: Optional[int] = None) -> str:
    """The summary (and the breakdown, with --by) as aligned tables."""
    t = report.totals
    calendar = (report.end - report.start).days + 1
    days = f"{len(report.days)} day{'s' if len(report.days) != 1 else ''}"
    if len(report.days) != calendar:
        days += f" with data in {calendar} calendar days"
    lines = [f"{report.project}: downloads {report.start}..{report.end} ({days}), from {report.source}", ""]
    rows = [[LABELS[name], f"{getattr(t, name):,}", f"{report.per_day(name):,.1f}",
             _percent(getattr(t, name), t.total)] for name in SERIES]
    lines += _table(["", "downloads", "per day", "of total"], rows, left=1)
    lines += ["", *textwrap.wrap(f"bot share {_percent(t.bots, t.total)}. {LEGEND}.", 100)]
    lines += ["", *textwrap.wrap(" · ".join(_more(report)), 100, break_on_hyphens=False)]
    if report.by:
        lines += ["", *_breakdown_text(report, DEFAULT_TEXT_LIMIT if limit is None else limit)]
    return "\n".join(lines) + "\n"


def _more(report: Report) -> list[str]:
    """Environments, index look-ups and freshness, one phrase each (the page explains them at length)."""
    out = []
    if report.environments is None:
        out.append("client environments: unknown (data written before the agent_fingerprint column)")
    else:
        partial = (f", not counting {report.environments_unknown_days} day(s) written before the fingerprint column"
                   if report.environments_unknown_days else "")
        about = "" if report.environments_method == EXACT else "about "  # HyperLogLog: rollups' sketches or BigQuery
        out.append(f"{about}{report.environments:,} distinct client environments (agent, country, TLS; not people)"
                   f"{partial}")
    if report.downloads_per_lookup is not None:
        out.append(f"{report.downloads_per_lookup:,.2f} downloads per index look-up ({report.simple_total:,} look-ups)")
    if report.freshness_days is not None:
        out.append(f"newest day with data {report.newest_day}: {report.freshness_days} day(s) old, "
                   f"{report.freshness} (days are UTC)")
    return out


def _breakdown_text(report: Report, limit: int) -> list[str]:
    groups = report.breakdown
    shown = groups if limit <= 0 else groups[:limit]
    header = [*report.by, "total", "share", *(LABELS[n] for n in SERIES[1:])]
    rows = [[*(cell(k) for k in keys), f"{c.total:,}", _percent(c.total, report.totals.total),
             *(f"{getattr(c, n):,}" for n in SERIES[1:])] for keys, c in shown]
    lines = [f"by {', '.join(report.by)} ({len(groups)} group{'s' if len(groups) != 1 else ''})"]
    lines += _table(header, rows, left=len(report.by))
    if len(shown) < len(groups):
        rest = sum((c for _, c in groups[len(shown):]), Counts())
        lines.append(f"… and {len(groups) - len(shown)} more groups with {rest.total:,} downloads "
                     "(--limit 0 shows all; --csv and --json give every group)")
    return lines


def limited(report: Report, limit: Optional[int]) -> Report:
    """The report with at most ``limit`` breakdown groups (None or 0: all)."""
    if not limit or limit <= 0:
        return report
    return replace(report, breakdown=report.breakdown[:limit])


def render_json(report: Report) -> str:
    """The report as indented JSON (:meth:`Report.to_json`), for scripts."""
    return json.dumps(report.to_json(), indent=2, ensure_ascii=False) + "\n"


def render_csv(report: Report) -> str:
    """The breakdown with --by, else the daily series (with the project's simple requests); NULL keys empty."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if report.by:
        writer.writerow([*report.by, *SERIES])
        for keys, counts in report.breakdown:
            writer.writerow([*("" if k is None else cell(k) for k in keys), *counts.series().values()])
    else:
        simple = report.simple_daily
        writer.writerow(["day", *SERIES, *(["simple_requests"] if simple is not None else [])])
        for i, (day, counts) in enumerate(report.daily):
            writer.writerow([day, *counts.series().values(), *([simple[i]] if simple is not None else [])])
    return buf.getvalue()
