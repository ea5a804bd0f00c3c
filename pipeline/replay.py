"""Committing a replay: staged days replace live days, whole or by event id.

The Beam part of a replay (read, parse, stage) writes every row it produces
under a private staging folder. Nothing a reader sees changes until the
commit, which is per table and day:

* Parquet (local filesystem): the staged day folder is swapped with the live
  one atomically (:mod:`day_swap`); with ``merge`` the live day's rows that do
  not come from the replayed files are copied into the staged day first.
* BigQuery: staged rows are loaded into a staging table, then one ``MERGE``
  per table deletes the replaced rows and inserts the new ones — a single
  atomic statement, never delete-then-append.

Dead letters of a replay are named by the replay's key (a hash of its input
files, range and mode), and a replay removes those of an earlier identical
replay, so replaying the same input again changes nothing.

A replay killed at any point leaves only staging debris (hidden, cleaned at
the next start) and days that are either wholly old or wholly new; running it
again redoes every day, so it ends exact.
"""

from __future__ import annotations

import fcntl
import glob
import logging
import os
import shutil
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from haulage.deploy.schemas import DOWNLOADS, PARTITION_COLUMN, SIMPLE, TABLES, UNPROCESSED, arrow_schema, bigquery_schema
from haulage.parsers.lines import event_key

from .datasets import DatasetRef, bigquery_client
from .day_swap import replace_directory

_LOG = logging.getLogger("haulage")
ROW_TABLES = (DOWNLOADS, SIMPLE)
EVENT_KEY_LENGTH = 16  # event ids are "<16 hex of the file>-<line>"


def replay_key(file_keys: Sequence[str], day_range: Optional[tuple[str, str]], merge: bool) -> str:
    """Identity of a replay: the same files (by event-id key), range and mode give the same key."""
    names = sorted(file_keys)
    return event_key("\n".join(["replay", "merge" if merge else "days", repr(day_range), *names]))


def dead_letter_label(key: str) -> str:
    """Prefix of the ``source`` of a replay's dead letters."""
    return f"replay {key} "


@dataclass
class DayChange:
    table: str
    day: str
    rows_before: int
    rows_after: int


def staged_days(staging_dir: str, table: str) -> list[str]:
    days = []
    for path in sorted(glob.glob(os.path.join(staging_dir, table, "date=*"))):
        if glob.glob(os.path.join(path, "*.parquet")) or glob.glob(os.path.join(path, "*.ndjson")):
            days.append(os.path.basename(path)[len("date="):])
    return days


def _parquet_rows(directory: str) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in glob.glob(os.path.join(directory, "*.parquet")))


class ParquetDayStore:
    """Replays into a local Parquet dataset."""

    def __init__(self, output_dir: str) -> None:
        if "://" in output_dir:
            raise ValueError(
                f"--output-dir {output_dir!r}: a replay swaps day folders atomically, which needs a local filesystem; "
                "replay into BigQuery (--bigquery-dataset) for cloud storage"
            )
        self.output_dir = os.path.abspath(output_dir)
        self._lock_file: Any = None

    def lock(self) -> None:
        """One replay at a time per dataset (streaming writers are not blocked)."""
        os.makedirs(self.output_dir, exist_ok=True)
        self._lock_file = open(os.path.join(self.output_dir, ".haulage-replay.lock"), "w")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another replay is running on {self.output_dir}") from None

    def staging_dir(self, key: str) -> str:
        return os.path.join(self.output_dir, f".staging-{key}")

    def clean_stale(self) -> None:
        """Remove what killed replays left behind (only ever hidden folders)."""
        for leftover in glob.glob(os.path.join(self.output_dir, ".staging-*")) + glob.glob(
            os.path.join(self.output_dir, ".replaced-*")
        ):
            shutil.rmtree(leftover, ignore_errors=True)

    def commit(self, key: str, merge_keys: Optional[set[str]]) -> list[DayChange]:
        staging = self.staging_dir(key)
        changes: list[DayChange] = []
        for table in ROW_TABLES:
            for day in staged_days(staging, table):
                staged = os.path.join(staging, table, f"date={day}")
                live = os.path.join(self.output_dir, table, f"date={day}")
                before = _parquet_rows(live) if os.path.isdir(live) else 0
                if merge_keys is not None and before:
                    self._carry_over(table, live, staged, merge_keys)
                after = _parquet_rows(staged)
                graveyard = os.path.join(self.output_dir, f".replaced-{key}-{table}-{day}")
                replace_directory(staged, live, graveyard)
                shutil.rmtree(graveyard, ignore_errors=True)
                changes.append(DayChange(table, day, before, after))
        self._commit_dead_letters(key, staging)
        shutil.rmtree(staging, ignore_errors=True)
        return changes

    def _carry_over(self, table: str, live: str, staged: str, merge_keys: set[str]) -> None:
        """Copy the live day's rows that do not come from the replayed files."""
        existing = ds.dataset(live, format="parquet", schema=arrow_schema(table)).to_table()
        keys = pc.utf8_slice_codeunits(existing.column("event_id"), 0, EVENT_KEY_LENGTH)
        keep = existing.filter(pc.invert(pc.is_in(keys, value_set=pa.array(sorted(merge_keys), pa.string()))))
        if keep.num_rows:
            pq.write_table(keep, os.path.join(staged, "part-kept.parquet"), compression="zstd")

    def _commit_dead_letters(self, key: str, staging: str) -> None:
        for old in glob.glob(os.path.join(self.output_dir, UNPROCESSED, "date=*", f"replay-{key}-*.parquet")):
            os.remove(old)
        for day in staged_days(staging, UNPROCESSED):
            live_dir = os.path.join(self.output_dir, UNPROCESSED, f"date={day}")
            os.makedirs(live_dir, exist_ok=True)
            for i, part in enumerate(sorted(glob.glob(os.path.join(staging, UNPROCESSED, f"date={day}", "*.parquet")))):
                os.replace(part, os.path.join(live_dir, f"replay-{key}-{i:04d}.parquet"))


class BigQueryDayStore:
    """Replays into BigQuery tables: load into staging tables, then one MERGE per table."""

    def __init__(self, dataset: DatasetRef) -> None:
        self.dataset = dataset
        self.client = bigquery_client(dataset.project)

    def staging_table(self, key: str, table: str) -> str:
        return self.dataset.table_id(f"_haulage_replay_{key}_{table}")

    def clean_stale(self) -> None:
        for table in self.client.list_tables(f"{self.dataset.project}.{self.dataset.dataset}"):
            if table.table_id.startswith("_haulage_replay_"):
                self.client.delete_table(table, not_found_ok=True)

    def _load(self, table: str, destination: str, files: Iterable[str]) -> int:
        from google.cloud import bigquery

        schema = [bigquery.SchemaField.from_api_repr(f) for f in bigquery_schema(table)]
        disposition = "WRITE_TRUNCATE"
        loaded = 0
        for path in files:
            config = bigquery.LoadJobConfig(
                source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON, schema=schema, write_disposition=disposition
            )
            if "://" in path:
                job = self.client.load_table_from_uri(path, destination, job_config=config)
            else:
                with open(path, "rb") as handle:
                    job = self.client.load_table_from_file(handle, destination, job_config=config)
            job.result()
            loaded += job.output_rows or 0
            disposition = "WRITE_APPEND"
        return loaded

    def _counts(self, table: str, days: Sequence[str]) -> dict[str, int]:
        from google.cloud import bigquery

        column = PARTITION_COLUMN[table]
        sql = (
            f"SELECT CAST(DATE({column}) AS STRING) AS day, COUNT(*) AS n FROM `{self.dataset.table_id(table)}` "
            f"WHERE DATE({column}) IN UNNEST(@days) GROUP BY day"
        )
        config = bigquery.QueryJobConfig(query_parameters=[bigquery.ArrayQueryParameter("days", "DATE", list(days))])
        return {row["day"]: row["n"] for row in self.client.query(sql, job_config=config).result()}

    def _merge(self, table: str, staging: str, condition: str, parameters: list) -> None:
        from google.cloud import bigquery

        columns = [c.name for c in TABLES[table]]
        sql = (
            f"MERGE `{self.dataset.table_id(table)}` T USING `{staging}` S ON FALSE "
            f"WHEN NOT MATCHED BY SOURCE AND {condition} THEN DELETE "
            f"WHEN NOT MATCHED THEN INSERT ({', '.join(columns)}) VALUES ({', '.join('S.' + c for c in columns)})"
        )
        self.client.query(sql, job_config=bigquery.QueryJobConfig(query_parameters=parameters)).result()

    def commit(self, key: str, merge_keys: Optional[set[str]], list_files: "StagedFiles") -> list[DayChange]:
        from google.cloud import bigquery

        changes: list[DayChange] = []
        for table in ROW_TABLES:
            days = list_files.days(table)
            if not days:
                continue
            staging = self.staging_table(key, table)
            self._load(table, staging, list_files.files(table))
            before = self._counts(table, days)
            column = PARTITION_COLUMN[table]
            if merge_keys is None:
                condition = f"DATE(T.{column}) IN UNNEST(@days)"
                parameters = [bigquery.ArrayQueryParameter("days", "DATE", days)]
            else:
                condition = f"SUBSTR(T.event_id, 1, {EVENT_KEY_LENGTH}) IN UNNEST(@keys)"
                parameters = [bigquery.ArrayQueryParameter("keys", "STRING", sorted(merge_keys))]
            self._merge(table, staging, condition, parameters)
            after = self._counts(table, days)
            self.client.delete_table(staging, not_found_ok=True)
            changes.extend(DayChange(table, d, before.get(d, 0), after.get(d, 0)) for d in days)
        dead_files = list(list_files.files(UNPROCESSED))
        staging = self.staging_table(key, UNPROCESSED)
        if dead_files:
            self._load(UNPROCESSED, staging, dead_files)
        else:
            self.client.create_table(
                bigquery.Table(staging, schema=[bigquery.SchemaField.from_api_repr(f) for f in bigquery_schema(UNPROCESSED)]),
                exists_ok=True,
            )
        self._merge(
            UNPROCESSED,
            staging,
            "STARTS_WITH(T.source, @label)",
            [bigquery.ScalarQueryParameter("label", "STRING", dead_letter_label(key))],
        )
        self.client.delete_table(staging, not_found_ok=True)
        return changes


class StagedFiles:
    """The staged part files of one table, local or on a Beam filesystem."""

    def __init__(self, staging_dir: str, extension: str) -> None:
        self.staging_dir = staging_dir.rstrip("/")
        self.extension = extension

    def files(self, table: str) -> list[str]:
        pattern = f"{self.staging_dir}/{table}/date=*/*.{self.extension}"
        if "://" not in pattern:
            return sorted(glob.glob(pattern))
        from apache_beam.io.filesystems import FileSystems

        return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)

    def days(self, table: str) -> list[str]:
        return sorted({p.rsplit("/date=", 1)[1].split("/", 1)[0] for p in self.files(table)})
