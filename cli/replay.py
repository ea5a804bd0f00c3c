"""``haulage replay``: rebuild whole days (or merge files) from historical logs.

    haulage replay --input GLOB [GLOB ...] [--from DATE --to DATE] [--merge]
                   [--output-dir DIR | --bigquery-dataset P:D]

Idempotent and resumable: see :mod:`haulage.pipeline.jobs.replay_parquet`.
"""

from __future__ import annotations

import argparse
import sys

from ..pipeline.options import iso_date
from ..pipeline.runners import LOCAL_RUNNER_MODULES
from .imports import import_quietly

__all__ = ["PASSES_EXTRA_ARGS", "add_parser", "main"]


PASSES_EXTRA_ARGS = True


def add_parser(commands) -> argparse.ArgumentParser:
    """Declare ``haulage replay`` and its options (those of ``haulage run`` for files, plus the days)."""
    from ..pipeline.options import add_sink_arguments, add_source_arguments, add_tuning_arguments

    replay = commands.add_parser(
        "replay",
        help="rebuild the days covered by historical log files (idempotent, resumable)",
        description=(
            "Re-derive whole days from log files: every table-day the input covers (within --from/--to) is "
            "rebuilt from the input alone and replaces what was there, atomically per day. With --merge, only "
            "the rows that came from the given files are replaced. Running the same replay again changes "
            "nothing; a killed replay run again ends exact."
        ),
    )
    add_source_arguments(replay, streaming=False)
    add_sink_arguments(replay, streaming=False)
    group = replay.add_argument_group("replay")
    group.add_argument("--from", dest="date_from", type=iso_date, metavar="DATE", help="first UTC day to rebuild (inclusive)")
    group.add_argument("--to", dest="date_to", type=iso_date, metavar="DATE", help="last UTC day to rebuild (inclusive)")
    group.add_argument("--merge", action="store_true",
                       help="replace only rows that come from the given files (matched by event id), keep the rest of each day")
    add_tuning_arguments(replay, streaming=False)
    return replay


def main(args: argparse.Namespace, beam_args: list[str]) -> int:
    """Validate the options, run the replay job, print its report; exit status 2 for bad options or a
    replay that cannot run, 1 if the counts do not balance."""
    from ..pipeline.options import validated_options

    options = validated_options("replay", args, beam_args)
    if options is None:
        return 2
    if args.date_from and args.date_to and args.date_from > args.date_to:
        print(f"haulage replay: --from {args.date_from} is after --to {args.date_to}", file=sys.stderr)
        return 2
    day_range = None
    if args.date_from or args.date_to:
        day_range = (str(args.date_from or "0001-01-01"), str(args.date_to or "9999-12-31"))
    import_quietly("haulage.pipeline.jobs.replay", *(LOCAL_RUNNER_MODULES if options.in_process else ()))
    from ..pipeline.jobs.replay import ReplayError, run_replay
    from ..pipeline.sources.files import InputError

    try:
        report = run_replay(options, day_range, args.merge, options.staging_dir)
    except (InputError, ReplayError, ValueError) as exc:
        print(f"haulage replay: {exc}", file=sys.stderr)
        return 2
    print(report.render())
    return 0 if report.summary.balanced else 1
