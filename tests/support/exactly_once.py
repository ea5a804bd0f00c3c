"""Helpers for the exactly-once (fault-injection) tests.

The rule every fault test checks: after the fault and whatever recovery the
operator would do (run again, redeliver), the set of event ids in the tables
equals the expected set and no id occurs twice; dead letters are counted the
same way. The expected set comes from a clean run of the same input into a
fresh output, and that clean run is itself checked line by line against the
generator's oracle (benchmarks/corpus.py) by ``pipeline_check``.

Every fault test reports one row to the fault table printed at the end of the
session (see tests/conftest.py): the scenario, the faults injected, the lines
expected, and how many were found once, twice or more, or not at all.
"""

from __future__ import annotations

import collections
import dataclasses
import gzip
import os
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from support import pipeline_check as pc

HAULAGE = str(Path(sys.executable).with_name("haulage"))
ROW_TABLES = ("file_downloads", "simple_requests")
TABLES = ROW_TABLES + ("unprocessed",)
_PART = re.compile(r"^part-.*\.parquet$")


# --------------------------------------------------------------------------
# the fault table


@dataclasses.dataclass
class FaultRow:
    scenario: str
    faults: str
    expected: int
    once: int
    duplicated: int
    missing: int
    extra: int

    @property
    def exact(self) -> bool:
        return self.once == self.expected and not (self.duplicated or self.missing or self.extra)


FAULT_TABLE: list[FaultRow] = []


def render_fault_table(rows: Sequence[FaultRow]) -> str:
    head = ("scenario", "faults injected", "lines expected", "once", "twice+", "missing", "unknown", "")
    body = [(r.scenario, r.faults, f"{r.expected:,}", f"{r.once:,}", f"{r.duplicated:,}", f"{r.missing:,}",
             f"{r.extra:,}", "exact" if r.exact else "WRONG") for r in rows]
    widths = [max(len(str(row[i])) for row in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(str(v).ljust(widths[i]) if i < 2 else str(v).rjust(widths[i]) for i, v in enumerate(row))
             for row in [head, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# --------------------------------------------------------------------------
# what the tables hold


@dataclasses.dataclass
class Holdings:
    """Event ids of the row tables (with multiplicity) and dead-letter keys."""

    ids: collections.Counter
    dead: collections.Counter  # (source, error) of unprocessed rows

    @property
    def lines(self) -> int:
        return sum(self.ids.values()) + sum(self.dead.values())


def holdings_from_rows(rows: dict[str, Iterable[dict[str, Any]]]) -> Holdings:
    ids: collections.Counter = collections.Counter()
    dead: collections.Counter = collections.Counter()
    for table in ROW_TABLES:
        ids.update(r["event_id"] for r in rows.get(table, ()))
    dead.update((r["source"], r["error"]) for r in rows.get("unprocessed", ()))
    return Holdings(ids, dead)


def visible_parquet_files(out: Path, table: str) -> list[Path]:
    """The files a reader globbing ``<table>/date=*/*`` sees (hidden names too:
    ``bq load gs://…/*`` and DuckDB globs do not skip them)."""
    return sorted(p for p in (out / table).glob("date=*/*") if p.is_file())


def parquet_holdings(out: Path, *, strict: bool = True) -> Holdings:
    """Rows of every file under the table folders.

    ``strict``: every file there must be a finished part file (no in-progress
    or temporary names), as after a completed run.
    """
    import pyarrow.parquet as pq

    rows: dict[str, list[dict[str, Any]]] = {t: [] for t in TABLES}
    for table in TABLES:
        for path in visible_parquet_files(out, table):
            if strict:
                assert _PART.match(path.name), f"not a finished part file in the table folder: {path}"
            elif not _PART.match(path.name):
                continue
            columns = ["event_id"] if table != "unprocessed" else ["source", "error"]
            rows[table].extend(pq.read_table(path, columns=columns).to_pylist())
    return holdings_from_rows(rows)


def bigquery_holdings(client, dataset_id: str) -> Holdings:
    rows = {}
    for table in ROW_TABLES:
        rows[table] = [dict(r) for r in client.query(f"SELECT event_id FROM `{dataset_id}.{table}`").result()]
    rows["unprocessed"] = [dict(r) for r in client.query(f"SELECT source, error FROM `{dataset_id}.unprocessed`").result()]
    return holdings_from_rows(rows)


def compare(scenario: str, faults: str, got: Holdings, expected: Holdings, *, by_source: bool = True) -> FaultRow:
    """Record a fault-table row, then assert the tables hold each expected line exactly once.

    Rows are matched by event id. Dead letters are matched by (source, error)
    when ``by_source``, else only counted (when the same file was read under
    another name, its dead letters name that path).
    """
    want = set(expected.ids)
    once = sum(1 for i in want if got.ids.get(i, 0) == 1)
    duplicated = sum(1 for i in want if got.ids.get(i, 0) > 1)
    missing = sum(1 for i in want if i not in got.ids)
    extra = sum(n for i, n in got.ids.items() if i not in want)
    if by_source:
        once += sum(1 for k in expected.dead if got.dead.get(k, 0) == 1)
        duplicated += sum(1 for k in expected.dead if got.dead.get(k, 0) > 1)
        missing += sum(1 for k in expected.dead if k not in got.dead)
        extra += sum(n for k, n in got.dead.items() if k not in expected.dead)
    else:
        want_dead, got_dead = sum(expected.dead.values()), sum(got.dead.values())
        once += min(want_dead, got_dead)
        duplicated += max(0, got_dead - want_dead)
        missing += max(0, want_dead - got_dead)
    assert len(want) == sum(expected.ids.values()), "the expected output itself holds an event id twice"
    row = FaultRow(scenario, faults, len(want) + sum(expected.dead.values()), once, duplicated, missing, extra)
    FAULT_TABLE.append(row)
    assert row.exact, (
        f"{scenario}: of {row.expected} lines {row.once} once, {row.duplicated} twice or more, "
        f"{row.missing} missing, {row.extra} rows that should not be there")
    return row


# --------------------------------------------------------------------------
# input


@dataclasses.dataclass
class Archive:
    """Log files in day folders below ``root``, and what the oracle says about them."""

    root: Path
    files: list[Path]
    sources: list[pc.Source]

    @property
    def lines(self) -> int:
        return sum(len(s.items) for s in self.sources)


def write_archive(root: Path, *, seed: int, files_per_day: int = 2, lines_per_file: int = 120,
                  days: Sequence[str] = ("2026-10-01", "2026-10-02")) -> Archive:
    """``root/<day>/downloads-<n>.log.gz``: lines of that day (and a few of the next)."""
    paths, sources = [], []
    for d, day in enumerate(days):
        items = pc.labelled(files_per_day * lines_per_file, seed=seed + d, start=f"{day}T00:00:00Z", days=1.0)
        for n in range(files_per_day):
            part = items[n * lines_per_file:(n + 1) * lines_per_file]
            path = root / day / f"downloads-{n}.log.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(pc.gzipped(pc.lines_of(part)))
            paths.append(path)
            sources.append(pc.Source(str(path), part))
    return Archive(root, paths, sources)


def gunzip_lines(path: Path) -> list[bytes]:
    return gzip.decompress(path.read_bytes()).splitlines()


def env_without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}


def summary_counts(stdout: str) -> dict[str, int]:
    """``N files already ingested, skipped`` style lines of a summary, by noun."""
    return {m.group(2) + "s": int(m.group(1).replace(",", ""))
            for m in re.finditer(r"^([\d,]+) (file|message)s? already ingested, skipped", stdout, re.M)}
