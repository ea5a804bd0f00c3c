"""``ParseLogLines``: chunks of raw lines to rows split by table and day."""

from __future__ import annotations

from typing import Iterator

import apache_beam as beam
from apache_beam.transforms.window import TimestampedValue

from haulage.parsers import UNPROCESSED, LineParser
from haulage.parsers.lines import fault_dead_letter

from .elements import Chunk, ParsedChunk, tune_gc
from .metrics import Counters

def reason_of(dead_letter_row: dict) -> str:
    return dead_letter_row["error"].split(":", 1)[0]


class ParseChunkFn(beam.DoFn):
    """Parses every line of a chunk with one cached :class:`LineParser` per worker.

    Emits one :class:`ParsedChunk` stamped with the earliest log timestamp it
    holds, so event time follows the logs (rows are partitioned by their own
    timestamps regardless).
    """

    def __init__(self, agent_cache_size: int) -> None:
        self._agent_cache_size = agent_cache_size

    def setup(self) -> None:
        tune_gc()
        self._parser = LineParser(agent_cache_size=self._agent_cache_size)
        self._counters = Counters()

    def process(self, chunk: Chunk) -> Iterator[object]:
        parser = self._parser
        hits, misses = parser.cache_hits, parser.cache_misses
        out = ParsedChunk()
        rows = out.rows
        earliest = None
        for batch in chunk:
            records = parser.parse_batch(batch.lines, batch.origin, batch.first_position, batch.received_at)
            out.lines += len(batch.lines)
            for record in records:
                table = record.table
                row = record.row
                if table == UNPROCESSED:
                    key = (table, row["received_at"][:10])
                    self._counters.inc("dead_letters." + reason_of(row))
                else:
                    key = (table, row["timestamp"][:10])
                    if earliest is None or record.epoch < earliest:
                        earliest = record.epoch
                bucket = rows.get(key)
                if bucket is None:
                    bucket = rows[key] = []
                bucket.append(row)
            if batch.fault is not None:
                fault = batch.fault
                row = fault_dead_letter(batch.origin, fault, batch.received_at).row
                rows.setdefault((UNPROCESSED, batch.received_at[:10]), []).append(row)
                out.faults += 1
                self._counters.inc("file_faults")
                self._counters.inc("dead_letters." + fault.reason)
            out.sources.add(batch.origin.key)
            if batch.finished is not None:
                out.units.append(batch.finished)
        self._counters.inc("lines_read", out.lines)
        self._counters.inc("agent_cache_hits", parser.cache_hits - hits)
        self._counters.inc("agent_cache_misses", parser.cache_misses - misses)
        yield TimestampedValue(out, earliest) if earliest is not None else out


class ParseLogLines(beam.PTransform):
    """Chunks of raw lines → :class:`ParsedChunk` (rows and dead letters by table and day).

    Counts ``lines_read``, ``file_faults``, ``dead_letters.<reason>`` and the
    agent cache's hits and misses in the ``haulage`` metrics namespace.
    """

    def __init__(self, agent_cache_size: int) -> None:
        super().__init__()
        self._agent_cache_size = agent_cache_size

    def expand(self, chunks):
        return chunks | "ParseChunks" >> beam.ParDo(ParseChunkFn(self._agent_cache_size)).with_output_types(ParsedChunk)
