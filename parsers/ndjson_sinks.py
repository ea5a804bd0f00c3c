"""``haulage parse`` on every core: blocks parsed by forked workers, the NDJSON written in input order.

Why: one process turns ≈ 250–280k lines per CPU-second of gzip into NDJSON,
and the reading (inflate and split, ≈ 15 % of it) is the only part that must
stay in one place. So the process that reads deals out *pieces* — a block of
lines to parse, or the NDJSON of a damaged region's dead letter — each with
its sequence number, to worker processes forked from it (sharing its imports
and its empty agent cache). A worker parses its block and renders the NDJSON,
then waits for its *turn* and writes it itself, straight to the output
descriptor: the ≈ 1 KB of NDJSON a line becomes never crosses a pipe. Nor do
the block's bytes: the reader copies them into one of a few *slots*, memory
mapped before the fork and so shared with every worker, and sends only the
slot's number (an 8 MiB block through a pipe cost 12.5 ms of CPU on the two
sides, pickling included; through a slot, 0.6 ms).

Rules:

* The output is byte for byte what one process writes: piece *k* is written
  only once piece *k − 1* has been (a shared counter, the turn); only the
  agent caches are per worker (``--agent-cache-size`` is each worker's).
* A piece whose parsing raised still takes its turn — nothing ever waits for
  a turn that cannot come — and the error reaches the reading process, which
  stops the workers and raises it.
* When a write fails (the reader of the output went away, the disk is full)
  the output is marked failed, no later piece is written, and the reading
  process stops with :class:`OutputFailed`, the error's cause kept.
* At most two pieces per worker are in flight, so memory stays bounded
  whatever the input's size; a slot is reused only once the piece it held
  has been written; a block too big for a slot (a run of very long lines)
  goes through the pipe. A file of one block is parsed where it is read,
  with no worker started.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import multiprocessing
import os
import signal
from abc import ABC, abstractmethod
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO, NamedTuple, Optional, Union

import numpy as np

from .columnar import ColumnarParser
from .line_block import BLOCK_BYTES, LineBlock
from .lines import Origin
from .ndjson import ndjson_chunks

__all__ = [
    "IN_FLIGHT_PER_WORKER", "NdjsonSink", "OutputFailed", "SequentialSink", "WORKER_BLOCK_BYTES", "WorkerSink",
    "default_workers", "usable_cores", "MOST_DEFAULT_WORKERS",
]

IN_FLIGHT_PER_WORKER = 2
"""Pieces dealt out per worker before the reader waits for the oldest: one being parsed, one queued."""


WORKER_BLOCK_BYTES = 8 << 20
"""Bytes of lines per block dealt to a worker: half the one-process :data:`~haulage.parsers.line_block.BLOCK_BYTES`.

Smaller blocks start the workers sooner and keep them busier while they take turns
to write, for a little more fixed cost per block. ``haulage parse --workers 2`` of
parse_bench's 200k-line file, wall clock: 4 / 8 / 16 MiB blocks 0.65 / 0.62–0.65 /
0.65–0.69 s; of a 1M-line file 2.24 / 2.03–2.06 / 2.06–2.16 s (one process with
16 MiB blocks: 0.74–0.84 s and 3.15 s). Measured with blocks sent through the pipe,
before the slots; with them, 8 MiB: 1.94–2.06 s for the 1M lines (six runs)."""


MOST_DEFAULT_WORKERS = 8
"""The default never starts more workers than this, however many cores there are.

One process reads the input for all of them: inflating and splitting a line
costs it ≈ 0.5 µs, where a worker spends ≈ 4 µs parsing, rendering and writing
it, so about eight workers keep up with one reader and more would wait for it
(each holding a few hundred MB). An arithmetic bound, not measured: the
development machine has two cores. ``--workers`` may still ask for more."""


def default_workers() -> int:
    """Workers ``haulage parse`` starts unless told: one per usable core, at most :data:`MOST_DEFAULT_WORKERS`."""
    return min(usable_cores(), MOST_DEFAULT_WORKERS)


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the system tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class OutputFailed(Exception):
    """Writing the NDJSON failed (the reader of standard output went away, the disk is full): parsing stops."""


_Piece = Union[tuple[LineBlock, Origin, str], bytes]
"""A block to parse with its origin and receive time, or NDJSON already rendered (a fault's dead letter)."""

class _SlotPiece(NamedTuple):
    """A block whose bytes were copied into a shared slot: only this crosses the pipe."""

    slot: int
    size: int  # bytes of the block in the slot
    starts: np.ndarray
    first_position: int
    origin: Origin
    received_at: str


class NdjsonSink(ABC):
    """Where the reader puts pieces, in input order; :meth:`finish` once all are put."""

    block_bytes: int = BLOCK_BYTES
    """Bytes of lines at which the reader closes a block for this sink."""

    @abstractmethod
    def block(self, block: LineBlock, origin: Origin, received_at: str) -> None:
        """A block of lines to parse; its NDJSON goes after everything put before it."""
        raise NotImplementedError

    @abstractmethod
    def ndjson(self, data: bytes) -> None:
        """NDJSON already rendered (a damaged region's dead letter), written in its place."""
        raise NotImplementedError

    @abstractmethod
    def finish(self) -> None:
        """Everything has been put: write what is left and flush; raises :class:`OutputFailed` if writing failed."""
        raise NotImplementedError

    def abandon(self) -> None:
        """Stop without writing what is still in flight (the output failed, or reading raised)."""


class SequentialSink(NdjsonSink):
    """Parse each block and write it at once, in this process (``--workers 1``)."""

    def __init__(self, parser: ColumnarParser, out: BinaryIO) -> None:
        self._parser = parser
        self._out = out

    def block(self, block: LineBlock, origin: Origin, received_at: str) -> None:
        """Parse the block and write its NDJSON now."""
        for chunk in ndjson_chunks(self._parser.parse_block(block, origin, received_at)):
            self._write(chunk)

    def ndjson(self, data: bytes) -> None:
        """Write ``data`` now."""
        self._write(data)

    def finish(self) -> None:
        """Flush the output."""
        try:
            self._out.flush()
        except OSError as exc:
            raise OutputFailed(str(exc)) from exc

    def _write(self, data) -> None:
        try:
            self._out.write(data)
        except OSError as exc:
            raise OutputFailed(str(exc)) from exc


class WorkerSink(NdjsonSink):
    """Deal pieces to ``workers`` forked processes that write them to ``out_fd`` in turn.

    The workers are forked when the second piece arrives (a one-block file
    never starts them); ``out`` is the buffered stream over ``out_fd``, flushed
    before forking and used only when no worker was started. A worker that dies
    (killed, out of memory) breaks the pool: the reader gets
    ``BrokenProcessPool`` instead of waiting for a piece that will never come.
    """

    block_bytes = WORKER_BLOCK_BYTES

    def __init__(
        self, parser: ColumnarParser, out: BinaryIO, out_fd: int, workers: int, block_bytes: Optional[int] = None
    ) -> None:
        if workers < 2:
            raise ValueError(f"WorkerSink needs at least 2 workers, got {workers}")
        self._parser = parser
        self._out = out
        self._out_fd = out_fd
        self._workers = workers
        if block_bytes is not None:
            self.block_bytes = block_bytes
        self._held: list[_Piece] = []
        self._pool: Optional[ProcessPoolExecutor] = None
        self._state: Optional[_WorkerState] = None
        self._in_flight: deque[tuple[Future, Optional[int]]] = deque()  # each with the slot it holds
        self._free_slots: list[int] = []
        self._next = 0
        self.forked = False
        """Whether the workers were started (not for input of a single piece)."""

    def block(self, block: LineBlock, origin: Origin, received_at: str) -> None:
        """Deal the block to a worker (the first is held until a second piece shows the workers are worth it)."""
        self._put((block, origin, received_at))

    def ndjson(self, data: bytes) -> None:
        """Deal ``data`` to a worker, which writes it in its turn."""
        self._put(bytes(data))

    def finish(self) -> None:
        """Wait for every piece dealt (raising the first failure) and stop the workers; with none started,
        parse what is held here."""
        if self._pool is None:
            alone = SequentialSink(self._parser, self._out)
            held, self._held = self._held, []
            for piece in held:
                _render_into(alone, piece)
            alone.finish()
            return
        while self._in_flight:
            self._settle()
        self._stop()

    def abandon(self) -> None:
        """Mark the output failed, so nothing in flight is written, and stop the workers."""
        self._held.clear()
        if self._pool is not None:
            assert self._state is not None
            self._state.failed.value = 1  # what is in flight is parsed for nothing but not written
            self._stop(cancel=True)
        self._in_flight.clear()

    def _stop(self, cancel: bool = False) -> None:
        """Wait for the workers to end, then unmap the slots."""
        global _worker
        assert self._pool is not None and self._state is not None
        self._pool.shutdown(wait=True, cancel_futures=cancel)
        self._pool = None
        for slot in self._state.slots:
            slot.close()
        self._state.slots.clear()
        self._free_slots.clear()
        if _worker is self._state:
            _worker = None

    def _put(self, piece: _Piece) -> None:
        if self._pool is None:
            self._held.append(piece)
            if len(self._held) < 2:
                return
            self._start()
            held, self._held = self._held, []
            for earlier in held:
                self._deal(earlier)
            return
        self._deal(piece)

    def _start(self) -> None:
        try:
            self._out.flush()  # nothing buffered here may be written again by a forked child
        except OSError as exc:
            raise OutputFailed(str(exc)) from exc
        context = multiprocessing.get_context("fork")
        slots = IN_FLIGHT_PER_WORKER * self._workers  # one per piece in flight
        global _worker
        self._state = _worker = _WorkerState(
            self._parser, self._out_fd, os.getpid(), context.Condition(), context.RawValue("q", 0),
            context.RawValue("i", 0), [mmap.mmap(-1, _slot_bytes(self.block_bytes)) for _ in range(slots)],
        )
        self._free_slots = list(range(slots))
        # with fork, all the workers are started now, each a copy of this process as it is
        self._pool = ProcessPoolExecutor(
            self._workers, mp_context=context, initializer=_stop_with_the_reader, initargs=(os.getpid(),)
        )
        self.forked = True

    def _deal(self, piece: _Piece) -> None:
        while self._in_flight and (
            len(self._in_flight) >= IN_FLIGHT_PER_WORKER * self._workers or self._in_flight[0][0].done()
        ):
            self._settle()
        assert self._pool is not None and self._state is not None
        slot = None
        task: Union[_Piece, _SlotPiece] = piece
        if not isinstance(piece, bytes):
            block, origin, received_at = piece
            size = len(block.data)
            if self._free_slots and size <= len(self._state.slots[self._free_slots[-1]]):
                slot = self._free_slots.pop()
                self._state.slots[slot][:size] = block.data
                task = _SlotPiece(slot, size, block.starts, block.first_position, origin, received_at)
        self._in_flight.append((self._pool.submit(_parse_and_write, self._next, task), slot))
        self._next += 1

    def _settle(self) -> None:
        """Wait for the oldest piece in flight; free its slot; raise what went wrong with it."""
        result, slot = self._in_flight.popleft()
        try:
            failure = result.result()
        finally:
            if slot is not None:
                self._free_slots.append(slot)
        if failure is not None:
            code, message = failure
            cause = OSError(code, message)  # the errno picks the subclass: EPIPE is a BrokenPipeError
            raise OutputFailed(message) from cause


def _slot_bytes(block_bytes: int) -> int:
    """A slot holds any block the reader closes at ``block_bytes``: it may pass them by one run (≤ 1 MiB
    and a line), so twice that, rounded to pages; only the pages a block touches take memory."""
    return -(-2 * max(block_bytes, 1 << 20) // mmap.PAGESIZE) * mmap.PAGESIZE


@dataclass(slots=True)
class _WorkerState:
    """What a forked worker inherits: the parser, the output, the reader's pid, the turn, the failed flag, the slots."""

    parser: ColumnarParser
    out_fd: int
    reader_pid: int
    turn_changed: Any  # a multiprocessing Condition
    turn: Any  # a shared int: the sequence number of the piece whose turn it is to be written
    failed: Any  # a shared int: 1 once a write or a parse failed
    slots: list[mmap.mmap]


_worker: Optional[_WorkerState] = None
"""Set in the reading process just before the workers are forked; each worker has its copy."""

_ORPHAN_CHECK_SECONDS = 1.0
"""How often a worker waiting for its turn checks that the reading process is still there."""


_PR_SET_PDEATHSIG = 1
"""Linux ``prctl`` option: the signal a process gets when the one that forked it ends."""


def _stop_with_the_reader(reader_pid: int) -> None:
    """In each worker as it starts: end when the reading process ends, and leave Ctrl-C to it.

    A worker idle on the executor's queue would otherwise outlive a reader
    that was killed (its siblings keep the queue open), so it asks Linux for
    SIGTERM when the reader goes. Ctrl-C reaches the whole process group:
    the reader alone handles it, stopping the workers; elsewhere than Linux,
    a worker waiting for its turn still notices the reader is gone.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ctypes.CDLL("libc.so.6").prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):  # not Linux with glibc
        pass
    if os.getppid() != reader_pid:  # the reader ended before the request was made
        os._exit(1)


def _render_into(sink: NdjsonSink, piece: _Piece) -> None:
    if isinstance(piece, bytes):
        sink.ndjson(piece)
    else:
        sink.block(*piece)


def _parse_and_write(sequence: int, piece: Union[_Piece, _SlotPiece]) -> Optional[tuple[int, str]]:
    """In a worker: render ``piece``, wait for its turn, write it unless the output failed, pass the turn on.

    Returns None, or the ``(errno, message)`` of the write that failed; a parse
    error marks the output failed (nothing after it is written) and is raised
    once the turn is passed on.
    """
    state = _worker
    assert state is not None
    error: Optional[BaseException] = None
    chunks: list = []
    try:
        if isinstance(piece, bytes):
            chunks = [piece]
        else:
            if isinstance(piece, _SlotPiece):  # copied out, as the slot is reused once this piece is written
                block = LineBlock(state.slots[piece.slot][: piece.size], piece.starts, piece.first_position)
                origin, received_at = piece.origin, piece.received_at
            else:
                block, origin, received_at = piece
            chunks = list(ndjson_chunks(state.parser.parse_block(block, origin, received_at)))
    except BaseException as exc:  # still take the turn, or every later piece would wait forever
        error = exc
    with state.turn_changed:
        while not state.turn_changed.wait_for(lambda: state.turn.value == sequence, _ORPHAN_CHECK_SECONDS):
            if os.getppid() != state.reader_pid:  # the reader is gone: nobody will pass the turn on
                os._exit(1)
    failure = None
    try:
        if error is not None:
            state.failed.value = 1
        elif not state.failed.value:
            _write_all(state.out_fd, chunks)
    except OSError as exc:
        state.failed.value = 1
        failure = (exc.errno or errno.EIO, exc.strerror or str(exc))
    finally:
        with state.turn_changed:
            state.turn.value = sequence + 1
            state.turn_changed.notify_all()
    if error is not None:
        raise error
    return failure


def _write_all(fd: int, chunks: list) -> None:
    """Write every chunk to ``fd`` in full (``os.write`` may take part of one)."""
    for chunk in chunks:
        view = memoryview(chunk).cast("B")
        while view:
            view = view[os.write(fd, view):]
