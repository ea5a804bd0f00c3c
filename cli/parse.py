"""``haulage parse``: log files (or stdin) to NDJSON, one object per input line.

Declares the options, sets the process up for the job (the collector and
malloc) and calls the job,
:func:`haulage.parsers.ndjson_files.parse_files`, imported only then.
"""

from __future__ import annotations

from ..parsers.agents import DEFAULT_AGENT_CACHE_SIZE

__all__ = ["add_parser", "main"]

ENDS_WITHOUT_TEARDOWN = True
"""Run as the program, the process ends once the NDJSON is flushed (:func:`haulage.cli.main.end_without_teardown`):
the job leaves nothing to do at exit, and freeing its agent cache object by object is CPU for nothing."""


def add_parser(commands):
    """Declare ``haulage parse FILE...`` and its options."""
    from ..pipeline.options import positive_int

    parse = commands.add_parser(
        "parse",
        help="parse log files (plain or gzip) or stdin to NDJSON on stdout",
        description=(
            "Parse CDN log lines and write one JSON object per input line, in input order: "
            '{"table": "file_downloads"|"simple_requests"|"unprocessed", "row": {...}}. '
            "A damaged region of a file (corrupt or cut gzip member, bytes that are not gzip) is one "
            "unprocessed object too, and reading goes on after it. "
            "Exits 0 even when lines are bad; 1 when a file cannot be read completely or the output cannot be "
            "written (when the reader of the output goes away, as with | head, parsing stops quietly)."
        ),
    )
    parse.add_argument("files", nargs="*", metavar="FILE", help="log files; '-' or none reads stdin")
    parse.add_argument(
        "--agent-cache-size", type=positive_int, default=DEFAULT_AGENT_CACHE_SIZE, metavar="N",
        help=f"distinct user agents kept parsed in the LRU cache, each worker its own (default {DEFAULT_AGENT_CACHE_SIZE})",
    )
    parse.add_argument(
        "--workers", type=positive_int, default=None, metavar="N",
        help="processes parsing blocks of lines side by side, the output still in input order "
             "(default: one per core, at most 8, as one reading process keeps about that many busy; "
             "1 parses where the input is read)",
    )
    return parse


def main(args, extra) -> int:
    """Run ``haulage parse`` with the parsed arguments."""
    import gc

    from ..parsers.ndjson_files import parse_files
    from ..parsers.ndjson_sinks import default_workers
    from ..pipeline.malloc_tuning import keep_freed_memory

    # As the pipeline's workers do (elements.tune_gc, not imported: it brings Beam): the agent
    # cache keeps tens of thousands of parsed agents alive, and rescanning them is wasted work.
    gc.set_threshold(50_000, *gc.get_threshold()[1:])
    gc.freeze()
    keep_freed_memory()  # blocks and their Arrow buffers are freed and reallocated thousands of times
    workers = args.workers if args.workers is not None else default_workers()
    return parse_files(args.files, args.agent_cache_size, workers)
