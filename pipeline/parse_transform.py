"""``ParseLogLines``: chunks of raw lines to Arrow tables split by table and day."""

from __future__ import annotations

from typing import Iterator, Optional, Sequence, Union

import apache_beam as beam
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.transforms.window import TimestampedValue

from ..parsers import UNPROCESSED
from ..parsers.batch_schema import batch_schema, rows_batch
from ..parsers.columnar import ColumnarParser, split_by_day
from ..parsers.line_block import BLOCK_BYTES, BLOCK_LINES, LineBlock
from ..parsers.line_sources import BlockSources, SourcePart
from ..parsers.lines import fault_dead_letter
from .elements import Chunk, LineBatch, ParsedChunk, TableDay, tune_gc
from .metrics import Counters, StageCpu


__all__ = [
    "reason_of", "blocks_of", "small_blocks_gathered", "ParseChunkFn", "ParseLogLines", "SMALL_BLOCK_LINES",
    "GATHERED_BELOW_LINES",
]


def reason_of(dead_letter_row: dict) -> str:
    """The reason of a dead-letter row: its ``error`` up to the first colon (``bad-timestamp``)."""
    return dead_letter_row["error"].split(":", 1)[0]


def blocks_of(chunk: Chunk) -> Iterator[tuple[LineBatch, Union[LineBlock, list[bytes]]]]:
    """Consecutive batches of one source joined into blocks (the columnar parser wants thousands of lines).

    Yields ``(first batch of the block, its lines)``; a batch carrying a fault
    ends its block, so faults stay after the lines they follow. Batches read
    from files hold blocks, which are joined into one ``LineBlock`` without
    looking at their lines; lists of lines (messages) stay a list, joined,
    since a small block is gathered with others (:data:`GATHERED_BELOW_LINES`)
    and a buffer made of it alone would be work for nothing.
    """
    head: LineBatch | None = None
    parts: list[Union[LineBlock, list[bytes]]] = []
    count = 0

    def joined() -> Union[LineBlock, list[bytes]]:
        if len(parts) == 1 and type(parts[0]) is list:  # one message's lines, the usual case for messages
            return parts[0]
        if not any(isinstance(part, LineBlock) for part in parts):
            return parts[0] if len(parts) == 1 else [line for part in parts for line in part]
        blocks = [part if isinstance(part, LineBlock) else LineBlock.from_lines(part) for part in parts]
        return LineBlock.concat(blocks, head.first_position)

    for batch in chunk:
        if head is not None and (
            batch.origin != head.origin
            or batch.received_at != head.received_at
            or batch.first_position != head.first_position + count
        ):
            yield head, joined()
            head, parts, count = None, [], 0
        if head is None:
            head = batch
        lines = batch.lines
        if len(lines):
            parts.append(lines)
            count += len(lines)
        if batch.fault is not None:
            yield head, joined()
            head, parts, count = None, [], 0
    if head is not None:
        yield head, joined()


SMALL_BLOCK_LINES = 256
"""Fewest lines worth a columnar block: fewer (even gathered, below) go line by line through the
row parser, the columnar parser's reference, which gives the same rows. The columnar parser's
fixed cost per block (a few dozen Arrow kernels) made a one-line block cost about 0.8 ms."""

GATHERED_BELOW_LINES = 8192
"""Blocks of fewer lines are gathered with the chunk's other such blocks into blocks of many
sources (:func:`small_blocks_gathered`, parsed by :meth:`ColumnarParser.parse_sources`, each
line keeping its own source and line number). A Pub/Sub message is one source, hence one block
of its own: with line delivery every message is one line, and even 1,000-line messages parsed
one block each paid the fixed cost per block on every thousand lines (336k lines per
CPU-second, against 700k+ gathered; ``benchmarks/messages_bench.py``)."""


def small_blocks_gathered(
    small: list[tuple[LineBatch, Sequence[bytes]]], max_lines: int = BLOCK_LINES, max_bytes: int = BLOCK_BYTES,
) -> Iterator[tuple[list[bytes], BlockSources]]:
    """The lines of small blocks (each ``(first batch, lines)`` of one source) as blocks of many sources.

    In order, each gathered block holding at most ``max_lines`` lines or
    about ``max_bytes`` bytes (the columnar parser's block bounds), with
    the source and line number of each of its lines.
    """
    lines: list[bytes] = []
    parts: list[SourcePart] = []
    size = 0
    for head, block_lines in small:
        if parts and (len(lines) + len(block_lines) > max_lines or size >= max_bytes):
            yield lines, BlockSources(parts)
            lines, parts, size = [], [], 0
        lines.extend(block_lines)
        size += sum(map(len, block_lines))
        parts.append((head.origin, head.first_position, head.received_at, len(block_lines)))
    if parts:
        yield lines, BlockSources(parts)


class ParseChunkFn(beam.DoFn):
    """Parses every line of a chunk with one :class:`ColumnarParser` (and its agent cache) per worker.

    Emits one :class:`ParsedChunk` stamped with the earliest log timestamp it
    holds, so event time follows the logs (rows are partitioned by their own
    timestamps regardless).
    """

    def __init__(self, agent_cache_size: int) -> None:
        self._agent_cache_size = agent_cache_size

    def setup(self) -> None:
        tune_gc()
        self._parser = ColumnarParser(agent_cache_size=self._agent_cache_size)
        self._counters = Counters()
        self._cpu = StageCpu(self._counters, "parse")

    def process(self, chunk: Chunk) -> Iterator[object]:
        with self._cpu.timing():  # what the parsed chunk costs downstream is the sink's
            out, earliest = self._parse(chunk)
        yield TimestampedValue(out, earliest) if earliest is not None else out

    def _parse(self, chunk: Chunk) -> tuple[ParsedChunk, Optional[int]]:
        """The chunk's rows by table and day, and the earliest log timestamp among them (epoch seconds)."""
        parser = self._parser
        counters = self._counters
        hits, misses = parser.cache_hits, parser.cache_misses
        out = ParsedChunk()
        parts: dict[TableDay, list[pa.RecordBatch]] = {}
        fault_rows: list[dict] = []
        earliest = None
        small: list[tuple[LineBatch, Sequence[bytes]]] = []  # blocks to parse with other small ones
        batches: list[tuple[str, pa.RecordBatch]] = []
        for head, lines in blocks_of(chunk):
            out.lines += len(lines)
            if len(lines) < GATHERED_BELOW_LINES:
                small.append((head, lines))
                continue
            block = lines if isinstance(lines, LineBlock) else LineBlock.from_lines(lines, head.first_position)
            batches.extend(parser.parse_block(block, head.origin, head.received_at).batches.items())
        small_rows: dict[str, list[dict]] = {}  # rows of what stays small, by table, made into one batch each
        for lines, sources in small_blocks_gathered(small):
            if len(lines) >= SMALL_BLOCK_LINES:
                batches.extend(parser.parse_sources(LineBlock.from_lines(lines), sources).batches.items())
                continue
            parse = parser.rows.parse
            for i, line in enumerate(lines):
                record = parse(line, *sources.line(i))
                small_rows.setdefault(record.table, []).append(record.row)
        batches.extend((table, rows_batch(table, rows)) for table, rows in small_rows.items())
        for table, batch in batches:
            if table == UNPROCESSED:
                for reason, count in _reasons(batch).items():
                    counters.inc("dead_letters." + reason, count)
            else:
                first = pc.min(batch.column("timestamp")).value // 1_000_000
                earliest = first if earliest is None else min(earliest, first)
            for day, part in split_by_day(table, batch).items():
                parts.setdefault((table, day), []).append(part)
        for batch in chunk:
            if batch.fault is not None:
                fault_rows.append(fault_dead_letter(batch.origin, batch.fault, batch.received_at).row)
                out.faults += 1
                counters.inc("file_faults")
                counters.inc("dead_letters." + batch.fault.reason)
            out.sources.add(batch.origin.key)
            if batch.finished is not None:
                out.units.append(batch.finished)
        if fault_rows:
            for day, part in split_by_day(UNPROCESSED, rows_batch(UNPROCESSED, fault_rows)).items():
                parts.setdefault((UNPROCESSED, day), []).append(part)
        out.tables = {key: pa.Table.from_batches(of_day, schema=batch_schema(key[0])) for key, of_day in parts.items()}
        counters.inc("lines_read", out.lines)
        counters.inc("agent_cache_hits", parser.cache_hits - hits)
        counters.inc("agent_cache_misses", parser.cache_misses - misses)
        return out, earliest


def _reasons(dead_letters: pa.RecordBatch) -> dict[str, int]:
    counts: dict[str, int] = {}
    for error in dead_letters.column("error").to_pylist():
        reason = error.split(":", 1)[0]
        counts[reason] = counts.get(reason, 0) + 1
    return counts


class ParseLogLines(beam.PTransform):
    """Chunks of raw lines → :class:`ParsedChunk` (Arrow tables of rows and dead letters by table and day).

    Counts ``lines_read``, ``file_faults``, ``dead_letters.<reason>`` and the
    agent cache's hits and misses in the ``haulage`` metrics namespace.
    """

    def __init__(self, agent_cache_size: int) -> None:
        super().__init__()
        self._agent_cache_size = agent_cache_size

    def expand(self, chunks):
        """Chunks of lines → parsed chunks (one ParDo; see ParseChunkFn for the counters)."""
        return chunks | "ParseChunks" >> beam.ParDo(ParseChunkFn(self._agent_cache_size)).with_output_types(ParsedChunk)
