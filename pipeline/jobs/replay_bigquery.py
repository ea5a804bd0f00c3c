"""Committing a replay into BigQuery: one transaction, under the dataset's replay lock.

Rules:

* one replay at a time per dataset (:class:`bigquery_lock.DatasetLock`);
  a second one is refused with who holds the lock;
* a replay's staging (its folder and its staging tables
  ``_haulage_replay_<key>_<run>_<table>``) belongs to it alone; leftovers of
  killed replays are removed by the next replay once it holds the lock;
* the commit is one multi-statement transaction: per table a ``MERGE``
  deleting the rows being replaced and inserting the staged ones; the
  replayed files' dead letters replacing every dead letter they got before
  (found by the names the ledger recorded for each ingestion of them); and
  the replayed files added to the ledger — all of it or none of it;
* what is replaced: whole days (``DATE(ts)`` in the staged days), or with
  ``--merge`` the rows whose event id comes from the replayed files — and
  with ``--from/--to`` only within that range.
"""

from __future__ import annotations

import io
import logging
import re
import uuid
from typing import Any, Iterable, Optional, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from ...parsers.schemas import LEDGER, PARTITION_COLUMN, TABLES, UNPROCESSED, bigquery_schema, bookkeeping_schema
from ..datasets import DatasetRef, bigquery_client
from ..elements import SourceUnit
from ..sinks.bigquery_jobs import retry_transient, run_load_job
from ..sinks.bigquery_ledger import ledger_rows
from ..sinks.bigquery_lock import DatasetLock

__all__ = ["BigQueryDayStore"]

_LOG = logging.getLogger("haulage")
EVENT_KEY_LENGTH = 16


class BigQueryDayStore:
    """Replays into BigQuery tables: load into staging tables, then one transaction."""

    def __init__(self, dataset: DatasetRef) -> None:
        self.dataset = dataset
        self.client = bigquery_client(dataset.project)
        self.run = uuid.uuid4().hex[:8]
        self._lock = DatasetLock(self.client, dataset, "replay")

    def lock(self) -> None:
        """Take the dataset's lock (raises LockHeld if a live replay or commit holds it)."""
        self._lock.acquire()

    def unlock(self) -> None:
        """Give the dataset's lock back."""
        self._lock.release()

    def staging_table(self, key: str, table: str) -> str:
        """The name of this replay's staging table for ``table`` (removed by the commit or by the next replay's clean-up)."""
        return self.dataset.table_id(f"_haulage_replay_{key}_{self.run}_{table}")

    def clean_stale(self) -> None:
        """Staging tables of replays that died (only ever called with the lock held)."""
        for table in self.client.list_tables(f"{self.dataset.project}.{self.dataset.dataset}"):
            if table.table_id.startswith("_haulage_replay_"):
                self.client.delete_table(table, not_found_ok=True)

    def _load(self, destination: str, schema: list[dict], data: Optional[pa.Table], files: Sequence[str] = ()) -> None:
        """Replace ``destination`` with the rows of ``files`` (or ``data``); an empty table if none."""
        from google.cloud import bigquery

        fields = [bigquery.SchemaField.from_api_repr(f) for f in schema]
        config = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.PARQUET, schema=fields,
                                        write_disposition="WRITE_TRUNCATE")
        parts = [pq.read_table(p) if "://" not in p else _read_remote(p) for p in files]
        if data is not None:
            parts.append(data)
        if not parts or not sum(p.num_rows for p in parts):
            retry_transient(lambda: self.client.create_table(bigquery.Table(destination, schema=fields), exists_ok=True),
                            "creating a staging table")
            return
        buffer = io.BytesIO()
        pq.write_table(pa.concat_tables(parts, promote_options="default"), buffer)
        payload = buffer.getvalue()
        run_load_job(self.client, f"haulage_{destination.replace('.', '_')}", destination, config,
                     upload=lambda: io.BytesIO(payload))

    def _counts(self, table: str, days: Sequence[str]) -> dict[str, int]:
        from google.cloud import bigquery

        column = PARTITION_COLUMN[table]
        sql = (
            f"SELECT CAST(DATE({column}) AS STRING) AS day, COUNT(*) AS n FROM `{self.dataset.table_id(table)}` "
            f"WHERE DATE({column}) IN UNNEST(@days) GROUP BY day"
        )
        config = bigquery.QueryJobConfig(query_parameters=[bigquery.ArrayQueryParameter("days", "DATE", list(days))])
        return retry_transient(lambda: {r["day"]: r["n"] for r in self.client.query(sql, job_config=config).result()},
                               "counting rows")

    def _merge_sql(self, table: str, staging: str, condition: str) -> str:
        columns = [c.name for c in TABLES[table]]
        return (
            f"MERGE `{self.dataset.table_id(table)}` T USING `{staging}` S ON FALSE "
            f"WHEN NOT MATCHED BY SOURCE AND {condition} THEN DELETE "
            f"WHEN NOT MATCHED THEN INSERT ({', '.join(columns)}) VALUES ({', '.join('S.' + c for c in columns)});"
        )

    def commit(
        self,
        key: str,
        merge_keys: Optional[set[str]],
        list_files: Any,
        day_range: Optional[tuple[str, str]] = None,
        label: str = "",
        units: Sequence[SourceUnit] = (),
    ) -> list:
        """Replace (or merge into) each staged day of each table, then the ledger; return the days changed."""
        from google.cloud import bigquery

        from .replay_parquet import DayChange

        # The script's values are written into it (bqemulator does not bind query parameters in
        # multi-statement scripts); every one is checked to be a date, hex digits or the replay label.
        statements, staging_tables = [], []
        counted: dict[str, list[str]] = {}
        for table in (t for t in TABLES if t != UNPROCESSED):
            days = list_files.days(table)
            if not days and merge_keys is None:
                continue
            staging = self.staging_table(key, table)
            self._load(staging, bigquery_schema(table), None, list_files.files(table))
            staging_tables.append(staging)
            column = PARTITION_COLUMN[table]
            if merge_keys is None:
                condition = f"DATE(T.{column}) IN ({_dates(days)})"
            else:
                condition = f"SUBSTR(T.event_id, 1, {EVENT_KEY_LENGTH}) IN ({_hex_list(merge_keys)})"
                if day_range is not None:
                    condition += f" AND DATE(T.{column}) BETWEEN {_dates(day_range[:1])} AND {_dates(day_range[1:])}"
            statements.append(self._merge_sql(table, staging, condition))
            counted[table] = days
        dead = self.staging_table(key, UNPROCESSED)
        self._load(dead, bigquery_schema(UNPROCESSED), None, list_files.files(UNPROCESSED))
        staging_tables.append(dead)
        if not _LABEL.match(label):
            raise ValueError(f"unexpected replay label {label!r}")
        # the dead letters of the replayed files, however they were ingested before (the ledger keeps the
        # name each ingestion gave them), give way to this replay's
        ledger_table = self.dataset.table_id(LEDGER)
        unit_ids = _hex_list(u.unit_id for u in units) if units else "''"
        columns = ", ".join(c.name for c in TABLES[UNPROCESSED])
        statements.append(
            f"DELETE FROM `{self.dataset.table_id(UNPROCESSED)}` WHERE STARTS_WITH(source, '{label}') "
            f"OR REGEXP_EXTRACT(source, r'^(.*):[0-9]+$') IN "
            f"(SELECT source FROM `{ledger_table}` WHERE unit_id IN ({unit_ids}));")
        statements.append(f"INSERT INTO `{self.dataset.table_id(UNPROCESSED)}` ({columns}) SELECT {columns} FROM `{dead}`;")
        ledger = self.staging_table(key, "ledger")
        self._load(ledger, bookkeeping_schema(LEDGER), ledger_rows(list(units), f"replay-{key}", self.run) if units else None)
        staging_tables.append(ledger)
        statements.append(
            f"INSERT INTO `{ledger_table}` SELECT * FROM `{ledger}` S WHERE NOT EXISTS "
            f"(SELECT 1 FROM `{ledger_table}` L WHERE L.unit_id = S.unit_id AND L.source = S.source);")
        before = {t: self._counts(t, d) for t, d in counted.items() if d}
        script = "BEGIN TRANSACTION;\n" + "\n".join(statements) + "\nCOMMIT TRANSACTION;"
        # the whole transaction may be repeated after a lost answer: each statement leaves the same end state
        retry_transient(lambda: self.client.query(script, retry=None).result(), "replay commit")
        changes = []
        for table, days in counted.items():
            if not days:
                continue
            after = self._counts(table, days)
            changes.extend(DayChange(table, d, before[table].get(d, 0), after.get(d, 0)) for d in days)
        for staging in staging_tables:
            retry_transient(lambda s=staging: self.client.delete_table(s, not_found_ok=True), "dropping staging")
        return changes


_DATE = re.compile(r"^\d{4}-\d\d-\d\d$")
_HEX = re.compile(r"^[0-9a-f]{16}$")
_LABEL = re.compile(r"^replay [0-9a-f]{16} $")


def _dates(days: Iterable[str]) -> str:
    days = list(days)
    if not all(_DATE.match(d) for d in days):
        raise ValueError(f"not ISO dates: {days!r}")
    return ", ".join(f"DATE '{d}'" for d in days)


def _hex_list(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    if not all(_HEX.match(k) for k in keys):
        raise ValueError("event-id keys are 16 hex digits")
    return ", ".join(f"'{k}'" for k in keys)


def _read_remote(path: str) -> pa.Table:
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as handle:
        return pq.read_table(pa.BufferReader(handle.read()))
