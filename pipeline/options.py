"""Options of ``haulage run`` (and ``haulage replay``): parsing and validation.

haulage's own options are parsed here with argparse, so a mistake gets a
message that says what to fix; everything else on the command line
(``--runner``, ``--project``, ``--region``, ``--temp_location``…) is passed
through to Beam untouched. The argparse value types (``positive_int``…) live
here too, for every subcommand: :mod:`haulage.cli` imports them from this
module, so the dependency runs one way (the command line on the pipeline).
"""

from __future__ import annotations

import argparse
import datetime
import re
from dataclasses import dataclass, field
from typing import Optional, Sequence

from ..parsers.agents import DEFAULT_AGENT_CACHE_SIZE
from ..parsers.line_block import BLOCK_BYTES, BLOCK_LINES
from .datasets import DatasetRef, DatasetSpecError

__all__ = [
    "LINES", "GCS_NOTIFICATION", "MESSAGE_FORMATS", "DEFAULT_OUTPUT_DIR", "DEFAULT_WINDOW_SECONDS",
    "DEFAULT_CHUNK_LINES", "DEFAULT_CHUNK_MIB", "FILE_CHUNK_LINES", "FILE_CHUNK_MIB", "DEFAULT_LOAD_INTERVAL", "BIGQUERY_METHODS",
    "FN_API_RUNNERS", "DIRECT_STREAMING_RUNNER", "OptionsError", "RunOptions", "add_source_arguments",
    "add_sink_arguments", "add_tuning_arguments", "options_from_namespace", "validated_options",
    "positive_int", "non_negative_int", "positive_float", "iso_date",
]


LINES = "lines"
GCS_NOTIFICATION = "gcs-notification"
MESSAGE_FORMATS = (LINES, GCS_NOTIFICATION)

DEFAULT_OUTPUT_DIR = "./haulage-out"
DEFAULT_WINDOW_SECONDS = 60.0
DEFAULT_CHUNK_LINES = 20000
"""Lines per unit of work in streaming runs (Pub/Sub message batches and windows)."""
DEFAULT_CHUNK_MIB = 4.0
"""MiB of lines per unit of work in streaming runs: the bound the streaming memory tests measure."""
FILE_CHUNK_LINES = BLOCK_LINES
"""Lines per unit of work when reading files (batch runs and replays): a parser block's."""
FILE_CHUNK_MIB = BLOCK_BYTES / (1 << 20)
"""MiB of lines per unit of work when reading files: a parser block's (see
``parsers.line_block.BLOCK_BYTES`` for why that size). Measured on 1M lines in 8 gzip files
with one worker, 16 MiB took ≈ 13 % less CPU than 4 and 32 no less than 16, for ≈ 80 MB more
peak memory per worker."""
DEFAULT_LOAD_INTERVAL = 120.0
BIGQUERY_METHODS = ("load-jobs", "streaming-inserts")
# Beam runners that run the pipeline in this process. The first three mean
# haulage's own local set-up (the FnApiRunner; streaming pulls in windows),
# BundleBasedDirectRunner runs the Dataflow streaming graph itself.
FN_API_RUNNERS = ("DirectRunner", "FnApiRunner", "direct")
DIRECT_STREAMING_RUNNER = "BundleBasedDirectRunner"

_SUBSCRIPTION = re.compile(r"^projects/[^/]+/subscriptions/[^/]+$")
_TOPIC = re.compile(r"^projects/[^/]+/topics/[^/]+$")


# argparse value types, for these options and every other subcommand's (haulage.cli imports them
# from here: the command line may depend on the pipeline's options, never the reverse).


def _int_at_least(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer ≥ 1, with a message saying what was given."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """argparse type: an integer ≥ 0, with a message saying what was given."""
    return _int_at_least(text, 0)


def iso_date(text: str) -> datetime.date:
    """argparse type: a day as ``YYYY-MM-DD``."""
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}") from None


def positive_float(text: str) -> float:
    """argparse type: a number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


class OptionsError(ValueError):
    """Raised with a message that tells the operator what to change."""


@dataclass
class RunOptions:
    """Everything a run (or replay) was asked to do, validated: source, sink, tuning and Beam's own arguments."""

    inputs: list[str] = field(default_factory=list)
    subscription: Optional[str] = None
    topic: Optional[str] = None
    message_format: str = LINES
    output_dir: str = DEFAULT_OUTPUT_DIR
    bigquery_dataset: Optional[DatasetRef] = None
    staging_dir: Optional[str] = None
    bigquery_method: str = BIGQUERY_METHODS[0]
    load_interval: float = DEFAULT_LOAD_INTERVAL
    run_for: Optional[float] = None
    window_seconds: float = DEFAULT_WINDOW_SECONDS
    agent_cache_size: int = DEFAULT_AGENT_CACHE_SIZE
    chunk_lines: int = DEFAULT_CHUNK_LINES
    chunk_bytes: int = int(DEFAULT_CHUNK_MIB * (1 << 20))
    notification_allow: list[str] = field(default_factory=list)
    workers: Optional[int] = None  # local batch runs: worker processes; None = one per core
    quiet: bool = False
    beam_args: list[str] = field(default_factory=list)

    @property
    def streaming(self) -> bool:
        """Whether the run reads Pub/Sub (a subscription or a topic) rather than files."""
        return bool(self.subscription or self.topic)

    @property
    def runner(self) -> str:
        """The Beam runner named in the pass-through args; DirectRunner by default."""
        for i, arg in enumerate(self.beam_args):
            if arg.startswith("--runner="):
                return arg.split("=", 1)[1]
            if arg == "--runner" and i + 1 < len(self.beam_args):
                return self.beam_args[i + 1]
        return "DirectRunner"

    @property
    def local(self) -> bool:
        """haulage's own local set-up: Beam's FnApiRunner (streaming: windowed pulls)."""
        return self.runner in FN_API_RUNNERS

    @property
    def direct_streaming(self) -> bool:
        """The Dataflow streaming graph, run here on Beam's BundleBasedDirectRunner."""
        return self.streaming and self.runner == DIRECT_STREAMING_RUNNER

    @property
    def in_process(self) -> bool:
        """The run happens in this process (so it can be waited for, stopped and summed up)."""
        return self.local or self.runner == DIRECT_STREAMING_RUNNER


def add_source_arguments(parser: argparse.ArgumentParser, *, streaming: bool = True) -> None:
    """The input options: ``--input`` globs (batch) or a Pub/Sub subscription or topic (streaming)."""
    group = parser.add_argument_group("input (one source per run)")
    group.add_argument("--input", nargs="+", default=[], metavar="GLOB", dest="inputs",
                       help="log files: local paths or gs:// globs, plain or gzip (batch)")
    if streaming:
        group.add_argument("--subscription", metavar="projects/P/subscriptions/S",
                           help="Pub/Sub subscription to read (streaming)")
        group.add_argument("--topic", metavar="projects/P/topics/T",
                           help="Pub/Sub topic to read through a temporary subscription (streaming)")
        group.add_argument("--message-format", choices=MESSAGE_FORMATS, default=LINES,
                           help="'lines': messages carry log lines (default); 'gcs-notification': messages are "
                                "Cloud Storage object-finalize notifications of log files")
        group.add_argument("--notification-allow", nargs="+", default=[], metavar="gs://BUCKET/PREFIX",
                           help="gcs-notification: read only objects in these buckets under these prefixes (what "
                                "'haulage setup --notification-bucket B --notification-prefix P' set up: gs://B/P); "
                                "any other notification is a dead letter and its object is never read")


def add_sink_arguments(parser: argparse.ArgumentParser, *, streaming: bool = True) -> None:
    """The output options: a Parquet ``--output-dir`` or a ``--bigquery-dataset`` with its staging."""
    group = parser.add_argument_group("output (one sink per run)")
    group.add_argument("--output-dir", default=None, metavar="DIR",
                       help=f"Parquet dataset directory, local or gs:// (default {DEFAULT_OUTPUT_DIR})")
    group.add_argument("--bigquery-dataset", metavar="PROJECT:DATASET",
                       help="write to the tables of this BigQuery dataset instead (create them with 'haulage setup')")
    group.add_argument("--staging-dir", metavar="DIR",
                       help="BigQuery: where rows are staged as Parquet for load jobs (gs://… on Dataflow; locally "
                            "default ~/.cache/haulage/bigquery-staging). Keep it: a crashed run's staged rows are "
                            "loaded from it by the next run")
    if streaming:
        group.add_argument("--bigquery-method", choices=BIGQUERY_METHODS, default=BIGQUERY_METHODS[0],
                           help="'load-jobs' (default: free, exactly once, with a ledger) or 'streaming-inserts' "
                                "(legacy insertAll: billed per row, duplicates possible)")
        group.add_argument("--load-interval", type=positive_float, default=DEFAULT_LOAD_INTERVAL, metavar="SECONDS",
                           help=f"BigQuery on Dataflow, streaming: load the staged rows this often "
                                f"(default {DEFAULT_LOAD_INTERVAL:g}; one load job per table each time)")


def add_tuning_arguments(parser: argparse.ArgumentParser, *, streaming: bool = True) -> None:
    """The tuning options: chunk sizes, agent cache, workers and the streaming windows."""
    group = parser.add_argument_group("tuning")
    if streaming:
        group.add_argument("--run-for", type=positive_float, metavar="SECONDS",
                           help="streaming: stop cleanly after this many seconds, writing everything read")
        group.add_argument("--window-seconds", type=positive_float, default=DEFAULT_WINDOW_SECONDS, metavar="SECONDS",
                           help="streaming: the longest a message waits to be written; a batch of messages is "
                                "written after this many seconds, --chunk-lines lines or --chunk-bytes bytes, "
                                f"whichever comes first (default {DEFAULT_WINDOW_SECONDS:g})")
    group.add_argument("--agent-cache-size", type=positive_int, default=DEFAULT_AGENT_CACHE_SIZE, metavar="N",
                       help=f"distinct user agents kept parsed per worker (default {DEFAULT_AGENT_CACHE_SIZE})")
    group.add_argument("--chunk-lines", type=positive_int, default=None, metavar="N",
                       help=f"lines per unit of work (default {FILE_CHUNK_LINES} reading files, "
                            f"{DEFAULT_CHUNK_LINES} streaming)")
    group.add_argument("--chunk-mib", type=positive_float, default=None, metavar="MIB",
                       help="at most about this many MiB of lines per unit of work, whatever --chunk-lines says: "
                            "file chunks, and in streaming message batches and windows "
                            f"(default {FILE_CHUNK_MIB:g} reading files, {DEFAULT_CHUNK_MIB:g} streaming)")
    group.add_argument("--workers", type=positive_int, default=None, metavar="N",
                       help="local batch runs: worker processes, each with a share of the files (default: one per core)")
    group.add_argument("--quiet", action="store_true", help="no progress lines, only the summary")


def options_from_namespace(ns: argparse.Namespace, beam_args: Sequence[str]) -> RunOptions:
    """Validate parsed arguments; raise OptionsError saying what to fix."""
    subscription = getattr(ns, "subscription", None)
    topic = getattr(ns, "topic", None)
    sources = [name for name, value in (("--input", ns.inputs), ("--subscription", subscription), ("--topic", topic)) if value]
    if not sources:
        raise OptionsError("no input: give --input GLOB [GLOB ...], or --subscription / --topic for streaming")
    if len(sources) > 1:
        raise OptionsError(f"one source per run: got {' and '.join(sources)}")
    if subscription and not _SUBSCRIPTION.match(subscription):
        raise OptionsError(f"--subscription {subscription!r}: expected projects/PROJECT/subscriptions/NAME")
    if topic and not _TOPIC.match(topic):
        raise OptionsError(f"--topic {topic!r}: expected projects/PROJECT/topics/NAME")
    if ns.output_dir and ns.bigquery_dataset:
        raise OptionsError("one sink per run: give --output-dir or --bigquery-dataset, not both")
    if getattr(ns, "staging_dir", None) and not ns.bigquery_dataset:
        raise OptionsError("--staging-dir is where rows wait for BigQuery load jobs; give it with --bigquery-dataset")
    dataset = None
    if ns.bigquery_dataset:
        try:
            dataset = DatasetRef.parse(ns.bigquery_dataset)
        except DatasetSpecError as exc:
            raise OptionsError(str(exc)) from None
    run_for = getattr(ns, "run_for", None)
    if run_for and not (subscription or topic):
        raise OptionsError("--run-for applies to streaming runs (--subscription/--topic); batch runs end when the input ends")
    message_format = getattr(ns, "message_format", LINES)
    notification_allow = list(getattr(ns, "notification_allow", None) or [])
    if message_format == GCS_NOTIFICATION and not notification_allow:
        raise OptionsError(
            "--message-format gcs-notification needs --notification-allow gs://BUCKET/PREFIX: where the log files are "
            "written (the --notification-bucket and --notification-prefix given to 'haulage setup'); notifications "
            "of any other object are dead letters and never read"
        )
    if notification_allow and message_format != GCS_NOTIFICATION:
        raise OptionsError("--notification-allow applies to --message-format gcs-notification")
    from .sources.notifications import LocationError, parse_location

    for text in notification_allow:
        try:
            parse_location(text)
        except LocationError as exc:
            raise OptionsError(f"--notification-allow {exc}") from None
    unknown_haulage_style = [a for a in beam_args if a.startswith("--") and "-" in a.split("=", 1)[0][2:]]
    if unknown_haulage_style:
        raise OptionsError(
            f"unknown option {unknown_haulage_style[0].split('=', 1)[0]} (haulage options use dashes, Beam options use "
            "underscores, e.g. --temp_location; see 'haulage run --help')"
        )
    streaming = bool(subscription or topic)  # the chunk defaults differ: see FILE_CHUNK_MIB
    options = RunOptions(
        inputs=list(ns.inputs),
        subscription=subscription,
        topic=topic,
        message_format=message_format,
        notification_allow=notification_allow,
        output_dir=ns.output_dir or DEFAULT_OUTPUT_DIR,
        bigquery_dataset=dataset,
        staging_dir=getattr(ns, "staging_dir", None),
        bigquery_method=getattr(ns, "bigquery_method", BIGQUERY_METHODS[0]),
        load_interval=getattr(ns, "load_interval", DEFAULT_LOAD_INTERVAL),
        run_for=run_for,
        window_seconds=getattr(ns, "window_seconds", DEFAULT_WINDOW_SECONDS),
        agent_cache_size=ns.agent_cache_size,
        chunk_lines=ns.chunk_lines or (DEFAULT_CHUNK_LINES if streaming else FILE_CHUNK_LINES),
        chunk_bytes=max(1, int((ns.chunk_mib or (DEFAULT_CHUNK_MIB if streaming else FILE_CHUNK_MIB)) * (1 << 20))),
        workers=ns.workers,
        quiet=ns.quiet,
        beam_args=list(beam_args),
    )
    if run_for and not options.in_process:
        raise OptionsError(
            f"--run-for stops a run on this machine; a {options.runner} job runs until it is drained "
            f"(or use --runner {DIRECT_STREAMING_RUNNER} to run the same streaming graph here)"
        )
    return options


def validated_options(command: str, ns: argparse.Namespace, beam_args: Sequence[str]) -> Optional[RunOptions]:
    """The options, or None after telling the operator on stderr what to fix."""
    import sys

    try:
        return options_from_namespace(ns, beam_args)
    except OptionsError as exc:
        print(f"haulage {command}: {exc}", file=sys.stderr)
        return None
