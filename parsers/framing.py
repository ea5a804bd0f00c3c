"""Byte streams (plain or gzip) to numbered lines, for any input, damaged or not.

Why not ``gzip.open(...)`` and ``for line in f``: :mod:`gzip` raises at the
first damaged byte, drops what it had inflated for the current line and
cannot go on to the intact members after the damage. Here inflation is driven
by hand with :mod:`zlib` and every rule below holds whatever the bytes are.
Members of a stream that can seek (files, local or ``gs://``) are inflated
with ISA-L (the ``isal`` package, about twice as fast); one that does not end
cleanly is read again from its start with zlib, so the rules are zlib's
(see ``_GzipDecoder._member``).

Rules (the contract is in docs/parsers-api.md, "Readers"):

* **Lines** end at ``\\n``; the bytes are passed on unchanged (a ``\\r`` before
  the ``\\n`` stays, the line parser strips it). Bytes after the last newline
  are a last line.
* **gzip** is recognised by its magic bytes (``1f 8b``), or by a ``.gz`` /
  ``.gzip`` name. A gzip file is a sequence of members; the plaintexts of
  consecutive intact members form one text, so a line may span members.
* **Damage** — a member that zlib rejects (bad header, bad data, wrong CRC or
  length), a member cut short by the end of the file, or bytes between
  members that are not a member — becomes exactly one :class:`FileFault`.
  Lines inflated from a damaged member before zlib detected the damage are
  kept (zlib detects a changed byte at the latest at the member's CRC, so for
  a changed data byte these include the changed line). The fault keeps the
  cut line (``partial``) and the first :data:`MAX_FAULT_RAW_BYTES` raw bytes
  of the damaged region (``raw``). Reading resumes at the first gzip member
  header after the region's start that inflates cleanly (see
  :func:`_candidate_is_member`); text after a fault starts a new line.
  NUL bytes after the last member (tape padding) are ignored.
* **Positions**: every line and every fault takes the next position, from 1,
  so positions are contiguous and the same bytes always get the same
  positions, however the stream returns them and however the input is split
  into members.
* **Long lines**: a line of more than :data:`MAX_LINE_BYTES` bytes is passed
  on as its first ``MAX_LINE_BYTES + 1`` bytes — one line at its own
  position, longer than the limit, so the line parser dead-letters it as
  ``line-too-long`` — and the rest of it is skipped without being kept.

Memory is bounded whatever the input: about ``READ_SIZE`` + 2 ×
``RESYNC_WINDOW`` raw bytes, ``INFLATE_STEP`` bytes of plaintext per step,
and one line of at most ``MAX_LINE_BYTES + 1`` bytes.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import BinaryIO, Iterator, Optional, Union

try:  # ISA-L's inflate: the same plaintext as zlib's, about twice as fast
    from isal import isal_zlib
except ImportError:  # pragma: no cover - a runtime dependency; zlib alone stays correct
    isal_zlib = None

__all__ = [
    "FileFault",
    "LineBatch",
    "LineRun",
    "iter_line_batches",
    "iter_line_runs",
    "iter_lines",
    "small_plain_lines",
    "GZIP_MAGIC",
    "MAX_LINE_BYTES",
    "MAX_FAULT_RAW_BYTES",
    "READ_SIZE",
    "INFLATE_STEP",
]

GZIP_MAGIC = b"\x1f\x8b"
MEMBER_HEADER = GZIP_MAGIC + b"\x08"
"""Magic plus compression method 8 (deflate, the only one defined): what resynchronisation looks for."""

READ_SIZE = 1 << 20
"""Raw bytes asked of the stream per read."""

INFLATE_STEP = 1 << 20
"""Most plaintext bytes inflated per zlib call, so that a tiny member that
expands to gigabytes is handled a step at a time."""

MAX_LINE_BYTES = 65536
"""Longest line accepted, in bytes without the ``\\n``; real lines are under 2 KB."""

MAX_FAULT_RAW_BYTES = 65536
"""A fault keeps at most this many raw bytes of the damaged region, from its start."""

RESYNC_WINDOW = 1 << 20
"""How far back, before the point where zlib noticed the damage, the next member
header is looked for (a damaged member can be inflated past its own end)."""

REWIND_ALLOWANCE = 64 << 20
"""Looking back re-reads bytes already inflated. In total that may cost at most
this plus twice the bytes inflated so far; past that (only crafted input gets
there, e.g. members nested in members) the search starts where the damage was
noticed, so the work stays linear in the file's size."""

VERIFY_OUTPUT = 64 << 10
VERIFY_INPUT = 256 << 10
"""A header found by scanning is accepted once it inflates this much plaintext,
or this much input, without error, or ends cleanly."""

MAX_HEADER_TEXT = 1024
"""A found header whose extra field is longer, or whose file name or comment does
not end within this many bytes, is not accepted (so that a false header costs
little, however many there are)."""

_MAX_EXPANSION = 1100
"""More than deflate's largest expansion (1032:1) plus a pending match."""

BATCH_BYTES = 256 << 10
"""Lines are handed on in batches of about this many bytes."""


@dataclass(frozen=True, slots=True)
class FileFault:
    """A damaged region of a file (or the whole file) rather than one line.

    ``position`` is the position the fault takes in the file's sequence of
    lines and faults. ``partial`` holds the bytes of the line the damage cut
    (after the last newline, at most ``MAX_LINE_BYTES + 1``) and ``raw`` the
    first :data:`MAX_FAULT_RAW_BYTES` raw bytes of the damaged region, so
    nothing read is dropped without a trace.
    """

    reason: str
    detail: str
    position: int
    partial: bytes = b""
    raw: bytes = b""


LineBatch = tuple[int, list[bytes]]
"""``(position of the first line, lines)``; positions are 1-based and consecutive."""


class _Unreadable(Exception):
    """The stream itself failed; nothing after this can be read."""


@dataclass(frozen=True, slots=True)
class _Break:
    """A damaged region, as found by the decoder (framing adds its position)."""

    reason: str
    detail: str
    raw: bytes


class _Reader:
    """``stream.read`` that says end-of-file once and turns failures into :class:`_Unreadable`."""

    def __init__(self, stream: BinaryIO, read_size: int) -> None:
        self._stream = stream
        self._read_size = read_size
        self.at_eof = False
        self.origin = _start_offset(stream)  # None: the stream cannot go back

    def rewind(self, offset: int) -> bool:
        """Read again from ``offset`` bytes after where reading started; False when the stream cannot."""
        if self.origin is None:
            return False
        try:
            self._stream.seek(self.origin + offset)
        except Exception:  # a stream that said it could seek and cannot
            self.origin = None
            return False
        self.at_eof = False
        return True

    def read(self) -> bytes:
        if self.at_eof:
            return b""
        try:
            data = self._stream.read(self._read_size)
        except Exception as exc:  # OSError locally; the gs:// client raises its own types
            raise _Unreadable(f"read failed: {exc}") from None
        if not data:
            self.at_eof = True
            return b""
        return bytes(data)


def _start_offset(stream: BinaryIO) -> Optional[int]:
    """Where a seekable stream stands before it is read (None for pipes, sockets and the like)."""
    try:
        return stream.tell() if stream.seekable() else None
    except Exception:
        return None


def _inflate_before_error(checkpoint: "zlib._Decompress", data: "bytes | memoryview", cap: int) -> tuple[bytes, int]:
    """What ``checkpoint`` inflates from ``data`` before the byte where zlib fails, and how many bytes that took.

    zlib returns nothing from a call that fails, so the longest prefix of
    ``data`` that does not fail is found by bisection (failing is monotone in
    the prefix length) and inflated again. The result depends only on the
    bytes, not on how they were fed, which keeps positions after a damaged
    member the same for any read or step size.
    """
    good, bad = 0, len(data)
    while bad - good > 1:
        middle = (good + bad) // 2
        try:
            checkpoint.copy().decompress(data[:middle], cap)
        except zlib.error:
            bad = middle
        else:
            good = middle
    try:
        return checkpoint.copy().decompress(data[:good], cap), good
    except zlib.error:  # good == 0 and even no input fails: nothing to recover
        return b"", 0


def _skip_bytes(pieces: Iterator[bytes], skip: int) -> Iterator[bytes]:
    """``pieces`` without their first ``skip`` bytes; returns what ``pieces`` returns."""
    while True:
        try:
            out = next(pieces)
        except StopIteration as done:
            return done.value
        if skip >= len(out):
            skip -= len(out)
            continue
        if skip:
            out, skip = out[skip:], 0
        yield out


_GARBAGE, _CORRUPT, _UNFINISHED = "garbage", "corrupt", "unfinished"
"""Kinds of damaged region: bytes that are not a member, a member zlib rejects,
a member still open at the end of the file."""


class _GzipDecoder:
    """Raw gzip bytes to plaintext pieces and :class:`_Break` markers.

    The raw bytes live in one buffer ``buf`` that starts at file offset
    ``base``; ``cursor`` is the offset of the next byte to inflate and
    ``region`` the start of the current member (or damaged region). Bytes
    more than :data:`RESYNC_WINDOW` before the cursor are dropped; the first
    bytes of the region are copied to ``head`` first, for its fault.
    """

    def __init__(self, reader: _Reader, first: bytes, name: str, step: int) -> None:
        self.reader = reader
        self.name = name
        self.step = step
        self.buf = bytearray(first)
        self.base = 0
        self.cursor = 0
        self.region = 0
        self.head: Optional[bytes] = None
        self.furthest = 0  # the furthest offset zlib inflated without error
        self.rewound = 0  # bytes re-read by looking back after damage

    # ------------------------------------------------------------------ buffer

    @property
    def end(self) -> int:
        return self.base + len(self.buf)

    def _read_more(self) -> bool:
        data = self.reader.read()
        if not data:
            return False
        self.buf += data
        return True

    def _fill(self, upto: int) -> None:
        """Read until the buffer reaches file offset ``upto`` or the file ends."""
        while self.end < upto and self._read_more():
            pass

    def _drop_before(self, offset: int) -> None:
        """Forget raw bytes before ``offset`` (amortised), keeping the region's head."""
        if offset - self.base < RESYNC_WINDOW:
            return
        if self.head is None and self.region < offset:
            start = self.region - self.base
            self.head = bytes(self.buf[start : start + MAX_FAULT_RAW_BYTES])
        del self.buf[: offset - self.base]
        self.base = offset

    def _start_region(self, offset: int) -> None:
        self.region = offset
        self.head = None

    def _region_raw(self, stop: int) -> bytes:
        """The first raw bytes of the current region, up to file offset ``stop``."""
        limit = min(stop - self.region, MAX_FAULT_RAW_BYTES)
        if self.head is not None:
            return self.head[:limit]
        start = self.region - self.base
        return bytes(self.buf[start : start + limit])

    # ------------------------------------------------------------------ decoding

    def pieces(self) -> Iterator[Union[bytes, _Break]]:
        while True:
            self._fill(self.cursor + 2)
            if self.cursor == self.end:
                return
            self._start_region(self.cursor)
            lead = bytes(self.buf[self.cursor - self.base : self.cursor - self.base + 2])
            if GZIP_MAGIC.startswith(lead):
                damage = yield from self._member()
                if damage is None:
                    continue
                kind, why = damage
            elif lead[:1] == b"\x00" and self._only_nul_to_end():
                return
            else:
                kind, why = _GARBAGE, ""
            resumed = yield from self._resync(kind, why)
            if not resumed:
                return

    def _member(self) -> Iterator[bytes]:
        """Inflate the member at the cursor; return None when it ends cleanly, else (kind, why).

        With ISA-L and a stream that can seek, the member is inflated by
        ISA-L first. ISA-L cannot copy its state, which the damage rules need
        (:func:`_inflate_before_error`), so a member that does not end
        cleanly is read again from its start with zlib, which yields only what
        comes after the plaintext ISA-L already gave: the damage path is
        zlib's, byte for byte, and an intact member never pays for it.
        """
        if isal_zlib is not None and self.reader.origin is not None and not self._reserved_flags(self.cursor):
            start, furthest = self.cursor, self.furthest
            given = yield from self._member_isal()
            if given is None:
                return None
            if self.reader.rewind(start):
                self.buf, self.base, self.cursor, self.furthest = bytearray(), start, start, furthest
                return (yield from _skip_bytes(self._member_zlib(), given))
            return _CORRUPT, "the stream could not be read again"  # pragma: no cover - seekable streams rewind
        return (yield from self._member_zlib())

    def _reserved_flags(self, start: int) -> bool:
        """Whether the gzip header at ``start`` sets a reserved flag bit (``0xE0``).

        zlib rejects such a header as damage; ISA-L accepts it. So such a
        member goes to zlib straight away and the damage rules stay zlib's
        (found by the framing property test: an empty member with FLG 0x20).
        """
        self._fill(start + 4)
        head = self.buf[start - self.base : start - self.base + 4]
        return len(head) == 4 and bool(head[3] & 0xE0)

    def _member_isal(self) -> Iterator[bytes]:
        """ISA-L over the member at the cursor: None when it ends cleanly, else how many bytes it yielded."""
        inflater = isal_zlib.decompressobj(wbits=31)
        step = self.step
        given = 0
        while True:
            if self.cursor == self.end and not self._read_more():
                return given  # cut short: zlib decides what the rest of it gives
            with memoryview(self.buf) as whole, whole[self.cursor - self.base :] as data:
                fed = len(data)
                try:
                    out = inflater.decompress(data, step)
                except isal_zlib.error:
                    return given
            left = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
            if not out and fed == len(left) and not inflater.eof:
                return given
            self.cursor += fed - len(left)
            if out:
                given += len(out)
                yield out
            if inflater.eof:
                self.furthest = max(self.furthest, self.cursor)
                return None
            self._drop_before(self.cursor - RESYNC_WINDOW)

    def _member_zlib(self) -> Iterator[bytes]:
        """zlib over the member at the cursor, with a checkpoint per step for the damage rules."""
        inflater = zlib.decompressobj(wbits=31)
        step = self.step
        while True:
            if self.cursor == self.end and not self._read_more():
                tail = inflater.decompress(b"", step)  # output zlib still holds (the rest of a match)
                while tail:
                    yield tail
                    tail = inflater.decompress(b"", step)
                return _UNFINISHED, "it does not end before the end of the file"
            checkpoint = inflater.copy()
            failure = None
            with memoryview(self.buf) as whole, whole[self.cursor - self.base :] as data:
                fed = len(data)
                try:
                    out = inflater.decompress(data, step)
                except zlib.error as exc:
                    out, good = _inflate_before_error(checkpoint, data, step)
                    failure = str(exc)
            if failure is not None:
                self.furthest = max(self.furthest, self.cursor + good)
                if out:
                    yield out
                return _CORRUPT, failure
            left = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
            if not out and fed == len(left) and not inflater.eof:
                return _CORRUPT, "zlib made no progress"  # never seen; guards against a loop
            self.cursor += fed - len(left)
            self.furthest = max(self.furthest, self.cursor)
            if out:
                yield out
            if inflater.eof:
                return None
            self._drop_before(self.cursor - RESYNC_WINDOW)

    def _only_nul_to_end(self) -> bool:
        """Whether everything from the cursor to the end of the file is NUL bytes."""
        offset = self.cursor
        while True:
            rest = self.buf[offset - self.base :]
            if rest.strip(b"\x00"):
                return False
            offset = self.end
            self._drop_before(offset - RESYNC_WINDOW)
            if not self._read_more():
                self.cursor = self.end
                return True

    def _resync(self, kind: str, why: str) -> Iterator[_Break]:
        """Yield the fault of the damaged region that starts at ``region``; find where reading resumes.

        The next member header is looked for from just after the region's
        start (a damaged member may have been inflated into the members after
        it), as far back as the buffer reaches. Returns True with the cursor
        on that member, or False when the region runs to the end of the file.
        """
        region = self.region
        scan = region + 1
        rewind = max(0, self.furthest - scan)
        if self.rewound + rewind > REWIND_ALLOWANCE + 2 * self.furthest:
            scan = self.furthest  # crafted input: do not look back again
        else:
            self.rewound += rewind
        scan = max(scan, self.base)
        resume = None
        while resume is None:
            hit = self.buf.find(MEMBER_HEADER, scan - self.base)
            if hit >= 0:
                candidate = self.base + hit
                if self._candidate_is_member(candidate):
                    resume = candidate
                else:
                    scan = candidate + 1
                continue
            scan = max(scan, self.end - (len(MEMBER_HEADER) - 1))
            self._drop_before(scan)
            if not self._read_more():
                break
        stop = self.end if resume is None else resume
        where = f"to the next member at byte {resume}" if resume is not None else f"to the end of the file (byte {stop})"
        if kind == _GARBAGE:
            reason, detail = "bad-gzip", f"{stop - region} bytes at byte {region} are not a gzip member; skipped {where}"
        elif kind == _UNFINISHED and resume is None:
            reason, detail = "truncated-gzip", f"gzip member at byte {region} is cut short by the end of the file (byte {stop})"
        else:
            reason, detail = "bad-gzip", f"corrupt gzip member at byte {region} ({why}); skipped {where}"
        yield _Break(reason, f"{self.name}: {detail}", self._region_raw(stop))
        if resume is None:
            self.cursor = self.end
            return False
        self.cursor = resume
        return True

    def _candidate_is_member(self, start: int) -> bool:
        """Whether a member header found by scanning starts a real member.

        Accepted when its header is plausible (:meth:`_header_end`)
        and zlib inflates from it, without error, :data:`VERIFY_OUTPUT` bytes
        of plaintext, or :data:`VERIFY_INPUT` bytes of input, or the whole
        member. A candidate the end of the file cuts short before that is not
        accepted (found by fuzzing: a false header inside a damaged header,
        whose stored block ran to the end, was read as a second member and
        re-read the members after it). Compressed
        data contains ``1f 8b 08`` by chance about once per 16 MiB; such false
        headers fail within a few bytes, so input is fed in growing slices
        and a slice too small to reach ``VERIFY_OUTPUT`` needs no exact count
        (deflate expands at most 1032 times). The answer depends only on the
        bytes.
        """
        header_end = self._header_end(start)
        if header_end is None:
            return False
        inflater = zlib.decompressobj(wbits=31)
        offset = start
        produced = 0
        size = header_end - start + 32
        while True:
            limit = start + VERIFY_INPUT
            if offset >= limit:
                return True
            if offset == self.end and not self._read_more():
                return False  # cut short before proving itself: part of the damaged region
            budget = VERIFY_OUTPUT - produced
            stop = min(self.end, limit, offset + size)
            size *= 4
            exact = produced + _MAX_EXPANSION * (stop - max(offset, header_end)) >= VERIFY_OUTPUT  # a header inflates to nothing
            checkpoint = inflater.copy() if exact else None
            with memoryview(self.buf) as whole, whole[offset - self.base : stop - self.base] as data:
                fed = len(data)
                try:
                    out = inflater.decompress(data, budget)
                except zlib.error:
                    if checkpoint is None:
                        return False
                    return produced + len(_inflate_before_error(checkpoint, data, budget)[0]) >= VERIFY_OUTPUT
            produced += len(out)
            if inflater.eof or produced >= VERIFY_OUTPUT:
                return True
            offset += fed - len(inflater.unconsumed_tail)

    def _header_end(self, start: int) -> Optional[int]:
        """Where the gzip header at ``start`` ends, if it is plausible; else None.

        The RFC 1952 header checks zlib would make, with bounds on the optional fields:

        Reserved flag bits must be clear; the extra field must be at most
        :data:`MAX_HEADER_TEXT` bytes and a name or comment must end within
        that many (zlib would read on, however far, for every false header);
        the header must end before the file does.
        """
        self._fill(start + 12)
        fixed = bytes(self.buf[start - self.base : start - self.base + 12])
        if len(fixed) < 10 or fixed[3] & 0xE0:
            return None
        flags = fixed[3]
        offset = start + 10
        if flags & 0x04:  # FEXTRA: two length bytes, then that many
            if len(fixed) < 12:
                return None
            extra = int.from_bytes(fixed[10:12], "little")
            if extra > MAX_HEADER_TEXT:
                return None
            offset += 2 + extra
        for flag in (0x08, 0x10):  # FNAME, FCOMMENT: text up to a NUL
            if flags & flag:
                self._fill(offset + MAX_HEADER_TEXT)
                nul = self.buf.find(b"\x00", offset - self.base, offset + MAX_HEADER_TEXT - self.base)
                if nul < 0:
                    return None
                offset = self.base + nul + 1
        if flags & 0x02:  # FHCRC
            offset += 2
        self._fill(offset + 1)
        return offset if offset < self.end else None


def _plain_pieces(reader: _Reader, first: bytes) -> Iterator[bytes]:
    yield first
    while True:
        data = reader.read()
        if not data:
            return
        yield data


def _cut(line: bytes, max_line: int) -> bytes:
    return line if len(line) <= max_line else line[: max_line + 1]


LineRun = tuple[int, bytes, int]
"""``(position of the first line, the lines each ended by "\\n", how many)``: a batch as one buffer."""


def _lines_fit(tail: bytes, piece: bytes, end: int, max_line: int) -> bool:
    """Whether every line of ``tail + piece[:end]`` (``piece[end - 1]`` is ``\\n``) is at most ``max_line`` bytes.

    Without splitting or copying: the first line is measured, and a longer
    line anywhere would hold a newline-free run of ``max_line + 1`` bytes,
    which covers a whole aligned window of ``(max_line + 2) // 2`` bytes; so
    every such window holding a newline (one ``find`` each, stopping at the
    first) proves there is none.
    """
    if len(tail) + piece.find(b"\n", 0, end) > max_line:
        return False
    window = (max_line + 2) // 2
    for start in range(0, end, window):
        if piece.find(b"\n", start, min(start + window, end)) < 0:
            return False
    return True


def _frame(
    pieces: Iterator[Union[bytes, _Break]], name: str, max_line: int
) -> Iterator[Union[LineRun, FileFault]]:
    """Plaintext pieces and breaks → runs of lines and faults with positions (see the module rules).

    A run is one buffer of whole lines, so the columnar parser can view it
    without a Python object per line; a piece's lines are split only when
    one of them is over ``max_line`` (rare: to cut it).
    """
    position = 1
    chunks: list[Union[bytes, memoryview]] = []  # joined, whole lines each ended by "\n" (a line may span two)
    count = 0  # lines in chunks
    pending_bytes = 0
    tail = b""  # the line being assembled, at most max_line + 1 bytes
    skipping = False  # tail is already over the limit; the rest of the line is dropped
    emitted = False
    try:
        for piece in pieces:
            if type(piece) is _Break:
                if count:
                    yield position, b"".join(chunks), count
                    position += count
                    chunks, count, pending_bytes = [], 0, 0
                yield FileFault(piece.reason, piece.detail, position, tail, piece.raw)
                position += 1
                tail, skipping, emitted = b"", False, True
                continue
            if skipping:
                newline = piece.find(b"\n")
                if newline < 0:
                    continue
                chunks.append(tail + b"\n")
                count += 1
                piece = piece[newline + 1 :]
                tail, skipping = b"", False
            last = piece.rfind(b"\n")
            if last < 0:
                tail += piece
            else:
                end = last + 1
                if _lines_fit(tail, piece, end, max_line):
                    # the piece's whole lines go in as they are (a view, not a copy): the run's
                    # join is the one copy of these bytes framing makes
                    if tail:
                        chunks.append(tail)
                    chunks.append(piece if end == len(piece) else memoryview(piece)[:end])
                    count += piece.count(b"\n", 0, end)
                else:
                    parts = piece[:last].split(b"\n")
                    parts[0] = tail + parts[0]
                    parts = [_cut(part, max_line) for part in parts]
                    chunks.append(b"\n".join(parts) + b"\n")
                    count += len(parts)
                tail = piece[end:]
            if len(tail) > max_line:
                tail, skipping = tail[: max_line + 1], True
            pending_bytes += len(piece)
            if pending_bytes >= BATCH_BYTES and count:
                yield position, b"".join(chunks), count
                position += count
                chunks, count, pending_bytes, emitted = [], 0, 0, True
    except _Unreadable as exc:
        if count:
            yield position, b"".join(chunks), count
            position += count
        yield FileFault("unreadable-file", f"{name}: {exc}", position, tail)
        return
    if tail or skipping:
        chunks.append(tail + b"\n")
        count += 1
    if count:
        yield position, b"".join(chunks), count
    elif not emitted:
        yield FileFault("empty-file", f"{name}: no lines after decompression", 1)


def iter_line_runs(
    stream: BinaryIO,
    name: str = "",
    *,
    max_line: int = MAX_LINE_BYTES,
    read_size: int = READ_SIZE,
    inflate_step: int = INFLATE_STEP,
) -> Iterator[Union[LineRun, FileFault]]:
    """:func:`iter_line_batches` with each batch as one buffer: ``(position, lines ended by "\\n", count)``.

    The same lines, positions and faults (it is what iter_line_batches
    splits); for readers that parse whole buffers (:class:`~haulage.parsers.line_block.LineBlock`).
    """
    reader = _Reader(stream, read_size)
    first = b""
    try:
        while len(first) < 2:
            data = reader.read()
            if not data:
                break
            first += data
    except _Unreadable as exc:
        yield FileFault("unreadable-file", f"{name}: {exc}", 1, first)
        return
    if not first:
        yield FileFault("empty-file", f"{name}: file is empty", 1)
        return
    if first[:2] == GZIP_MAGIC or name.endswith((".gz", ".gzip")):
        pieces: Iterator[Union[bytes, _Break]] = _GzipDecoder(reader, first, name, inflate_step).pieces()
    else:
        pieces = _plain_pieces(reader, first)
    yield from _frame(pieces, name, max_line)


def iter_line_batches(
    stream: BinaryIO,
    name: str = "",
    *,
    max_line: int = MAX_LINE_BYTES,
    read_size: int = READ_SIZE,
    inflate_step: int = INFLATE_STEP,
) -> Iterator[Union[LineBatch, FileFault]]:
    """Yield batches of raw lines (without ``\\n``) and faults, in file order.

    Faults come where the damage is, and reading goes on after them (see the
    module docstring for every rule). An unreadable stream ends with an
    ``unreadable-file`` fault; a file without any line or fault gives one
    ``empty-file`` fault. ``max_line``, ``read_size`` and ``inflate_step``
    exist for tests; the results do not depend on the last two.
    """
    for item in iter_line_runs(stream, name, max_line=max_line, read_size=read_size, inflate_step=inflate_step):
        if type(item) is tuple:
            position, data, _ = item
            lines = data.split(b"\n")
            lines.pop()  # after the last "\n"
            yield position, lines
        else:
            yield item


def small_plain_lines(data: bytes, name: str = "", max_line: int = MAX_LINE_BYTES) -> Optional[list[bytes]]:
    """The lines of a small uncompressed buffer as :func:`iter_line_batches` gives them, or None.

    Why: with line delivery every Pub/Sub message is one log line, and the
    full reader (stream, pieces, framing) costs several times what parsing
    the line does. The rule: when ``data`` is neither gzip (by its magic
    bytes or ``name``) nor empty, and no longer than ``max_line`` (so no
    line in it can be over the limit, and it is one batch), its lines are
    ``data`` split at ``\n``, the empty piece after a final ``\n`` left
    out, and they are the one batch iter_line_batches yields, at position
    1. Otherwise None: the caller reads it with iter_line_batches.
    """
    if not data or len(data) > min(max_line, BATCH_BYTES) or data[:2] == GZIP_MAGIC or name.endswith((".gz", ".gzip")):
        return None
    lines = data.split(b"\n")
    if not lines[-1]:
        lines.pop()
    return lines


def iter_lines(stream: BinaryIO, name: str = "", **options: int) -> Iterator[Union[tuple[int, bytes], FileFault]]:
    """Line-at-a-time view of :func:`iter_line_batches`: ``(position, line)`` or a fault."""
    for item in iter_line_batches(stream, name, **options):
        if isinstance(item, FileFault):
            yield item
        else:
            position, lines = item
            for offset, line in enumerate(lines):
                yield position + offset, line
