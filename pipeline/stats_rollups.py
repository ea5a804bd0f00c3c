"""Per-(project, day) rollups of a Parquet dataset: a year's project page without a year's rows.

Why: every figure of a project page was counted from the raw rows on each
request, and each of those scans read the ``project`` column of every row
in its range — minutes for a year of PyPI-sized data. A rollup holds, per
day and project, exactly what the page and ``haulage stats`` add up: the
counted series (:data:`~.stats_query.COUNTED`) for the day and per value of
each :data:`ROLLED_FIELDS` field, the project's ``simple`` requests, the
rows without an agent fingerprint, and a HyperLogLog sketch of its client
environments. Counts add up across days exactly; sketches merge.

The rules that keep a rollup from ever being stale or wrong:

* A rollup is a **derived cache**, never a source: the rows stay the truth.
  The rollup of day D lives at ``<output>/_rollups/date=D/<key>.parquet``,
  where ``key`` hashes the exact list of that day's committed part files of
  both tables (name, size, modification time; see :func:`day_key`) and
  :data:`FORMAT`. A commit adds files and a replay ``--merge`` replaces a
  day's folder, so either changes the key: the old rollup is simply not
  found any more, the day is rolled up again from its committed files before
  it is read, and the old file is deleted once it is :data:`STALE_SECONDS` old.
* A reader only reads rollups whose key matches the files it has just listed
  (:meth:`~.stats_backends.DuckDBBackend.refresh`), so it sees exactly the
  committed rows, in rolled-up form.
* A rollup is written to a hidden temporary name and renamed into place
  (atomic on one file system); concurrent builders of the same key write the
  same content.
* Where the output folder cannot be written, there are no rollups and the
  statistics are counted from the rows, as before (:func:`open_rollups`).

Environments: the raw path counts distinct (fingerprint, country, TLS
protocol, TLS cipher) hashes exactly; that cannot be merged across days
cheaply. A rollup keeps an Apache DataSketches HLL sketch (``lg_k`` =
:data:`HLL_LG_K`) of the same 63-bit hashes per (project, day); the sketches
of the days in a range are merged and the estimate rounded. Relative
standard error 1.04 / √(2^14) ≈ 0.8 %; below a few thousand distinct values
the sketch keeps the values themselves and is exact in practice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Optional, Sequence

from haulage.deploy.schemas import DOWNLOADS, SIMPLE

from .stats_query import _NO_FINGERPRINT, COUNT_NAMES, COUNTED, FIELDS, DuckDBDialect, _folder_day

__all__ = ["FORMAT", "HLL_LG_K", "ROLLED_FIELDS", "ROLLUPS", "RollupCache", "Rollups", "day_key", "open_rollups"]

_LOG = logging.getLogger("haulage")

ROLLUPS = "_rollups"
FORMAT = 1  # bump when what a rollup holds changes: every day is then rolled up again
HLL_LG_K = 14
ROLLED_FIELDS: tuple[str, ...] = ("installer", "python", "system", "cpu", "country", "cloud", "version", "package-type")
DAY_ROW = "day"  # the project's whole day (and its sketch)
SIMPLE_ROW = "simple"  # the project's simple requests that day, in ``total``
ROW_GROUP_ROWS = 4096  # rows sorted by project: a project's rows are in one or two row groups
CACHED_PROJECTS = 16
STALE_SECONDS = 600  # a rollup of a day's earlier file list is deleted when older than this


def day_key(files: dict[str, Sequence[str]]) -> str:
    """16 hex digits naming one day's committed files of both tables (name, size, mtime) and FORMAT."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(f"format {FORMAT}\n".encode())
    for table in sorted(files):
        for path in sorted(files[table]):
            info = os.stat(path)
            digest.update(f"{table}\0{os.path.basename(path)}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _sketch_estimate(sketches: Iterable[bytes]) -> int:
    """The rounded estimate of the union of serialized HLL sketches (0 for none)."""
    from datasketches import hll_sketch, hll_union

    union = hll_union(HLL_LG_K)
    seen = False
    for blob in sketches:
        union.update(hll_sketch.deserialize(blob))
        seen = True
    return int(round(union.get_result().get_estimate())) if seen else 0


@dataclass
class _ProjectRows:
    """One project's rollup rows over some days, as plain Python lists (the page adds them up)."""

    files: dict[str, str]  # day → rollup file the rows came from
    rows: list[dict[str, Any]]


class RollupCache:
    """What the rollups of successive listings share in one process: the build lock, recent projects' rows."""

    def __init__(self) -> None:
        self.build_lock = threading.Lock()
        self.lock = threading.Lock()
        self.projects: "OrderedDict[str, _ProjectRows]" = OrderedDict()


class Rollups:
    """The rollups of one listing of committed files (see the module docstring).

    ``run_arrow(sql, params)`` runs DuckDB SQL and returns an Arrow table;
    ``files`` is the backend's committed files per table.
    """

    def __init__(self, output_dir: str, files: dict[str, list[str]], run_arrow: Callable[[str, dict], Any],
                 shared: "RollupCache") -> None:
        self.output_dir = output_dir
        self.run_arrow = run_arrow
        self._build_lock = shared.build_lock
        self._cache = shared.projects
        self._cache_lock = shared.lock
        self.day_files: dict[str, dict[str, list[str]]] = {}
        for table, paths in files.items():
            for path in paths:
                day = _folder_day(path)
                if day is None:
                    raise ValueError(f"{path}: not in a date=YYYY-MM-DD folder")
                self.day_files.setdefault(day, {DOWNLOADS: [], SIMPLE: []})[table].append(path)
        # a day with simple rows only has no download rows: the report never counts it
        self.days = sorted(day for day, found in self.day_files.items() if found[DOWNLOADS])
        self._keys: dict[str, str] = {}

    # -- where each day's rollup is
    def path(self, day: str) -> str:
        key = self._keys.get(day)
        if key is None:
            key = self._keys[day] = day_key(self.day_files[day])
        return os.path.join(self.output_dir, ROLLUPS, f"date={day}", f"{key}.parquet")

    def days_in(self, first: Optional[dt.date], last: Optional[dt.date]) -> list[str]:
        lo = first.isoformat() if first else ""
        hi = last.isoformat() if last else "9999"
        return [day for day in self.days if lo <= day <= hi]

    def missing(self, days: Sequence[str]) -> list[str]:
        return [day for day in days if not os.path.exists(self.path(day))]

    def ensure(self, days: Sequence[str]) -> dict[str, str]:
        """Roll up the days among ``days`` that have no current rollup; day → rollup file."""
        for day in self.missing(days):
            with self._build_lock:  # one builder at a time in this process (DuckDB uses every core anyway)
                if not os.path.exists(self.path(day)):
                    self.build(day)
        return {day: self.path(day) for day in days}

    def warm(self) -> None:
        """Roll up every day that has no current rollup, newest first (the short ranges are ready soonest)."""
        self.ensure(self.days[::-1])

    # -- building one day
    def build(self, day: str) -> None:
        """Count one day's committed rows per project into its rollup file (atomically)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        files = self.day_files[day]
        table = self._count(files[DOWNLOADS], files[SIMPLE])
        target = self.path(day)
        folder = os.path.dirname(target)
        os.makedirs(folder, exist_ok=True)
        temporary = os.path.join(folder, f".{uuid.uuid4().hex}.tmp")
        try:
            pq.write_table(table.sort_by([("project", "ascending"), ("field", "ascending")]), temporary,
                           row_group_size=ROW_GROUP_ROWS, compression="zstd")
            os.replace(temporary, target)
        finally:
            if os.path.exists(temporary):
                os.remove(temporary)
        # Rollups of this day's earlier file lists go, once no reader can still be
        # reading them (a reader that listed the files before a commit opens its
        # rollup within seconds); newer ones stay (a builder that listed the files
        # before a commit must not remove the rollup of the files after it).
        now = time.time()
        for name in os.listdir(folder):
            path = os.path.join(folder, name)
            if name == os.path.basename(target) or not name.endswith(".parquet"):
                continue
            try:
                if now - os.stat(path).st_mtime > STALE_SECONDS:
                    os.remove(path)
            except FileNotFoundError:
                pass
        assert isinstance(table, pa.Table)

    def _count(self, downloads: list[str], simple: list[str]) -> Any:
        import pyarrow as pa

        dialect = DuckDBDialect(downloads, simple or None)
        source = dialect.source()
        has_fingerprint = self.run_arrow(
            "SELECT count(*) AS n FROM parquet_schema($parquet_glob) WHERE name = 'agent_fingerprint'",
            {"parquet_glob": downloads}).column("n")[0].as_py() > 0
        fingerprint = "agent_fingerprint" if has_fingerprint else "CAST(NULL AS BIGINT)"
        no_fingerprint = _NO_FINGERPRINT.replace("agent_fingerprint", fingerprint)
        groups = [f"CAST({FIELDS[name].duckdb} AS VARCHAR) AS f{i}" for i, name in enumerate(ROLLED_FIELDS)]
        counted = [f"({cond}) AS c_{name}" for name, cond in COUNTED if cond is not None]
        inner = (f"SELECT {dialect.normalized_project()} AS project, {', '.join(groups)}, {', '.join(counted)}, "
                 f"({no_fingerprint}) AS no_fp FROM {source}")
        which = " ".join(f"WHEN GROUPING(f{i}) = 0 THEN '{name}'" for i, name in enumerate(ROLLED_FIELDS))
        value = " ".join(f"WHEN GROUPING(f{i}) = 0 THEN f{i}" for i in range(len(ROLLED_FIELDS)))
        counts = ["count(*) AS total", *(f"count(*) FILTER (WHERE c_{name}) AS {name}"
                                         for name, cond in COUNTED if cond is not None)]
        sets = ", ".join(["(project)", *(f"(project, f{i})" for i in range(len(ROLLED_FIELDS)))])
        sql = (f"SELECT project, CASE {which} ELSE '{DAY_ROW}' END AS field, CASE {value} END AS value, "
               f"{', '.join(counts)}, count(*) FILTER (WHERE no_fp) AS no_fingerprint\n"
               f"FROM ({inner})\nGROUP BY GROUPING SETS ({sets})")
        counted_rows = self.run_arrow(sql, {"parquet_glob": downloads})
        sketches: dict[Optional[str], bytes] = {}
        if has_fingerprint:
            keys = self.run_arrow(
                f"SELECT project, list(DISTINCT CAST(hash(agent_fingerprint, country_code, tls_protocol, tls_cipher) "
                f"& 9223372036854775807 AS BIGINT)) AS keys FROM (SELECT {dialect.normalized_project()} AS project, "
                f"agent_fingerprint, country_code, tls_protocol, tls_cipher FROM {source} "
                "WHERE agent_fingerprint IS NOT NULL) GROUP BY project", {"parquet_glob": downloads})
            from datasketches import hll_sketch, tgt_hll_type

            for project, values in zip(keys.column("project").to_pylist(), keys.column("keys").to_pylist()):
                sketch = hll_sketch(HLL_LG_K, tgt_hll_type.HLL_4)
                update = sketch.update
                for v in values:
                    update(v)
                sketches[project] = sketch.serialize_compact()
        projects = counted_rows.column("project").to_pylist()
        fields_ = counted_rows.column("field").to_pylist()
        sketch_column = [sketches.get(p) if f == DAY_ROW else None for p, f in zip(projects, fields_)]
        counted_rows = counted_rows.append_column("sketch", pa.array(sketch_column, pa.binary()))
        if simple:
            simple_rows = self.run_arrow(
                f"SELECT {dialect.normalized_project()} AS project, count(*) AS total FROM {dialect.source('simple_requests')} "
                "GROUP BY 1", {"simple_glob": simple})
            n = simple_rows.num_rows
            columns = {"project": simple_rows.column("project"), "field": pa.array([SIMPLE_ROW] * n, pa.string()),
                       "value": pa.nulls(n, pa.string()), "total": simple_rows.column("total")}
            extra = pa.table({name: columns.get(name, pa.array([0] * n, pa.int64()))
                              if name != "sketch" else pa.nulls(n, pa.binary())
                              for name in counted_rows.schema.names})
            counted_rows = pa.concat_tables([counted_rows, extra.cast(counted_rows.schema)])
        return counted_rows

    # -- reading
    def _project_rows(self, project: str, days: Sequence[str]) -> list[dict[str, Any]]:
        """The rollup rows of ``project`` on ``days`` (each with its ``day``), built first where missing."""
        files = self.ensure(days)
        with self._cache_lock:
            cached = self._cache.get(project)
            if cached is not None and all(cached.files.get(day) == path for day, path in files.items()):
                self._cache.move_to_end(project)
                wanted = set(days)
                return [row for row in cached.rows if row["day"] in wanted]
        if not files:
            return []
        found = self.run_arrow(
            "SELECT regexp_extract(filename, '/date=([0-9-]+)/[^/]*$', 1) AS day, * EXCLUDE (filename, project) "
            "FROM read_parquet($rollups, filename = true) WHERE project = $project",
            {"rollups": [files[day] for day in days], "project": project})
        rows = found.to_pylist()
        with self._cache_lock:
            self._cache[project] = _ProjectRows(files, rows)
            while len(self._cache) > CACHED_PROJECTS:
                self._cache.popitem(last=False)
        return rows

    def counts(self, project: str, field: Optional[str], day_range: tuple[dt.date, dt.date]) -> list[dict[str, Any]]:
        """What :func:`~.stats_query.counts_query` answers for one field (``day``, a rolled field) or none."""
        kind = DAY_ROW if field in (None, "day") else field
        groups: dict[Any, dict[str, int]] = {}
        for row in self._project_rows(project, self.days_in(*day_range)):
            if row["field"] != kind:
                continue
            key = row["day"] if field == "day" else None if field is None else row["value"]
            into = groups.setdefault(key, dict.fromkeys(COUNT_NAMES, 0))
            for name in COUNT_NAMES:
                into[name] += row[name]
        if field is None:
            return [groups.get(None, dict.fromkeys(COUNT_NAMES, 0))]
        return [{"g0": key, **counts} for key, counts in groups.items()]

    def environments(self, project: str, ranges: Sequence[tuple[dt.date, dt.date]]) -> dict[str, Any]:
        """What :func:`~.stats_query.environments_query` answers, from the merged sketches."""
        first, last = min(r[0] for r in ranges), max(r[1] for r in ranges)
        rows = [row for row in self._project_rows(project, self.days_in(first, last)) if row["field"] == DAY_ROW]
        out: dict[str, Any] = {}
        for i, (start, end) in enumerate(ranges):
            lo, hi = start.isoformat(), end.isoformat()
            inside = [row for row in rows if lo <= row["day"] <= hi]
            out[f"environments_{i}"] = _sketch_estimate(row["sketch"] for row in inside if row["sketch"] is not None)
            out[f"unknown_days_{i}"] = sum(1 for row in inside if row["no_fingerprint"])
        return out

    def simple(self, project: str, day_range: tuple[dt.date, dt.date]) -> list[dict[str, Any]]:
        """What :func:`~.stats_query.simple_query` answers: simple requests per day."""
        return [{"g0": row["day"], "simple_requests": row["total"]}
                for row in self._project_rows(project, self.days_in(*day_range)) if row["field"] == SIMPLE_ROW]

    def projects(self) -> list[dict[str, Any]]:
        """What :func:`~.stats_query.projects_query` answers (names already normalized)."""
        files = self.ensure(self.days)
        if not files:
            return []
        found = self.run_arrow(
            "SELECT project, min(day) AS first_day, max(day) AS last_day, sum(total) AS downloads FROM ("
            "SELECT regexp_extract(filename, '/date=([0-9-]+)/[^/]*$', 1) AS day, project, total "
            f"FROM read_parquet($rollups, filename = true) WHERE field = '{DAY_ROW}') GROUP BY project",
            {"rollups": list(files.values())})
        return found.to_pylist()

    def top_projects(self, day: dt.date, limit: int) -> list[dict[str, Any]]:
        """What :func:`~.stats_query.top_projects_query` answers, from one day's rollup."""
        files = self.ensure(self.days_in(day, day))
        if not files:
            return []
        return self.run_arrow(
            f"SELECT project, total AS downloads FROM read_parquet($rollups) WHERE field = '{DAY_ROW}' "
            f"ORDER BY downloads DESC, project LIMIT {int(limit)}", {"rollups": list(files.values())}).to_pylist()


def open_rollups(output_dir: str) -> bool:
    """Whether rollups can be kept under ``output_dir`` (its ``_rollups`` folder exists or can be made, writable)."""
    folder = os.path.join(output_dir, ROLLUPS)
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        _LOG.info("no rollups under %s (%s): counting from the rows", output_dir, exc)
        return False
    if not os.access(folder, os.W_OK):
        _LOG.info("no rollups: %s is not writable; counting from the rows", folder)
        return False
    return True
