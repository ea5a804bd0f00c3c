"""Framing (parsers/framing.py): the damage that was measured, as regressions.

The general rules are proven by tests/test_framing_properties.py (hypothesis)
and the fuzz target in tests/fuzz/; here are the concrete cases from issue 10
and the boundaries of the constants (read size, inflate step, resync window),
with the sizes that made the old reader fail.
"""

from __future__ import annotations

import io
import itertools
import zlib

import pytest

from haulage.parsers import LineParser, Origin
from haulage.parsers import framing
from haulage.parsers.framing import MAX_FAULT_RAW_BYTES, MAX_LINE_BYTES, FileFault, iter_line_batches, iter_lines
from haulage.parsers.lines import fault_dead_letter
from support.framing_oracle import gzip_member, items_of


def read(data: bytes, name: str = "t.log.gz", limit: int | None = None, **options) -> list:
    """Items (("line", pos, bytes) / ("fault", pos, reason, partial, raw)); at most ``limit`` batches."""
    batches = iter_line_batches(io.BytesIO(data), name, **options)
    return items_of(itertools.islice(batches, limit))


def lines_of(items) -> list[bytes]:
    return [item[2] for item in items if item[0] == "line"]


def faults_of(items) -> list[tuple]:
    return [item for item in items if item[0] == "fault"]


COMPRESSIBLE = b"x" * 99 + b"\n"


def test_very_compressible_member_then_small_member_gives_each_line_once():
    # measured: ~18 MB of text in one member, then 3 lines in another → the 3 lines came twice
    big = gzip_member(COMPRESSIBLE * 180_000, 9)
    small = gzip_member(b"l1\nl2\nl3\n")
    items = read(big + small, limit=10_000)
    assert not faults_of(items)
    lines = lines_of(items)
    assert len(lines) == 180_003
    assert lines[-4:] == [COMPRESSIBLE[:-1], b"l1", b"l2", b"l3"]
    assert [item[1] for item in items] == list(range(1, 180_004))


def test_very_compressible_member_then_big_member_ends():
    # measured: followed by a 40,000-line member, millions of lines until killed
    tail_lines = [b"line %d" % i for i in range(40_000)]
    data = gzip_member(COMPRESSIBLE * 180_000, 9) + gzip_member(b"\n".join(tail_lines) + b"\n")
    items = read(data, limit=10_000)  # a bound so a regression fails instead of running forever
    assert not faults_of(items)
    lines = lines_of(items)
    assert len(lines) == 220_000
    assert lines[180_000:] == tail_lines


@pytest.mark.parametrize("step", [1, 7, 4096])
def test_small_inflate_steps_and_reads_change_nothing(step):
    members = [gzip_member(b"a\nbb\n" * 50, 9), gzip_member(b"ccc\nd"), gzip_member(b"\n" * 3), gzip_member(b"e\n")]
    want = read(b"".join(members))
    assert lines_of(want) == [b"a", b"bb"] * 50 + [b"ccc", b"d", b"", b"", b"e"]
    assert read(b"".join(members), inflate_step=step, read_size=step + 2) == want


def corrupt(member: bytes) -> bytes:
    """The member with its deflate data damaged in the middle (zlib rejects it)."""
    middle = len(member) // 2
    return member[:middle] + bytes(b ^ 0xFF for b in member[middle : middle + 8]) + member[middle + 8 :]


def test_corrupt_member_in_the_middle_keeps_the_members_after_it():
    first = gzip_member(b"".join(b"first %d\n" % i for i in range(100)))
    bad_plain = b"".join(b"bad %d %s\n" % (i, b"q" * (i % 50)) for i in range(2000))
    bad = corrupt(gzip_member(bad_plain))
    with pytest.raises(zlib.error):
        zlib.decompress(bad, 31)
    last = gzip_member(b"".join(b"last %d\n" % i for i in range(100)))
    items = read(first + bad + last)
    faults = faults_of(items)
    assert len(faults) == 1
    fault = faults[0]
    assert fault[2] == "bad-gzip"
    assert fault[4] == bad[:MAX_FAULT_RAW_BYTES]  # the undecoded member's raw bytes are kept
    lines = lines_of(items)
    assert lines[:100] == [b"first %d" % i for i in range(100)]
    assert lines[-100:] == [b"last %d" % i for i in range(100)]
    # what came from the damaged member starts with its true lines (the damage is in its second
    # half; after it zlib may inflate changed bytes until it notices)
    salvaged = lines[100:-100]
    assert salvaged[:800] == bad_plain.split(b"\n")[:800]
    # positions: contiguous over lines and the fault, the fault where the damage is
    assert [item[1] for item in items] == list(range(1, len(items) + 1))
    assert fault[1] == 100 + len(salvaged) + 1


def test_fault_dead_letter_carries_cut_line_and_raw_bytes_escaped():
    bad = corrupt(gzip_member(b"x" * 5000 + b"\n" + b"cut line without end" * 400))
    fault = next(item for item in iter_lines(io.BytesIO(gzip_member(b"ok\n") + bad), "f.gz") if isinstance(item, FileFault))
    row = fault_dead_letter(Origin.for_file("f.gz"), fault, "2026-10-01T00:00:00Z").row
    assert row["source"] == f"f.gz:{fault.position}"
    assert row["error"].startswith("bad-gzip: f.gz: corrupt gzip member at byte ")
    assert row["line"] == fault.partial.decode() + "".join(
        chr(b) if 32 <= b < 127 and b != 92 else f"\\x{b:02x}" for b in fault.raw
    )
    assert row["line"][len(fault.partial):].startswith("\\x1f\\x8b\\x08")  # the member's header, escaped
    assert f"then the region's first {len(fault.raw)} raw bytes" in row["error"]


def test_garbage_between_members_is_one_fault_and_reading_resumes():
    garbage = b"\x00\x01garbage that is not gzip\xff" * 10
    data = gzip_member(b"a\nb\n") + garbage + gzip_member(b"c\nd\n")
    items = read(data)
    assert lines_of(items) == [b"a", b"b", b"c", b"d"]
    (fault,) = faults_of(items)
    assert fault[1:3] == (3, "bad-gzip") and fault[4] == garbage


def test_header_length_damage_that_lands_on_a_later_member_is_valid_gzip():
    """Found by the property test: a changed extra-field length swallows the next member and
    ends where a third one's data starts, whose data and CRC then complete a valid member. By
    gzip's rules that is one intact member (zlib agrees); framing reads it as such."""
    first = gzip_member(b"", extra=b"")
    second = gzip_member(b"lost\n")
    third = gzip_member(b"kept\n", 0, comment=b"c")
    xlen = len(first) - 12 + len(second) + 10 + 2  # from the extra field to the third's deflate data
    damaged = first[:10] + xlen.to_bytes(2, "little") + first[12:]
    data = damaged + second + third
    inflater = zlib.decompressobj(31)
    assert inflater.decompress(data) == b"kept\n" and inflater.eof  # zlib: one valid member
    assert read(data) == [("line", 1, b"kept")]


def test_line_split_across_members_is_one_line():
    data = gzip_member(b"first\nsec") + gzip_member(b"ond\nthird")
    assert read(data) == [("line", 1, b"first"), ("line", 2, b"second"), ("line", 3, b"third")]


def test_nul_padding_after_the_last_member_is_ignored_but_not_between_members():
    assert read(gzip_member(b"a\n") + b"\x00" * 5000) == [("line", 1, b"a")]
    items = read(gzip_member(b"a\n") + b"\x00" * 10 + gzip_member(b"b\n"))
    assert lines_of(items) == [b"a", b"b"] and len(faults_of(items)) == 1


def test_gz_name_without_gzip_start_skips_to_the_first_member():
    data = b"leading junk\n" + gzip_member(b"a\n")
    items = read(data, name="x.log.gz")
    assert items[0][:3] == ("fault", 1, "bad-gzip") and items[0][4] == b"leading junk\n"
    assert items[1:] == [("line", 2, b"a")]
    # not named .gz and not starting like gzip: plain text, read as it is
    assert lines_of(read(data, name="x.log"))[0] == b"leading junk"


def test_not_gzip_at_all_is_one_fault_with_its_first_bytes():
    text = b"plain text, not gzip\n" * 10_000
    (fault,) = read(text, name="x.log.gz")
    assert fault[:3] == ("fault", 1, "bad-gzip") and fault[4] == text[:MAX_FAULT_RAW_BYTES]


def test_truncated_member_keeps_lines_and_the_cut_line():
    plain = b"".join(b"line %05d\n" % i for i in range(5000))
    whole = gzip_member(plain)
    items = read(whole[: len(whole) - 100])
    *lines, fault = items
    assert fault[2] == "truncated-gzip"
    got = lines_of(lines)
    assert got == plain.split(b"\n")[: len(got)] and len(got) > 4000
    assert plain.split(b"\n")[len(got)].startswith(fault[3])


def test_truncated_member_followed_by_a_member_resumes_there():
    # `cat cut.gz good.gz`: the cut member runs into the next one
    whole = gzip_member(b"".join(b"cut %d\n" % i for i in range(3000)))
    data = whole[: len(whole) // 2] + gzip_member(b"after 1\nafter 2\n")
    items = read(data)
    assert lines_of(items)[-2:] == [b"after 1", b"after 2"]
    assert [f[2] for f in faults_of(items)] == ["bad-gzip"]


def test_member_run_past_its_end_by_damage_still_lets_the_next_member_be_read():
    # a stored block whose length was damaged swallows the members after it
    stored = gzip_member(b"s" * 1000 + b"\n", 0)
    header_end = 10
    damaged = stored[: header_end + 1] + b"\xff\xff\x00\x00" + stored[header_end + 5 :]  # LEN=65535, NLEN=0
    data = damaged + gzip_member(b"next\n")
    items = read(data)
    assert lines_of(items)[-1] == b"next"
    assert len(faults_of(items)) == 1


@pytest.mark.parametrize("length", [MAX_LINE_BYTES + 1, 17 << 20])
def test_long_line_is_one_line_at_its_own_position(length):
    long_line = b"z" * length
    plain = b"before\n" + long_line + b"\nafter 1\nafter 2"
    for data, name in ((gzip_member(plain, 1), "x.gz"), (plain, "x.log")):
        items = read(data, name=name)
        assert [item[1] for item in items] == [1, 2, 3, 4]
        assert lines_of(items) == [b"before", long_line[: MAX_LINE_BYTES + 1], b"after 1", b"after 2"]
        record = LineParser().parse(items[1][2], Origin.for_file(name), 2, "2026-10-01T00:00:00Z")
        assert record.row["error"].startswith("line-too-long")
        assert len(record.row["line"]) == MAX_LINE_BYTES


def test_long_line_at_the_end_and_before_damage():
    long_line = b"y" * (3 * MAX_LINE_BYTES)
    assert read(long_line, name="x.log") == [("line", 1, long_line[: MAX_LINE_BYTES + 1])]
    whole = gzip_member(b"a\n" + long_line)
    *lines, fault = read(whole[:-4])
    assert lines == [("line", 1, b"a")]
    assert fault[:3] == ("fault", 2, "truncated-gzip") and fault[3] == long_line[: MAX_LINE_BYTES + 1]


def test_line_limit_counts_bytes_not_characters():
    parser = LineParser()
    origin = Origin.for_file("x.log")
    wide = ("é" * 40_000).encode()  # 40,000 characters, 80,000 bytes
    assert len(wide) > MAX_LINE_BYTES
    for line in (wide, wide.decode()):
        record = parser.parse(line, origin, 1, "2026-10-01T00:00:00Z")
        assert record.row["error"].startswith("line-too-long"), record.row["error"]
    (item,) = read(wide, name="x.log")
    assert item[2] == wide[: MAX_LINE_BYTES + 1]


def test_big_damaged_member_keeps_its_first_raw_bytes_after_the_window_moved(monkeypatch):
    # larger than the resync window, so the buffer drops its start before the damage
    monkeypatch.setattr(framing, "RESYNC_WINDOW", 1 << 16)
    plain = b"".join(b"%08d %s\n" % (i, bytes([65 + i % 26]) * (i % 70)) for i in range(60_000))
    member = gzip_member(plain, 1)
    assert len(member) > 4 * (1 << 16)
    damaged = member[:-20] + bytes(b ^ 0x55 for b in member[-20:-12]) + member[-12:]
    items = read(gzip_member(b"start\n") + damaged + gzip_member(b"end\n"), read_size=10_000)
    (fault,) = faults_of(items)
    assert fault[4] == damaged[:MAX_FAULT_RAW_BYTES]
    assert lines_of(items)[-1] == b"end" and lines_of(items)[0] == b"start"


def test_unreadable_stream_mid_file_is_a_fault_after_the_lines_read():
    class Failing(io.RawIOBase):
        def __init__(self):
            self.calls = 0

        def readable(self):
            return True

        def read(self, n=-1):
            self.calls += 1
            if self.calls == 1:
                return b"one\ntwo\nthr"
            raise OSError("disk on fire")

    items = items_of(iter_line_batches(Failing(), "f.log"))
    assert items[:2] == [("line", 1, b"one"), ("line", 2, b"two")]
    assert items[2][:4] == ("fault", 3, "unreadable-file", b"thr")


def test_empty_inputs():
    assert read(b"", name="e.gz")[0][2] == "empty-file"
    assert read(gzip_member(b"") * 3)[0][:3] == ("fault", 1, "empty-file")
    assert read(gzip_member(b"") + b"junk")[0][2] == "bad-gzip" and len(read(gzip_member(b"") + b"junk")) == 1


class CountingZlib:
    """Stands in for the zlib module in framing and counts the bytes handed to inflaters."""

    error = zlib.error

    def __init__(self) -> None:
        self.fed = 0

    def decompressobj(self, wbits: int = 15) -> "CountingInflater":
        return CountingInflater(self, zlib.decompressobj(wbits=wbits))


class CountingInflater:
    def __init__(self, counter: CountingZlib, inner) -> None:
        self._counter, self._inner = counter, inner

    def decompress(self, data, max_length: int = 0) -> bytes:
        self._counter.fed += len(data)
        return self._inner.decompress(data, max_length)

    def copy(self) -> "CountingInflater":
        return CountingInflater(self._counter, self._inner.copy())

    eof = property(lambda self: self._inner.eof)
    unused_data = property(lambda self: self._inner.unused_data)
    unconsumed_tail = property(lambda self: self._inner.unconsumed_tail)


CRAFTED = {
    # false member headers every few bytes: names without an end, names that end far
    # away, extra fields, every flag, no flag
    "names without end": b"\x1f\x8b\x08\x08" * 25_000,
    "names ending far": (b"\x1f\x8b\x08\x08" * 750 + b"\x00") * 33,
    "extra fields": b"\x1f\x8b\x08\x04" * 25_000,
    "all flags": b"\x1f\x8b\x08\x1f" * 25_000,
    "no flags": b"\x1f\x8b\x08\x00" * 25_000,
}


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_crafted_false_headers_are_one_fault_at_linear_cost(name, monkeypatch):
    """However many false headers, garbage is one fault, and twice the garbage is twice the work."""
    fed = []
    for copies in (1, 2):
        counting = CountingZlib()
        monkeypatch.setattr(framing, "zlib", counting)
        data = gzip_member(b"before\n") + CRAFTED[name] * copies + gzip_member(b"after\n")
        items = read(data)
        assert lines_of(items) == [b"before", b"after"]
        assert [f[2] for f in faults_of(items)] == ["bad-gzip"]
        fed.append(counting.fed)
    assert fed[1] < 2.3 * fed[0], fed  # quadratic work would give 4x


def test_members_nested_in_damaged_members_cost_a_bounded_rewind(monkeypatch):
    """Stored members inside stored members, each with a wrong CRC: looking back after each
    damage would inflate the same bytes once per level; the rewind allowance stops that."""
    monkeypatch.setattr(framing, "REWIND_ALLOWANCE", 1 << 20)
    counting = CountingZlib()
    monkeypatch.setattr(framing, "zlib", counting)
    level = gzip_member(b"x\n" * 20_000, 0)
    for _ in range(300):
        member = gzip_member(level, 0)
        level = member[:-8] + bytes([member[-8] ^ 1]) + member[-7:]  # wrong CRC
    items = read(level, limit=100_000)
    faults = faults_of(items)
    assert faults and all(f[2] == "bad-gzip" for f in faults)
    assert [item[1] for item in items] == list(range(1, len(items) + 1))
    # without the allowance this is ~300 x 50 KB re-inflated per level (quadratic)
    assert len(lines_of(items)) < 4 * ((1 << 20) + 2 * len(level))


class OneWayStream(io.RawIOBase):
    """A stream that cannot seek (a pipe): framing inflates it with zlib alone."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


class CountingIsal:
    """Stands in for ``isal_zlib`` in framing and counts the inflaters made."""

    def __init__(self, real) -> None:
        self.error, self._real, self.made = real.error, real, 0

    def decompressobj(self, wbits: int = 15):
        self.made += 1
        return self._real.decompressobj(wbits=wbits)


@pytest.mark.skipif(framing.isal_zlib is None, reason="isal not installed")
@pytest.mark.parametrize("damage", ["none", "flip", "truncate", "garbage"])
def test_seekable_streams_inflate_with_isal_and_damage_reads_as_with_zlib_alone(damage, monkeypatch):
    """ISA-L reads members of a seekable stream; a damaged one is read again with zlib from its start,
    so lines, cut lines, faults and raw bytes are those of the zlib-only path (a stream that cannot seek)."""
    counting = CountingIsal(framing.isal_zlib)
    monkeypatch.setattr(framing, "isal_zlib", counting)
    text = b"".join(b"line %d %s\n" % (i, b"y" * (i % 97)) for i in range(30_000))
    first, second = gzip_member(text[:700_000], 6), gzip_member(text[700_000:], 1)
    if damage == "flip":
        at = len(first) // 2
        first = first[:at] + bytes([first[at] ^ 0x55]) + first[at + 1 :]
    elif damage == "truncate":
        second = second[: len(second) // 2]
    elif damage == "garbage":
        first += b"not gzip at all"
    data = first + second
    seekable = items_of(iter_line_batches(io.BytesIO(data), "t.log.gz", inflate_step=1 << 16))
    assert counting.made >= 2
    one_way = items_of(iter_line_batches(io.BufferedReader(OneWayStream(data)), "t.log.gz", inflate_step=1 << 16))
    assert seekable == one_way
    assert (damage == "none") == (not faults_of(seekable))
    if damage == "none":
        assert lines_of(seekable) == text.split(b"\n")[:-1]
