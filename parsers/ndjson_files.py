"""The job of ``haulage parse``: log files (or stdin) to NDJSON, one object per input line.

The parsers without Beam, for looking at what a file turns into, for shell
pipelines, and as the end-to-end benchmark of the parsing code. Each file is
read by :mod:`~haulage.parsers.framing` (plain or gzip, damage reported as
faults), its lines gathered into blocks, each block parsed by the
:class:`~haulage.parsers.columnar.ColumnarParser` and written as NDJSON by
:mod:`~haulage.parsers.ndjson`.

The rule: one object per line read and one per damaged region (a dead letter
in ``unprocessed``), in input order, so ``lines read + faults = objects
written``. The command line (options, process set-up) is
:mod:`haulage.cli.parse`.
"""

from __future__ import annotations

import os
import sys
import time
from typing import BinaryIO, Iterable

import orjson

from .columnar import ColumnarParser
from .framing import FileFault, iter_line_runs
from .line_block import gather_blocks
from .lines import Origin, fault_dead_letter
from .ndjson_sinks import NdjsonSink, OutputFailed, SequentialSink, WorkerSink
from .timestamps import iso_from_epoch

__all__ = ["STDIN_NAME", "OutputFailed", "parse_stream", "parse_files"]


STDIN_NAME = "-"
"""The file name that means standard input."""


def _records_ndjson(records: Iterable) -> bytes:
    dumps = orjson.dumps
    return b"".join(dumps({"table": r.table, "row": r.row}) + b"\n" for r in records)


def parse_stream(stream: BinaryIO, name: str, sink: NdjsonSink, received_at: str) -> list[FileFault]:
    """Put one NDJSON object per line of ``stream`` and per damaged region into ``sink``; return the damage.

    So ``lines read + faults = objects written``; an empty file writes nothing
    and is not damage. The reader's runs of lines (one buffer each) are
    gathered into blocks of thousands of lines, each parsed as one Arrow block and written straight from the columns
    (:mod:`haulage.parsers.ndjson`): the bytes are those the row parser's
    dicts would give through orjson. Where the blocks are parsed (here, or
    by workers) is the sink's business (:mod:`haulage.parsers.ndjson_sinks`).
    """
    origin = Origin.for_file(name)
    faults: list[FileFault] = []
    for item in gather_blocks(iter_line_runs(stream, name), max_bytes=sink.block_bytes):
        if isinstance(item, FileFault):
            if item.reason != "empty-file":
                sink.ndjson(_records_ndjson([fault_dead_letter(origin, item, received_at)]))
                faults.append(item)
            continue
        sink.block(item, origin, received_at)
    return faults


def parse_files(files: list[str], agent_cache_size: int, workers: int = 1) -> int:
    """Parse each file (``-``: stdin) to NDJSON on stdout; exit status 1 if a file could not be read or had a
    file-level fault (a damaged or cut gzip member; an empty file is not one), each reported on stderr.

    With ``workers`` > 1 the blocks are parsed by that many forked processes and written in input
    order (:class:`~haulage.parsers.ndjson_sinks.WorkerSink`); the output is the same byte for byte.
    When standard output goes away (``haulage parse … | head``) parsing stops quietly with status 1,
    as Python's own tools do; any other failure to write is reported as such, never as the input's.
    """
    # the NDJSON writer takes what derives from the agent from the parser's results, not its columns
    parser = ColumnarParser(agent_cache_size=agent_cache_size, agent_columns=False)
    stdout = sys.stdout.buffer
    sink: NdjsonSink = (
        WorkerSink(parser, stdout, stdout.fileno(), workers) if workers > 1 else SequentialSink(parser, stdout)
    )
    received_at = iso_from_epoch(int(time.time()))
    failed = 0
    try:
        try:
            for name in files or [STDIN_NAME]:
                try:
                    if name == STDIN_NAME:
                        faults = parse_stream(sys.stdin.buffer, "<stdin>", sink, received_at)
                    else:
                        with open(name, "rb") as stream:
                            faults = parse_stream(stream, name, sink, received_at)
                except OSError as exc:
                    print(f"haulage parse: cannot read {name}: {exc.strerror or exc}", file=sys.stderr)
                    failed += 1
                    continue
                for fault in faults:
                    print(f"haulage parse: {fault.detail} ({fault.reason}); dead letter at line {fault.position}",
                          file=sys.stderr)
                failed += bool(faults)
            sink.finish()
        except BaseException:
            sink.abandon()
            raise
    except OutputFailed as failure:
        cause = failure.__cause__
        if not isinstance(cause, BrokenPipeError):
            print(f"haulage parse: cannot write the output: {getattr(cause, 'strerror', None) or cause}", file=sys.stderr)
        # what is still buffered must not be written at exit either: stdout now goes nowhere
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return 1 if failed else 0
