"""Chunks bounded by lines *and* bytes: the unit the parser and the sinks work on.

Two places need it:

* :func:`bounded_chunks` cuts one source (a message, a notified file) into
  chunks of at most ``max_lines`` lines and about ``max_bytes`` bytes of raw
  lines — a gzip message of a few MB can inflate to gigabytes;
* :class:`BatchChunks` gathers the small chunks of many messages (a CDN often
  sends one line per message) into batches, on the streaming graph.

Why not Beam's ``BatchElements``: its streaming (stateful) form counts
*elements* and ignores ``element_size_fn``, so with
``max_batch_size=50_000`` it would hold up to 50,000 *messages* — 50 million
lines if each message carries 1,000. Here a batch closes when it reaches
``max_lines`` lines or ``max_bytes`` bytes, or ``max_seconds`` after its
first chunk arrived, or when the watermark passes the end of the window (a
drain), whichever comes first; and a chunk that would overflow the batch
closes the batch before it is added. So no batch is larger than the caps,
except a single chunk that alone exceeds one (which :func:`bounded_chunks`
prevents upstream).

A source too big for one chunk (a message that inflates past the caps)
arrives as consecutive chunks; one that does not end its source closes the
batch at once. So a batch held in state never ends in the middle of a
source, and the parts of one source leave the step together, while it
processes the bundle that brought them — which is what lets a sink commit
every source whole (:mod:`haulage.pipeline.sinks.parquet_commit`).
"""

from __future__ import annotations

import time
import uuid
from typing import Iterable, Iterator, Tuple, Union

import apache_beam as beam
from apache_beam.coders import TupleCoder, VarIntCoder
from apache_beam.transforms.timeutil import TimeDomain
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec, TimerSpec, on_timer
from apache_beam.utils.timestamp import Timestamp

from ..elements import Chunk, ChunkCoder, LineBatch, line_bytes
from ..metrics import Counters

__all__ = ["BatchChunks", "bounded_chunks", "chunk_size", "ends_mid_source"]


def ends_mid_source(chunk: Chunk) -> bool:
    """The chunk's last line batch does not finish its source (more of it follows)."""
    return bool(chunk) and chunk[-1].finished is None


def chunk_size(chunk: Chunk) -> tuple[int, int]:
    """``(lines, bytes)`` of a chunk, counting the raw lines' bytes."""
    lines = nbytes = 0
    for batch in chunk:
        lines += len(batch.lines)
        nbytes += line_bytes(batch.lines)
    return lines, nbytes


def bounded_chunks(items: Iterable[Union[LineBatch, Chunk]], max_lines: int, max_bytes: int) -> Iterator[Chunk]:
    """Regroup line batches into chunks of at most ``max_lines`` lines and ``max_bytes`` bytes.

    A line batch larger than what is left of a chunk is split between lines,
    so only a single line longer than ``max_bytes`` makes a chunk exceed it
    (it is then alone in its chunk). Order and positions are kept; a fault
    and the source's ``finished`` unit stay on the part that ends its batch.
    """
    pending = Chunk()
    lines = nbytes = 0
    for item in items:
        for batch in item if isinstance(item, Chunk) else (item,):
            count = len(batch.lines)
            if count == 0:  # a fault alone
                pending.append(batch)
                continue
            start = 0
            while start < count:
                end, size = start, 0
                while end < count and lines + (end - start) < max_lines:
                    length = len(batch.lines[end])
                    if nbytes + size + length > max_bytes and (lines or end > start):
                        break
                    size += length
                    end += 1
                if end == start:  # what is pending is full
                    yield pending
                    pending, lines, nbytes = Chunk(), 0, 0
                    continue
                last = end == count
                pending.append(
                    batch
                    if start == 0 and last
                    else LineBatch(batch.origin, batch.first_position + start, batch.lines[start:end],
                                   batch.received_at, batch.fault if last else None, batch.finished if last else None)
                )
                lines += end - start
                nbytes += size
                start = end
    if pending:
        yield pending


# One key per worker process (made when the module is imported there).
_PROCESS_KEY = uuid.uuid4().hex


class _KeyByWorkerFn(beam.DoFn):
    """Keys every chunk with the key of the worker process it is in.

    State and timers are per key: one key per process keeps the batches of a
    worker together, spreads the batching over all workers, and bounds the
    number of open batches by the number of processes (a key per DoFn
    instance would give the direct runner, which makes a DoFn per bundle, a
    batch per bundle).
    """

    def process(self, chunk: Chunk) -> Iterator[tuple[str, Chunk]]:
        yield _PROCESS_KEY, chunk


class _BatchChunksFn(beam.DoFn):
    """Stateful: holds chunks per key until a cap, the time limit or the end of the window."""

    CHUNKS = BagStateSpec("chunks", ChunkCoder())
    HELD = ReadModifyWriteStateSpec("held", TupleCoder((VarIntCoder(), VarIntCoder())))  # (lines, bytes)
    FLUSH_AT = TimerSpec("flush_at", TimeDomain.REAL_TIME)
    WINDOW_END = TimerSpec("window_end", TimeDomain.WATERMARK)

    def __init__(self, max_lines: int, max_bytes: int, max_seconds: float) -> None:
        self._max_lines = max_lines
        self._max_bytes = max_bytes
        self._max_seconds = max_seconds

    def setup(self) -> None:
        self._counters = Counters()

    def process(
        self,
        element: tuple[str, Chunk],
        window=beam.DoFn.WindowParam,
        chunks=beam.DoFn.StateParam(CHUNKS),
        held=beam.DoFn.StateParam(HELD),
        flush_at=beam.DoFn.TimerParam(FLUSH_AT),
        window_end=beam.DoFn.TimerParam(WINDOW_END),
    ) -> Iterator[Chunk]:
        _, chunk = element
        lines, nbytes = chunk_size(chunk)
        held_lines, held_bytes = held.read() or (0, 0)
        if held_lines and (held_lines + lines > self._max_lines or held_bytes + nbytes > self._max_bytes):
            yield from self._flush(chunks, held, flush_at, "cap")
            held_lines = held_bytes = 0
        chunks.add(chunk)
        window_end.set(window.max_timestamp())
        if not held_lines:
            flush_at.set(Timestamp.of(time.time() + self._max_seconds))
        held_lines += lines
        held_bytes += nbytes
        if held_lines >= self._max_lines or held_bytes >= self._max_bytes:
            yield from self._flush(chunks, held, flush_at, "cap")
        elif ends_mid_source(chunk):
            yield from self._flush(chunks, held, flush_at, "source")
        else:
            held.write((held_lines, held_bytes))

    @on_timer(FLUSH_AT)
    def on_time_limit(
        self,
        chunks=beam.DoFn.StateParam(CHUNKS),
        held=beam.DoFn.StateParam(HELD),
        flush_at=beam.DoFn.TimerParam(FLUSH_AT),
    ) -> Iterator[Chunk]:
        yield from self._flush(chunks, held, flush_at, "time")

    @on_timer(WINDOW_END)
    def on_window_end(
        self,
        chunks=beam.DoFn.StateParam(CHUNKS),
        held=beam.DoFn.StateParam(HELD),
        flush_at=beam.DoFn.TimerParam(FLUSH_AT),
    ) -> Iterator[Chunk]:
        yield from self._flush(chunks, held, flush_at, "drain")

    def _flush(self, chunks, held, flush_at, why: str) -> Iterator[Chunk]:
        merged = Chunk()
        for chunk in chunks.read():
            merged.extend(chunk)
        chunks.clear()
        held.clear()
        flush_at.clear()
        if merged:
            self._counters.inc(f"batches_closed.{why}")
            yield merged


class BatchChunks(beam.PTransform):
    """Chunks of many messages → batches of ≤ ``max_lines`` lines and ≤ ``max_bytes`` bytes.

    A batch also closes ``max_seconds`` after its first chunk arrived (so a
    quiet stream still flushes) and when the watermark passes the end of the
    window (a Dataflow drain, or the end of a local run), and at once when
    its last chunk ends in the middle of a source. Counts
    ``batches_closed.<cap|time|drain|source>``.
    """

    def __init__(self, max_lines: int, max_bytes: int, max_seconds: float) -> None:
        super().__init__()
        self._max_lines = max_lines
        self._max_bytes = max_bytes
        self._max_seconds = max_seconds

    def expand(self, chunks):
        """Small chunks → batches per worker, by lines, bytes and seconds."""
        return (
            chunks
            | "KeyByWorker" >> beam.ParDo(_KeyByWorkerFn()).with_output_types(Tuple[str, Chunk])
            | "Batch" >> beam.ParDo(_BatchChunksFn(self._max_lines, self._max_bytes, self._max_seconds)).with_output_types(Chunk)
        )
