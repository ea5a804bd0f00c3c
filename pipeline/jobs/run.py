"""``haulage run``: prepare the output, run the pipeline, report.

The graph (ReadLogFiles / PullPubSubWindows / ReadPubSubChunks →
ParseLogLines → WriteParquet / WriteBigQuery) is built by
:func:`haulage.pipeline.graph.build_pipeline`; this job recovers the output
from any crashed commit, reads which units it holds, runs the graph (in worker
processes for local batch runs) and sums up what happened.

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
from dataclasses import dataclass
from typing import Any, Optional

from .. import progress
from ..graph import build_pipeline, import_local_runner, new_run_id, staging_root
from ..options import RunOptions
from ..runners.direct_streaming import run_until_stopped
from ..runners.local_workers import default_workers, run_in_workers
from ..sinks.bigquery import LOAD_JOBS
from ..sinks.bigquery_commit import BigQueryCommitter
from ..sinks.parquet_commit import ParquetDataset
from ..sources.files import InputFile, expand_inputs
from ..summary import RunSummary, counters_from_result, summary_from_result

__all__ = ["configure_logging", "PreparedOutput", "prepare_output", "run", "StreamProgress", "interrupted"]


_LOG = logging.getLogger("haulage")


def configure_logging(quiet: bool) -> None:
    """haulage's log lines on stderr, prefixed ``haulage:``; Beam's own INFO lines silenced.

    ``quiet`` keeps warnings only.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("haulage: %(message)s"))
    _LOG.handlers[:] = [handler]
    _LOG.setLevel(logging.WARNING if quiet else logging.INFO)
    _LOG.propagate = False
    # Beam's own INFO lines (runner choice, bundle plumbing) are noise for operators.
    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    # multi-process workers relay their start-up warnings through this logger
    logging.getLogger("apache_beam.runners.portability.local_job_service").setLevel(logging.ERROR)


@dataclass(frozen=True)
class PreparedOutput:
    """What the driver learnt from the output before the run: its units, and this run's id."""

    run_id: str
    committed: frozenset[str]
    dataset: Optional[ParquetDataset] = None
    committer: Optional[BigQueryCommitter] = None

    def finish(self) -> None:
        """Release what the driver held during the run (staging folders, the BigQuery committer's hold)."""
        if self.dataset is not None:
            self.dataset.release_staging(self.run_id)
        if self.committer is not None:
            self.committer.release()


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


def _cpu_seconds() -> float:
    """CPU time (user + system) of this process and of its finished children (the forked workers)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


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
    if files is not None and opts.local:
        import_local_runner()  # once, here, rather than in every forked worker
    started = time.monotonic()
    output = prepare_output(opts) if opts.in_process else PreparedOutput(new_run_id(), frozenset())
    if files is not None and opts.local:
        try:
            counters = run_in_workers(
                files, opts.workers or default_workers(), lambda share, name: _run_files(opts, share, output, name)
            )
        finally:
            output.finish()
        return RunSummary(counters, time.monotonic() - started, len(files), cpu_seconds=_cpu_seconds())
    try:
        result = build_pipeline(opts, files, run_id=output.run_id, committed=output.committed).run()
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
        """Log one progress line (messages, lines, rows, dead letters) if anything changed since the last one."""
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
    result = build_pipeline(opts, files, run_id=output.run_id, committed=output.committed).run()
    result.wait_until_finish()
    return counters_from_result(result)
