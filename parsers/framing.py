"""Byte streams (plain or gzip) to numbered lines, surviving damaged archives.

Why not ``gzip.open(...)`` and ``for line in f``: when a gzip member is corrupt
or cut short, :mod:`gzip` raises and the bytes it had already inflated for the
current line are gone. Here inflation is driven by hand with :mod:`zlib`, so
every complete line before the damage is yielded, the incomplete tail is kept,
and the damage becomes one :class:`FileFault` instead of an exception.
Multi-member gzip (concatenated log files) is read whole.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator, Union

GZIP_MAGIC = b"\x1f\x8b"
READ_SIZE = 1 << 20
# Upper bound on bytes inflated per zlib call, so a small corrupt or malicious
# member cannot expand into gigabytes in one step.
INFLATE_STEP = 8 << 20
# A "line" longer than this is cut here while framing (it is a dead letter
# anyway, see LineParser's line-too-long); keeps memory bounded on files
# without newlines.
MAX_FRAMED_LINE = 16 << 20


@dataclass(frozen=True, slots=True)
class FileFault:
    """A problem with a whole file rather than with one line.

    ``position`` is the line number the fault stands in for (one past the last
    complete line) and ``partial`` holds the bytes after the last newline that
    could still be read, so nothing read is dropped.
    """

    reason: str
    detail: str
    position: int
    partial: bytes = b""


LineBatch = tuple[int, list[bytes]]
"""``(position of the first line, lines)``; positions are 1-based and consecutive."""


class _Damage(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _plain_chunks(first: bytes, stream: BinaryIO) -> Iterator[bytes]:
    yield first
    while True:
        try:
            data = stream.read(READ_SIZE)
        except OSError as exc:
            raise _Damage("unreadable-file", f"read failed: {exc}") from None
        if not data:
            return
        yield data


def _gunzip_chunks(first: bytes, stream: BinaryIO) -> Iterator[bytes]:
    inflater = zlib.decompressobj(wbits=31)
    member_started = False
    pending = first
    while True:
        if not pending:
            try:
                pending = stream.read(READ_SIZE)
            except OSError as exc:
                raise _Damage("unreadable-file", f"read failed: {exc}") from None
            if not pending:
                break
        member_started = True
        checkpoint = inflater.copy()
        try:
            out = inflater.decompress(pending, INFLATE_STEP)
        except zlib.error as exc:
            # zlib returns nothing from a call that fails; replay the same
            # input in small slices from the checkpoint to recover what
            # precedes the damage, then report it.
            yield from _inflate_until_damage(checkpoint, pending)
            raise _Damage("bad-gzip", f"corrupt gzip data: {exc}") from None
        pending = inflater.unconsumed_tail
        if out:
            yield out
        if inflater.eof:
            rest = inflater.unused_data + pending
            if rest and not rest.strip(b"\x00"):
                rest = b""  # zero padding after the last member is harmless
            inflater = zlib.decompressobj(wbits=31)
            member_started = False
            pending = rest
    if member_started and not inflater.eof:
        raise _Damage("truncated-gzip", "gzip stream ends before its end-of-member marker")


def _inflate_until_damage(inflater: "zlib._Decompress", data: bytes) -> Iterator[bytes]:
    step = 512
    for start in range(0, len(data), step):
        try:
            out = inflater.decompress(data[start : start + step])
        except zlib.error:
            return
        if out:
            yield out
        if inflater.eof:
            return


def iter_line_batches(stream: BinaryIO, name: str = "") -> Iterator[Union[LineBatch, FileFault]]:
    """Yield batches of raw lines (without ``\\n``) and at most one FileFault, last.

    Compression is detected from the magic bytes, not from the name; a file
    whose name ends in ``.gz`` but does not start like gzip is reported as
    ``bad-gzip`` rather than read as text (it is usually binary garbage).
    """
    try:
        first = stream.read(READ_SIZE)
    except OSError as exc:
        yield FileFault("unreadable-file", f"{name}: read failed: {exc}", 1)
        return
    if not first:
        yield FileFault("empty-file", f"{name}: file is empty", 1)
        return
    if first[:2] == GZIP_MAGIC:
        chunks = _gunzip_chunks(first, stream)
    elif name.endswith((".gz", ".gzip")):
        yield FileFault("bad-gzip", f"{name}: not a gzip file (starts with {first[:8]!r})", 1)
        return
    else:
        chunks = _plain_chunks(first, stream)

    next_position = 1
    tail = b""
    try:
        for chunk in chunks:
            if tail:
                chunk = tail + chunk
            lines = chunk.split(b"\n")
            tail = lines.pop()
            if len(tail) > MAX_FRAMED_LINE:
                lines.append(tail[:MAX_FRAMED_LINE])
                tail = b""  # the rest of an absurd line is skipped up to its newline
                chunks = _skip_to_newline(chunks, lines)
            if lines:
                yield next_position, lines
                next_position += len(lines)
    except _Damage as damage:
        yield FileFault(damage.reason, f"{name}: {damage.detail}", next_position, tail)
        return
    if tail:
        yield next_position, [tail]
        next_position += 1
    if next_position == 1:
        yield FileFault("empty-file", f"{name}: no lines after decompression", 1)


def _skip_to_newline(chunks: Iterator[bytes], lines: list[bytes]) -> Iterator[bytes]:
    """Continue ``chunks`` from just after the next newline."""
    for chunk in chunks:
        cut = chunk.find(b"\n")
        if cut >= 0:
            yield chunk[cut + 1 :]
            break
    yield from chunks


def iter_lines(stream: BinaryIO, name: str = "") -> Iterator[Union[tuple[int, bytes], FileFault]]:
    """Line-at-a-time view of :func:`iter_line_batches`."""
    for item in iter_line_batches(stream, name):
        if isinstance(item, FileFault):
            yield item
        else:
            position, lines = item
            for offset, line in enumerate(lines):
                yield position + offset, line
