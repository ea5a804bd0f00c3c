"""Per-(project, day) rollups of a Parquet dataset: a year's project page without a year's rows.

Why: every figure of a project page was counted from the raw rows on each
request, and each of those scans read the ``project`` column of every row
in its range — minutes for a year of PyPI-sized data. A rollup holds, per
day and project, exactly what the page and ``haulage stats`` add up: the
counted series (:data:`~.query.COUNTED`) for the day and per value of
each :data:`ROLLED_FIELDS` field, the project's ``simple`` requests, the
rows without an agent fingerprint, and a HyperLogLog sketch of its client
environments. Counts add up across days exactly; sketches merge.

The rules that keep a rollup from ever being stale or wrong:

* A rollup is a **derived cache**, never a source: the rows stay the truth.
  The rollup of day D lives at ``<output>/_rollups/date=D/<key>.parquet``,
  where ``key`` hashes the exact list of that day's committed part files of
  both tables (name, size, modification time; see :func:`day_key`) and
  :data:`FORMAT`. A commit adds files and a replay (with or without
  ``--merge``) replaces a day's folder, so either changes the key: the old
  rollup is simply not found any more, the day is rolled up again from its
  committed files before it is read, and the old file is deleted once it is
  :data:`STALE_SECONDS` old.
* Readers read **month** rollups, ``_rollups/month=YYYY-MM/<key>.parquet``:
  the month's day rollups put together, keyed by the list of their keys, so
  a changed day changes its month's key the same way (one day counted from
  its rows again, one month put together again from day rollups). A year is
  12 or 13 files to open rather than 365.
* A reader only reads rollups whose key matches the files it has just listed
  (:meth:`~.backends.DuckDBBackend.refresh`), so it sees exactly the
  committed rows, in rolled-up form. Nothing in a rollup is read that the
  listing did not name, and nothing the listing named is left out.
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
import json
import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from typing import Any, Callable, Iterable, Optional, Sequence

from ..parsers.schemas import DOWNLOADS, SIMPLE

from .query import _NO_FINGERPRINT, COUNT_NAMES, COUNTED, FIELDS, DuckDBDialect, _folder_day

__all__ = ["FORMAT", "HLL_LG_K", "ROLLED_FIELDS", "ROLLUPS", "RollupCache", "Rollups", "day_key", "open_rollups"]

_LOG = logging.getLogger("haulage")

ROLLUPS = "_rollups"
FORMAT = 2  # bump when what a rollup holds changes: every day is then rolled up again
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


META = b"haulage.rollup"  # key of the Parquet key-value metadata: per day, its rows and fingerprint column


class RollupCache:
    """What the rollups of successive listings share in one process.

    The build lock (one builder at a time: DuckDB uses every core anyway),
    the last projects' rows (keyed by the month files they came from, which
    never change: a changed month is a new file) and each month file's
    per-day facts.
    """

    def __init__(self) -> None:
        self.build_lock = threading.Lock()
        self.lock = threading.Lock()
        self.projects: "OrderedDict[tuple[str, tuple[str, ...]], Any]" = OrderedDict()
        self.meta: dict[str, dict[str, Any]] = {}


def _write_atomically(table: Any, target: str, meta: dict[str, Any]) -> None:
    """``table`` sorted by project into ``target`` (hidden temporary name, then rename); stale siblings go."""
    import pyarrow.parquet as pq

    folder = os.path.dirname(target)
    os.makedirs(folder, exist_ok=True)
    temporary = os.path.join(folder, f".{uuid.uuid4().hex}.tmp")
    table = table.sort_by([("project", "ascending"), ("field", "ascending"), ("day", "ascending")])
    table = table.replace_schema_metadata({META: json.dumps(meta, sort_keys=True).encode()})
    try:
        pq.write_table(table, temporary, row_group_size=ROW_GROUP_ROWS, compression="zstd")
        os.replace(temporary, target)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    # Rollups of this folder's earlier file lists go once no reader can still be
    # reading them (a reader opens the rollups it listed within seconds); newer
    # ones stay (a builder that listed the files before a commit must not remove
    # the rollup of the files after it).
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


class Rollups:
    """The rollups of one listing of committed files (see the module docstring).

    Two tiers: a **day** rollup (``_rollups/date=D/<day key>.parquet``) is
    counted from that day's committed rows and is what a change invalidates;
    a **month** rollup (``_rollups/month=YYYY-MM/<month key>.parquet``) is the
    day rollups of one month put together, keyed by the month's day keys, and
    is what readers read: a year is 12 or 13 files, not 365, and a new commit
    today rebuilds one day from its rows and one month from day rollups.

    ``run_arrow(sql, params)`` runs DuckDB SQL and returns an Arrow table;
    ``files`` is the backend's committed files per table.
    """

    def __init__(self, output_dir: str, files: dict[str, list[str]], run_arrow: Callable[[str, dict], Any],
                 shared: RollupCache) -> None:
        self.output_dir = output_dir
        self.run_arrow = run_arrow
        self.shared = shared
        self.day_files: dict[str, dict[str, list[str]]] = {}
        for table, paths in files.items():
            for path in paths:
                day = _folder_day(path)
                if day is None:
                    raise ValueError(f"{path}: not in a date=YYYY-MM-DD folder")
                self.day_files.setdefault(day, {DOWNLOADS: [], SIMPLE: []})[table].append(path)
        # A day with simple rows only has no download rows: the report never counts it.
        self.days = sorted(day for day, found in self.day_files.items() if found[DOWNLOADS])
        self.months: dict[str, list[str]] = {}
        for day in self.days:
            self.months.setdefault(day[:7], []).append(day)
        self._keys: dict[str, str] = {}

    # -- where the rollups are
    def day_path(self, day: str) -> str:
        key = self._keys.get(day)
        if key is None:
            key = self._keys[day] = day_key(self.day_files[day])
        return os.path.join(self.output_dir, ROLLUPS, f"date={day}", f"{key}.parquet")

    def month_path(self, month: str) -> str:
        digest = hashlib.blake2b(digest_size=8)
        for day in self.months[month]:
            digest.update(f"{day} {os.path.basename(self.day_path(day))}\n".encode())
        return os.path.join(self.output_dir, ROLLUPS, f"month={month}", f"{digest.hexdigest()}.parquet")

    def days_in(self, first: Optional[dt.date], last: Optional[dt.date]) -> list[str]:
        lo = first.isoformat() if first else ""
        hi = last.isoformat() if last else "9999"
        return [day for day in self.days if lo <= day <= hi]

    def ensure(self, days: Sequence[str]) -> list[str]:
        """The month rollups covering ``days``, built first where missing (from day rollups, built where missing)."""
        months = sorted({day[:7] for day in days})
        for month in months:
            if not os.path.exists(self.month_path(month)):
                with self.shared.build_lock:
                    if not os.path.exists(self.month_path(month)):
                        self._build_month(month)
        return [self.month_path(month) for month in months]

    def start(self) -> None:
        """Load the libraries and start the engine a page needs, so that the first page does not pay for them."""
        import datasketches  # noqa: F401
        import pyarrow.compute  # noqa: F401
        import pyarrow.parquet  # noqa: F401

        self.run_arrow("SELECT 1 AS ready", {})

    def warm(self) -> None:
        """Roll up every month that has no current rollup, newest first (the short ranges are ready soonest)."""
        self.start()
        for month in sorted(self.months, reverse=True):
            self.ensure(self.months[month][-1:])

    # -- building
    def _build_month(self, month: str) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        tables, meta = [], {}
        for day in self.months[month]:
            path = self.day_path(day)
            if not os.path.exists(path):
                self._build_day(day)
            found = pq.read_table(path)
            meta.update(json.loads(found.schema.metadata[META]))
            tables.append(found.replace_schema_metadata(None))
        _write_atomically(pa.concat_tables(tables), self.month_path(month), meta)

    def _build_day(self, day: str) -> None:
        """Count one day's committed rows per project into its day rollup (atomically)."""
        files = self.day_files[day]
        table, meta = self._count(day, files[DOWNLOADS], files[SIMPLE])
        _write_atomically(table, self.day_path(day), {day: meta})

    def _count(self, day: str, downloads: list[str], simple: list[str]) -> tuple[Any, dict[str, Any]]:
        """The day's rollup rows, and the facts about the day (its rows, whether it has fingerprints)."""
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
        sql = (f"SELECT CAST($day AS VARCHAR) AS day, project, CASE {which} ELSE '{DAY_ROW}' END AS field, "
               f"CASE {value} END AS value, {', '.join(counts)}, count(*) FILTER (WHERE no_fp) AS no_fingerprint\n"
               f"FROM ({inner})\nGROUP BY GROUPING SETS ({sets})")
        rows = self.run_arrow(sql, {"parquet_glob": downloads, "day": day})
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
        projects = rows.column("project").to_pylist()
        fields_ = rows.column("field").to_pylist()
        rows = rows.append_column("sketch", pa.array(
            [sketches.get(p) if f == DAY_ROW else None for p, f in zip(projects, fields_)], pa.binary()))
        total = sum(c for c, f in zip(rows.column("total").to_pylist(), fields_) if f == DAY_ROW)
        if simple:
            found = self.run_arrow(
                f"SELECT CAST($day AS VARCHAR) AS day, {dialect.normalized_project()} AS project, "
                f"'{SIMPLE_ROW}' AS field, CAST(NULL AS VARCHAR) AS value, count(*) AS total "
                f"FROM {dialect.source('simple_requests')} GROUP BY project", {"simple_glob": simple, "day": day})
            n = found.num_rows
            extra = pa.table({name: found.column(name) if name in found.schema.names
                              else pa.nulls(n, pa.binary()) if name == "sketch" else pa.array([0] * n, pa.int64())
                              for name in rows.schema.names})
            rows = pa.concat_tables([rows, extra.cast(rows.schema)])
        return rows, {"rows": total, "fingerprint": has_fingerprint}

    # -- reading
    def month_meta(self, path: str) -> dict[str, Any]:
        """Per day of one month rollup: its download rows and whether its files have agent_fingerprint."""
        meta = self.shared.meta.get(path)
        if meta is None:
            import pyarrow.parquet as pq

            meta = self.shared.meta[path] = json.loads(pq.read_schema(path).metadata[META])
        return meta

    def day_rows(self, first: Optional[dt.date] = None, last: Optional[dt.date] = None) -> Optional[dict[str, int]]:
        """What :func:`~.query.days_query` answers: download rows (all projects) per day with any.

        None when a month of the range has no current rollup yet: the files'
        footers answer that as fast, and a week's page must not wait for a
        year to be rolled up.
        """
        days = self.days_in(first, last)
        paths = [self.month_path(month) for month in sorted({day[:7] for day in days})]
        if not all(os.path.exists(path) for path in paths):
            return None
        out: dict[str, int] = {}
        for path in paths:
            out.update({day: facts["rows"] for day, facts in self.month_meta(path).items()})
        return {day: out[day] for day in days if out.get(day)}

    def has_fingerprints(self, first: dt.date, last: dt.date) -> bool:
        """Whether any day of first..last has files with the agent_fingerprint column."""
        days = set(self.days_in(first, last))
        return any(facts["fingerprint"] for path in self.ensure(sorted(days))
                   for day, facts in self.month_meta(path).items() if day in days)

    def _project_table(self, project: str, days: Sequence[str]) -> Any:
        """The rollup rows of ``project`` on ``days``, as an Arrow table."""
        import pyarrow as pa
        import pyarrow.compute as pc

        files = tuple(self.ensure(days))
        key = (project, files)
        with self.shared.lock:
            found = self.shared.projects.get(key)
            if found is not None:
                self.shared.projects.move_to_end(key)
        if found is None:
            found = self.run_arrow("SELECT * EXCLUDE (project) FROM read_parquet($rollups) WHERE project = $project",
                                   {"rollups": list(files), "project": project})
            with self.shared.lock:
                self.shared.projects[key] = found
                while len(self.shared.projects) > CACHED_PROJECTS:
                    self.shared.projects.popitem(last=False)
        return found.filter(pc.is_in(found.column("day"), value_set=pa.array(list(days), pa.string())))

    def counts(self, project: str, field: Optional[str], day_range: tuple[dt.date, dt.date]) -> list[dict[str, Any]]:
        """What :func:`~.query.counts_query` answers for one field (``day``, a rolled field) or none."""
        import pyarrow.compute as pc

        kind = DAY_ROW if field in (None, "day") else field
        found = self._project_table(project, self.days_in(*day_range))
        found = found.filter(pc.equal(found.column("field"), kind))
        if field is None:
            return [{name: pc.sum(found.column(name)).as_py() or 0 for name in COUNT_NAMES}]
        key = "day" if field == "day" else "value"
        grouped = found.group_by(key, use_threads=False).aggregate([(name, "sum") for name in COUNT_NAMES])
        return [{"g0": row[key], **{name: row[f"{name}_sum"] for name in COUNT_NAMES}} for row in grouped.to_pylist()]

    def environments(self, project: str, ranges: Sequence[tuple[dt.date, dt.date]]) -> dict[str, Any]:
        """What :func:`~.query.environments_query` answers, from the merged sketches."""
        import pyarrow.compute as pc

        first, last = min(r[0] for r in ranges), max(r[1] for r in ranges)
        found = self._project_table(project, self.days_in(first, last))
        found = found.filter(pc.equal(found.column("field"), DAY_ROW)).select(["day", "no_fingerprint", "sketch"])
        rows = found.to_pylist()
        out: dict[str, Any] = {}
        for i, (start, end) in enumerate(ranges):
            lo, hi = start.isoformat(), end.isoformat()
            inside = [row for row in rows if lo <= row["day"] <= hi]
            out[f"environments_{i}"] = _sketch_estimate(row["sketch"] for row in inside if row["sketch"] is not None)
            out[f"unknown_days_{i}"] = sum(1 for row in inside if row["no_fingerprint"])
        return out

    def simple(self, project: str, day_range: tuple[dt.date, dt.date]) -> list[dict[str, Any]]:
        """What :func:`~.query.simple_query` answers: simple requests per day."""
        import pyarrow.compute as pc

        found = self._project_table(project, self.days_in(*day_range))
        found = found.filter(pc.equal(found.column("field"), SIMPLE_ROW)).select(["day", "total"])
        return [{"g0": row["day"], "simple_requests": row["total"]} for row in found.to_pylist()]

    def projects(self) -> list[dict[str, Any]]:
        """What :func:`~.query.projects_query` answers (names already normalized)."""
        files = self.ensure(self.days)
        if not files:
            return []
        return self.run_arrow(
            "SELECT project, min(day) AS first_day, max(day) AS last_day, sum(total) AS downloads "
            f"FROM read_parquet($rollups) WHERE field = '{DAY_ROW}' GROUP BY project", {"rollups": files}).to_pylist()

    def top_projects(self, day: dt.date, limit: int) -> Optional[list[dict[str, Any]]]:
        """What :func:`~.query.top_projects_query` answers, from the day's month rollup.

        None when that month has no current rollup yet: one day's rows answer
        that sooner than a month's rollup is made (the home page of a server
        just started on a folder without rollups).
        """
        days = self.days_in(day, day)
        if not days:
            return []
        path = self.month_path(days[0][:7])
        if not os.path.exists(path):
            return None
        return self.run_arrow(
            f"SELECT project, total AS downloads FROM read_parquet($rollups) WHERE field = '{DAY_ROW}' AND day = $day "
            f"ORDER BY downloads DESC, project LIMIT {int(limit)}", {"rollups": [path], "day": days[0]}).to_pylist()


def open_rollups(output_dir: str) -> bool:
    """Whether rollups can be kept under ``output_dir``: DataSketches installed, ``_rollups`` there or made, writable."""
    try:
        import datasketches  # noqa: F401  (the "stats" extra)
    except ImportError:
        _LOG.info("no rollups: datasketches is not installed (pip install 'haulage[stats]'); counting from the rows")
        return False
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
