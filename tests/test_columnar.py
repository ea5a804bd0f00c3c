"""The columnar parser against the row parser (the reference), on random and damaged corpora.

Property: for any list of lines, ``ColumnarParser`` gives, table by table,
exactly the rows ``LineParser`` gives (same values, same event ids, same
order) and exactly the same dead letters (same reasons, details, sources,
lines); every line is accounted for once. Lines come from the realistic
corpus (current and legacy formats, every bad kind) and are then damaged by
hypothesis: cut, spliced with random bytes (invalid UTF-8, ``|``, ``\\r``),
fields nulled or emptied, timestamps bent (leap days, second 60, wrong
names), lines made too long.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from haulage.parsers import LineParser, Origin
from haulage.parsers.agent_columns import DETAILS_TYPE, AgentStore
from haulage.parsers.arrow_rows import rows_to_arrow
from haulage.parsers.batch_schema import batch_schema, plain
from haulage.parsers import columnar as columnar_module
from haulage.parsers.columnar import ColumnarParser, split_by_day
from haulage.parsers.line_block import LineBlock
from haulage.parsers.line_sources import BlockSources
from haulage.parsers.timestamp_columns import parse_rfc1123_column
from haulage.parsers.timestamps import BadTimestamp, parse_rfc1123

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import corpus  # noqa: E402

ORIGIN = Origin.for_file("gs://bucket/2026-10-01/columnar.log.gz", identity="2026-10-01/columnar.log.gz")
RECEIVED_AT = "2026-10-01T00:00:00Z"
POOL = [line for line, _ in corpus.generate_labelled(2500, seed=41, bad_fraction=0.08, legacy_fraction=0.1)]
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def reference(lines: list[bytes], parser: LineParser, first_position: int = 1) -> dict[str, tuple[list[dict], list[int]]]:
    """What the row parser makes of ``lines``, per table: rows as Arrow would give them back, and positions."""
    out: dict[str, tuple[list[dict], list[int]]] = {}
    grouped: dict[str, list[dict]] = {}
    where: dict[str, list[int]] = {}
    for offset, record in enumerate(parser.parse_batch(lines, ORIGIN, first_position, RECEIVED_AT)):
        grouped.setdefault(record.table, []).append(record.row)
        where.setdefault(record.table, []).append(first_position + offset)
    for table, rows in grouped.items():
        out[table] = (rows_to_arrow(table, rows).to_pylist(), where[table])
    return out


def columnar(lines: list[bytes], parser: ColumnarParser, first_position: int = 1) -> dict[str, tuple[list[dict], list[int]]]:
    parsed = parser.parse_lines(lines, ORIGIN, first_position, RECEIVED_AT)
    assert parsed.lines == len(lines) == parsed.rows  # every line is a row or a dead letter, once
    out = {}
    for table, batch in parsed.batches.items():
        assert batch.schema.equals(batch_schema(table))
        out[table] = (batch.to_pylist(), parsed.positions[table].tolist())
    return out


def assert_same(lines: list[bytes], row_parser: LineParser, parser: ColumnarParser, first_position: int = 1) -> None:
    want = reference(lines, row_parser, first_position)
    got = columnar(lines, parser, first_position)
    assert set(got) == set(want)
    for table in want:
        want_rows, want_positions = want[table]
        got_rows, got_positions = got[table]
        assert got_positions == want_positions, table
        for position, a, b in zip(want_positions, got_rows, want_rows):
            assert a == b, (table, position, lines[position - first_position][:300])
        assert len(got_rows) == len(want_rows)


# --------------------------------------------------------------- damage


TIMESTAMP_EDITS = [
    b"Thu, 29 Feb 2024 23:59:60 GMT", b"Fri, 29 Feb 2023 10:00:00 GMT", b"Mon, 31 Apr 2026 10:00:00 GMT",
    b"Sun, 01 Oct 2026 24:00:00 GMT", b"Xyz, 01 Oct 2026 10:00:00 GMT", b"Thu, 01 oct 2026 10:00:00 GMT",
    b"Thu, 01 Oct 1969 10:00:00 GMT", b"Thu, 1 Oct 2026 10:00:00 GMT", b"Thu, 01 Oct 2026 10:00:00 UTC",
    b"Thu, 01 Oct 2026 10:0a:00 GMT", b"Thu, 01 Oct 2026 10:00:00 GMT ", b"Wed, 30 Sep 2026 23:59:59 GMT",
    b"Thu, 01 Oct 2026 00:00:00 GMT", b"Thu,\xc2\xa001 Oct 2026 10:00:00 GMT", b"(null)", b"",
    "Thu, 01 Oct 2026 10:00:0\u0663 GMT".encode(),
]


@st.composite
def damaged_line(draw) -> bytes:
    line = POOL[draw(st.integers(0, len(POOL) - 1))]
    kind = draw(st.sampled_from(["keep", "keep", "keep", "cut", "splice", "field", "stamp", "cr", "long", "agent"]))
    if kind == "cut":
        line = line[: draw(st.integers(0, len(line)))]
    elif kind == "splice":
        at = draw(st.integers(0, len(line)))
        junk = draw(st.one_of(st.binary(max_size=4), st.sampled_from([b"|", b"\xff", b"\xe2\x82", b"\r", b"\x00", "é".encode()])))
        line = line[:at] + junk.replace(b"\n", b"") + line[at:]
    elif kind == "field":
        parts = line.split(b"|", 9)
        k = draw(st.integers(0, len(parts) - 1))
        parts[k] = draw(st.sampled_from([b"(null)", b"", b"simple", b"download", b"bdist_wheel", b"/simple/", b"/simple/Zope.Interface/"]))
        line = b"|".join(parts)
    elif kind == "stamp":
        parts = line.split(b"|", 9)
        if len(parts) > 1:
            parts[1] = draw(st.sampled_from(TIMESTAMP_EDITS))
        line = b"|".join(parts)
    elif kind == "cr":
        line += draw(st.sampled_from([b"\r", b"\r\r", b" \r"]))
    elif kind == "long":
        line += b"x" * draw(st.sampled_from([65536 - len(line), 65537 - len(line), 70000]))
    elif kind == "agent":
        parts = line.split(b"|", 9)
        parts[-1] = draw(st.sampled_from([b"", b"(null)", b"pip/1.5.6 CPython/2.7.6 Linux/3.13", b"uv/0.5.0", b"a|b", "curl/8 é".encode()]))
        line = b"|".join(parts)
    return line


# Small caches, so that eviction and the store's reset happen within a test run.
ROW_PARSER = LineParser(agent_cache_size=64)
PARSER = ColumnarParser(agent_cache_size=64)
PARSER._store = AgentStore(limit=300)


@SETTINGS
@given(st.lists(damaged_line(), min_size=0, max_size=60), st.integers(1, 10_000))
def test_columnar_equals_row_parser_on_damaged_corpora(lines, first_position):
    assert_same(lines, ROW_PARSER, PARSER, first_position)


def test_columnar_equals_row_parser_on_a_large_realistic_corpus():
    """20k lines, legacy and bad lines mixed in, many fresh agents; fresh parsers, then warm."""
    lines = corpus.generate_lines(20_000, seed=43, bad_fraction=0.03, legacy_fraction=0.05)
    row_parser, parser = LineParser(), ColumnarParser()
    assert_same(lines, row_parser, parser)
    assert_same(lines[5000:9000], row_parser, parser, 5001)  # warm caches, a block in the middle


@st.composite
def messages(draw) -> list[tuple[Origin, int, str, list[bytes]]]:
    """Lines cut into sources as Pub/Sub messages make them: each its own origin, first line number and receive time."""
    out = []
    for i in range(draw(st.integers(1, 12))):
        lines = draw(st.lists(damaged_line(), min_size=0, max_size=12))
        received = draw(st.sampled_from([RECEIVED_AT, "2026-10-02T03:04:05Z", None]))
        out.append((Origin.for_message("projects/p/subscriptions/s", f"m{i}"), draw(st.integers(1, 50)), received, lines))
    return out


@SETTINGS
@given(messages())
def test_a_block_of_many_sources_gives_each_line_the_row_of_its_own_source(parts):
    """``parse_sources``: every line is the row or dead letter the row parser makes of it in its own source
    (event id, dead letter's source and receive time), in block order, every line once."""
    from unittest import mock

    lines = [line for _, _, _, part in parts for line in part]
    sources = BlockSources([(origin, first, received, len(part)) for origin, first, received, part in parts])
    # a source without a receive time gets "now" in its dead letters: one "now" for both parsers, or a
    # second that ticks between them makes the two differ (it did, once in a CI run)
    with mock.patch("haulage.parsers.lines._now_iso", return_value="2026-12-01T10:11:12Z"):
        parsed = PARSER.parse_sources(LineBlock.from_lines(lines), sources)
        want: dict[str, list[dict]] = {}
        for origin, first, received, part in parts:
            for record in ROW_PARSER.parse_batch(part, origin, first, received):
                want.setdefault(record.table, []).append(record.row)
    assert parsed.lines == len(lines) == parsed.rows
    assert set(parsed.batches) == set(want)
    for table, rows in want.items():
        assert parsed.batches[table].to_pylist() == rows_to_arrow(table, rows).to_pylist(), table


def test_block_sources_number_each_line_in_its_own_source():
    a, b, c = (Origin.for_message("projects/p/subscriptions/s", m) for m in "abc")
    sources = BlockSources([(a, 1, "t1", 2), (b, 7, None, 0), (c, 3, "t3", 3)])
    assert len(sources) == 5
    assert [sources.line(i) for i in range(5)] == [(a, 1, "t1"), (a, 2, "t1"), (c, 3, "t3"), (c, 4, "t3"), (c, 5, "t3")]
    assert sources.event_ids(np.array([4, 0, 2])).to_pylist() == [f"{c.key}-5", f"{a.key}-1", f"{c.key}-3"]
    single = BlockSources.single(a, 10, None, 3)
    assert single.line(2) == (a, 12, None)
    assert single.event_ids(np.array([0, 2])).to_pylist() == [f"{a.key}-10", f"{a.key}-12"]
    with pytest.raises(ValueError):
        PARSER.parse_sources(LineBlock.from_lines([b"x"]), single)


# --------------------------------------------------------------- pieces


def _damaged_stamp(second: int, at: int, byte: int) -> bytes:
    """A valid timestamp (any second from 1970 to 2001) with one byte replaced."""
    text = bytearray(time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(second)).encode())
    text[at] = byte
    return bytes(text)


@SETTINGS
@given(st.lists(st.one_of(st.sampled_from(TIMESTAMP_EDITS), st.text(max_size=31).map(str.encode), st.builds(
    lambda d, mo, y, h, mi, s, w: f"{w}, {d:02d} {mo} {y:04d} {h:02d}:{mi:02d}:{s:02d} GMT".encode(),
    st.integers(0, 32), st.sampled_from(["Jan", "Feb", "Mar", "Apr", "Jun", "Sep", "Dec", "Foo", "Xan", "jan", "Dez", "JUN"]),
    st.integers(1960, 9999), st.integers(0, 25), st.integers(0, 61), st.integers(0, 61),
    st.sampled_from(["Mon", "Thu", "Sun", "Xxx"])),
    st.builds(_damaged_stamp, st.integers(0, 10**9), st.integers(0, 28), st.integers(0, 255)))))
def test_vectorised_timestamps_follow_the_row_parsers_rules(texts):
    texts = [t for t in texts if _utf8(t)]
    epochs, valid = parse_rfc1123_column(pa.array([t.decode() for t in texts], pa.string()))
    for text, epoch, ok in zip(texts, epochs.tolist(), valid.tolist()):
        try:
            expected = parse_rfc1123(text.decode())[0]
        except BadTimestamp:
            assert not ok, text
        else:
            assert ok and epoch == expected, text


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode()
    except UnicodeDecodeError:
        return False
    return True


@SETTINGS
@given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=40), st.booleans())
def test_line_block_finds_every_line_and_exactly_the_non_utf8_ones(lines, final_newline):
    data = b"\n".join(lines) + (b"\n" if final_newline else b"")
    from_bytes = LineBlock.from_bytes(data)
    expected = data.split(b"\n")
    if data.endswith(b"\n") or not data:
        expected = expected[:-1]
    assert [from_bytes.line(i) for i in range(len(from_bytes))] == expected
    from_lines = LineBlock.from_lines(lines)
    assert [from_lines.line(i) for i in range(len(from_lines))] == lines
    assert from_lines.not_utf8().tolist() == [i for i, line in enumerate(lines) if not _utf8(line)]


FIELDISH = st.lists(st.one_of(st.sampled_from([b"|", b"||", b"\xff", b"\xe2\x82", b"\r", "é".encode(), b"download"]), st.binary(max_size=12)),
                    max_size=14).map(lambda parts: b"".join(parts).replace(b"\n", b""))


@SETTINGS
@given(st.lists(st.one_of(FIELDISH, st.sampled_from(POOL)), max_size=30), st.booleans(), st.integers(0, 5))
def test_bars_are_the_first_nine_separators_of_lines_with_ten_fields(lines, final_newline, prefix):
    """``_bars`` against ``split(b"|", 9)``: short lines, ``|`` in the agent, non-UTF-8, empty lines, the buffer's end."""
    head = b"x|" * prefix  # bars before the first line start do not count
    data = head + b"\n" + b"\n".join(lines) + (b"\n" if final_newline else b"")
    block = LineBlock.from_bytes(data)
    ten, bars = columnar_module._bars(block)
    assert ten.shape == (len(block),) and bars.shape == (len(block), 9)
    for i in range(len(block)):
        line = block.line(i)
        parts = line.split(b"|", 9)
        assert ten[i] == (len(parts) == 10), line
        if ten[i]:
            start = int(block.starts[i])
            expected = np.cumsum([len(part) + 1 for part in parts[:9]]) - 1 + start
            assert bars[i].tolist() == expected.tolist(), line


@SETTINGS
@given(st.lists(st.text(st.sampled_from("/ab.\ré€|"), max_size=12), max_size=20), st.integers(0, 3))
def test_file_names_are_what_the_regular_expression_gives(urls, sliced):
    """``_after_last_slash`` against ``replace_substring_regex(urls, "^.*/", "")`` (what it replaced), sliced arrays too.

    Texts without a ``/`` before, between and after texts with one, so that
    a text's last ``/`` is never looked for outside it."""
    texts = pa.array(urls, pa.string()).slice(min(sliced, len(urls)))
    got = columnar_module._after_last_slash(texts)
    assert got.to_pylist() == pc.replace_substring_regex(texts, "^.*/", "").to_pylist()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3000), st.sampled_from([b"\xff", "é".encode(), b"\xe2\x82", "€".encode(), b"\xc3"])), max_size=6),
       st.integers(1, 3), st.booleans())
def test_non_utf8_lines_are_found_in_blocks_of_many_pieces(damage, copies, final_newline):
    """Blocks of several 16 KiB pieces (and a shorter last one): bad bytes anywhere, valid multi-byte ones beside them."""
    lines = [line for line in POOL[:300] if line.isascii()] * copies
    for at, raw in damage:
        i = at % len(lines)
        cut = at % (len(lines[i]) + 1)
        lines[i] = lines[i][:cut] + raw + lines[i][cut:]
    data = b"\n".join(lines) + (b"\n" if final_newline else b"")
    block = LineBlock.from_bytes(data)
    assert block.not_utf8().tolist() == [i for i, line in enumerate(lines) if not _utf8(line)]


def test_split_by_day_keeps_order_within_each_day():
    lines = corpus.generate_lines(3000, seed=44, days=3, bad_fraction=0)
    parsed = ColumnarParser().parse_lines(lines, ORIGIN, 1, RECEIVED_AT)
    batch = parsed.batches["file_downloads"]
    days = split_by_day("file_downloads", batch)
    assert sorted(days) == ["2026-10-01", "2026-10-02", "2026-10-03"]
    assert sum(b.num_rows for b in days.values()) == batch.num_rows
    everything = batch.to_pylist()
    for day, part in days.items():
        rows = part.to_pylist()
        assert all(r["timestamp"].date().isoformat() == day for r in rows)
        assert rows == [r for r in everything if r["timestamp"].date().isoformat() == day]


def test_batches_decode_to_the_plain_table_schema():
    parsed = ColumnarParser().parse_lines(POOL[:500], ORIGIN, 1, RECEIVED_AT)
    for table, batch in parsed.batches.items():
        decoded = plain(table, batch)
        assert decoded.to_pylist() == batch.to_pylist()
        assert not any(pa.types.is_dictionary(f.type) for f in decoded.schema)


@pytest.mark.parametrize("limit", [5, 50, 10_000])
def test_agent_store_gives_each_result_its_own_values_across_resets_and_merges(limit):
    """Rows gathered from the store hold their own result's values, whatever resets and chunk merges happened."""
    parser = LineParser()
    agents = sorted({line.split(b"|", 9)[-1].decode("utf-8", "replace") for line in POOL if line.count(b"|") >= 9})
    agents += ["", "(null)", "x" * 9000]  # no fingerprint; unknown with its raw agent; too long to parse
    results = [parser.agents.get(a) for a in agents]
    store = AgentStore(limit=limit)
    rng = np.random.default_rng(3)
    for _ in range(30):
        picked = [results[i] for i in rng.integers(0, len(results), size=min(limit, 40))]
        sids = store.lookup(picked)
        assert len(store) <= max(limit, len(picked))
        assert store.results(sids) == picked
        rows = rng.integers(0, len(picked), size=60).astype(np.int32)
        details, classification, user_agent, fingerprint = store.columns(sids, pa.array(rows))
        want = [picked[i] for i in rows]
        assert details.to_pylist() == [r.details for r in want]
        assert classification.to_pylist() == [r.classification for r in want]
        assert user_agent.to_pylist() == [r.user_agent for r in want]
        assert fingerprint.to_pylist() == [r.fingerprint for r in want]
        # the same nulls as converting the dicts directly: a node is null wherever an ancestor is
        assert details.cast(DETAILS_TYPE).equals(pa.array([r.details for r in want], DETAILS_TYPE))


def test_agent_store_is_bounded_in_bytes_by_long_unknown_agents():
    """Agents too long for the cache are parsed, hence stored, at every sight: the byte bound still holds."""
    parser = LineParser()
    store = AgentStore(limit=100_000, max_bytes=100_000)
    most = 0
    for block in range(40):
        agents = [f"{block}-{i}-" + "x" * 8000 for i in range(4)] + ["pip/24.0"]
        results = [parser.agents.get(a) for a in agents]
        assert all(r.user_agent == a for r, a in zip(results[:4], agents))  # unknown: the raw agent is kept
        sids = store.lookup(results)
        most = max(most, store.nbytes)
        _, _, user_agent, fingerprint = store.columns(sids, pa.array([4, 0, 1, 2, 3, 0], pa.int32()))
        assert user_agent.to_pylist() == [results[i].user_agent for i in (4, 0, 1, 2, 3, 0)]
        assert fingerprint.to_pylist() == [results[i].fingerprint for i in (4, 0, 1, 2, 3, 0)]
    assert 100_000 < most <= 100_000 + 5 * 8_200  # it filled up, and started afresh past the bound


# --------------------------------------------------------------- NDJSON


def row_parser_ndjson(lines: list[bytes], parser: LineParser, first_position: int) -> bytes:
    """What ``haulage parse`` wrote before batches: one orjson object per record, in line order."""
    import orjson

    return b"".join(
        orjson.dumps({"table": r.table, "row": r.row}) + b"\n"
        for r in parser.parse_batch(lines, ORIGIN, first_position, RECEIVED_AT)
    )


NDJSON_ROW_PARSER = LineParser(agent_cache_size=64)
NDJSON_PARSER = ColumnarParser(agent_cache_size=64)


@SETTINGS
@given(st.lists(damaged_line(), min_size=0, max_size=40), st.integers(1, 10_000))
def test_ndjson_from_batches_is_byte_identical_to_the_row_parsers(lines, first_position):
    from haulage.parsers.ndjson import block_ndjson

    parsed = NDJSON_PARSER.parse_lines(lines, ORIGIN, first_position, RECEIVED_AT)
    assert block_ndjson(parsed) == row_parser_ndjson(lines, NDJSON_ROW_PARSER, first_position)


def test_ndjson_escapes_like_orjson():
    from haulage.parsers.ndjson import json_texts
    import orjson

    values = ['plain', 'quote"d', "back\\slash", "tab\there", "\x00\x1f\x7f", "é ✓ \u2028", None, ""]
    texts = json_texts(pa.array(values, pa.string())).to_pylist()
    assert texts == [orjson.dumps(v).decode() for v in values]
    encoded = pa.array(values, pa.string()).dictionary_encode()
    assert json_texts(encoded).to_pylist() == texts


def test_gather_batches_joins_contiguous_batches_and_passes_faults_in_place():
    from haulage.parsers.framing import FileFault
    from haulage.parsers.line_block import gather_batches

    fault = FileFault("bad-gzip", "x", 6)
    items = [(1, [b"a", b"b"]), (3, [b"c"]), (4, [b"d", b"e"]), fault, (7, [b"f"]), (9, [b"g"]), (10, [b"h"])]
    assert list(gather_batches(items, min_lines=3)) == [
        (1, [b"a", b"b", b"c"]), (4, [b"d", b"e"]), fault, (7, [b"f"]), (9, [b"g", b"h"]),
    ]
    assert list(gather_batches([], 3)) == []


def test_gather_blocks_joins_contiguous_runs_and_passes_faults_in_place():
    from haulage.parsers.framing import FileFault
    from haulage.parsers.line_block import gather_blocks

    fault = FileFault("bad-gzip", "x", 6)
    items = [(1, b"a\nb\n", 2), (3, b"c\n", 1), (4, b"d\ne\n", 2), fault, (7, b"f\n", 1), (9, b"g\n", 1), (10, b"h\n", 1)]
    out = [
        item if isinstance(item, FileFault) else (item.first_position, [item.line(i) for i in range(len(item))])
        for item in gather_blocks(items, min_lines=3)
    ]
    assert out == [(1, [b"a", b"b", b"c"]), (4, [b"d", b"e"]), fault, (7, [b"f"]), (9, [b"g", b"h"])]
    assert list(gather_blocks([], 3)) == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=30),
    st.lists(st.integers(1, 50), min_size=1, max_size=8),
    st.integers(0, 12),
)
def test_line_runs_hold_the_lines_framing_reads_whatever_the_piece_sizes(lines, sizes, max_line):
    """Runs (one buffer per batch) split to exactly the lines and cuts of the rules, long lines included."""
    from haulage.parsers.framing import _frame

    text = b"".join(line + b"\n" for line in lines)
    pieces, at, turn = [], 0, 0
    while at < len(text):
        pieces.append(text[at : at + sizes[turn % len(sizes)]])
        at += sizes[turn % len(sizes)]
        turn += 1
    got = []
    for item in _frame(iter(pieces), "t", max_line):
        if isinstance(item, tuple):
            position, data, count = item
            assert data.endswith(b"\n") and data.count(b"\n") == count and position == len(got) + 1
            got += data.split(b"\n")[:-1]
    assert got == [line[: max_line + 1] for line in lines]


def test_gather_batches_stops_at_the_byte_bound_whatever_the_line_count():
    """Long lines: a gathered batch holds about ``max_bytes``, not ``min_lines`` lines of 64 KiB."""
    from haulage.parsers.line_block import gather_batches

    long_line = b"x" * 65_536
    items = [(1 + 10 * i, [long_line] * 10) for i in range(100)]  # 1,000 lines, 64 MiB
    gathered = list(gather_batches(items, min_lines=16_384, max_bytes=1 << 20))
    assert [len(lines) for _, lines in gathered] == [20] * 50
    assert [first for first, _ in gathered] == [1 + 20 * i for i in range(50)]
    assert max(sum(map(len, lines)) for _, lines in gathered) < (1 << 20) + 10 * len(long_line)


def test_gather_blocks_stops_at_the_byte_bound_whatever_the_line_count():
    """As gather_batches: long lines make blocks of about ``max_bytes``, not ``min_lines`` lines of 64 KiB."""
    from haulage.parsers.line_block import gather_blocks

    run = (b"x" * 65_536 + b"\n") * 10
    items = [(1 + 10 * i, run, 10) for i in range(100)]
    blocks = list(gather_blocks(items, min_lines=16_384, max_bytes=1 << 20))
    assert [len(block) for block in blocks] == [20] * 50
    assert [block.first_position for block in blocks] == [1 + 20 * i for i in range(50)]
    assert max(len(block.data) for block in blocks) < (1 << 20) + len(run)


def test_spans_outside_the_buffer_or_out_of_order_are_refused_not_copied():
    """``_take_spans`` copies with Arrow's unchecked take: a span it cannot copy safely must be an error."""
    data = pa.py_buffer(b"abcdefgh")
    assert columnar_module._take_spans(data, np.array([0, 3]), np.array([2, 8])).to_pylist() == ["ab", "defgh"]
    for begin, end in (([0, 3], [2, 9]), ([-1], [2]), ([3], [2]), ([0, 1], [3, 4])):
        with pytest.raises(ValueError):
            columnar_module._take_spans(data, np.array(begin), np.array(end))
