"""Committing a replay: staged days replace live days, whole or by event id.

The Beam part of a replay (read, parse, stage) writes every row it produces
into a private staging dataset (its own ledger, under the live dataset's
``_staging/``). Nothing a reader sees changes until the commit, which is
per table and day:

* Parquet (local filesystem): under the dataset's commit lock, an intent
  listing every step is written, then the replay's ledger marker (its units
  are now ingested, so a later ``run`` skips them), then each staged day
  folder is swapped with the live one atomically (:mod:`day_swap`), dead
  letters moved into place, and the intent removed. With ``merge`` the live
  day's rows that do not come from the replayed files are copied into the
  staged day first. A crash after the marker is finished by the next run or
  replay (:meth:`ParquetDataset.recover`), one before it is undone.
* BigQuery: staged rows are loaded into staging tables of this replay alone,
  then one ``MERGE`` per table deletes the replaced rows and inserts the new
  ones — a single atomic statement, never delete-then-append.

Dead letters of a replay are named by the replay's key (a hash of its input
files' identities, range and mode), and a replay removes those of an earlier
identical replay, so replaying the same input again changes nothing.
"""

from __future__ import annotations

import fcntl
import glob
import logging
import os
import shutil
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Optional, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from haulage.deploy.schemas import DOWNLOADS, PARTITION_COLUMN, SIMPLE, TABLES, UNPROCESSED, arrow_schema, bigquery_schema
from haulage.parsers.lines import event_key

from . import failpoints
from .datasets import DatasetRef, bigquery_client
from .parquet_commit import ParquetDataset, commit_id_for, fsync_dir, fsync_file

_LOG = logging.getLogger("haulage")
ROW_TABLES = (DOWNLOADS, SIMPLE)
EVENT_KEY_LENGTH = 16  # event ids are "<16 hex of the file>-<line>"
STEPS = (
    "replay:intent-written",
    "replay:marker-written",
    "replay:first-day-swapped",
    "replay:all-days-swapped",
    "replay:visible",
)


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


def _days_of(files: Iterable[str]) -> dict[str, list[str]]:
    by_day: dict[str, list[str]] = defaultdict(list)
    for path in files:
        by_day[path.rsplit("/date=", 1)[1].split("/", 1)[0]].append(path)
    return dict(sorted(by_day.items()))


def _rows(files: Iterable[str]) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


class ParquetDayStore:
    """Replays into a local Parquet dataset."""

    def __init__(self, output_dir: str) -> None:
        if "://" in output_dir:
            raise ValueError(
                f"--output-dir {output_dir!r}: a replay swaps day folders atomically, which needs a local filesystem; "
                "replay into BigQuery (--bigquery-dataset) for cloud storage"
            )
        self.output_dir = os.path.abspath(output_dir)
        self.dataset = ParquetDataset(self.output_dir)
        self._lock_file: Any = None

    def lock(self) -> None:
        """One replay at a time per dataset (runs keep committing between a replay's steps)."""
        os.makedirs(self.output_dir, exist_ok=True)
        self._lock_file = open(os.path.join(self.output_dir, ".haulage-replay.lock"), "w")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"another replay is running on {self.output_dir}") from None

    def begin_staging(self, run_id: str) -> str:
        """A staging dataset of this replay alone, kept alive while this process runs."""
        name = f"replay-{run_id}"
        self.dataset.hold_staging(name)
        return self.dataset.staging_dir(name)

    def end_staging(self, run_id: str) -> None:
        self.dataset.release_staging(f"replay-{run_id}")

    def clean_stale(self) -> None:
        """Finish or undo what killed runs and replays left (see ParquetDataset.recover)."""
        with self.dataset.locked():
            self.dataset.recover()

    def commit(self, key: str, merge_keys: Optional[set[str]], staging_dir: str, run_id: str) -> list[DayChange]:
        staging = ParquetDataset(staging_dir)
        units = sorted(staging.committed_units().values(), key=lambda u: u["unit_id"])
        commit = commit_id_for([u["unit_id"] for u in units], salt=f"replay:{key}:{run_id}")
        live = self.dataset
        changes: list[DayChange] = []
        ops: list[dict[str, Any]] = []
        files: list[dict[str, Any]] = []
        with live.locked():
            live.recover()
            for table in ROW_TABLES:
                for day, staged_files in _days_of(staging.committed_files(table)).items():
                    staged_day = os.path.dirname(staged_files[0])
                    live_day = live.path(table, f"date={day}")
                    live_files = live.committed_files(table) if os.path.isdir(live_day) else []
                    live_files = [f for f in live_files if f.startswith(live_day + "/")]
                    before = _rows(live_files)
                    names = self._rename_staged(staged_day, staged_files, commit)
                    if merge_keys is not None and live_files:
                        kept = self._carry_over(table, live_files, merge_keys)
                        if kept is not None:
                            name = f"part-{commit}-kept.parquet"
                            pq.write_table(kept, os.path.join(staged_day, name), compression="zstd")
                            names.append(name)
                    for name in names:
                        fsync_file(os.path.join(staged_day, name))
                    fsync_dir(staged_day)
                    after = _rows(os.path.join(staged_day, n) for n in names)
                    graveyard = live.path("_staging", f"replaced-{commit}-{table}-{day}")
                    shutil.rmtree(graveyard, ignore_errors=True)
                    ops.append({"op": "swap-day", "staged": _rel(live, staged_day), "live": _rel(live, live_day),
                                "graveyard": _rel(live, graveyard), "commit": commit})
                    files.extend({"table": table, "day": day, "path": f"{table}/date={day}/{n}",
                                  "rows": _rows([os.path.join(staged_day, n)])} for n in names)
                    changes.append(DayChange(table, day, before, after))
            ops.extend(self._dead_letter_ops(key, staging, commit, files))
            marker = {"commit": commit, "run": run_id, "kind": "replay", "replay": key,
                      "committed_at": _now(), "units": units, "files": files}
            live.write_intent(commit, ops)
            failpoints.reached("replay:intent-written")
            live.write_marker(commit, marker)
            failpoints.reached("replay:marker-written")
            swapped = 0
            for op in ops:
                live._redo(op)
                if op["op"] == "swap-day":
                    swapped += 1
                    if swapped == 1:
                        failpoints.reached("replay:first-day-swapped")
            for directory in sorted({os.path.dirname(live.path(f["path"])) for f in files}):
                fsync_dir(directory)
            failpoints.reached("replay:all-days-swapped")
            live.clear_intent(commit)
            failpoints.reached("replay:visible")
            self._forget_superseded(key, commit)
        return changes

    @staticmethod
    def _rename_staged(staged_day: str, staged_files: list[str], commit: str) -> list[str]:
        """Give the staged day's files this commit's names; drop anything else in the folder."""
        keep = set(staged_files)
        for name in os.listdir(staged_day):
            path = os.path.join(staged_day, name)
            if path not in keep:
                os.remove(path)
        names = []
        for i, path in enumerate(sorted(staged_files)):
            name = f"part-{commit}-{i}.parquet"
            os.replace(path, os.path.join(staged_day, name))
            names.append(name)
        return names

    def _carry_over(self, table: str, live_files: list[str], merge_keys: set[str]) -> Optional[pa.Table]:
        """The live day's rows that do not come from the replayed files."""
        existing = ds.dataset(live_files, format="parquet", schema=arrow_schema(table)).to_table()
        keys = pc.utf8_slice_codeunits(existing.column("event_id"), 0, EVENT_KEY_LENGTH)
        keep = existing.filter(pc.invert(pc.is_in(keys, value_set=pa.array(sorted(merge_keys), pa.string()))))
        return keep if keep.num_rows else None

    def _dead_letter_ops(self, key: str, staging: ParquetDataset, commit: str, files: list) -> list[dict[str, Any]]:
        """Move the replay's dead letters in; remove those of an earlier identical replay."""
        live = self.dataset
        ops = []
        for marker in live.markers().values():
            if marker.get("replay") == key:
                ops.extend({"op": "delete", "path": f["path"]} for f in marker["files"] if f["table"] == UNPROCESSED)
        for day, staged_files in _days_of(staging.committed_files(UNPROCESSED)).items():
            for i, path in enumerate(sorted(staged_files)):
                final = f"{UNPROCESSED}/date={day}/part-{commit}-{i}.parquet"
                ops.append({"op": "rename", "from": _rel(live, path), "to": final})
                files.append({"table": UNPROCESSED, "day": day, "path": final, "rows": _rows([path])})
        return ops

    def _forget_superseded(self, key: str, commit: str) -> None:
        """Markers of earlier identical replays: their files are gone, their units are in this one."""
        for other, marker in self.dataset.markers().items():
            if other != commit and marker.get("replay") == key:
                os.remove(self.dataset.marker_path(other))
        fsync_dir(self.dataset.path("_ledger"))


def _rel(dataset: ParquetDataset, path: str) -> str:
    return os.path.relpath(path, dataset.root)


def _now() -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


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
                source_format=bigquery.SourceFormat.PARQUET, schema=schema, write_disposition=disposition
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
    """The committed part files of a replay's staging dataset, local or on a Beam filesystem."""

    def __init__(self, staging_dir: str) -> None:
        self.dataset = ParquetDataset(staging_dir)

    def files(self, table: str) -> list[str]:
        return self.dataset.committed_files(table)

    def days(self, table: str) -> list[str]:
        return sorted({p.rsplit("/date=", 1)[1].split("/", 1)[0] for p in self.files(table)})
