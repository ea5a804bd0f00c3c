"""An independent model of what framing must produce for a generated gzip file.

Used by tests/test_framing_properties.py and the structured mode of the fuzz
target (tests/fuzz/fuzz_framing.py). Nothing here calls haulage: members are
built by hand (RFC 1952 header, raw deflate from zlib, CRC32 + ISIZE
trailer), whether a member is intact is decided by inflating it on its own,
and the expected lines come from the plaintext of the intact members.

A generated file is a list of parts: members (maybe damaged) and garbage
(bytes that are not a member). Between two damaged parts there is always at
least one intact member, so each damaged part must give exactly one fault.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Optional, Sequence

__all__ = ["gzip_member", "Part", "Layout", "Expected", "expected_for", "check_items", "items_of"]

FTEXT, FHCRC, FEXTRA, FNAME, FCOMMENT = 1, 2, 4, 8, 16


def gzip_member(
    plain: bytes,
    level: int = 6,
    *,
    name: Optional[bytes] = None,
    comment: Optional[bytes] = None,
    extra: Optional[bytes] = None,
    header_crc: bool = False,
    mtime: int = 0,
    text_flag: bool = False,
) -> bytes:
    """One gzip member (RFC 1952) with the optional header fields asked for."""
    flags = (FTEXT if text_flag else 0) | (FHCRC if header_crc else 0)
    flags |= (FEXTRA if extra is not None else 0) | (FNAME if name is not None else 0) | (FCOMMENT if comment is not None else 0)
    header = b"\x1f\x8b\x08" + bytes([flags]) + struct.pack("<I", mtime & 0xFFFFFFFF) + b"\x00\xff"
    if extra is not None:
        header += struct.pack("<H", len(extra)) + extra
    if name is not None:
        header += name.replace(b"\x00", b"") + b"\x00"
    if comment is not None:
        header += comment.replace(b"\x00", b"") + b"\x00"
    if header_crc:
        header += struct.pack("<H", zlib.crc32(header) & 0xFFFF)
    deflater = zlib.compressobj(level, zlib.DEFLATED, -15)
    body = deflater.compress(plain) + deflater.flush()
    return header + body + struct.pack("<II", zlib.crc32(plain), len(plain) & 0xFFFFFFFF)


def inflates_to(raw: bytes, plain: bytes) -> bool:
    """Whether ``raw`` on its own is exactly one member whose plaintext is ``plain``."""
    inflater = zlib.decompressobj(wbits=31)
    try:
        out = inflater.decompress(raw)
    except zlib.error:
        return False
    return inflater.eof and not inflater.unused_data and out == plain


@dataclass
class Part:
    """A piece of the file: a member (``plain`` is what it was built from) or garbage."""

    raw: bytes
    plain: Optional[bytes] = None  # None: garbage
    truncated: bool = False  # a member cut short by the end of the file

    @property
    def intact(self) -> bool:
        return self.plain is not None and not self.truncated and inflates_to(self.raw, self.plain)


@dataclass
class Layout:
    parts: list[Part]
    padding: int = 0  # NUL bytes after the last part

    def data(self) -> bytes:
        return b"".join(p.raw for p in self.parts) + b"\x00" * self.padding

    def ambiguous(self) -> bool:
        """Whether a damaged member is, in the file, a valid member that ends elsewhere.

        A changed length in a header (the extra field's, say) can make a
        member swallow the parts after it and still end with a matching CRC:
        by gzip's rules those bytes are then one intact member, and no
        reader can tell. Such layouts are left out of the comparison.
        """
        data = self.data()
        offset = 0
        for part in self.parts:
            if part.plain is not None and not part.intact:
                inflater = zlib.decompressobj(wbits=31)
                try:
                    inflater.decompress(data[offset:])
                except zlib.error:
                    pass
                else:
                    if inflater.eof:
                        return True
            offset += len(part.raw)
        return False


def split_lines(text: bytes, max_line: int) -> tuple[list[bytes], bytes]:
    """Complete lines (cut to ``max_line + 1`` bytes when longer than ``max_line``) and the rest."""
    parts = text.split(b"\n")
    rest = parts.pop()
    return [p if len(p) <= max_line else p[: max_line + 1] for p in parts], rest


@dataclass
class Segment:
    """Intact text up to a damaged part (or to the end when ``damage`` is None)."""

    text: bytes
    damage: Optional[Part] = None


@dataclass
class Expected:
    segments: list[Segment] = field(default_factory=list)


def expected_for(layout: Layout) -> Expected:
    """Cut the file's text at each damaged part (a damaged part never follows another)."""
    segments: list[Segment] = []
    text = b""
    previous_damaged = False
    for part in layout.parts:
        if part.plain is not None and not part.truncated and part.intact:
            text += part.plain
            previous_damaged = False
            continue
        if part.plain is None and not part.raw:
            continue
        if part.plain is None and layout.parts[-1] is part and not part.raw.strip(b"\x00"):
            continue  # NUL bytes after the last member are padding
        assert not previous_damaged, "layouts must not put two damaged parts side by side"
        segments.append(Segment(text, part))
        text = b""
        previous_damaged = True
    segments.append(Segment(text))
    return Expected(segments)


Item = tuple  # ("line", position, bytes) or ("fault", position, reason, partial, raw)


def items_of(batches_and_faults) -> list[Item]:
    """Flatten iter_line_batches output into items with positions."""
    items: list[Item] = []
    for entry in batches_and_faults:
        if hasattr(entry, "reason"):
            items.append(("fault", entry.position, entry.reason, entry.partial, entry.raw))
        else:
            first, lines = entry
            items.extend(("line", first + i, line) for i, line in enumerate(lines))
    return items


def check_items(items: Sequence[Item], layout: Layout, max_line: int, raw_limit: int) -> None:
    """Assert that framing's items are what the layout must give (AssertionError says what differs)."""
    expected = expected_for(layout)
    positions = [item[1] for item in items]
    assert positions == list(range(1, len(items) + 1)), f"positions not contiguous from 1: {positions[:20]}"
    faults = [i for i, item in enumerate(items) if item[0] == "fault"]
    real_faults = [i for i in faults if items[i][2] != "empty-file"]
    damaged = [s for s in expected.segments if s.damage is not None]
    if not damaged and not any(s.text for s in expected.segments):
        assert [item[2] for item in items if item[0] == "fault"] == ["empty-file"], items
        assert len(items) == 1
        return
    assert len(real_faults) == len(faults) == len(damaged), (
        f"{len(faults)} faults for {len(damaged)} damaged parts: {[items[i][2:3] for i in faults]}"
    )
    start = 0
    for segment, fault_index in zip(expected.segments, real_faults + [len(items)]):
        got = [item[2] for item in items[start:fault_index]]
        assert all(item[0] == "line" for item in items[start:fault_index])
        lines, rest = split_lines(segment.text, max_line)
        if segment.damage is None:
            if rest:
                lines.append(rest[: max_line + 1])
            assert got == lines, _diff(got, lines)
            break
        assert got[: len(lines)] == lines, _diff(got[: len(lines)], lines)
        fault = items[fault_index]
        damage = segment.damage
        assert fault[2] in ("bad-gzip", "truncated-gzip"), fault[2]
        if damage.plain is None:
            assert fault[2] == "bad-gzip" or damage is layout.parts[-1]
        if damage.truncated:
            # a member cut short: what it gave is a prefix of its true lines
            assert fault[2] == "truncated-gzip", fault[2]
            true_lines, true_rest = split_lines(segment.text + damage.plain, max_line)
            extra = got[len(lines):]
            assert extra == true_lines[len(lines) : len(lines) + len(extra)], _diff(extra, true_lines[len(lines):])
            following = (true_lines + [true_rest[: max_line + 1]])[len(lines) + len(extra)]
            assert following.startswith(fault[3]) or fault[3] == following[: max_line + 1], (fault[3][:80], following[:80])
        if damage is not layout.parts[-1] and len(damage.raw) > 0:
            # the region runs from the damaged part's start to the next member: its raw bytes are kept
            assert fault[4] == damage.raw[:raw_limit], (fault[4][:40], damage.raw[:40])
        start = fault_index + 1


def _diff(got: list[bytes], want: list[bytes]) -> str:
    for i, (a, b) in enumerate(zip(got, want)):
        if a != b:
            return f"line {i}: got {a[:60]!r} want {b[:60]!r} (counts {len(got)} / {len(want)})"
    return f"counts differ: got {len(got)} want {len(want)}; first extra: {(got[len(want):] or want[len(got):])[:2]!r}"
