"""The pipeline carries Arrow: the parsed-chunk coder, the parse DoFn's blocks, and local runs on every core."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from haulage.parsers import Origin
from haulage.parsers.framing import FileFault
from haulage.pipeline.elements import Chunk, LineBatch, ParsedChunk, ParsedChunkCoder
from haulage.pipeline.sources.files import InputFile
from haulage.pipeline.runners.local_workers import deal_files
from haulage.pipeline.parse_transform import ParseChunkFn, blocks_of

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import corpus  # noqa: E402

ORIGIN = Origin.for_file("logs/a.log.gz", "a.log.gz")
OTHER = Origin.for_file("logs/b.log.gz", "b.log.gz")
RECEIVED_AT = "2026-10-01T00:00:00Z"


def parse_chunk(chunk: Chunk) -> ParsedChunk:
    fn = ParseChunkFn(agent_cache_size=1000)
    fn.setup()
    (out,) = list(fn.process(chunk))
    return getattr(out, "value", out)


def test_parsed_chunks_survive_the_coder_with_every_value_and_dictionary():
    lines = corpus.generate_lines(3000, seed=61, days=2, bad_fraction=0.05, legacy_fraction=0.05)
    chunk = Chunk([LineBatch(ORIGIN, 1, lines[:1700], RECEIVED_AT), LineBatch(OTHER, 1, lines[1700:], RECEIVED_AT,
                                                                                FileFault("truncated-gzip", "cut", 1301, b"down"))])
    parsed = parse_chunk(chunk)
    assert parsed.lines == 3000 and parsed.faults == 1
    assert sum(t.num_rows for t in parsed.tables.values()) == 3001  # the fault's cut line is a dead letter too
    coder = ParsedChunkCoder()
    back = coder.decode(coder.encode(parsed))
    assert (back.lines, back.faults) == (parsed.lines, parsed.faults)
    assert set(back.tables) == set(parsed.tables)
    for key, table in parsed.tables.items():
        assert back.tables[key].schema.equals(table.schema)
        assert back.tables[key].to_pylist() == table.to_pylist()
    assert len({day for _, day in parsed.tables}) == 2


def test_blocks_join_contiguous_batches_of_one_source_only():
    a1 = LineBatch(ORIGIN, 1, [b"x", b"y"], RECEIVED_AT)
    a2 = LineBatch(ORIGIN, 3, [b"z"], RECEIVED_AT, FileFault("bad-gzip", "x", 4))
    b1 = LineBatch(OTHER, 1, [b"p"], RECEIVED_AT)
    b2 = LineBatch(OTHER, 5, [b"q"], RECEIVED_AT)
    assert [(head.origin, head.first_position, lines) for head, lines in blocks_of(Chunk([a1, a2, b1, b2]))] == [
        (ORIGIN, 1, [b"x", b"y", b"z"]), (OTHER, 1, [b"p"]), (OTHER, 5, [b"q"]),
    ]


def test_files_are_dealt_into_balanced_nonempty_shares_in_listed_order():
    files = [InputFile(f"/in/{i}.gz", size) for i, size in enumerate([50, 10, 40, 30, 20, 5])]
    shares = deal_files(files, 2)
    assert sorted(f.path for share in shares for f in share) == sorted(f.path for f in files)
    loads = [sum(f.size for f in share) for share in shares]
    assert max(loads) - min(loads) <= 10
    for share in shares:
        assert share == sorted(share, key=files.index)
    assert len(deal_files(files[:1], 4)) == 1
    assert len(deal_files(files, 99)) == len(files)


def test_run_on_two_workers_writes_what_one_worker_writes(tmp_path):
    from haulage.cli.main import main

    lines = corpus.generate_lines(6000, seed=62, days=2, bad_fraction=0.02)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(4):
        (inputs / f"{i}.log.gz").write_bytes(gzip.compress(b"\n".join(lines[i * 1500 : (i + 1) * 1500]) + b"\n"))
    tables = {}
    for workers in ("1", "2"):
        out = tmp_path / f"out{workers}"
        assert main(["run", "--input", str(inputs / "*.gz"), "--output-dir", str(out), "--workers", workers, "--quiet"]) == 0
        tables[workers] = {
            table: sorted(pq.read_table(out / table).drop_columns(["date"]).to_pylist(), key=lambda r: str(r.get("event_id") or r["source"]))
            for table in ("file_downloads", "simple_requests", "unprocessed")
        }
        schema = pq.read_schema(next((out / "file_downloads").rglob("*.parquet")))
        assert not any(pa.types.is_dictionary(f.type) for f in schema)  # readers see the plain table schema
    for table in tables["1"]:
        one, two = tables["1"][table], tables["2"][table]
        if table == "unprocessed":  # received_at is when each run read the line
            one = [{k: v for k, v in r.items() if k != "received_at"} for r in one]
            two = [{k: v for k, v in r.items() if k != "received_at"} for r in two]
        assert one == two, table
    assert len(tables["1"]["file_downloads"]) > 5000


@pytest.mark.parametrize("sizes, gathered", [
    ([1, 3, 10, 1, 50, 1, 255] * 3, True),  # small messages that together make a block of many sources (columnar)
    ([1, 3, 10, 1, 50, 1], False),  # too few lines even together: line by line through the row parser
    ([1] * 300, True),  # line delivery: one line per message
])
def test_small_messages_and_large_blocks_give_the_row_parsers_rows(sizes, gathered, monkeypatch):
    """Blocks of at least GATHERED_BELOW_LINES go through the columnar parser alone; smaller ones (a message of a
    few lines) are gathered into blocks of many sources, parsed together when that makes SMALL_BLOCK_LINES lines,
    else line by line by the row parser. Either way every line is the row or dead letter the row parser makes of it in
    its own source."""
    from haulage.parsers import LineParser
    from haulage.pipeline import parse_transform
    from haulage.pipeline.parse_transform import SMALL_BLOCK_LINES

    monkeypatch.setattr(parse_transform, "GATHERED_BELOW_LINES", SMALL_BLOCK_LINES + 100)  # the file's block stays alone
    lines = corpus.generate_lines(2200, seed=67, days=2, bad_fraction=0.05, legacy_fraction=0.05)
    big = SMALL_BLOCK_LINES + 300
    batches = [LineBatch(ORIGIN, 1, lines[:big], RECEIVED_AT)]  # one file's block
    at = big
    for i, size in enumerate(sizes):  # messages of a few lines, each its own source
        origin = Origin.for_message("projects/p/subscriptions/s", f"m{i}")
        batches.append(LineBatch(origin, 1 + i % 3, lines[at:at + size], f"2026-10-01T00:00:{i % 60:02d}Z"))
        at += size
    from haulage.parsers.columnar import ColumnarParser

    many_sources = []
    parse_sources = ColumnarParser.parse_sources

    def spy(self, block, sources):
        if len(sources.origins) > 1:
            many_sources.append(len(block))
        return parse_sources(self, block, sources)

    monkeypatch.setattr(ColumnarParser, "parse_sources", spy)
    parsed = parse_chunk(Chunk(batches))
    assert parsed.lines == at
    assert many_sources == ([sum(sizes)] if gathered else [])
    reference = LineParser(agent_cache_size=1000)
    expected: dict[str, list[dict]] = {}
    for batch in batches:
        for record in reference.parse_batch(list(batch.lines), batch.origin, batch.first_position, batch.received_at):
            expected.setdefault(record.table, []).append(record.row)
    got: dict[str, list[dict]] = {}
    for (table, _day), rows in parsed.tables.items():
        got.setdefault(table, []).extend(rows.to_pylist())

    def key(row: dict) -> tuple:
        return (row.get("event_id") or row["source"], repr(sorted(row.items())))

    from haulage.parsers.arrow_rows import rows_to_arrow

    assert got.keys() == expected.keys()
    for table, rows in expected.items():
        as_arrow = rows_to_arrow(table, rows).to_pylist()  # the row dicts as the tables hold them
        assert sorted(got[table], key=key) == sorted(as_arrow, key=key), table
