"""What flows between the pipeline's stages.

Elements are batches, never single lines: a Beam element costs microseconds
of runner overhead, a parsed line about as much, so per-line elements would
spend half the time in the runner. A *chunk* (``list[LineBatch]``) is the unit
the parser consumes and the sinks flush: one file part in batch runs, one
window of messages in streaming runs.
"""

from __future__ import annotations

import copy
import gc
import pickle
import struct
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence, Union

import apache_beam as beam
import pyarrow as pa

from ..parsers import Origin
from ..parsers.framing import FileFault
from ..parsers.line_block import LineBlock


__all__ = [
    "FILE", "MESSAGE", "SourceUnit", "LineBatch", "Chunk", "ParsedChunk", "ChunkCoder",
    "ParsedChunkCoder", "tune_gc", "line_bytes",
]


FILE = "file"
MESSAGE = "message"


@dataclass(frozen=True, slots=True)
class SourceUnit:
    """A source that is ingested once, as a whole: a log file or a Pub/Sub message.

    ``unit_id`` is the event-id key of its lines (``Origin.key``): for a file
    derived from its content (see :mod:`.sources.identity`), for a message from
    its subscription and message id. The sinks' ledgers record committed
    units by this id; ``lines`` and ``faults`` say what the unit held.
    """

    unit_id: str
    kind: str  # FILE | MESSAGE
    label: str
    size: int
    lines: int
    faults: int

    def record(self) -> dict[str, Any]:
        """The unit as a ledger marker lists it (what ``dataclasses.asdict`` gives, at a fifth of its cost:
        a window of one-line messages writes one record per message)."""
        return {"unit_id": self.unit_id, "kind": self.kind, "label": self.label, "size": self.size,
                "lines": self.lines, "faults": self.faults}


@dataclass(slots=True)
class LineBatch:
    """Consecutive raw lines of one source, or the fault that ended it.

    ``lines`` is a list of lines (messages) or a :class:`LineBlock` (files:
    one buffer, as framing reads it, so no Python object is made per line);
    either way a sequence of lines without their ``\\n``.
    ``finished`` is set on the last batch of its source: a unit is complete
    (and may be committed) once the batch carrying it has been written.
    """

    origin: Origin
    first_position: int
    lines: Union[list[bytes], LineBlock]
    received_at: str
    fault: Optional[FileFault] = None
    finished: Optional[SourceUnit] = None


class Chunk(list):  # list[LineBatch]
    """The lines of one unit of work: a part of a file, or a window of messages."""

    __slots__ = ()


def line_bytes(lines: Sequence[bytes]) -> int:
    """Bytes of a batch's lines, ``\\n`` excluded, without a pass over a block's lines."""
    return lines.nbytes if isinstance(lines, LineBlock) else sum(map(len, lines))

TableDay = tuple[str, str]
"""``(table, "YYYY-MM-DD")``: the unit of partitioning in every sink."""


@dataclass(slots=True)
class ParsedChunk:
    """Rows of one chunk as Arrow tables, already split by table and UTC day.

    Each table is in ``haulage.parsers.batch_schema`` (the table's columns,
    agent- and url-derived strings dictionary-encoded) and may hold several
    record batches. ``lines`` and ``faults`` say how many input lines and
    file-level faults the rows stand for, so the sinks can keep the books
    balanced: lines + faults == rows written + dead letters.

    ``sources`` are the unit ids of every batch in the chunk and ``units`` the
    units whose last batch it holds: a sink commits a unit when it has all of
    it, and refuses to commit a group holding part of a unit.
    """

    tables: dict[TableDay, pa.Table] = field(default_factory=dict)
    lines: int = 0
    faults: int = 0
    sources: set[str] = field(default_factory=set)
    units: list[SourceUnit] = field(default_factory=list)


class _PickledBatchCoder(beam.coders.Coder):
    """Pickle coder whose size estimate does not encode the element.

    Beam samples element sizes for its metrics by encoding elements; for
    batches of tens of thousands of lines that alone cost a tenth of the run.
    An estimate from the line count is as useful and costs nothing.
    """

    bytes_per_unit = 256

    def encode(self, value: Any) -> bytes:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)

    def decode(self, encoded: bytes) -> Any:
        return pickle.loads(encoded)

    def is_deterministic(self) -> bool:
        return False

    def estimate_size(self, value: Any) -> int:
        return self.bytes_per_unit * max(1, self._units(value))

    def _units(self, value: Any) -> int:
        raise NotImplementedError


class ChunkCoder(_PickledBatchCoder):
    """Pickle coder for chunks of line batches, sized by line count (see the base class)."""

    def _units(self, value: Any) -> int:
        return sum(len(batch.lines) for batch in value)


class ParsedChunkCoder(beam.coders.Coder):
    """Arrow IPC for a parsed chunk's tables, pickle only for its few other fields.

    Layout: a 4-byte little-endian length, the pickled chunk without its
    tables plus ``[(table-day, IPC byte length), …]``, then one Arrow IPC
    stream per table-day. Decoding maps the streams without copying them.
    Pickling the rows' Python objects instead would cost more than parsing
    them did.
    """

    def encode(self, value: ParsedChunk) -> bytes:
        shell = copy.copy(value)
        shell.tables = {}
        streams = []
        for key, table in value.tables.items():
            sink = pa.BufferOutputStream()
            with pa.ipc.new_stream(sink, table.schema) as writer:
                writer.write_table(table)
            streams.append((key, sink.getvalue()))
        head = pickle.dumps((shell, [(key, stream.size) for key, stream in streams]), protocol=pickle.HIGHEST_PROTOCOL)
        return b"".join([struct.pack("<I", len(head)), head, *(stream.to_pybytes() for _, stream in streams)])

    def decode(self, encoded: bytes) -> ParsedChunk:
        (size,) = struct.unpack_from("<I", encoded)
        shell, index = pickle.loads(encoded[4 : 4 + size])
        buffer = pa.py_buffer(encoded)
        offset = 4 + size
        for key, length in index:
            shell.tables[key] = pa.ipc.open_stream(buffer.slice(offset, length)).read_all()
            offset += length
        return shell

    def is_deterministic(self) -> bool:
        return False

    def estimate_size(self, value: ParsedChunk) -> int:
        return sum(table.nbytes for table in value.tables.values()) + 64


beam.coders.registry.register_coder(Chunk, ChunkCoder)
beam.coders.registry.register_coder(ParsedChunk, ParsedChunkCoder)


def tune_gc() -> None:
    """Collect cyclic garbage less often in workers.

    Rows are acyclic dicts freed by reference counting; what the cyclic
    collector does here is rescan the tens of thousands of rows a batch keeps
    alive, which measured at about 30 % of a local run. A larger first
    threshold keeps collection (Beam's own objects do form cycles) but makes
    those rescans rare. It also keeps freed memory for reuse
    (:mod:`haulage.pipeline.malloc_tuning`): blocks of lines are MB-sized
    buffers freed and reallocated per chunk.
    """
    from .malloc_tuning import keep_freed_memory

    keep_freed_memory()  # the same workers free and reallocate MB-sized buffers per block
    threshold0, threshold1, threshold2 = gc.get_threshold()
    if threshold0 < 50_000:
        gc.set_threshold(50_000, max(threshold1, 20), max(threshold2, 20))
        gc.freeze()  # what exists at worker set-up (modules, Beam's graph) is never garbage
