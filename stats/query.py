"""SQL for ``haulage stats``: one query builder, two dialects (DuckDB and BigQuery).

Why one builder: the local Parquet dataset and the BigQuery tables must give
the same numbers for the same options. Building both statements from one
description (the same counted series, group fields and filters) keeps the
two from drifting apart; only the spelling differs per dialect.

Why nothing here pastes user input into SQL: ``--by`` names are looked up in
the :data:`FIELDS` whitelist, whose expressions are constants of this module,
and the project name, the dates and (for DuckDB) the Parquet glob go in as
query parameters. The only identifier written into BigQuery SQL is the table
id, and it comes from a :class:`~haulage.pipeline.datasets.DatasetRef`, which
admits letters, digits, ``-``, ``.``, ``:`` and ``_`` only.

NULLs: every counted series is ``COUNTIF(<condition> IS TRUE)`` or ``IS NOT
TRUE``, never ``!= …``, so a NULL column can neither drop a row from a count
that should include it nor sneak it into one that should not; GROUP BY keeps
NULL keys as a group of their own, so rows without ``details`` (bots,
unrecognised agents) are counted under a NULL installer, not dropped.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from dataclasses import dataclass
from typing import Any, Optional, Sequence

DUCKDB = "duckdb"
BIGQUERY = "bigquery"

# --------------------------------------------------------------------------
# the counted series (the same for the summary, the daily series and --by)

# (name, condition) — each becomes one integer column; conditions are written
# so that NULL never counts as a match (IS TRUE) or as a non-match (IS NOT TRUE).
COUNTED: tuple[tuple[str, Optional[str]], ...] = (
    ("total", None),
    ("without_mirrors", "(classification.traffic = 'mirror') IS NOT TRUE"),
    ("human", "(classification.traffic = 'human') IS TRUE"),
    ("ci", "classification.ci IS TRUE"),
    ("automation", "(classification.traffic = 'automation') IS TRUE"),
    ("mirror", "(classification.traffic = 'mirror') IS TRUE"),
    ("unknown", "(classification.traffic = 'unknown') IS TRUE"),
    ("traffic_ci", "(classification.traffic = 'ci') IS TRUE"),
    ("bots", "(classification.kind = 'bot') IS TRUE"),
)
COUNT_NAMES: tuple[str, ...] = tuple(name for name, _ in COUNTED)

# PEP 503: runs of -, _ and . become one -, then lower case.
_PEP503 = re.compile(r"[-_.]+")


def normalize_project(name: str) -> str:
    """The PEP 503 form of a project name (``Foo_Bar.baz`` → ``foo-bar-baz``)."""
    return _PEP503.sub("-", name.strip()).lower()


# --------------------------------------------------------------------------
# --by fields: a whitelist of names → SQL expressions per dialect


@dataclass(frozen=True)
class Field:
    """One ``--by`` field: its name, what it means, and its SQL per dialect."""

    name: str
    help: str
    duckdb: str
    bigquery: str
    chronological: bool = False  # sort by value (days, months) rather than by count

    def sql(self, dialect: str) -> str:
        return self.duckdb if dialect == DUCKDB else self.bigquery


def _column(name: str, column: str, help: str) -> Field:
    """A field that is a plain (dotted) column, spelled the same in both dialects."""
    return Field(name, help, column, column)


# The Python minor version ('3.12') from details.python ('3.12.7'); NULLIF
# because DuckDB's regexp_extract gives '' where BigQuery's gives NULL.
_PY_MINOR_DUCKDB = r"NULLIF(regexp_extract(details.python, '^(\d+\.\d+)', 1), '')"
_PY_MINOR_BIGQUERY = r"NULLIF(REGEXP_EXTRACT(details.python, r'^(\d+\.\d+)'), '')"

# DuckDB reads the day from the hive folder (date=YYYY-MM-DD), which the
# pipeline fills with the UTC date of `timestamp`; BigQuery computes it.
_DAY_DUCKDB = "date"
_DAY_BIGQUERY = "DATE(timestamp)"

FIELDS: dict[str, Field] = {
    f.name: f
    for f in (
        _column("version", "file.version", "release version of the downloaded file"),
        _column("file", "file.filename", "file name"),
        _column("package-type", "file.type", "bdist_wheel, sdist, …"),
        _column("installer", "details.installer.name", "pip, uv, poetry, Browser, bandersnatch, …"),
        _column("installer-version", "details.installer.version", "version of the installer"),
        _column("subcommand", "details.installer.subcommand", "e.g. 'pip install', 'sync', 'tool run'"),
        Field("python", "Python minor version, e.g. 3.12", _PY_MINOR_DUCKDB, _PY_MINOR_BIGQUERY),
        _column("python-full", "details.python", "full Python version, e.g. 3.12.7"),
        _column("implementation", "details.implementation.name", "CPython, PyPy, …"),
        _column("implementation-version", "details.implementation.version", "version of the implementation"),
        _column("system", "details.system.name", "Linux, Darwin, Windows, …"),
        _column("system-release", "details.system.release", "kernel / OS release"),
        _column("distro", "details.distro.name", "Ubuntu, Debian GNU/Linux, Alpine Linux, …"),
        _column("distro-version", "details.distro.version", "distribution version"),
        _column("libc", "details.distro.libc.lib", "glibc, musl"),
        _column("libc-version", "details.distro.libc.version", "C library version"),
        _column("cpu", "details.cpu", "x86_64, aarch64, arm64, AMD64, …"),
        _column("openssl", "details.openssl_version", "OpenSSL version string"),
        _column("country", "country_code", "ISO 3166-1 alpha-2 country of the client"),
        _column("cloud", "classification.cloud", "aws, azure, gcp, … (null when unknown)"),
        _column("traffic", "classification.traffic", "mirror, ci, automation, human, unknown"),
        _column("kind", "classification.kind", "installer, mirror, browser, script, os, bot, unknown"),
        # not "ci": that is the name of a counted series, and a key must not shadow a count
        _column("ci-flag", "classification.ci", "true when the client said it runs in CI (--by ci works too)"),
        Field("day", "UTC day (YYYY-MM-DD)", _DAY_DUCKDB, _DAY_BIGQUERY, chronological=True),
        Field("month", "UTC month (YYYY-MM)", f"strftime({_DAY_DUCKDB}, '%Y-%m')",
              f"FORMAT_DATE('%Y-%m', {_DAY_BIGQUERY})", chronological=True),
        Field("year", "UTC year (YYYY)", f"strftime({_DAY_DUCKDB}, '%Y')",
              f"FORMAT_DATE('%Y', {_DAY_BIGQUERY})", chronological=True),
    )
}

# pypinfo's names and other spellings people will type
ALIASES: dict[str, str] = {
    "pyversion": "python",
    "python-version": "python",
    "python-minor": "python",
    "impl": "implementation",
    "impl-version": "implementation-version",
    "type": "package-type",
    "country-code": "country",
    "date": "day",
    "ci": "ci-flag",
    "release": "version",
    "system-name": "system",
    "distro-name": "distro",
    "libc-name": "libc",
}


class UnknownField(ValueError):
    """A ``--by`` name that is not in the whitelist; the message lists the valid ones."""


def resolve_fields(names: Sequence[str]) -> tuple[Field, ...]:
    """``--by`` names → fields (case-insensitive, ``_`` = ``-``, aliases; duplicates once)."""
    fields: list[Field] = []
    for raw in names:
        key = raw.strip().lower().replace("_", "-")
        key = ALIASES.get(key, key)
        field = FIELDS.get(key)
        if field is None:
            close = difflib.get_close_matches(key, [*FIELDS, *ALIASES], n=3, cutoff=0.6)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise UnknownField(f"--by {raw!r}: unknown field{hint}; choose from {', '.join(FIELDS)}")
        if field not in fields:
            fields.append(field)
    return tuple(fields)


# --------------------------------------------------------------------------
# dialects: where the rows are, how parameters, day and counts are spelled


DOWNLOADS_TABLE = "file_downloads"
SIMPLE_TABLE = "simple_requests"


class Dialect:
    """How one engine spells the parts that differ; the statements are shared."""

    name: str

    def param(self, name: str) -> str:
        raise NotImplementedError

    def source(self, table: str = DOWNLOADS_TABLE) -> str:
        """The FROM clause target for ``table`` (file_downloads or simple_requests)."""
        raise NotImplementedError

    def base_params(self, table: str = DOWNLOADS_TABLE,
                    day_range: Optional[tuple[dt.date, dt.date]] = None) -> dict[str, Any]:
        """Parameters the source needs (DuckDB: the Parquet files; only the range's days when given)."""
        return {}

    def day(self) -> str:
        raise NotImplementedError

    def range_filter(self, start: dt.date, end: dt.date, prefix: str = "") -> tuple[str, dict[str, Any]]:
        """A filter on the partition column keeping the days start..end (inclusive).

        ``prefix`` names the parameters, so that one statement can hold several ranges.
        """
        raise NotImplementedError

    def count_if(self, condition: str) -> str:
        raise NotImplementedError

    def distinct_count(self, expression: str) -> str:
        """How many distinct non-NULL values ``expression`` takes (see :func:`environments_query`)."""
        raise NotImplementedError

    def environment_key(self) -> str:
        """One value per distinct (agent_fingerprint, country_code, tls_protocol, tls_cipher)."""
        raise NotImplementedError

    def normalized_project(self) -> str:
        raise NotImplementedError

    def newest_day_query(self) -> str:
        """The newest day with download rows, as a column ``day`` (NULL when there is none)."""
        raise NotImplementedError

    def days_sql(self, day_range: Optional[tuple[dt.date, dt.date]]) -> tuple[str, dict[str, Any]]:
        """Download rows (all projects) per day that has any, as columns ``day`` and ``downloads``."""
        where, params = _where(self, day_range)
        return (f"SELECT {self.day()} AS day, COUNT(*) AS downloads\nFROM {self.source()}\n{where}\nGROUP BY day",
                params)


_DAY_FOLDER = re.compile(r"/date=(\d{4}-\d{2}-\d{2})/[^/]*$")


def _folder_day(path: str) -> Optional[str]:
    """YYYY-MM-DD of a file's date=… folder, None when it has none."""
    found = _DAY_FOLDER.search(path)
    return found.group(1) if found else None


class DuckDBDialect(Dialect):
    """DuckDB over the Parquet dataset ``<dir>/file_downloads/date=…/part-*.parquet``.

    The days come from the hive ``date`` folder, so a date filter skips whole
    files (DuckDB prunes on hive columns before opening them).
    """

    name = DUCKDB

    def __init__(self, parquet_glob: "str | list[str]", simple_glob: "str | list[str] | None" = None) -> None:
        self.parquet_glob = parquet_glob  # a glob, or the list of committed files
        self.globs: dict[str, tuple[str, Any]] = {DOWNLOADS_TABLE: ("parquet_glob", parquet_glob)}
        if simple_glob is not None:
            self.globs[SIMPLE_TABLE] = ("simple_glob", simple_glob)

    def param(self, name: str) -> str:
        return f"${name}"

    def source(self, table: str = DOWNLOADS_TABLE) -> str:
        # union_by_name: files written before a column was added still read
        return (f"read_parquet(${self.globs[table][0]}, hive_partitioning = true, union_by_name = true, "
                "hive_types = {'date': DATE})")

    def base_params(self, table: str = DOWNLOADS_TABLE,
                    day_range: Optional[tuple[dt.date, dt.date]] = None) -> dict[str, Any]:
        name, value = self.globs[table]
        if day_range is not None and isinstance(value, list):
            # Only the files of the range's day folders: binding a query reads
            # the schema of every file it is given, so a week's page should not
            # be handed a year of files. The SQL filters on the day as well.
            first, last = day_range[0].isoformat(), day_range[1].isoformat()
            kept = [f for f in value if (day := _folder_day(f)) is None or first <= day <= last]
            value = kept or value[:1]  # read_parquet needs a file; the WHERE clause keeps none of its rows
        return {name: value}

    def day(self) -> str:
        return _DAY_DUCKDB

    def range_filter(self, start: dt.date, end: dt.date, prefix: str = "") -> tuple[str, dict[str, Any]]:
        return (f"date BETWEEN ${prefix}start_day AND ${prefix}end_day",
                {f"{prefix}start_day": start, f"{prefix}end_day": end})

    def count_if(self, condition: str) -> str:
        return f"count(*) FILTER (WHERE {condition})"

    def distinct_count(self, expression: str) -> str:
        # Exact: DuckDB's approx_count_distinct keeps only 64 HyperLogLog
        # registers (errors of 10-40 % measured on 1M values), too coarse to print.
        return f"count(DISTINCT {expression})"

    def environment_key(self) -> str:
        # a 64-bit hash of the tuple (NULLs included); a collision among a
        # few million tuples is about one in a million likely
        return "hash(agent_fingerprint, country_code, tls_protocol, tls_cipher)"

    def normalized_project(self) -> str:
        return "regexp_replace(lower(project), '[-_.]+', '-', 'g')"

    # Rows per day from the Parquet footers alone (each file's row count,
    # summed by its date=YYYY-MM-DD folder): the same numbers as COUNT(*)
    # grouped by the hive day, without reading a single column of a year of rows.
    _FOOTER_DAYS = ("SELECT CAST(regexp_extract(file_name, '/date=([0-9]{4}-[0-9]{2}-[0-9]{2})/[^/]*$', 1) AS DATE) "
                    "AS day, sum(num_rows) AS downloads\nFROM parquet_file_metadata($parquet_glob)\nGROUP BY day\n"
                    "HAVING sum(num_rows) > 0")

    def days_sql(self, day_range: Optional[tuple[dt.date, dt.date]]) -> tuple[str, dict[str, Any]]:
        if day_range is None:
            return self._FOOTER_DAYS, {}
        return (f"SELECT * FROM ({self._FOOTER_DAYS}) WHERE day BETWEEN $start_day AND $end_day",
                {"start_day": day_range[0], "end_day": day_range[1]})

    def newest_day_query(self) -> str:
        return f"SELECT max(day) AS day FROM ({self._FOOTER_DAYS})"


_TABLE_ID = re.compile(r"^[A-Za-z0-9.:_\-]+$")


class BigQueryDialect(Dialect):
    """BigQuery standard SQL on the day-partitioned ``file_downloads`` table.

    The day range is a TIMESTAMP range on the partition column, the form
    BigQuery prunes partitions on, so a query scans only the days asked for.
    """

    name = BIGQUERY

    def __init__(self, table_id: str, simple_table_id: Optional[str] = None) -> None:
        for given in (table_id, simple_table_id):
            if given is not None and not _TABLE_ID.match(given):
                raise ValueError(f"not a BigQuery table id: {given!r}")
        self.table_id = table_id
        self.tables = {DOWNLOADS_TABLE: table_id}
        if simple_table_id is not None:
            self.tables[SIMPLE_TABLE] = simple_table_id

    def param(self, name: str) -> str:
        return f"@{name}"

    def source(self, table: str = DOWNLOADS_TABLE) -> str:
        return f"`{self.tables[table]}`"

    def day(self) -> str:
        return _DAY_BIGQUERY

    def range_filter(self, start: dt.date, end: dt.date, prefix: str = "") -> tuple[str, dict[str, Any]]:
        utc = dt.timezone.utc
        lower = dt.datetime.combine(start, dt.time(), utc)
        upper = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), utc)
        return (f"timestamp >= @{prefix}start_ts AND timestamp < @{prefix}end_ts",
                {f"{prefix}start_ts": lower, f"{prefix}end_ts": upper})

    def count_if(self, condition: str) -> str:
        return f"COUNTIF({condition})"

    def distinct_count(self, expression: str) -> str:
        # HyperLogLog++ (BigQuery's documented approximate aggregate); exact
        # for small counts, within about 1 % for large ones
        return f"APPROX_COUNT_DISTINCT({expression})"

    def environment_key(self) -> str:
        return "TO_JSON_STRING(STRUCT(agent_fingerprint, country_code, tls_protocol, tls_cipher))"

    def normalized_project(self) -> str:
        return "REGEXP_REPLACE(LOWER(project), r'[-_.]+', '-')"

    def newest_day_query(self) -> str:
        # partition metadata, free to read: a scan for MAX(timestamp) would
        # read the timestamp column of every partition. Rows still in the
        # streaming buffer are not in a partition yet (minutes, not days).
        dataset = self.table_id.rsplit(".", 1)[0]
        table = self.table_id.rsplit(".", 1)[1]
        return (f"SELECT MAX(PARSE_DATE('%Y%m%d', partition_id)) AS day\n"
                f"FROM `{dataset}.INFORMATION_SCHEMA.PARTITIONS`\n"
                f"WHERE table_name = '{table}' AND total_rows > 0 "
                "AND partition_id NOT IN ('__NULL__', '__UNPARTITIONED__')")


# --------------------------------------------------------------------------
# the statements


@dataclass(frozen=True)
class Query:
    """A statement and its parameters (name → Python value), ready for one engine."""

    dialect: str
    sql: str
    params: dict[str, Any]
    keys: tuple[str, ...] = ()  # the group columns, in order


def _where(dialect: Dialect, day_range: Optional[tuple[dt.date, dt.date]], *extra: str) -> tuple[str, dict[str, Any]]:
    clauses = list(extra)
    params: dict[str, Any] = {}
    if day_range is not None:
        clause, params = dialect.range_filter(*day_range)
        clauses.insert(0, clause)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", params


def counts_query(dialect: Dialect, project: str, fields: Sequence[Field],
                 day_range: Optional[tuple[dt.date, dt.date]]) -> Query:
    """The counted series for one project, grouped by ``fields`` (none: one row).

    Group columns are named ``g0``, ``g1``… in SQL (so no field name needs
    quoting) and reported under the fields' names in :attr:`Query.keys`.
    """
    groups = [f"{field.sql(dialect.name)} AS g{i}" for i, field in enumerate(fields)]
    counts = [("COUNT(*)" if cond is None else dialect.count_if(cond)) + f" AS {name}" for name, cond in COUNTED]
    where, params = _where(dialect, day_range, f"{dialect.normalized_project()} = {dialect.param('project')}")
    sql = f"SELECT {', '.join([*groups, *counts])}\nFROM {dialect.source()}\n{where}"
    if fields:
        sql += "\nGROUP BY " + ", ".join(f"g{i}" for i in range(len(fields)))
    return Query(dialect.name, sql, {**dialect.base_params(DOWNLOADS_TABLE, day_range), **params,
                                     "project": normalize_project(project)}, tuple(field.name for field in fields))


def days_query(dialect: Dialect, day_range: Optional[tuple[dt.date, dt.date]]) -> Query:
    """Days that have any download rows (of any project), with their row counts.

    Why: daily averages divide by the days the dataset covers, a day the
    pipeline has no data for is a gap in collection, not a day of zero downloads.
    """
    sql, params = dialect.days_sql(day_range)
    return Query(dialect.name, sql, {**dialect.base_params(DOWNLOADS_TABLE, day_range), **params}, ("day",))


def newest_day_query(dialect: Dialect) -> Query:
    """The newest day that has download rows (for freshness: how far behind the data is)."""
    return Query(dialect.name, dialect.newest_day_query(), dialect.base_params(), ())


# Rows from before the agent_fingerprint column: they have an agent (details,
# or a raw agent kept because it was not recognised) but no fingerprint.
_NO_FINGERPRINT = ("agent_fingerprint IS NULL AND (details IS NOT NULL OR "
                   "(user_agent IS NOT NULL AND user_agent NOT IN ('', '(null)')))")


def environments_query(dialect: Dialect, project: str, ranges: Sequence[tuple[dt.date, dt.date]]) -> Query:
    """Distinct client environments of ``project`` in each of ``ranges``, in one scan.

    An environment is one (agent_fingerprint, country_code, tls_protocol,
    tls_cipher) tuple among rows that have a fingerprint (docs/schema-extensions.md).
    Columns per range i: ``environments_i`` and ``unknown_days_i``, the days
    holding rows without a fingerprint (written before the column existed),
    whose environments the count cannot include.
    """
    project_filter = f"{dialect.normalized_project()} = {dialect.param('project')}"
    first, last = min(r[0] for r in ranges), max(r[1] for r in ranges)
    where, params = _where(dialect, (first, last), project_filter)
    columns = []
    for i, (start, end) in enumerate(ranges):
        in_range, range_params = dialect.range_filter(start, end, prefix=f"r{i}_")
        params.update(range_params)
        key = f"CASE WHEN {in_range} AND agent_fingerprint IS NOT NULL THEN {dialect.environment_key()} END"
        columns.append(f"{dialect.distinct_count(key)} AS environments_{i}")
        columns.append(f"COUNT(DISTINCT CASE WHEN {in_range} AND {_NO_FINGERPRINT} THEN {dialect.day()} END) "
                       f"AS unknown_days_{i}")
    sql = f"SELECT {', '.join(columns)}\nFROM {dialect.source()}\n{where}"
    return Query(dialect.name, sql, {**dialect.base_params(DOWNLOADS_TABLE, (first, last)), **params,
                                     "project": normalize_project(project)})


def simple_query(dialect: Dialect, project: str, day_range: tuple[dt.date, dt.date]) -> Query:
    """``simple`` (index page) requests for ``project`` per day: the look-ups behind the downloads."""
    where, params = _where(dialect, day_range, f"{dialect.normalized_project()} = {dialect.param('project')}")
    sql = (f"SELECT {dialect.day()} AS g0, COUNT(*) AS simple_requests\nFROM {dialect.source(SIMPLE_TABLE)}\n"
           f"{where}\nGROUP BY g0")
    return Query(dialect.name, sql, {**dialect.base_params(SIMPLE_TABLE, day_range), **params,
                                     "project": normalize_project(project)}, ("day",))


def top_projects_query(dialect: Dialect, day: dt.date, limit: int) -> Query:
    """The ``limit`` most downloaded projects (normalized names) on one day."""
    where, params = _where(dialect, (day, day))
    sql = (f"SELECT {dialect.normalized_project()} AS project, COUNT(*) AS downloads\nFROM {dialect.source()}\n"
           f"{where}\nGROUP BY 1\nORDER BY downloads DESC, project\nLIMIT {int(limit)}")
    return Query(dialect.name, sql, {**dialect.base_params(DOWNLOADS_TABLE, (day, day)), **params}, ("project",))


def projects_query(dialect: Dialect) -> Query:
    """Every project with its first and last day (only to explain an empty answer)."""
    day = dialect.day()
    sql = (f"SELECT project, MIN({day}) AS first_day, MAX({day}) AS last_day, COUNT(*) AS downloads\n"
           f"FROM {dialect.source()}\nGROUP BY project")
    return Query(dialect.name, sql, dialect.base_params(), ("project",))
