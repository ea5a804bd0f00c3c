"""``haulage stats PROJECT``: how many people really downloaded a package.

This module is the command line only: it checks the options (exit 2 with what
to fix), picks the backend (DuckDB over ``--output-dir`` or BigQuery with
``--bigquery-dataset``; same options, same answers), and prints the report
as a table, JSON or CSV, and draws it with ``--plot``. The numbers come from
:mod:`haulage.stats.report`; the SQL from :mod:`haulage.stats.query`.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from typing import Optional

from ..pipeline.options import DEFAULT_OUTPUT_DIR, iso_date, non_negative_int, positive_int


__all__ = ["add_parser", "OptionError", "main"]


def add_parser(commands) -> argparse.ArgumentParser:
    """Declare ``haulage stats PROJECT`` and its options (source, days, ``--by``, output format, ``--plot``)."""
    from ..stats.query import FIELDS

    fields = "\n".join(f"  {f.name:<24}{f.help}" for f in FIELDS.values())
    stats = commands.add_parser(
        "stats",
        help="download numbers of one project: total, without mirrors, human, CI, automation",
        description=textwrap.fill(
            "Download numbers of PROJECT from the tables 'haulage run' wrote: the total, without mirrors, "
            "human, CI, automation and mirror downloads, the bot share and daily averages; breakdowns with "
            "--by; a chart with --plot. Reads the Parquet dataset under --output-dir (default "
            f"{DEFAULT_OUTPUT_DIR}) with DuckDB, or BigQuery with --bigquery-dataset. Without a range, "
            "all days in the dataset.", 79),
        epilog="fields for --by (pypinfo's names work too: pyversion, impl, type, date):\n" + fields,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    stats.add_argument("project", metavar="PROJECT", help="project name (compared in PEP 503 normalized form)")
    when = stats.add_argument_group("days (UTC; default: every day in the dataset)")
    when.add_argument("--from", dest="start", type=iso_date, metavar="YYYY-MM-DD", help="first day")
    when.add_argument("--to", dest="end", type=iso_date, metavar="YYYY-MM-DD", help="last day (inclusive)")
    when.add_argument("--days", type=positive_int, metavar="N",
                      help="the last N days: ending at --to, else at the latest day in the dataset")
    source = stats.add_argument_group("where the tables are (one of)")
    source.add_argument("--output-dir", metavar="DIR", help=f"Parquet dataset directory (default {DEFAULT_OUTPUT_DIR})")
    source.add_argument("--bigquery-dataset", metavar="PROJECT:DATASET", help="BigQuery dataset with file_downloads")
    out = stats.add_argument_group("output")
    out.add_argument("--by", nargs="+", default=[], metavar="FIELD", help="break the numbers down by these fields")
    fmt = out.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="print one JSON object")
    fmt.add_argument("--csv", action="store_true", help="print the breakdown (or, without --by, the daily series) as CSV")
    out.add_argument("--limit", type=non_negative_int, metavar="N",
                     help="at most N breakdown groups (text default 30; 0: all)")
    out.add_argument("--plot", metavar="FILE", help="draw downloads per day by traffic class: FILE.png, .svg or .html")
    return stats


class OptionError(ValueError):
    """A bad combination of options; the message says what to change."""


def _check(args: argparse.Namespace) -> None:
    from ..stats.plot import PlotError, check_path
    from ..stats.query import UnknownField, resolve_fields

    if args.days and args.start:
        raise OptionError("--days N counts back from --to (or the latest day); give --from/--to or --days, not --from with --days")
    if args.start and args.end and args.start > args.end:
        raise OptionError(f"--from {args.start} is after --to {args.end}")
    if args.output_dir and args.bigquery_dataset:
        raise OptionError("one source: give --output-dir or --bigquery-dataset, not both")
    try:
        args.by = [f.name for f in resolve_fields(args.by)]
    except UnknownField as exc:
        raise OptionError(str(exc)) from None
    if args.plot:
        try:
            check_path(args.plot)
        except PlotError as exc:
            raise OptionError(str(exc)) from None


def _backend(args: argparse.Namespace):
    from ..pipeline.datasets import DatasetRef, DatasetSpecError
    from ..stats.backends import BigQueryBackend, DuckDBBackend

    if args.bigquery_dataset:
        try:
            return BigQueryBackend(DatasetRef.parse(args.bigquery_dataset))
        except DatasetSpecError as exc:
            raise OptionError(str(exc)) from None
    return DuckDBBackend(args.output_dir or DEFAULT_OUTPUT_DIR)


def main(args: argparse.Namespace, extra: Optional[list[str]] = None) -> int:
    """Check the options, query the backend and print the report; exit status 2 for bad options."""
    from ..stats.backends import SourceError
    from ..stats.render import limited, render_csv, render_json, render_text
    from ..stats.report import DaySpec, StatsError, build_report

    def fail(message: str, code: int) -> int:
        print(f"haulage stats: {message}", file=sys.stderr)
        return code

    try:
        _check(args)
        backend = _backend(args)
        report = build_report(backend, args.project, DaySpec(args.start, args.end, args.days), args.by)
    except OptionError as exc:
        return fail(str(exc), 2)
    except SourceError as exc:
        return fail(str(exc), exc.exit_code)
    except StatsError as exc:
        return fail(str(exc), exc.exit_code)

    if args.json:
        sys.stdout.write(render_json(limited(report, args.limit)))
    elif args.csv:
        sys.stdout.write(render_csv(limited(report, args.limit)))
    else:
        sys.stdout.write(render_text(report, args.limit))
    if args.plot:
        from ..stats.plot import write_plot

        try:
            write_plot(report, args.plot)
        except OSError as exc:
            return fail(f"--plot {args.plot}: {exc.strerror or exc}", 1)
        except ImportError as exc:  # matplotlib is in the "stats" extra, not in the worker image
            return fail(f"--plot needs matplotlib ({exc.name} is not installed): pip install 'haulage[stats]'", 2)
        print(f"wrote {args.plot}", file=sys.stderr)
    return 0
