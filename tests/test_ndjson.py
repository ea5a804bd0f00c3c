"""The NDJSON writer against orjson of the row parser's dicts, byte for byte.

Property: for any lines — realistic ones, legacy formats, damaged ones, and
lines whose every field holds what JSON must escape (``"``, ``\\``, control
characters), non-ASCII text, ``(null)`` or nothing — the bytes
:func:`block_ndjson` writes for a parsed block are exactly
``orjson.dumps({"table": t, "row": row}) + b"\\n"`` for each record of the
row parser (the reference), in line order. The lines with nasty fields are
built to pass the vectorised path's checks, so escaping, nulls and quote
merging are exercised there, not only on the row path. The rare paths are
forced too: per-agent fragments forgotten between blocks, and a block's
output past the 32-bit offset limit (the limit lowered for the test).
"""

from __future__ import annotations

import sys
from pathlib import Path
from unittest.mock import patch

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from haulage.parsers import LineParser, Origin, ndjson
from haulage.parsers.columnar import ColumnarParser
from haulage.parsers.grammar import DOWNLOAD, SIMPLE
from haulage.parsers.line_block import LineBlock
from haulage.parsers.lines import PACKAGE_TYPES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import corpus  # noqa: E402

ORIGIN = Origin.for_file("gs://bucket/2026-10-01/ndjson.log.gz", identity="2026-10-01/ndjson.log.gz")
RECEIVED_AT = "2026-10-01T00:00:00Z"
POOL = [line for line, _ in corpus.generate_labelled(1500, seed=43, bad_fraction=0.08, legacy_fraction=0.1)]
AGENTS = sorted({line.split(b"|", 9)[-1].decode("utf-8", "replace") for line in POOL if line.count(b"|") >= 9})
SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

NASTY = ['say "hi"', "back\\slash", "tab\there", "\x00\x01\x1f", "\x7f", "é ✓ \u2028\u2029", "\\u0041", '"', "\\", "(null)", ""]
"""Values that must be escaped, that must not be, and the CDN's two spellings of a missing value."""

field_text = st.one_of(
    st.sampled_from(NASTY),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="|\n\r"), max_size=12),
)
stamps = st.sampled_from([
    "Thu, 01 Oct 2026 00:00:00 GMT", "Thu, 01 Oct 2026 23:59:59 GMT", "Fri, 02 Oct 2026 09:05:07 GMT",
    "Sun, 29 Feb 2032 12:34:56 GMT", "Thu, 01 Jan 1970 00:00:00 GMT", "Fri, 31 Dec 9999 23:59:59 GMT",
])


@st.composite
def escaped_line(draw) -> bytes:
    """A current-format line that the vectorised path takes, with any text in the free fields."""
    agent = draw(st.one_of(st.sampled_from(AGENTS), field_text, st.sampled_from(['pip/"24"', "curl/8 \\ |x|", "uv/0.5.0\t"])))
    country, tls_protocol, tls_cipher = draw(field_text), draw(field_text), draw(field_text)
    if draw(st.booleans()):
        project = draw(field_text.filter(lambda t: t not in ("", "(null)")))
        version = draw(field_text.filter(lambda t: t not in ("", "(null)")))
        url = "/packages/" + draw(field_text) + "/" + draw(field_text)
        url = url if url not in ("", "(null)") else "/packages/x"
        kind = draw(st.sampled_from(sorted(PACKAGE_TYPES)))
        fields = ["download", draw(stamps), country, url, tls_protocol, tls_cipher, project, version, kind, agent]
    else:
        url = "/simple/" + draw(field_text.map(lambda t: t.replace("/", ""))) + "/"
        fields = ["simple", draw(stamps), country, url, tls_protocol, tls_cipher, "", "", "", agent]
    return "|".join(fields).encode()


any_line = st.one_of(escaped_line(), st.sampled_from(POOL))


def reference(lines: list[bytes], parser: LineParser, first_position: int) -> bytes:
    """What the row parser's dicts give through orjson, one object per line, in line order."""
    return b"".join(
        orjson.dumps({"table": r.table, "row": r.row}) + b"\n"
        for r in parser.parse_batch(lines, ORIGIN, first_position, RECEIVED_AT)
    )


def written(lines: list[bytes], parser: ColumnarParser, first_position: int) -> bytes:
    return bytes(ndjson.block_ndjson(parser.parse_block(LineBlock.from_lines(lines, first_position), ORIGIN, RECEIVED_AT)))


ROW_PARSER = LineParser(agent_cache_size=64)
PARSER = ColumnarParser(agent_cache_size=64)
NDJSON_ONLY = ColumnarParser(agent_cache_size=64, agent_columns=False)
"""What ``haulage parse`` uses: the agent-derived columns left null, except where row-parser rows are merged in."""


@SETTINGS
@given(st.lists(any_line, max_size=50), st.integers(1, 10_000))
def test_ndjson_is_orjson_of_the_row_parsers_dicts(lines, first_position):
    expected = reference(lines, ROW_PARSER, first_position)
    assert written(lines, PARSER, first_position) == expected
    assert written(lines, NDJSON_ONLY, first_position) == expected


@SETTINGS
@given(st.lists(any_line, max_size=50))
def test_without_agent_columns_the_batches_differ_only_in_those_columns(lines):
    """agent_columns=False: the four agent-derived columns are null where the side-car stands for them,
    built where row-parser rows were merged in; every other column is the full parser's."""
    full = PARSER.parse_block(LineBlock.from_lines(lines), ORIGIN, RECEIVED_AT)
    lean = NDJSON_ONLY.parse_block(LineBlock.from_lines(lines), ORIGIN, RECEIVED_AT)
    assert full.agent_columns_left_null == frozenset()
    assert lean.batches.keys() == full.batches.keys() and lean.agents.keys() == full.agents.keys()
    assert lean.agent_columns_left_null == frozenset(lean.agents)
    agent_derived = ("details", "classification", "user_agent", "agent_fingerprint")
    for table, batch in lean.batches.items():
        for name in batch.schema.names:
            if name in agent_derived and table in lean.agent_columns_left_null:
                assert batch.column(name).null_count == batch.num_rows
            else:
                assert batch.column(name).to_pylist() == full.batches[table].column(name).to_pylist(), (table, name)


@SETTINGS
@given(st.lists(any_line, max_size=40), st.integers(1, 7))
def test_chunks_end_at_line_ends_and_join_to_the_whole(lines, chunk_lines):
    parsed = PARSER.parse_block(LineBlock.from_lines(lines), ORIGIN, RECEIVED_AT)
    with patch.object(ndjson, "CHUNK_LINES", chunk_lines):
        chunks = [bytes(chunk) for chunk in ndjson.ndjson_chunks(parsed)]
    assert len(chunks) == -(-len(lines) // chunk_lines)
    assert [chunk.count(b"\n") for chunk in chunks] == [min(chunk_lines, len(lines) - k * chunk_lines) for k in range(len(chunks))]
    assert all(chunk.endswith(b"\n") for chunk in chunks)
    assert b"".join(chunks) == reference(lines, ROW_PARSER, 1)


@SETTINGS
@given(st.lists(escaped_line(), min_size=1, max_size=30))
def test_escapes_nulls_and_unicode_in_every_field_take_the_vectorised_path(lines):
    parsed = PARSER.parse_block(LineBlock.from_lines(lines), ORIGIN, RECEIVED_AT)
    assert set(parsed.agents) == set(parsed.batches)  # no line fell back to the row parser
    assert set(parsed.batches) <= {DOWNLOAD, SIMPLE}
    assert bytes(ndjson.block_ndjson(parsed)) == reference(lines, ROW_PARSER, 1)


def test_a_line_with_every_field_escaped_is_orjsons(monkeypatch):
    line = 'download|Thu, 01 Oct 2026 10:00:00 GMT|U"S|/packages/a\\b/f"oo.whl|TLS\x01|ci\tph|p"r\\j|1.0"|bdist_wheel|pip/"1"\x02'
    simple = 'simple|Thu, 01 Oct 2026 10:00:01 GMT|(null)|/simple/a"b\\c/||\x1f||||ag"ent'
    lines = [line.encode(), simple.encode()]
    parsed = PARSER.parse_block(LineBlock.from_lines(lines), ORIGIN, RECEIVED_AT)
    assert set(parsed.agents) == {DOWNLOAD, SIMPLE}
    got = bytes(ndjson.block_ndjson(parsed))
    assert got == reference(lines, ROW_PARSER, 1)
    first = orjson.loads(got.splitlines()[0])["row"]
    assert first["country_code"] == 'U"S' and first["file"]["filename"] == 'f"oo.whl' and first["tls_protocol"] == "TLS\x01"


def test_fragments_forgotten_between_blocks_are_made_again(monkeypatch):
    monkeypatch.setattr(ndjson, "_FRAGMENTS_LIMIT", 3)
    monkeypatch.setattr(ndjson, "_FRAGMENTS", {DOWNLOAD: {}, SIMPLE: {}})
    lines = POOL[:400]
    parser, rows = ColumnarParser(agent_cache_size=32), LineParser(agent_cache_size=32)
    for start in range(0, len(lines), 100):
        assert written(lines[start : start + 100], parser, start + 1) == reference(lines[start : start + 100], rows, start + 1)
    assert all(len(known) <= 3 for known in ndjson._FRAGMENTS.values())


def test_output_past_32_bit_offsets_is_written_with_64_bit_ones(monkeypatch):
    monkeypatch.setattr(ndjson, "_MAX_OFFSET", 2500)  # "2 GiB" is 2500 bytes here
    monkeypatch.setattr(ndjson, "CHUNK_LINES", 3)
    lines = POOL[:200]
    parsed = ColumnarParser().parse_block(LineBlock.from_lines(lines), ORIGIN, RECEIVED_AT)
    chunks = [bytes(chunk) for chunk in ndjson.ndjson_chunks(parsed)]
    assert min(map(len, chunks)) <= 2500 < max(map(len, chunks))  # chunks of both kinds
    assert b"".join(chunks) == reference(lines, LineParser(), 1)


def test_an_empty_block_writes_nothing():
    assert bytes(ndjson.block_ndjson(PARSER.parse_block(LineBlock.from_lines([]), ORIGIN, RECEIVED_AT))) == b""
