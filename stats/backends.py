"""Where ``haulage stats`` runs its queries: DuckDB over Parquet, or BigQuery.

Why two small executors behind one interface: the report code above them
must not care where the rows are, and both must hand back the same Python
values for the same data (days as ``YYYY-MM-DD`` text, counts as ``int``,
NULL as ``None``), so that the two sources give byte-identical reports.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import weakref
from typing import Any, Optional, Protocol

from ..parsers.schemas import DOWNLOADS, SIMPLE

from ..pipeline.datasets import DatasetRef, bigquery_client
from ..pipeline.sinks.parquet_commit import committed_files
from .query import BigQueryDialect, Dialect, DuckDBDialect, Query
from .rollups import RollupCache, Rollups, open_rollups


__all__ = ["SourceError", "Backend", "plain", "DuckDBBackend", "BigQueryBackend"]


class SourceError(RuntimeError):
    """The dataset cannot be read; says what to do.

    ``exit_code`` 2 when the option names nothing (no such folder or table:
    fix the option), 1 when the engine failed on an existing dataset.
    """

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Backend(Protocol):
    """Runs :class:`Query` objects built for its dialect."""

    dialect: Dialect

    def describe(self) -> str:
        """Where the rows are, for people (``parquet:DIR`` or ``bigquery:P:D``)."""

    def run(self, query: Query) -> list[dict[str, Any]]:
        """The result rows as dicts of plain Python values."""

    def has_table(self, table: str) -> bool:
        """Whether ``table`` (file_downloads, simple_requests) exists and can be queried."""

    def has_column(self, table: str, column: str, day_range: Optional[tuple[dt.date, dt.date]] = None) -> bool:
        """Whether ``table`` has ``column`` in the days of ``day_range`` (older data lacks newer columns)."""


def plain(value: Any) -> Any:
    """A result value as the same plain Python value from either engine."""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _weak_runner(backend: "DuckDBBackend") -> Any:
    """``backend.run_arrow`` without a strong reference to ``backend``.

    Why: the backend holds its rollups; rollups holding the backend back
    would make a cycle, and a backend in a cycle is freed by the cyclic
    garbage collector at some later moment — possibly in a process forked by
    ``haulage run``'s local workers, where freeing DuckDB's connection (whose
    threads the child does not have) aborts the child.
    """
    ref = weakref.ref(backend)

    def run_arrow(sql: str, params: dict[str, Any]) -> Any:
        owner = ref()
        if owner is None:
            raise SourceError("the dataset's reader was closed")
        return owner.run_arrow(sql, params)

    return run_arrow


class DuckDBBackend:
    """DuckDB reading the committed part files of ``<output_dir>/file_downloads/date=YYYY-MM-DD/``.

    Only files the dataset's ledger has committed are read (see
    :mod:`parquet_commit`): a commit in progress or interrupted is never
    counted, so the statistics never need to de-duplicate.
    """

    def __init__(self, output_dir: str, rollups: bool = True) -> None:
        if output_dir.startswith("gs://"):
            raise SourceError(
                f"--output-dir {output_dir}: stats reads local Parquet only; copy the dataset here "
                "or query the BigQuery tables with --bigquery-dataset", exit_code=2)
        table_dir = os.path.join(output_dir, DOWNLOADS)
        self.output_dir = output_dir
        self._con: Any = None
        self._lock = threading.Lock()
        # per-(project, day) rollups (stats/rollups.py): kept under the output folder when it can be written
        self._rollup_cache = RollupCache() if rollups and os.path.isdir(table_dir) and open_rollups(output_dir) else None
        self.rollups: Optional[Rollups] = None
        self.refresh()
        if not self.files[DOWNLOADS]:
            raise SourceError(
                f"--output-dir {output_dir}: no Parquet files under {table_dir}/date=*/; "
                f"write some with 'haulage run --input LOGS --output-dir {output_dir}'", exit_code=2)

    def refresh(self) -> None:
        """List the committed files again (a long-running reader sees new commits; the CLI lists once)."""
        self.files = {table: committed_files(self.output_dir, table)
                      if os.path.isdir(os.path.join(self.output_dir, table)) else []
                      for table in (DOWNLOADS, SIMPLE)}
        # the file lists are query parameters, never SQL text
        self.dialect = DuckDBDialect(self.files[DOWNLOADS], self.files[SIMPLE] or None)
        self.rollups = None
        if self._rollup_cache is not None:
            try:
                self.rollups = Rollups(self.output_dir, self.files, _weak_runner(self), self._rollup_cache)
            except ValueError:  # a part file outside a date= folder: count from the rows
                self.rollups = None

    def state(self) -> tuple[str, ...]:
        """The committed files of both tables: what a cached answer depends on (committed files never change)."""
        return tuple(self.files[DOWNLOADS]) + ("|",) + tuple(self.files[SIMPLE])

    def describe(self) -> str:
        """Where the numbers come from, for the report: ``parquet:<output dir>``."""
        return f"parquet:{self.output_dir}"

    def _cursor(self) -> Any:
        """A cursor of the one in-process database: one per call, so threads may query at once."""
        import duckdb

        with self._lock:
            if self._con is None:
                self._con = duckdb.connect(":memory:")
                # Parquet footers read once and kept: every query of a page
                # binds the same files (union_by_name reads each file's schema).
                self._con.execute("SET parquet_metadata_cache = true")
                self._con.execute("SET enable_progress_bar = false")
            return self._con.cursor()

    def run(self, query: Query) -> list[dict[str, Any]]:
        """Run a query over the committed Parquet files; an unreadable source is a SourceError."""
        try:
            import duckdb
        except ImportError:  # the "stats" extra, not in the worker image
            raise SourceError("reading Parquet needs DuckDB, which is not installed: pip install 'haulage[stats]'",
                              exit_code=2) from None

        cursor = self._cursor()
        try:
            result = cursor.execute(query.sql, query.params)
            names = [d[0] for d in result.description]
            rows = result.fetchall()
        except duckdb.Error as exc:
            raise SourceError(f"DuckDB could not read {self.output_dir}: {exc}") from exc
        finally:
            cursor.close()
        return [{name: plain(value) for name, value in zip(names, row)} for row in rows]

    def run_arrow(self, sql: str, params: dict[str, Any]) -> Any:
        """``sql`` with ``params`` as an Arrow table (what the rollups read and write)."""
        import duckdb

        cursor = self._cursor()
        try:
            return cursor.execute(sql, params).to_arrow_table()
        except duckdb.Error as exc:
            raise SourceError(f"DuckDB could not read {self.output_dir}: {exc}") from exc
        finally:
            cursor.close()

    def has_table(self, table: str) -> bool:
        """Whether the output has committed files of ``table``."""
        return bool(self.files.get(table))

    def has_column(self, table: str, column: str, day_range: Optional[tuple[dt.date, dt.date]] = None) -> bool:
        """Whether the files a query over ``day_range`` reads have ``column`` (older files may not)."""
        if not self.has_table(table):
            return False
        # columns of the files a query over day_range reads, from their footers (kept in DuckDB's metadata cache)
        params = self.dialect.base_params(table, day_range)
        (name,) = params
        rows = self.run(Query(self.dialect.name,
                              f"SELECT count(*) AS n FROM parquet_schema(${name}) WHERE name = $column",
                              {**params, "column": column}))
        return rows[0]["n"] > 0


def _bigquery_parameter(name: str, value: Any) -> Any:
    from google.cloud import bigquery

    if isinstance(value, bool):
        kind = "BOOL"
    elif isinstance(value, int):
        kind = "INT64"
    elif isinstance(value, dt.datetime):
        kind = "TIMESTAMP"
    elif isinstance(value, dt.date):
        kind = "DATE"
    elif isinstance(value, str):
        kind = "STRING"
    else:
        raise TypeError(f"no BigQuery parameter type for {name}={value!r}")
    return bigquery.ScalarQueryParameter(name, kind, value)


def _first_line(exc: Exception) -> str:
    """The gist of a Google API error (its message, without the job id and location lines)."""
    text = str(getattr(exc, "message", None) or exc)
    return text.split("; reason:", 1)[0].splitlines()[0].strip()


class BigQueryBackend:
    """BigQuery (or the emulator named by BIGQUERY_EMULATOR_HOST) on ``P:D.file_downloads``."""

    def __init__(self, dataset: DatasetRef) -> None:
        self.dataset = dataset
        self.dialect = BigQueryDialect(dataset.table_id(DOWNLOADS), dataset.table_id(SIMPLE))
        self._client: Any = None
        self._lock = threading.Lock()

    def describe(self) -> str:
        """Where the numbers come from, for the report: ``bigquery:<project:dataset>``."""
        return f"bigquery:{self.dataset}"

    def _get_client(self) -> Any:
        with self._lock:  # the client itself is thread-safe; make one only
            if self._client is None:
                self._client = bigquery_client(self.dataset.project)
            return self._client

    def _columns(self, table: str) -> Optional[set[str]]:
        from google.api_core import exceptions as gexc

        try:
            found = self._get_client().get_table(self.dataset.table_id(table))
        except gexc.NotFound:
            return None
        except gexc.GoogleAPICallError as exc:
            raise SourceError(f"BigQuery: {_first_line(exc)}") from exc
        return {field.name for field in found.schema}

    def has_table(self, table: str) -> bool:
        """Whether the dataset has ``table``."""
        return self._columns(table) is not None

    def has_column(self, table: str, column: str, day_range: Optional[tuple[dt.date, dt.date]] = None) -> bool:
        """Whether ``table`` has ``column`` (a table created by an older haulage may not)."""
        return column in (self._columns(table) or ())

    def run(self, query: Query) -> list[dict[str, Any]]:
        """Run a query with its parameters in BigQuery; an unreachable or missing dataset is a SourceError."""
        from google.api_core import exceptions as gexc
        from google.cloud import bigquery

        self._get_client()
        config = bigquery.QueryJobConfig(
            query_parameters=[_bigquery_parameter(name, value) for name, value in query.params.items()])
        try:
            job = self._client.query(query.sql, job_config=config)
            rows = [dict(row.items()) for row in job.result()]
        except gexc.NotFound as exc:
            raise SourceError(
                f"--bigquery-dataset {self.dataset}: {_first_line(exc)} (is the dataset right, and has "
                f"'haulage run --bigquery-dataset {self.dataset}' written to it?)", exit_code=2) from exc
        except gexc.GoogleAPICallError as exc:
            raise SourceError(f"BigQuery query failed: {_first_line(exc)}") from exc
        return [{name: plain(value) for name, value in row.items()} for row in rows]
