"""Parquet sink: ``<dir>/<table>/date=YYYY-MM-DD/part-<commit>-<n>.parquet``, committed once.

Rows are staged under ``<dir>/_staging/`` and committed by group through the
dataset's ledger (:mod:`parquet_commit`): in batch runs a group is a bundle
(committed in ``finish_bundle``), in streaming runs each chunk as soon as
the group holds whole sources only (a window of messages, or the chunks of a
notified file; all committed before the window is acknowledged). Units the ledger
already holds are not written again: a retried bundle, a second run over the
same files, a redelivered message all end with each line in the tables once.
"""

from __future__ import annotations

import uuid
from typing import Any, Iterator, Optional

import apache_beam as beam

from ...parsers.schemas import UNPROCESSED

from ..elements import ParsedChunk
from ..metrics import Counters, StageCpu
from .parquet_commit import ROW_GROUP_ROWS, CommitOutcome, ParquetDataset, StagedGroup
from ..progress import note_day

__all__ = ["ROW_GROUP_ROWS", "WriteFilesFn", "WriteParquet", "count_outcome", "day_dir"]


def day_dir(output_dir: str, table: str, day: str) -> str:
    """The folder of one table's day in a Parquet dataset: ``<output>/<table>/date=<day>`` (Hive-style)."""
    return f"{output_dir.rstrip('/')}/{table}/date={day}"


def count_outcome(counters: Counters, outcome: CommitOutcome) -> None:
    """Count what a commit made visible and what it skipped as already ingested."""
    for (table, day), rows in outcome.rows.items():
        counters.inc(f"rows.{table}.{day}", rows)
    for unit in outcome.skipped_units:
        counters.inc(f"units_skipped.{unit.kind}")
        counters.inc("already_ingested_lines", unit.lines + unit.faults)


class WriteFilesFn(beam.DoFn):
    """Stages each (table, day) of the chunks it sees and commits them as one group.

    ``day_range`` (inclusive ISO dates) keeps only rows of those days — what
    a replay limited by --from/--to rebuilds; rows outside are counted as
    ``skipped.<table>`` so the books still balance. ``run_id`` names this
    run's staging folder; it is fixed when the pipeline is built, so a
    retried bundle (even on another worker) belongs to the same run.
    """

    def __init__(
        self,
        output_dir: str,
        flush_each_chunk: bool,
        day_range: Optional[tuple[str, str]] = None,
        run_id: Optional[str] = None,
    ) -> None:
        self._output_dir = output_dir
        self._flush_each_chunk = flush_each_chunk
        self._day_range = day_range
        self._run_id = run_id or uuid.uuid4().hex[:16]

    def setup(self) -> None:
        self._counters = Counters()
        self._cpu = StageCpu(self._counters, "write")
        self._dataset = ParquetDataset(self._output_dir)
        self._dataset.hold_staging(self._run_id)
        self._group: Optional[StagedGroup] = None

    def start_bundle(self) -> None:
        self._group = None

    def process(self, chunk: ParsedChunk) -> Iterator[Any]:
        with self._cpu.timing():
            self._add(chunk)
        return iter(())

    def _add(self, chunk: ParsedChunk) -> None:
        group = self._group
        if group is None:
            group = self._group = StagedGroup(self._dataset, self._run_id)
        for (table, day), rows in chunk.tables.items():
            if self._day_range is not None and table != UNPROCESSED and not (self._day_range[0] <= day <= self._day_range[1]):
                self._counters.inc(f"skipped.{table}", rows.num_rows)
                continue
            if table != UNPROCESSED:
                note_day(day)
            group.add_table(table, day, rows)
        group.add_units(chunk.units, chunk.sources)
        if self._flush_each_chunk and group.sources <= set(group.units):
            # streaming: commit as soon as the group holds whole sources only (a big
            # message or notified file arrives in several chunks, all in this bundle)
            self._commit()

    def finish_bundle(self) -> None:
        with self._cpu.timing():
            self._commit()

    def teardown(self) -> None:
        group, self._group = getattr(self, "_group", None), None
        if group is not None:
            group.abort()

    def _commit(self) -> None:
        group, self._group = self._group, None
        if group is not None and (group.units or group.sources):
            count_outcome(self._counters, group.commit())


class WriteParquet(beam.PTransform):
    """Parsed chunks → committed part files per table and UTC day; counts ``rows.<table>.<day>``.

    ``flush_each_chunk`` commits after every element that completes the
    sources it holds (streaming); otherwise a bundle is one commit. ``day_range`` limits the days written
    (replay --from/--to).
    """

    def __init__(
        self,
        output_dir: str,
        flush_each_chunk: bool = False,
        day_range: Optional[tuple[str, str]] = None,
        run_id: Optional[str] = None,
    ) -> None:
        super().__init__()
        self._fn = WriteFilesFn(output_dir, flush_each_chunk, day_range, run_id)

    def expand(self, parsed):
        """Parsed chunks → committed Parquet files (one ParDo; see WriteFilesFn)."""
        return parsed | "WriteFiles" >> beam.ParDo(self._fn)
