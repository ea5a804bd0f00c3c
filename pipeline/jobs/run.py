"""``haulage run``: build the pipeline for the chosen source and sink, run it, report.

A thin ``run`` in the style of Beam's complete examples: every stage is a
named composite transform (ReadLogFiles / PullPubSubWindows /
ReadPubSubChunks → ParseLogLines → WriteParquet / WriteBigQuery).

Where it runs: ``DirectRunner`` (the default) means Beam's FnApiRunner here,
with streaming pulled in windows (PullPubSubWindows, acknowledged after
writing); ``DataflowRunner`` submits the job; ``BundleBasedDirectRunner``
runs the very graph submitted to Dataflow (ReadPubSub …) here, on Beam's
direct runner, until ``--run-for`` passes, then drains it
(:mod:`haulage.pipeline.runners.direct_streaming`).
"""

from __future__ import annotations

import logging
import sys
import time
import uuid
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from .. import progress
from ..sinks.bigquery_commit import BigQueryCommitter, default_staging_root
from ..sinks.bigquery import LOAD_JOBS, WriteBigQuery
from ..runners.direct_streaming import HaulageDirectRunner, run_until_stopped
from ..sources.files import InputFile, ReadLogFiles, expand_inputs
from ..runners.local_workers import default_workers, run_in_workers
from ..options import RunOptions
from ..sinks.parquet_commit import ParquetDataset
from ..sinks.parquet import WriteParquet
from ..parse_transform import ParseLogLines
from ..ledgers import LedgerRef
from ..sources.notifications import NotificationPolicy
from ..sources.pubsub import ReadPubSubChunks
from ..sources.pubsub_windows import PullPubSubWindows
from ..summary import RunSummary, counters_from_result, summary_from_result

_LOG = logging.getLogger("haulage")


def configure_logging(quiet: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("haulage: %(message)s"))
    _LOG.handlers[:] = [handler]
    _LOG.setLevel(logging.WARNING if quiet else logging.INFO)
    _LOG.propagate = False
    # Beam's own INFO lines (runner choice, bundle plumbing) are noise for operators.
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    # multi-process workers relay their start-up warnings through this logger
    logging.getLogger("apache_beam.runners.portability.local_job_service").setLevel(logging.ERROR)


def beam_options(opts: RunOptions) -> PipelineOptions:
    options = PipelineOptions(opts.beam_args)
    if opts.streaming and not opts.local:
        options.view_as(StandardOptions).streaming = True
    return options


def local_runner(options: PipelineOptions) -> Any:
    """Beam's FnApiRunner, set up the way the DirectRunner sets it up.

    The DirectRunner of Beam 2.77 first tries to download and start the Prism
    runner; offline that costs a failed download on every run, and where a
    Prism binary happens to be cached it changes the execution engine. Local
    haulage pipelines are bounded (streaming runs pull in windows), which is
    exactly what the FnApiRunner runs.
    """
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    provision = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
    return fn_runner.FnApiRunner(provision_info=provision)


def build_pipeline(
    opts: RunOptions,
    files: Optional[Sequence[InputFile]] = None,
    options: Optional[PipelineOptions] = None,
    output: Optional[PreparedOutput] = None,
) -> beam.Pipeline:
    """The whole job graph; ``files`` must be given for batch runs (see expand_inputs).

    ``output`` (from :func:`prepare_output`) carries the run id and the units
    the output already holds; without it the graph is built as if the output
    were empty (the sinks still skip committed units when they commit).
    """
    options = options or beam_options(opts)
    output = output or PreparedOutput(new_run_id(), frozenset())
    runner = local_runner(options) if opts.local else HaulageDirectRunner() if opts.direct_streaming else None
    pipeline = beam.Pipeline(runner=runner, options=options)
    policy = NotificationPolicy.from_locations(opts.notification_allow) if opts.notification_allow else None
    if opts.inputs:
        chunks = pipeline | "ReadLogFiles" >> ReadLogFiles(files or [], opts.chunk_lines, committed=output.committed, chunk_bytes=opts.chunk_bytes)
    elif opts.local:
        chunks = pipeline | "PullPubSubWindows" >> PullPubSubWindows(
            opts.message_format, opts.subscription, opts.topic, opts.run_for, opts.window_seconds,
            ledger=ledger_ref(opts), chunk_lines=opts.chunk_lines, chunk_bytes=opts.chunk_bytes, policy=policy,
        )
    else:
        chunks = pipeline | "ReadPubSub" >> ReadPubSubChunks(
            opts.message_format, opts.subscription, opts.topic, opts.window_seconds, opts.chunk_lines,
            opts.chunk_bytes, policy,
        )
    parsed = chunks | "ParseLogLines" >> ParseLogLines(opts.agent_cache_size)
    if opts.bigquery_dataset is not None:
        if opts.local:
            mode = WriteBigQuery.EACH_ELEMENT if opts.streaming else WriteBigQuery.EACH_BUNDLE
        else:
            mode = WriteBigQuery.BATCHED
        parsed | "WriteBigQuery" >> WriteBigQuery(
            opts.bigquery_dataset,
            method=opts.bigquery_method,
            staging_dir=staging_root(opts),
            mode=mode,
            streaming=opts.streaming and not opts.local,
            load_interval=opts.load_interval,
            run_id=output.run_id,
        )
    else:
        parsed | "WriteParquet" >> WriteParquet(opts.output_dir, flush_each_chunk=opts.streaming, run_id=output.run_id)
    return pipeline


@dataclass(frozen=True)
class PreparedOutput:
    """What the driver learnt from the output before the run: its units, and this run's id."""

    run_id: str
    committed: frozenset[str]
    dataset: Optional[ParquetDataset] = None
    committer: Optional[BigQueryCommitter] = None

    def finish(self) -> None:
        if self.dataset is not None:
            self.dataset.release_staging(self.run_id)
        if self.committer is not None:
            self.committer.release()


def staging_root(opts: RunOptions) -> str:
    """Where BigQuery loads are staged: --staging-dir, else under --temp_location on a
    remote runner, else the local default."""
    if opts.staging_dir:
        return opts.staging_dir
    if not opts.local:
        from apache_beam.options.pipeline_options import GoogleCloudOptions

        temp = PipelineOptions(opts.beam_args).view_as(GoogleCloudOptions).temp_location
        if temp:
            return temp.rstrip("/") + "/haulage-staging"
    return default_staging_root()


def ledger_ref(opts: RunOptions) -> Optional[LedgerRef]:
    """The ledger of the run's output (None for legacy streaming inserts, which keep none)."""
    if opts.bigquery_dataset is None:
        return LedgerRef(output_dir=opts.output_dir)
    if opts.bigquery_method == LOAD_JOBS:
        return LedgerRef(dataset=opts.bigquery_dataset)
    return None


def new_run_id() -> str:
    return uuid.uuid4().hex[:16]


def prepare_output(opts: RunOptions) -> PreparedOutput:
    """Recover the output from any crashed commit, then read which units it holds."""
    run_id = new_run_id()
    if opts.bigquery_dataset is not None:
        if opts.bigquery_method != LOAD_JOBS:
            return PreparedOutput(run_id, frozenset())
        committer = BigQueryCommitter(opts.bigquery_dataset, staging_root(opts), run_id)
        committer.recover(from_driver=True)
        committed = committer.ledger.all_units() if opts.inputs else frozenset()
        committer.hold()
        return PreparedOutput(run_id, committed, committer=committer)
    dataset = ParquetDataset(opts.output_dir)
    with dataset.locked():
        dataset.recover(from_driver=True)
        committed = frozenset(dataset.committed_units())
    dataset.hold_staging(run_id)
    return PreparedOutput(run_id, committed, dataset)


def run(opts: RunOptions) -> RunSummary | None:
    """Run to completion (local, batch) or submit (remote streaming); return the summary."""
    configure_logging(opts.quiet)
    files = expand_inputs(opts.inputs) if opts.inputs else None
    if files is not None:
        _LOG.info("reading %d files (%s bytes)", len(files), f"{sum(f.size for f in files):,}")
    elif opts.local:
        _LOG.info(
            "pulling %s %s in %gs windows%s",
            "subscription" if opts.subscription else "topic",
            opts.subscription or opts.topic,
            opts.window_seconds,
            f" for {opts.run_for:g}s" if opts.run_for else " until interrupted",
        )
    elif opts.direct_streaming:
        sink = f"BigQuery {opts.bigquery_dataset}" if opts.bigquery_dataset else opts.output_dir
        _LOG.info(
            "running the Dataflow streaming graph (ReadPubSub -> ParseLogLines -> %s) on Beam's %s, reading %s%s",
            "WriteBigQuery" if opts.bigquery_dataset else "WriteParquet",
            opts.runner,
            opts.subscription or opts.topic,
            f", for {opts.run_for:g}s, then draining" if opts.run_for else " until interrupted (Ctrl-C drains)",
        )
        _LOG.info(
            "writing to %s. This runner acknowledges a message when it pulls it: stopping (--run-for, Ctrl-C, "
            "SIGTERM) drains and loses nothing; a crash loses what was pulled and not yet written",
            sink,
        )
    started = time.monotonic()
    output = prepare_output(opts) if opts.in_process else PreparedOutput(new_run_id(), frozenset())
    if files is not None and opts.local:
        try:
            counters = run_in_workers(
                files, opts.workers or default_workers(), lambda share, name: _run_files(opts, share, output, name)
            )
        finally:
            output.finish()
        return RunSummary(counters, time.monotonic() - started, len(files))
    try:
        result = build_pipeline(opts, files, output=output).run()
        if opts.direct_streaming:
            run_until_stopped(result, opts.run_for, StreamProgress(result).report, flush_seconds=opts.window_seconds)
        elif opts.streaming and not opts.local:
            _LOG.info("streaming job submitted: %s", getattr(result, "job_id", lambda: "?")())
            return None
        else:
            result.wait_until_finish()
    except Exception as exc:
        if interrupted(exc):  # Ctrl-C inside a DoFn reaches here wrapped by Beam
            raise KeyboardInterrupt from exc
        raise
    finally:
        output.finish()
    return summary_from_result(result, time.monotonic() - started, len(files) if files else None)


class StreamProgress:
    """Progress lines of a streaming run on this machine, printed when something changed."""

    def __init__(self, result: Any) -> None:
        self._result = result
        self._last: Optional[tuple[int, ...]] = None

    def report(self) -> None:
        counters = counters_from_result(self._result)
        rows = sum(v for k, v in counters.items() if k.startswith("rows.") and not k.startswith("rows.unprocessed."))
        dead = sum(v for k, v in counters.items() if k.startswith("rows.unprocessed."))
        now = (counters.get("messages_read", 0), counters.get("lines_read", 0), rows, dead)
        if now != self._last and any(now):
            _LOG.info("%s messages read; %s lines parsed; written: %s rows, %s dead letters", *(f"{n:,}" for n in now))
        self._last = now


def interrupted(exc: BaseException) -> bool:
    """Was this failure a KeyboardInterrupt, however wrapped?"""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, KeyboardInterrupt) or str(exc).startswith("KeyboardInterrupt"):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def _run_files(opts: RunOptions, files: list[InputFile], output: PreparedOutput, worker: str) -> dict[str, int]:
    """One worker of a local batch run (see local_workers): the whole pipeline on ``files``, in this process."""
    progress.worker_name = worker
    result = build_pipeline(opts, files, output=output).run()
    result.wait_until_finish()
    return counters_from_result(result)
