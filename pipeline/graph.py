"""The one graph builder: the Beam pipeline of ``haulage run`` and ``haulage replay``.

Every stage is a named composite transform, in the style of Beam's complete
examples: a source (``ReadLogFiles`` for files and archives,
``PullPubSubWindows`` for streaming on this machine, ``ReadPubSub`` for the
Dataflow graph) → ``ParseLogLines`` → a sink (``WriteParquet``,
``WriteBigQuery``, or for a replay ``StageDays``: Parquet staging that the
replay job commits day by day). The jobs (:mod:`haulage.pipeline.jobs`) and
the Flex Template launcher (``deploy/flex_main.py``) build their graph here.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from .ledgers import LedgerRef
from .options import RunOptions
from .parse_transform import ParseLogLines
from .runners.direct_streaming import HaulageDirectRunner
from .sinks.bigquery import LOAD_JOBS, WriteBigQuery
from .sinks.bigquery_commit import default_staging_root
from .sinks.parquet import WriteParquet
from .sources.files import InputFile, ReadLogFiles
from .sources.notifications import NotificationPolicy
from .sources.pubsub import ReadPubSubChunks
from .sources.pubsub_windows import PullPubSubWindows

__all__ = [
    "ReplayStaging", "beam_options", "build_pipeline", "import_local_runner", "ledger_ref", "local_runner", "new_run_id",
    "pull_ledger_ref",
    "staging_root",
]


@dataclass(frozen=True)
class ReplayStaging:
    """Where a replay stages its rows before committing them day by day.

    ``staging_dir`` is a Parquet dataset of this replay alone; ``day_range``
    (first, last day, inclusive) keeps only rows of those days; ``label``
    prefixes the source of its dead letters (``replay <key> ``).
    """

    staging_dir: str
    day_range: Optional[tuple[str, str]]
    label: str


def beam_options(opts: RunOptions) -> PipelineOptions:
    """Beam's options from the arguments haulage does not know, marked streaming for a remote streaming run.

    Local streaming runs pull in bounded windows, so only a remote runner needs
    Beam's streaming mode.
    """
    options = PipelineOptions(opts.beam_args)
    if opts.streaming and not opts.local:
        options.view_as(StandardOptions).streaming = True
    return options


def import_local_runner() -> None:
    """Import the FnApiRunner's modules now (a third of a second of CPU) instead of when a pipeline first runs.

    Local batch workers are forked from the driver and share what it has
    imported; a module first imported in a worker is imported by every
    worker, each paying for it on its own core.
    """
    import importlib

    from .runners import LOCAL_RUNNER_MODULES

    for name in LOCAL_RUNNER_MODULES:
        importlib.import_module(name)


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
    *,
    run_id: Optional[str] = None,
    committed: frozenset[str] = frozenset(),
    replay: Optional[ReplayStaging] = None,
) -> beam.Pipeline:
    """The whole job graph of ``haulage run`` and ``haulage replay``.

    Source → ``ParseLogLines`` → sink, each a named composite transform.
    ``files`` must be given for batch runs (see ``expand_inputs``). ``run_id``
    names this run's staging (a new one if None); ``committed`` holds the units
    the output already has, which the file source skips (the sinks still skip
    committed units when they commit). With ``replay`` the rows are staged
    under ``replay.staging_dir`` (step ``StageDays``) for the replay job to
    commit day by day, and its dead letters carry ``replay.label``.
    """
    options = options or beam_options(opts)
    run_id = run_id or new_run_id()
    runner = local_runner(options) if opts.local else HaulageDirectRunner() if opts.direct_streaming else None
    pipeline = beam.Pipeline(runner=runner, options=options)
    policy = NotificationPolicy.from_locations(opts.notification_allow) if opts.notification_allow else None
    if opts.inputs:
        chunks = pipeline | "ReadLogFiles" >> ReadLogFiles(
            files or [], opts.chunk_lines, label_prefix=replay.label if replay else "", committed=committed,
            chunk_bytes=opts.chunk_bytes,
        )
    elif opts.local:
        chunks = pipeline | "PullPubSubWindows" >> PullPubSubWindows(
            opts.message_format, opts.subscription, opts.topic, opts.run_for, opts.window_seconds,
            ledger=pull_ledger_ref(opts), chunk_lines=opts.chunk_lines, chunk_bytes=opts.chunk_bytes, policy=policy,
        )
    else:
        chunks = pipeline | "ReadPubSub" >> ReadPubSubChunks(
            opts.message_format, opts.subscription, opts.topic, opts.window_seconds, opts.chunk_lines,
            opts.chunk_bytes, policy,
        )
    parsed = chunks | "ParseLogLines" >> ParseLogLines(opts.agent_cache_size)
    if replay is not None:
        parsed | "StageDays" >> WriteParquet(replay.staging_dir, day_range=replay.day_range, run_id=run_id)
    elif opts.bigquery_dataset is not None:
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
            run_id=run_id,
        )
    else:
        parsed | "WriteParquet" >> WriteParquet(opts.output_dir, flush_each_chunk=opts.streaming, run_id=run_id)
    return pipeline


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


def pull_ledger_ref(opts: RunOptions) -> Optional[LedgerRef]:
    """The ledger the local pull asks about each pull's messages and files: a Parquet output's only.

    Asking a BigQuery ledger is a query (about a second, and at least 10 MB
    billed): once per pull and once per notified file, that is over a million
    queries a day at PyPI's ≈ 1 M files a day (≥ 10 TB billed: ≈ $1,700 a
    month at $6.25 per TiB), and more waiting than the pull can afford. The load
    step drops the units the ledger already lists anyway, with one query per
    load batch (``bigquery_commit``), so with BigQuery a redelivered message
    or file is read again and skipped there instead.
    """
    return ledger_ref(opts) if opts.bigquery_dataset is None else None


def new_run_id() -> str:
    """A fresh id for one run (16 hex digits): names its staging and its ledger entries."""
    return uuid.uuid4().hex[:16]
