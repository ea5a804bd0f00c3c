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
* BigQuery (:mod:`replay_bigquery`): under the dataset's replay lock, staged
  rows are loaded into staging tables of this replay alone, then one
  transaction runs a ``MERGE`` per table (deleting the replaced rows and
  inserting the new ones), replaces the dead letters, and adds the replayed
  files to the ledger — never delete-then-append.

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
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ...parsers.lines import event_key
from ...parsers.schemas import DOWNLOADS, PARTITION_COLUMN, SIMPLE, TABLES, UNPROCESSED, arrow_schema, bigquery_schema
from .. import failpoints
from ..datasets import DatasetRef, bigquery_client
from ..sinks.parquet_commit import ParquetDataset, commit_id_for, fsync_dir, fsync_file
from .replay_bigquery import BigQueryDayStore  # noqa: F401  (re-exported: replays into BigQuery)

__all__ = [
    "ROW_TABLES", "EVENT_KEY_LENGTH", "STEPS", "replay_key", "dead_letter_label", "DayChange",
    "ParquetDayStore", "StagedFiles",
]


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
    """One day of one table changed by a replay: its row count before and after."""

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
        """Remove this replay's staging folder."""
        self.dataset.release_staging(f"replay-{run_id}")

    def clean_stale(self) -> None:
        """Finish or undo what killed runs and replays left (see ParquetDataset.recover)."""
        with self.dataset.locked():
            self.dataset.recover()

    def commit(self, key: str, merge_keys: Optional[set[str]], staging_dir: str, run_id: str) -> list[DayChange]:
        """Swap in the staged days (or merge them), with the ledger, in one recoverable commit; return the days changed."""
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
            ops.extend(self._dead_letter_ops(key, staging, commit, files, run_id))
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

    def _dead_letter_ops(self, key: str, staging: ParquetDataset, commit: str, files: list, run_id: str) -> list[dict[str, Any]]:
        """Move the replay's dead letters in; take out every dead letter the replayed files got before.

        Earlier commits (runs or replays) that ingested a replayed file have its
        dead letters in their ``unprocessed`` files, named by the label the
        file had then (the commit's marker records it): those files are
        rewritten without them (or deleted when nothing else is left).
        """
        live = self.dataset
        replayed = set(staging.committed_units())
        rewrites = live.path("_staging", f"replay-{run_id}", "rewrites")
        ops: list[dict[str, Any]] = []
        for other, marker in sorted(live.markers().items()):
            labels = {u["label"] for u in marker["units"] if u["unit_id"] in replayed}
            if other == commit or not labels:
                continue
            for f in marker["files"]:
                path = live.path(f["path"])
                if f["table"] != UNPROCESSED or not os.path.exists(path):
                    continue
                table = pq.read_table(path)
                keep = pa.array([s.rpartition(":")[0] not in labels for s in table.column("source").to_pylist()])
                kept = table.filter(keep)
                if kept.num_rows == table.num_rows:
                    continue
                if kept.num_rows == 0:
                    ops.append({"op": "delete", "path": f["path"]})
                    continue
                os.makedirs(rewrites, exist_ok=True)
                rewritten = os.path.join(rewrites, f"{len(ops)}.parquet")
                pq.write_table(kept, rewritten, compression="zstd")
                fsync_file(rewritten)
                ops.append({"op": "rename", "from": _rel(live, rewritten), "to": f["path"]})
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


class StagedFiles:
    """The committed part files of a replay's staging dataset, local or on a Beam filesystem."""

    def __init__(self, staging_dir: str) -> None:
        self.dataset = ParquetDataset(staging_dir)

    def files(self, table: str) -> list[str]:
        """The committed Parquet files of ``table`` in the staging dataset."""
        return self.dataset.committed_files(table)

    def days(self, table: str) -> list[str]:
        """The days ``table`` has staged files for, sorted."""
        return sorted({p.rsplit("/date=", 1)[1].split("/", 1)[0] for p in self.files(table)})
