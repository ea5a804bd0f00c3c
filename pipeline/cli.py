"""The ``haulage`` command: one entry point, a subcommand per job.

Subcommands import their heavy dependencies (Beam, cloud clients) only when
they run, so ``haulage parse`` and ``haulage --help`` start instantly.
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

DEFAULT_AGENT_CACHE_SIZE = 16384


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="haulage",
        description="Package-index CDN logs to honest download statistics.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    parse = commands.add_parser(
        "parse",
        help="parse log files (plain or gzip) or stdin to NDJSON on stdout",
        description=(
            "Parse CDN log lines and write one JSON object per input line, in input order: "
            '{"table": "file_downloads"|"simple_requests"|"unprocessed", "row": {...}}. '
            "Exits 0 even when lines are bad; 1 when a file cannot be read completely."
        ),
    )
    parse.add_argument("files", nargs="*", metavar="FILE", help="log files; '-' or none reads stdin")
    parse.add_argument(
        "--agent-cache-size", type=_positive_int, default=DEFAULT_AGENT_CACHE_SIZE, metavar="N",
        help=f"distinct user agents kept parsed in the LRU cache (default {DEFAULT_AGENT_CACHE_SIZE})",
    )
    run = commands.add_parser(
        "run",
        help="run the pipeline: files or Pub/Sub in, Parquet or BigQuery out",
        description=(
            "Run the haulage pipeline. Batch: --input GLOB... ; streaming: --subscription or --topic. "
            "Writes Parquet under --output-dir (default ./haulage-out) or BigQuery tables with "
            "--bigquery-dataset. Other options (--runner, --project, --region, --temp_location, ...) go to Beam."
        ),
    )
    from .options import add_sink_arguments, add_source_arguments, add_tuning_arguments

    add_source_arguments(run)
    add_sink_arguments(run)
    add_tuning_arguments(run)
    return parser


def _run(args: argparse.Namespace, beam_args: list[str]) -> int:
    from .file_source import InputError
    from .options import OptionsError, options_from_namespace

    try:
        options = options_from_namespace(args, beam_args)
    except OptionsError as exc:
        print(f"haulage run: {exc}", file=sys.stderr)
        return 2
    from .run_command import run

    try:
        summary = run(options)
    except InputError as exc:
        print(f"haulage run: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("haulage run: interrupted; unacknowledged messages will be redelivered", file=sys.stderr)
        return 130
    if summary is None:
        return 0
    print(summary.render())
    return 0 if summary.balanced else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "run":
        return _run(args, extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "parse":
        from .parse_command import run_parse

        return run_parse(args.files, args.agent_cache_size)
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
