"""``haulage parse``: log files (or stdin) to NDJSON, one object per input line.

The parsers without Beam, for looking at what a file turns into, for shell
pipelines, and as the end-to-end benchmark of the parsing code.
"""

from __future__ import annotations

import sys
from typing import BinaryIO, Iterable

import orjson

from ..parsers import Origin
from ..parsers.agents import DEFAULT_AGENT_CACHE_SIZE
from ..parsers.columnar import ColumnarParser
from ..parsers.framing import FileFault, iter_line_runs
from ..parsers.line_block import gather_blocks
from ..parsers.lines import fault_dead_letter
from ..parsers.ndjson import block_ndjson
from ..parsers.timestamps import iso_from_epoch
from ..pipeline.malloc_tuning import keep_freed_memory

__all__ = ["STDIN_NAME", "add_parser", "main", "parse_stream", "run_parse"]


STDIN_NAME = "-"


def add_parser(commands):
    """Declare ``haulage parse FILE...`` and its options."""
    from .argtypes import positive_int as _positive_int

    parse = commands.add_parser(
        "parse",
        help="parse log files (plain or gzip) or stdin to NDJSON on stdout",
        description=(
            "Parse CDN log lines and write one JSON object per input line, in input order: "
            '{"table": "file_downloads"|"simple_requests"|"unprocessed", "row": {...}}. '
            "A damaged region of a file (corrupt or cut gzip member, bytes that are not gzip) is one "
            "unprocessed object too, and reading goes on after it. "
            "Exits 0 even when lines are bad; 1 when a file cannot be read completely."
        ),
    )
    parse.add_argument("files", nargs="*", metavar="FILE", help="log files; '-' or none reads stdin")
    parse.add_argument(
        "--agent-cache-size", type=_positive_int, default=DEFAULT_AGENT_CACHE_SIZE, metavar="N",
        help=f"distinct user agents kept parsed in the LRU cache (default {DEFAULT_AGENT_CACHE_SIZE})",
    )
    return parse


def main(args, extra) -> int:
    """Run ``haulage parse`` with the parsed arguments."""
    return run_parse(args.files, args.agent_cache_size)


def _write_records(out: BinaryIO, records: Iterable) -> None:
    dumps = orjson.dumps
    out.write(b"".join(dumps({"table": r.table, "row": r.row}) + b"\n" for r in records))


def parse_stream(stream: BinaryIO, name: str, parser: ColumnarParser, out: BinaryIO, received_at: str) -> list[FileFault]:
    """Write one NDJSON object per line of ``stream`` and per damaged region; return the damage.

    So ``lines read + faults = objects written``; an empty file writes nothing
    and is not damage. The reader's runs of lines (one buffer each) are
    gathered into blocks of thousands of lines, each parsed as one Arrow block and written straight from the columns
    (:mod:`haulage.parsers.ndjson`): the bytes are those the row parser's
    dicts would give through orjson.
    """
    origin = Origin.for_file(name)
    faults: list[FileFault] = []
    for item in gather_blocks(iter_line_runs(stream, name)):
        if isinstance(item, FileFault):
            if item.reason != "empty-file":
                _write_records(out, [fault_dead_letter(origin, item, received_at)])
                faults.append(item)
            continue
        out.write(block_ndjson(parser.parse_block(item, origin, received_at)))
    return faults


def run_parse(files: list[str], agent_cache_size: int) -> int:
    """Parse each file (``-``: stdin) to NDJSON on stdout; exit status 1 if a file could not be read or had a
    file-level fault (damaged gzip, empty file), each reported on stderr."""
    import time

    import gc

    # As the pipeline's workers do (elements.tune_gc, not imported: it brings Beam): the agent
    # cache keeps tens of thousands of parsed agents alive, and rescanning them is wasted work.
    gc.set_threshold(50_000, *gc.get_threshold()[1:])
    gc.freeze()
    keep_freed_memory()  # blocks and their Arrow buffers are freed and reallocated thousands of times
    parser = ColumnarParser(agent_cache_size=agent_cache_size)
    out = sys.stdout.buffer
    received_at = iso_from_epoch(int(time.time()))
    failed = 0
    for name in files or [STDIN_NAME]:
        try:
            if name == STDIN_NAME:
                faults = parse_stream(sys.stdin.buffer, "<stdin>", parser, out, received_at)
            else:
                with open(name, "rb") as stream:
                    faults = parse_stream(stream, name, parser, out, received_at)
        except OSError as exc:
            print(f"haulage parse: cannot read {name}: {exc.strerror or exc}", file=sys.stderr)
            failed += 1
            continue
        for fault in faults:
            print(f"haulage parse: {fault.detail} ({fault.reason}); dead letter at line {fault.position}", file=sys.stderr)
        failed += bool(faults)
    out.flush()
    return 1 if failed else 0
