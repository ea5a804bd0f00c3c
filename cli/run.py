"""``haulage run`` arguments and entry point (the job itself is :mod:`haulage.pipeline.jobs.run`)."""

from __future__ import annotations

import argparse
import sys

from ..pipeline.runners import LOCAL_RUNNER_MODULES
from .imports import import_quietly

__all__ = ["PASSES_EXTRA_ARGS", "add_parser", "main"]


# Options Beam knows (--runner, --project, --temp_location, ...) pass through.
PASSES_EXTRA_ARGS = True


def add_parser(commands) -> argparse.ArgumentParser:
    """Declare ``haulage run`` and its options (source, sink, tuning; Beam's own pass through)."""
    from ..pipeline.options import add_sink_arguments, add_source_arguments, add_tuning_arguments

    run = commands.add_parser(
        "run",
        help="run the pipeline: files or Pub/Sub in, Parquet or BigQuery out",
        description=(
            "Run the haulage pipeline. Batch: --input GLOB... ; streaming: --subscription or --topic. "
            "Writes Parquet under --output-dir (default ./haulage-out) or BigQuery tables with "
            "--bigquery-dataset. Other options (--runner, --project, --region, --temp_location, ...) go to Beam."
        ),
    )
    add_source_arguments(run)
    add_sink_arguments(run)
    add_tuning_arguments(run)
    return run


def main(args: argparse.Namespace, beam_args: list[str]) -> int:
    """Validate the options and run the job; exit status 2 for bad options, 1 if the counts do not balance."""
    from ..pipeline.options import validated_options

    options = validated_options("run", args, beam_args)
    if options is None:
        return 2
    import_quietly("haulage.pipeline.jobs.run", *(LOCAL_RUNNER_MODULES if options.in_process else ()))
    from ..pipeline.jobs.run import run
    from ..pipeline.sources.files import InputError

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
