"""Many lines in one buffer: where each starts, and which are not UTF-8 — found with numpy, not per line.

A :class:`LineBlock` is the columnar parser's input: the bytes of consecutive
lines of one source, each ended by ``\\n``, plus the position of the first.
The lines are never split into Python objects; an Arrow string array views
the buffer directly (each element keeps its ``\\n``, which the parser strips
where it matters).

Rules:

* line *i* spans ``data[starts[i] : starts[i + 1] - 1]`` (its ``\\n`` excluded);
* a missing final ``\\n`` is supplied, so ``b"a\\nb"`` is two lines and
  ``b"a\\n"`` one; empty data is zero lines;
* :meth:`LineBlock.not_utf8` names exactly the lines Python's strict UTF-8
  decoder rejects. An all-ASCII buffer (the usual case) is recognised in one
  C call; otherwise one numpy pass finds the 16 KiB pieces that are not ASCII,
  only those are looked at byte by byte, and only the lines holding a byte
  >= 0x80 are decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, Optional, Sequence, TypeVar, Union, overload

import numpy as np
import pyarrow as pa

__all__ = ["LineBlock", "MAX_BLOCK_BYTES", "BLOCK_LINES", "BLOCK_BYTES", "gather_batches", "gather_blocks"]

BLOCK_LINES = 65_536
"""Most lines per parsed block. A block pays a fixed cost (a few dozen Arrow kernels of tens of
microseconds each) and one lookup per distinct agent it holds, so bigger blocks cost less per
line; :data:`BLOCK_BYTES` is what bounds them for log lines of a few hundred bytes."""

BLOCK_BYTES = 16 << 20
"""Bytes of lines at which a block is closed, whatever the line count: the bound on a block's
memory (65,536 lines of the longest line the reader passes, 64 KiB, would be 4 GiB).

Measured on the benchmark corpus (509 bytes a line, 6.6 % distinct agents), the parse stage
alone, one core: blocks of 8,192 / 16,384 / 32,768 / 65,536 lines took ≈ 640k / 790k / 860k /
900k lines per CPU-second with a warm agent cache, ≈ 400k / 390–460k / 490k / 500k cold;
16 MiB holds ≈ 33,000 such lines. Batch runs read files in chunks of this size
(``pipeline.options.FILE_CHUNK_MIB``)."""

MAX_BLOCK_BYTES = (1 << 31) - 1
"""Arrow string arrays use 32-bit offsets: a block must stay below 2 GiB (chunks are ~10 MB)."""

_NEWLINE = 10
_ASCII_PIECE = 1 << 14
"""Bytes per piece when a block is not all ASCII (see :meth:`LineBlock.not_utf8`)."""


@dataclass(frozen=True, eq=False)
class LineBlock:
    """Many lines in one buffer: ``data`` and the offset where each line starts.

    The columnar parser works on whole blocks with Arrow kernels instead of on one
    line at a time; ``starts`` has one entry per line plus the end of ``data``, and
    ``first_position`` is the 1-based position of the first line in its source.
    """

    data: bytes
    starts: np.ndarray  # int64, n + 1 entries; the last is len(data)
    first_position: int = 1

    @classmethod
    def from_bytes(cls, data: bytes, first_position: int = 1) -> "LineBlock":
        """Lines separated by ``\\n`` (the last one may lack it)."""
        if data and not data.endswith(b"\n"):
            data += b"\n"
        if len(data) > MAX_BLOCK_BYTES:
            raise ValueError(f"a line block holds at most {MAX_BLOCK_BYTES} bytes, got {len(data)}")
        ends = np.flatnonzero(np.frombuffer(data, np.uint8) == _NEWLINE)
        starts = np.empty(len(ends) + 1, np.int64)
        starts[0] = 0
        starts[1:] = ends + 1
        return cls(data, starts, first_position)

    @classmethod
    def from_lines(cls, lines: Sequence[bytes], first_position: int = 1) -> "LineBlock":
        """Lines without their ``\\n`` (as :mod:`haulage.parsers.framing` yields them)."""
        if not lines:
            return cls(b"", np.zeros(1, np.int64), first_position)
        data = b"\n".join(lines) + b"\n"
        if len(data) > MAX_BLOCK_BYTES:
            raise ValueError(f"a line block holds at most {MAX_BLOCK_BYTES} bytes, got {len(data)}")
        lengths = np.fromiter(map(len, lines), np.int64, len(lines))
        starts = np.empty(len(lines) + 1, np.int64)
        starts[0] = 0
        np.cumsum(lengths + 1, out=starts[1:])
        return cls(data, starts, first_position)

    @classmethod
    def concat(cls, blocks: Sequence["LineBlock"], first_position: Optional[int] = None) -> "LineBlock":
        """Consecutive blocks as one (one copy of their bytes, their line starts shifted, not rescanned).

        ``first_position`` defaults to the first block's.
        """
        if not blocks:
            return cls(b"", np.zeros(1, np.int64), 1 if first_position is None else first_position)
        if first_position is None:
            first_position = blocks[0].first_position
        if len(blocks) == 1:
            only = blocks[0]
            return only if only.first_position == first_position else cls(only.data, only.starts, first_position)
        data = b"".join(block.data for block in blocks)
        if len(data) > MAX_BLOCK_BYTES:
            raise ValueError(f"a line block holds at most {MAX_BLOCK_BYTES} bytes, got {len(data)}")
        starts = np.empty(sum(len(block) for block in blocks) + 1, np.int64)
        at = offset = 0
        for block in blocks:
            n = len(block)
            starts[at : at + n] = block.starts[:-1] + offset
            at += n
            offset += len(block.data)
        starts[-1] = offset
        return cls(data, starts, first_position)

    def __len__(self) -> int:
        return len(self.starts) - 1

    @property
    def nbytes(self) -> int:
        """Bytes of the lines, ``\\n`` excluded (what ``sum(map(len, lines))`` is for a list of lines)."""
        return len(self.data) - len(self)

    def line(self, i: int) -> bytes:
        """Line ``i`` (0-based) without its ``\\n``."""
        return self.data[self.starts[i] : self.starts[i + 1] - 1]

    # A block is also a sequence of lines (each without its "\n"), so a pipeline element may carry
    # one where it would carry a list of lines; these are for the rare code that looks at lines.

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> "LineBlock": ...

    def __getitem__(self, index: Union[int, slice]) -> Union[bytes, "LineBlock"]:
        """Line ``index``, or the lines of a slice as a block (step 1) whose first position follows."""
        n = len(self)
        if isinstance(index, slice):
            start, stop, step = index.indices(n)
            if step != 1:
                raise ValueError("a line block is sliced with step 1 only")
            stop = max(start, stop)
            if start == 0 and stop == n:
                return self
            begin, end = int(self.starts[start]), int(self.starts[stop])
            return LineBlock(self.data[begin:end], self.starts[start : stop + 1] - begin, self.first_position + start)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("line index out of range")
        return self.line(index)

    def __iter__(self) -> Iterator[bytes]:
        if not self.data:
            return iter(())
        lines = self.data.split(b"\n")
        lines.pop()  # after the last "\n"
        return iter(lines)

    def __eq__(self, other: object) -> bool:
        """Blocks are equal when their lines and first positions are; a list or tuple of lines compares by lines."""
        if isinstance(other, LineBlock):
            return self.first_position == other.first_position and self.data == other.data
        if isinstance(other, (list, tuple)):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable-looking content; never a dict key

    def lengths(self) -> np.ndarray:
        """Byte length of every line, ``\\n`` excluded."""
        return np.diff(self.starts) - 1

    def array(self) -> pa.StringArray:
        """Every line as one element of a string array over ``data`` (no copy; each keeps its ``\\n``).

        Not validated as UTF-8: byte-wise kernels (split, take, compare,
        dictionary encoding) are safe on it; lines in :meth:`not_utf8` must
        not reach anything that decodes.
        """
        offsets = pa.py_buffer(self.starts.astype(np.int32))
        return pa.Array.from_buffers(pa.string(), len(self), [None, offsets, pa.py_buffer(self.data)])

    def not_utf8(self) -> np.ndarray:
        """Sorted indices of the lines that are not valid UTF-8."""
        data = self.data
        if data.isascii():
            return np.zeros(0, np.int64)
        # Only pieces holding a byte >= 0x80 are looked at byte by byte (one
        # numpy pass finds them: such a byte is negative as int8, so it is a
        # piece's minimum), and only the lines holding such a byte are
        # decoded: non-ASCII lines are rare in CDN logs.
        signed = np.frombuffer(data, np.int8)
        whole = len(signed) // _ASCII_PIECE
        pieces = np.flatnonzero(signed[: whole * _ASCII_PIECE].reshape(whole, _ASCII_PIECE).min(axis=1) < 0).tolist()
        if whole * _ASCII_PIECE < len(signed):
            pieces.append(whole)  # the last, shorter piece: looked at byte by byte whatever it holds
        found = [np.flatnonzero(signed[at * _ASCII_PIECE : (at + 1) * _ASCII_PIECE] < 0) + at * _ASCII_PIECE for at in pieces]
        candidates = np.unique(np.searchsorted(self.starts, np.concatenate(found), side="right") - 1)
        bad = [i for i in candidates.tolist() if not _is_utf8(self.line(i))]
        return np.array(bad, np.int64)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


Other = TypeVar("Other")


def gather_batches(
    items: Iterable[Union[tuple[int, list[bytes]], Other]],
    min_lines: int = BLOCK_LINES,
    max_bytes: int = BLOCK_BYTES,
) -> Iterator[Union[tuple[int, list[bytes]], Other]]:
    """Consecutive ``(first_position, lines)`` batches joined until they hold ``min_lines`` lines or ``max_bytes`` bytes.

    The reader yields batches of a few hundred lines; the columnar parser
    wants thousands. The byte bound keeps memory proportional to bytes, not
    lines, when lines are long (a gathered batch exceeds ``max_bytes`` by at
    most one reader batch). Anything that is not a batch (a ``FileFault``)
    flushes what was gathered and passes through in its place, so order and
    positions are unchanged.
    """
    first = 0
    gathered: list[bytes] = []
    gathered_bytes = 0
    for item in items:
        if type(item) is tuple:
            position, lines = item
            if not gathered:
                first = position
            elif position != first + len(gathered):  # not contiguous: never join across a gap
                yield first, gathered
                first, gathered, gathered_bytes = position, [], 0
            if gathered:
                gathered.extend(lines)
            else:
                gathered = list(lines)
            gathered_bytes += sum(map(len, lines))
            if len(gathered) >= min_lines or gathered_bytes >= max_bytes:
                yield first, gathered
                gathered, gathered_bytes = [], 0
            continue
        if gathered:
            yield first, gathered
            gathered, gathered_bytes = [], 0
        yield item
    if gathered:
        yield first, gathered


def gather_blocks(
    items: Iterable[Union[tuple[int, bytes, int], Other]], min_lines: int = BLOCK_LINES, max_bytes: int = BLOCK_BYTES
) -> Iterator[Union[LineBlock, Other]]:
    """Consecutive runs of lines (framing's ``(position, lines ended by "\\n", count)``) as blocks.

    The counterpart of :func:`gather_batches` for buffers, with the same
    bounds: contiguous runs are joined (one copy of their bytes) until they
    hold ``min_lines`` lines or ``max_bytes`` bytes; anything that is not a
    run (a ``FileFault``) flushes what was gathered and passes through in
    its place, so order and positions are unchanged.
    """
    first = 0
    parts: list[bytes] = []
    count = size = 0

    def block() -> LineBlock:
        return LineBlock.from_bytes(b"".join(parts) if len(parts) > 1 else parts[0], first)

    for item in items:
        if type(item) is tuple:
            position, data, lines = item
            if parts and position != first + count:  # not contiguous: never join across a gap
                yield block()
                parts, count, size = [], 0, 0
            if not parts:
                first = position
            parts.append(data)
            count += lines
            size += len(data)
            if count >= min_lines or size >= max_bytes:
                yield block()
                parts, count, size = [], 0, 0
            continue
        if parts:
            yield block()
            parts, count, size = [], 0, 0
        yield item
    if parts:
        yield block()
