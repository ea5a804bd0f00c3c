"""BigQuery sink: streaming inserts into existing day-partitioned tables.

Why not Beam's ``WriteToBigQuery``: its streaming inserts make up their own
insert ids (random per attempt), so a retried bundle or a redelivered message
can be counted twice, and rows it cannot insert are handed back outside the
pipeline's dead-letter table. Here every insert id is the row's ``event_id``
(BigQuery drops a repeated id it has seen recently), every insert finishes
before ``process`` returns (so the streaming source acks only written data),
and rows BigQuery rejects become ``unprocessed`` rows carrying the full row
as JSON and BigQuery's reason — never lost.
"""

from __future__ import annotations

import time
from typing import Any, Iterator, Sequence

import apache_beam as beam
import orjson

from haulage.deploy.schemas import UNPROCESSED
from haulage.parsers.arrow_rows import arrow_to_rows
from haulage.parsers.lines import dead_letter, event_key
from haulage.parsers.timestamps import iso_from_epoch

from .datasets import DatasetRef, bigquery_client
from .elements import ParsedChunk
from .metrics import Counters

MAX_ROWS_PER_REQUEST = 500

# INT64 columns sent as decimal strings: insertAll's JSON may pass numbers
# through a double on the way, which would round a 64-bit fingerprint;
# BigQuery reads a quoted integer into an INT64 column exactly.
_INT64_COLUMNS = ("agent_fingerprint",)


def insert_json(row: dict[str, Any]) -> dict[str, Any]:
    """The row as insertAll JSON: INT64 values as strings, everything else as is."""
    if any(row.get(name) is not None for name in _INT64_COLUMNS):
        row = dict(row)
        for name in _INT64_COLUMNS:
            if row.get(name) is not None:
                row[name] = str(row[name])
    return row


def row_id(table: str, row: dict[str, Any]) -> str:
    """Insert id: the event id, or for dead letters a key of their source."""
    if table == UNPROCESSED:
        return event_key(row["source"] + "\n" + row["error"])
    return row["event_id"]


class InsertRowsFn(beam.DoFn):
    def __init__(self, dataset: DatasetRef) -> None:
        self._dataset = dataset

    def setup(self) -> None:
        self._client = bigquery_client(self._dataset.project)
        self._counters = Counters()

    def process(self, chunk: ParsedChunk) -> Iterator[Any]:
        rejected: list[dict[str, Any]] = []
        for (table, day), data in chunk.tables.items():
            rows = arrow_to_rows(data)  # streaming inserts take JSON rows
            failed = self._insert(table, rows)
            self._counters.inc(f"rows.{table}.{day}", len(rows) - len(failed))
            for row, reason in failed:
                if table == UNPROCESSED:
                    raise RuntimeError(f"BigQuery rejected a dead-letter row ({reason}); refusing to drop it")
                rejected.append(
                    dead_letter(
                        f"bigquery:{table}/{row.get('event_id')}",
                        orjson.dumps(row).decode(),
                        "bigquery-rejected",
                        reason,
                        iso_from_epoch(int(time.time())),
                    ).row
                )
        if rejected:
            still_failed = self._insert(UNPROCESSED, rejected)
            if still_failed:
                raise RuntimeError(f"BigQuery rejected dead-letter rows: {still_failed[0][1]}")
            self._counters.inc("dead_letters.bigquery-rejected", len(rejected))
            for row in rejected:
                self._counters.inc(f"rows.{UNPROCESSED}.{row['received_at'][:10]}", 1)
        return iter(())

    def _insert(self, table: str, rows: Sequence[dict[str, Any]]) -> list[tuple[dict[str, Any], str]]:
        """Insert ``rows``; return the ones BigQuery refused, with its reason."""
        from google.api_core import exceptions as gexc

        table_id = self._dataset.table_id(table)
        failed: list[tuple[dict[str, Any], str]] = []
        for start in range(0, len(rows), MAX_ROWS_PER_REQUEST):
            part = [insert_json(r) for r in rows[start : start + MAX_ROWS_PER_REQUEST]]
            ids = [row_id(table, r) for r in part]
            try:
                errors = self._client.insert_rows_json(table_id, part, row_ids=ids, skip_invalid_rows=True)
            except (gexc.BadRequest, gexc.InternalServerError) as exc:
                # The whole request was refused (a row too large, or an emulator
                # that reports invalid rows this way): find the culprits one by one.
                failed.extend(self._insert_one_by_one(table_id, part, ids, exc))
                continue
            for error in errors:
                reasons = "; ".join(e.get("message") or e.get("reason", "") for e in error.get("errors", []))
                if any(e.get("reason") == "stopped" for e in error.get("errors", [])) and len(error.get("errors", [])) == 1:
                    continue  # BigQuery reports valid rows of a failed request as 'stopped'; skip_invalid_rows avoids it
                failed.append((part[error["index"]], reasons or "rejected"))
        return failed

    def _insert_one_by_one(self, table_id: str, rows: list, ids: list, cause: Exception) -> list[tuple[dict[str, Any], str]]:
        from google.api_core import exceptions as gexc

        failed = []
        for row, rid in zip(rows, ids):
            try:
                errors = self._client.insert_rows_json(table_id, [row], row_ids=[rid], retry=None)
            except (gexc.BadRequest, gexc.InternalServerError) as exc:
                failed.append((row, _short(exc)))
                continue
            if errors:
                failed.append((row, "; ".join(e.get("message", "") for e in errors[0].get("errors", [])) or _short(cause)))
        return failed


def _short(exc: Exception) -> str:
    return str(exc).replace("\n", " ")[:500]


class WriteBigQuery(beam.PTransform):
    """Parsed chunks → streaming inserts into ``<dataset>.<table>``; counts ``rows.<table>.<day>``."""

    def __init__(self, dataset: DatasetRef) -> None:
        super().__init__()
        self._dataset = dataset

    def expand(self, parsed):
        return parsed | "InsertRows" >> beam.ParDo(InsertRowsFn(self._dataset))
