"""The BigQuery dataset's ledger: which units (log files, messages) it holds.

One row per ingested unit in ``<dataset>._haulage_ledger`` (made by
``haulage setup``; partitioned by day, clustered by ``unit_id`` so a lookup
reads little). Rows are appended by a load job — free, like the data — in
the same load batch as the unit's rows and after them (see
:mod:`bigquery_commit`): a unit is listed only once all its rows are in.
Replays add their units with a DML ``INSERT`` inside the transaction of
their ``MERGE``.
"""

from __future__ import annotations

import io
import time
from typing import Any, Iterable, Optional, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from ...parsers.schemas import LEDGER, bookkeeping_schema
from ..datasets import DatasetRef
from ..elements import SourceUnit
from .bigquery_jobs import retry_transient, run_load_job

__all__ = ["BigQueryLedger", "ledger_rows"]

_LOOKUP_CHUNK = 10_000
_ARROW = pa.schema([
    pa.field("unit_id", pa.string(), nullable=False),
    pa.field("kind", pa.string(), nullable=False),
    pa.field("source", pa.string()),
    pa.field("size", pa.int64()),
    pa.field("lines", pa.int64()),
    pa.field("faults", pa.int64()),
    pa.field("commit_id", pa.string()),
    pa.field("run_id", pa.string()),
    pa.field("committed_at", pa.timestamp("us", tz="UTC"), nullable=False),
])


def ledger_rows(units: Sequence[SourceUnit], commit_id: str, run_id: str) -> pa.Table:
    """The ledger rows that record ``units`` as committed by ``commit_id`` in run ``run_id``."""
    now = int(time.time()) * 1_000_000
    return pa.table({
        "unit_id": [u.unit_id for u in units],
        "kind": [u.kind for u in units],
        "source": [u.label for u in units],
        "size": [u.size for u in units],
        "lines": [u.lines for u in units],
        "faults": [u.faults for u in units],
        "commit_id": [commit_id] * len(units),
        "run_id": [run_id] * len(units),
        "committed_at": pa.array([now] * len(units), pa.timestamp("us", tz="UTC")),
    }, schema=_ARROW)


class BigQueryLedger:
    """haulage's ledger table in BigQuery: which source units are committed, and by which commit.

    A unit (file or message) is in the output exactly when the ledger lists it;
    the commit loads its rows and its ledger rows together, so runs and replays
    skip what is already there and never write a unit twice.
    """

    def __init__(self, client: Any, dataset: DatasetRef, location: Optional[str] = None) -> None:
        self.client = client
        self.dataset = dataset
        self.table_id = dataset.table_id(LEDGER)
        self.location = location

    def committed(self, unit_ids: Iterable[str]) -> dict[str, set[str]]:
        """Which of ``unit_ids`` the ledger lists, each with the commits that listed it."""
        from google.cloud import bigquery

        wanted = sorted(set(unit_ids))
        found: dict[str, set[str]] = {}
        for start in range(0, len(wanted), _LOOKUP_CHUNK):
            chunk = wanted[start:start + _LOOKUP_CHUNK]
            sql = f"SELECT DISTINCT unit_id, commit_id FROM `{self.table_id}` WHERE unit_id IN UNNEST(@ids)"
            config = bigquery.QueryJobConfig(query_parameters=[bigquery.ArrayQueryParameter("ids", "STRING", chunk)])
            rows = retry_transient(lambda: list(self.client.query(sql, job_config=config, retry=None).result()),
                                   "reading the ledger")
            for row in rows:
                found.setdefault(row["unit_id"], set()).add(row["commit_id"])
        return found

    def all_units(self) -> frozenset[str]:
        """Every unit id the ledger lists (what a batch run skips)."""
        sql = f"SELECT DISTINCT unit_id FROM `{self.table_id}`"
        rows = retry_transient(lambda: list(self.client.query(sql, retry=None).result()), "reading the ledger")
        return frozenset(r["unit_id"] for r in rows)

    def append(self, job_base: str, units: Sequence[SourceUnit], commit_id: str, run_id: str) -> None:
        """List ``units`` as committed by ``commit_id`` (idempotent: listed units are not added again)."""
        from google.cloud import bigquery

        missing = set(u.unit_id for u in units) - set(self.committed(u.unit_id for u in units))
        todo = [u for u in units if u.unit_id in missing]
        if not todo:
            return
        buffer = io.BytesIO()
        pq.write_table(ledger_rows(todo, commit_id, run_id), buffer)
        data = buffer.getvalue()
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
            create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
            schema=[bigquery.SchemaField.from_api_repr(f) for f in bookkeeping_schema(LEDGER)],
        )
        run_load_job(self.client, job_base, self.table_id, config, upload=lambda: io.BytesIO(data),
                     location=self.location)
