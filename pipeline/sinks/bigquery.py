"""BigQuery sinks: load jobs (default, exactly once) and legacy streaming inserts.

:class:`WriteBigQuery` chooses by ``method``:

* ``load-jobs`` (default) — rows are staged as Parquet and loaded by load
  jobs with deterministic ids, each unit listed in the dataset's ledger in
  the same load batch (:mod:`bigquery_commit`). Free, exactly once, and a
  unit already in the ledger is skipped. Local runs load every bundle (batch)
  or every window (streaming: before the window is acknowledged). On a
  remote runner, streaming: every bundle's rows are kept by the runner
  (:mod:`bigquery_batches`) and loaded together once per ``load_interval``
  seconds; batch: every bundle is staged as files and all are loaded at the
  end. Either keeps the load jobs far inside BigQuery's daily quota.
* ``streaming-inserts`` — the legacy ``tabledata.insertAll`` API, only when
  asked for: billed per row (1 KB minimum), best-effort de-duplication by
  insert id (the event id) only, no ledger. Transient failures are retried
  with backoff; only rows BigQuery refuses for what they contain become
  ``unprocessed`` rows (``bigquery-rejected``).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Iterable, Iterator, Optional, Sequence

import apache_beam as beam
import orjson
from apache_beam.transforms.trigger import AccumulationMode, AfterAny, AfterProcessingTime, AfterWatermark, Repeatedly
from apache_beam.transforms.window import GlobalWindow, GlobalWindows
from apache_beam.utils.timestamp import Timestamp
from apache_beam.utils.windowed_value import WindowedValue

from ...parsers.arrow_rows import arrow_to_rows
from ...parsers.lines import dead_letter, event_key
from ...parsers.schemas import UNPROCESSED
from ...parsers.timestamps import iso_from_epoch
from ..datasets import DatasetRef, bigquery_client
from ..elements import ParsedChunk
from ..metrics import Counters, StageCpu
from ..progress import note_day
from .bigquery_batches import BatchLoader, StagedBundle, stage_bundle
from .bigquery_commit import BigQueryCommitter, LoadOutcome, default_staging_root
from .bigquery_jobs import retry_transient
from .parquet_commit import CommitOutcome, IncompleteUnitError, StagedGroup

__all__ = ["LOAD_JOBS", "METHODS", "STREAMING_INSERTS", "InsertRowsFn", "LoadBatchesFn", "LoadGroupsFn",
           "LoadStagedFn", "StageFilesFn", "StageGroupsFn", "WriteBigQuery", "count_load"]

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
    """Legacy streaming inserts, each insert finished before ``process`` returns.

    Every insert id is the row's ``event_id`` (BigQuery drops a repeated id it
    has seen recently: best effort only). Transient failures are retried with
    backoff; rows BigQuery refuses become ``unprocessed`` rows carrying the
    row as JSON and BigQuery's reason.
    """

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
                errors = retry_transient(
                    lambda: self._client.insert_rows_json(table_id, part, row_ids=ids, skip_invalid_rows=True, retry=None),
                    f"inserting into {table}")
            except gexc.BadRequest as exc:
                # The whole request was refused (a row too large): find the culprits one by one.
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
                errors = retry_transient(
                    lambda: self._client.insert_rows_json(table_id, [row], row_ids=[rid], retry=None),
                    f"inserting one row into {table_id}")
            except gexc.BadRequest as exc:  # refused for what it contains; transient errors were retried above
                failed.append((row, _short(exc)))
                continue
            if errors:
                failed.append((row, "; ".join(e.get("message", "") for e in errors[0].get("errors", [])) or _short(cause)))
        return failed


def _short(exc: Exception) -> str:
    return str(exc).replace("\n", " ")[:500]


def count_load(counters: Counters, staged: CommitOutcome, loaded: Optional[LoadOutcome]) -> None:
    """Count rows put in, units skipped (already ingested) and rows BigQuery refused."""
    for unit in staged.skipped_units + (loaded.skipped_units if loaded else []):
        counters.inc(f"units_skipped.{unit.kind}")
        counters.inc("already_ingested_lines", unit.lines + unit.faults)
    if loaded is None:
        return
    for (table, day), rows in loaded.rows.items():
        if rows:
            counters.inc(f"rows.{table}.{day}", rows)
    if loaded.rejected:
        counters.inc("dead_letters.bigquery-rejected", loaded.rejected)


class _GroupsFn(beam.DoFn):
    """Collects parsed chunks into a staged group per bundle (or per element)."""

    def __init__(self, dataset: DatasetRef, staging_root: str, run_id: str, each_element: bool) -> None:
        self._dataset = dataset
        self._staging_root = staging_root
        self._run_id = run_id
        self._each_element = each_element

    def setup(self) -> None:
        self._committer = BigQueryCommitter(self._dataset, self._staging_root, self._run_id)
        self._committer.hold()
        self._counters = Counters()
        self._cpu = StageCpu(self._counters, "write")
        self._group: Optional[StagedGroup] = None

    def start_bundle(self) -> None:
        self._group = None

    def _add(self, chunk: ParsedChunk) -> None:
        group = self._group
        if group is None:
            group = self._group = self._committer.new_group()
        for (table, day), rows in chunk.tables.items():
            if table != UNPROCESSED:
                note_day(day)
            group.add_table(table, day, rows)
        group.add_units(chunk.units, chunk.sources)

    def _stage(self) -> Optional[CommitOutcome]:
        group, self._group = self._group, None
        if group is None or not (group.units or group.sources):
            return None
        return self._committer.stage(group)

    def teardown(self) -> None:
        group, self._group = getattr(self, "_group", None), None
        if group is not None:
            group.abort()


class LoadGroupsFn(_GroupsFn):
    """Local runs: stage and load every bundle (or element) before moving on."""

    def process(self, chunk: ParsedChunk) -> Iterator[Any]:
        with self._cpu.timing():
            self._add(chunk)
            if self._each_element:
                self._commit()
        return iter(())

    def finish_bundle(self) -> None:
        with self._cpu.timing():
            self._commit()

    def _commit(self) -> None:
        staged = self._stage()
        if staged is None:
            return
        loaded = self._committer.load([staged.commit]) if staged.commit else None
        count_load(self._counters, staged, loaded)


class StageGroupsFn(beam.DoFn):
    """Remote runs: each bundle's rows become one :class:`StagedBundle`, kept by the runner until loaded."""

    def __init__(self, dataset: DatasetRef, staging_root: str, run_id: str, each_element: bool = False) -> None:
        self._dataset = dataset

    def setup(self) -> None:
        self._counters = Counters()

    def start_bundle(self) -> None:
        self._parts: dict[str, list[Any]] = {}
        self._units: dict[str, Any] = {}
        self._sources: set[str] = set()

    def process(self, chunk: ParsedChunk) -> Iterator[Any]:
        for (table, day), rows in chunk.tables.items():
            if table != UNPROCESSED:
                note_day(day)
            self._parts.setdefault(table, []).append(rows)
        for unit in chunk.units:
            self._units.setdefault(unit.unit_id, unit)
        self._sources |= chunk.sources
        return iter(())

    def finish_bundle(self) -> Iterator[Any]:
        if not (self._units or self._sources):
            return
        incomplete = self._sources - set(self._units)
        if incomplete:
            raise IncompleteUnitError(
                f"{len(incomplete)} source(s) reached the sink without their last part (e.g. {sorted(incomplete)[0]}): "
                "the reader and the sink must run in the same bundle")
        yield WindowedValue(stage_bundle(self._parts, list(self._units.values())), Timestamp.now(), [GlobalWindow()])


class LoadBatchesFn(beam.DoFn):
    """Loads all staged bundles of a pane as one batch (one load job per table)."""

    def __init__(self, dataset: DatasetRef, staging_root: str, run_id: str) -> None:
        self._dataset = dataset
        self._staging_root = staging_root
        self._run_id = run_id

    def setup(self) -> None:
        # remote runners: messages are not listed in the ledger (see BigQueryCommitter)
        self._loader = BatchLoader(BigQueryCommitter(self._dataset, self._staging_root, self._run_id, list_messages=False))
        self._counters = Counters()

    def process(self, keyed: tuple[Any, Iterable[StagedBundle]]) -> Iterator[Any]:
        loaded = self._loader.load(keyed[1])
        count_load(self._counters, CommitOutcome(None, {}, []), loaded)
        return iter(())


class StageFilesFn(_GroupsFn):
    """Remote batch runs: stage every bundle as files (a staging commit); emit the commit's id."""

    def process(self, chunk: ParsedChunk) -> Iterator[Any]:
        self._add(chunk)
        return iter(())

    def finish_bundle(self) -> Iterator[Any]:
        staged = self._stage()
        if staged is None:
            return
        count_load(self._counters, staged, None)
        if staged.commit:
            yield WindowedValue(staged.commit, Timestamp.now(), [GlobalWindow()])


class LoadStagedFn(beam.DoFn):
    """Remote batch runs: load every staged commit at the end, 10,000 files per load job."""

    def __init__(self, dataset: DatasetRef, staging_root: str, run_id: str) -> None:
        self._dataset = dataset
        self._staging_root = staging_root
        self._run_id = run_id

    def setup(self) -> None:
        self._committer = BigQueryCommitter(self._dataset, self._staging_root, self._run_id, list_messages=False)
        self._counters = Counters()

    def process(self, keyed: tuple[Any, Iterable[str]]) -> Iterator[Any]:
        loaded = self._committer.load(sorted(set(keyed[1])))
        count_load(self._counters, CommitOutcome(None, {}, []), loaded)
        return iter(())


LOAD_JOBS = "load-jobs"
STREAMING_INSERTS = "streaming-inserts"
METHODS = (LOAD_JOBS, STREAMING_INSERTS)


class WriteBigQuery(beam.PTransform):
    """Parsed chunks → ``<dataset>.<table>``; counts ``rows.<table>.<day>``.

    ``method``: ``load-jobs`` (default) or ``streaming-inserts`` (legacy, only
    when asked for). For load jobs: ``staging_dir`` is where rows are staged
    (``gs://`` on a remote runner); ``mode`` is ``each-element`` (local
    streaming windows: loaded before the window is acknowledged),
    ``each-bundle`` (local batch runs) or ``batched`` (remote runners: stage
    per bundle, load the staged bundles together, once per ``load_interval``
    seconds when ``streaming``, at the end otherwise). ``run_id`` names this
    run's staging (fixed when the graph is built).
    """

    EACH_ELEMENT = "each-element"
    EACH_BUNDLE = "each-bundle"
    BATCHED = "batched"

    def __init__(
        self,
        dataset: DatasetRef,
        method: str = LOAD_JOBS,
        staging_dir: Optional[str] = None,
        mode: str = EACH_BUNDLE,
        streaming: bool = False,
        load_interval: float = 120.0,
        run_id: Optional[str] = None,
    ) -> None:
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"unknown BigQuery method {method!r}; one of {', '.join(METHODS)}")
        self._dataset = dataset
        self._method = method
        self._staging = staging_dir or default_staging_root()
        self._mode = mode
        self._streaming = streaming
        self._load_interval = load_interval
        self._run_id = run_id or uuid.uuid4().hex[:16]

    def expand(self, parsed):
        """Parsed chunks → rows in the dataset's tables, by the method and mode this sink was made with."""
        if self._method == STREAMING_INSERTS:
            return parsed | "InsertRows" >> beam.ParDo(InsertRowsFn(self._dataset))
        if self._mode != self.BATCHED:
            each = self._mode == self.EACH_ELEMENT
            return parsed | "StageAndLoad" >> beam.ParDo(LoadGroupsFn(self._dataset, self._staging, self._run_id, each))
        if not self._streaming:
            # a batch job's output can be far bigger than memory: bundles are staged as files and
            # loaded together at the end, 10,000 files per load job
            return (
                parsed
                | "StageBundles" >> beam.ParDo(StageFilesFn(self._dataset, self._staging, self._run_id, False))
                | "OneLoader" >> beam.Map(lambda commit: (None, commit))
                | "CollectStaged" >> beam.GroupByKey()
                | "LoadBatches" >> beam.ParDo(LoadStagedFn(self._dataset, self._staging, self._run_id))
            )
        # a pane every load interval, and a last one when the watermark passes the end of the
        # window — a drain: Dataflow would emit it anyway, Beam's Python direct runner only when
        # the trigger asks for it (it ignores closing behaviour)
        return (
            parsed
            | "StageBundles" >> beam.ParDo(StageGroupsFn(self._dataset, self._staging, self._run_id, False))
            | "EveryLoadInterval" >> beam.WindowInto(
                GlobalWindows(),
                trigger=Repeatedly(AfterAny(AfterProcessingTime(int(round(self._load_interval))), AfterWatermark())),
                accumulation_mode=AccumulationMode.DISCARDING,
            )
            | "OneLoader" >> beam.Map(lambda bundle: (None, bundle))
            | "CollectStaged" >> beam.GroupByKey()
            | "LoadBatches" >> beam.ParDo(LoadBatchesFn(self._dataset, self._staging, self._run_id))
        )
