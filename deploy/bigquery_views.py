"""The views ``haulage setup`` creates next to the tables: the usual series.

schema.md defines the series at read time — total = all rows, without
mirrors = traffic is not 'mirror', human = traffic is 'human', CI =
classification.ci — and these views write them down once so nobody
re-derives them (and gets NULL handling wrong). Every condition is NULL-safe:
``IS DISTINCT FROM`` / ``IS TRUE`` count a NULL as "not that", never as
unknown, so a future nullable field cannot silently drop rows from a series.

Pure SQL generation (no client), so tests can check the SQL on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..parsers.schemas import DOWNLOADS

# series name -> (NULL-safe row condition, what it counts)
SERIES: dict[str, tuple[str, str]] = {
    "total": ("TRUE", "every download row"),
    "without_mirrors": ("classification.traffic IS DISTINCT FROM 'mirror'", "rows whose traffic is not 'mirror'"),
    "human": ("classification.traffic = 'human'", "rows whose traffic is 'human' (installers and browsers, not CI, not mirrors)"),
    "ci": ("classification.ci IS TRUE", "rows whose client said it runs in CI (details.ci TRUE)"),
}

# extra per-traffic counts in the daily aggregate (traffic is exactly one of these)
TRAFFIC_COUNTS: dict[str, str] = {
    "automation": "classification.traffic = 'automation'",
    "mirror": "classification.traffic = 'mirror'",
    "unknown_traffic": "classification.traffic = 'unknown'",
    # PyPI's own pipeline drops known bots; this column reproduces its numbers
    "pypi_compatible": "classification.kind IS DISTINCT FROM 'bot'",
}

DAILY_PROJECT = "daily_project_downloads"
DAILY = "daily_downloads"


@dataclass(frozen=True)
class ViewSpec:
    name: str
    query: str
    description: str


def _table(project: str, dataset: str, table: str) -> str:
    return f"`{project}.{dataset}.{table}`"


def series_view_name(series: str) -> str:
    return f"downloads_{series}"


def daily_columns() -> list[str]:
    """Columns of ``daily_project_downloads`` after ``day, project``."""
    return [*SERIES, *TRAFFIC_COUNTS]


def _count(condition: str) -> str:
    return "COUNT(*)" if condition == "TRUE" else f"COUNTIF({condition})"


def views(project: str, dataset: str) -> list[ViewSpec]:
    """Every view, in creation order (the per-day views read the table, not each other)."""
    source = _table(project, dataset, DOWNLOADS)
    out: list[ViewSpec] = []
    for series, (condition, counts) in SERIES.items():
        where = "" if condition == "TRUE" else f"\nWHERE {condition}"
        out.append(ViewSpec(
            series_view_name(series),
            f"SELECT *\nFROM {source}{where}",
            f"haulage series '{series}': {counts}. Filter on timestamp to read only the days you need.",
        ))
    counts = ",\n  ".join(
        f"{_count(cond)} AS {name}"
        for name, cond in [*((s, c) for s, (c, _) in SERIES.items()), *TRAFFIC_COUNTS.items()]
    )
    out.append(ViewSpec(
        DAILY_PROJECT,
        f"SELECT\n  DATE(timestamp) AS day,\n  project,\n  {counts}\nFROM {source}\nGROUP BY day, project",
        "Downloads per UTC day and project: total, without_mirrors, human, ci, and per traffic class. "
        "pypi_compatible leaves out known bots, like PyPI's own pipeline.",
    ))
    series_counts = ",\n  ".join(f"{_count(cond)} AS {name}" for name, (cond, _) in SERIES.items())
    out.append(ViewSpec(
        DAILY,
        f"SELECT\n  DATE(timestamp) AS day,\n  {series_counts}\nFROM {source}\nGROUP BY day",
        "Downloads of all projects per UTC day: total, without_mirrors, human, ci.",
    ))
    return out


def normalized_sql(sql: str | None) -> str | None:
    """Whitespace-insensitive form, to compare a view's SQL with what the code wants."""
    return None if sql is None else " ".join(sql.split())
