"""The replay job: read, parse and stage with Beam, then commit day by day."""

from __future__ import annotations

import logging
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Optional, Sequence

import pyarrow.parquet as pq

from ...parsers.schemas import UNPROCESSED
from ..elements import SourceUnit
from ..graph import ReplayStaging, build_pipeline, new_run_id
from ..options import RunOptions
from ..sinks.bigquery_lock import LockHeld
from ..sinks.parquet_commit import ParquetDataset
from ..sinks.parquet_commit import _remove_tree as remove_tree
from ..sources.files import InputFile, expand_inputs, unreadable_chunk
from ..sources.identity import file_origin
from ..summary import RunSummary, summary_from_result
from .replay_parquet import BigQueryDayStore, DayChange, ParquetDayStore, StagedFiles, dead_letter_label, replay_key
from .run import configure_logging

__all__ = ["FILE_FAULT_REASONS", "ReplayError", "ReplayReport", "identify_files", "run_replay"]


_LOG = logging.getLogger("haulage")
FILE_FAULT_REASONS = ("bad-gzip", "truncated-gzip", "empty-file", "unreadable-file")


class ReplayError(RuntimeError):
    """A replay that cannot start or whose staged rows do not add up; nothing was committed."""


@dataclass
class ReplayReport:
    """What a replay did: the run summary, each day replaced or merged, and the files that could not be read."""

    summary: RunSummary
    changes: list[DayChange]
    bad_files: list[tuple[str, str]] = field(default_factory=list)
    merge: bool = False

    def render(self) -> str:
        """The report as printed by ``haulage replay``: the run summary, then each day changed and each bad file."""
        lines = [self.summary.render(), ""]
        verb = "merged" if self.merge else "replaced"
        lines.append(f"days {verb}: {len(self.changes)}")
        for change in self.changes:
            lines.append(f"  {change.table:<17} {change.day}  {change.rows_before:>10,} -> {change.rows_after:>10,} rows")
        if self.bad_files:
            lines.append(f"bad files: {len(self.bad_files)}")
            for name, error in self.bad_files:
                lines.append(f"  {name}: {error.split(': ', 1)[0]}")
        return "\n".join(lines)


def _bad_files(staging_dir: str) -> list[tuple[str, str]]:
    """File-level faults among the staged dead letters (read before commit moves them)."""
    found = []
    for path in ParquetDataset(staging_dir).committed_files(UNPROCESSED):
        if "://" in path:
            continue
        for row in pq.read_table(path, columns=["source", "error"]).to_pylist():
            if row["error"].split(":", 1)[0] in FILE_FAULT_REASONS:
                found.append((row["source"].rsplit(":", 1)[0].split(" ", 2)[-1], row["error"]))
    return sorted(found)


def identify_files(files: Sequence[InputFile], threads: int = 16) -> dict[str, str]:
    """Path → unit id of every input file, named by content (see sources.identity).

    A file that cannot be read gets the id its unreadable-file dead letter will carry.
    """
    def one(item: InputFile) -> tuple[str, str]:
        try:
            origin, _ = file_origin(item.path, item.size)
            return item.path, origin.key
        except Exception as exc:
            return item.path, unreadable_chunk(item.path, "", exc)[0].origin.key

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return dict(pool.map(one, files))


def run_replay(opts: RunOptions, day_range: Optional[tuple[str, str]], merge: bool, staging_dir: Optional[str]) -> ReplayReport:
    """Rebuild the days the input files cover (or merge them with ``merge``), then report.

    The rows are parsed and staged by the graph of :func:`~haulage.pipeline.graph.build_pipeline`;
    only when the staged rows balance with the lines read are they committed day by
    day, under the output's lock, so a replay is all-or-nothing per day and can be
    run again with the same result.
    """
    configure_logging(opts.quiet)
    files = expand_inputs(opts.inputs)
    file_keys = set(identify_files(files).values())
    key = replay_key(sorted(file_keys), day_range, merge)
    merge_keys = file_keys if merge else None
    run_id = new_run_id()
    _LOG.info("replay %s: %d files (%s bytes)%s", key, len(files), f"{sum(f.size for f in files):,}",
              f", days {day_range[0]}..{day_range[1]}" if day_range else "")

    cleanup = None
    if opts.bigquery_dataset is not None:
        store: ParquetDayStore | BigQueryDayStore = BigQueryDayStore(opts.bigquery_dataset)
        if staging_dir is None:
            if not opts.local:
                raise ReplayError("--staging-dir gs://BUCKET/PATH is required for BigQuery replays on a remote runner")
            staging_dir = tempfile.mkdtemp(prefix=f"haulage-replay-{key}-")
        else:
            # a folder of this replay alone: two replays never share staging
            staging_dir = f"{staging_dir.rstrip('/')}/replay-{key}-{run_id}"
        cleanup = staging_dir
        try:
            store.lock()
        except LockHeld as exc:
            raise ReplayError(str(exc)) from None
        store.clean_stale()
    else:
        store = ParquetDayStore(opts.output_dir)
        store.lock()
        store.clean_stale()
        staging_dir = store.begin_staging(run_id)

    try:
        started = time.monotonic()
        staging = ReplayStaging(staging_dir, day_range, dead_letter_label(key))
        result = build_pipeline(opts, files, run_id=run_id, replay=staging).run()
        result.wait_until_finish()
        summary = summary_from_result(result, time.monotonic() - started, len(files))
        if not summary.balanced:
            raise ReplayError("staged rows do not add up to the lines read; nothing was committed")
        bad = _bad_files(staging_dir)

        _LOG.info("committing replay %s", key)
        if isinstance(store, ParquetDayStore):
            changes = store.commit(key, merge_keys, staging_dir, run_id)
        else:
            staged = StagedFiles(staging_dir)
            units = [SourceUnit(u["unit_id"], u["kind"], u["label"], u["size"], u["lines"], u["faults"])
                     for u in staged.dataset.committed_units().values()]
            changes = store.commit(key, merge_keys, staged, day_range, dead_letter_label(key), units)
    finally:
        if isinstance(store, ParquetDayStore):
            store.end_staging(run_id)
        else:
            store.unlock()
            if cleanup is not None:
                remove_tree(cleanup)
    return ReplayReport(summary, changes, bad, merge)
