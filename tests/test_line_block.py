"""LineBlock as the pipeline's sequence of lines, and files read as chunks of blocks.

Batch runs carry a file's lines as :class:`LineBlock` buffers from the reader
to the parser; these properties hold a block to the list of lines it stands
for (indexing, slicing, joining, byte counts) and hold ``read_chunks`` to its
bounds and to the file's exact lines and positions.
"""

from __future__ import annotations

import gzip

from hypothesis import given, settings
from hypothesis import strategies as st

from haulage.parsers import Origin
from haulage.parsers.line_block import LineBlock
from haulage.pipeline.elements import LineBatch, line_bytes
from haulage.pipeline.parse_transform import blocks_of
from haulage.pipeline.elements import Chunk
from haulage.pipeline.sources.files import read_chunks

SETTINGS = settings(max_examples=150, deadline=None)
LINES = st.lists(st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")), max_size=30)
RECEIVED_AT = "2026-10-01T00:00:00Z"


@SETTINGS
@given(LINES, st.integers(1, 10**6), st.integers(-40, 40), st.integers(-40, 40))
def test_a_block_is_the_sequence_of_its_lines(lines, first, a, b):
    block = LineBlock.from_lines(lines, first)
    assert list(block) == lines and block == lines and len(block) == len(lines)
    assert block.nbytes == sum(map(len, lines)) == line_bytes(block) == line_bytes(lines)
    for i in range(-len(lines), len(lines)):
        assert block[i] == lines[i]
    part = block[a:b]
    assert list(part) == lines[a:b]
    start = range(len(lines))[a:b].start if lines[a:b] else None
    if start is not None:
        assert part.first_position == first + start
        assert [part.line(i) for i in range(len(part))] == lines[a:b]


@SETTINGS
@given(LINES, st.integers(0, 30))
def test_blocks_joined_are_the_lines_joined(lines, cut):
    block = LineBlock.from_lines(lines, 7)
    joined = LineBlock.concat([block[:cut], block[cut:]])
    assert joined == block and joined.starts.tolist() == block.starts.tolist()
    assert joined.not_utf8().tolist() == block.not_utf8().tolist()


def test_blocks_of_joins_file_blocks_and_message_lists_of_one_source():
    origin = Origin.for_file("a.log")
    block = LineBlock.from_lines([b"x", b"y"], 1)
    chunk = Chunk([LineBatch(origin, 1, block, RECEIVED_AT), LineBatch(origin, 3, [b"z"], RECEIVED_AT)])
    [(head, joined)] = list(blocks_of(chunk))
    assert head.first_position == 1 and joined.first_position == 1
    assert joined == [b"x", b"y", b"z"]


@SETTINGS
@given(
    st.lists(st.binary(min_size=0, max_size=200).map(lambda b: b.replace(b"\n", b"")), min_size=1, max_size=300),
    st.integers(1, 50),
    st.integers(1, 2000),
    st.booleans(),
)
def test_read_chunks_keeps_every_line_in_order_within_the_bounds(tmp_path_factory, lines, chunk_lines, chunk_bytes, gz):
    path = tmp_path_factory.mktemp("chunks") / ("in.log.gz" if gz else "in.log")
    data = b"\n".join(lines) + b"\n"
    path.write_bytes(gzip.compress(data) if gz else data)
    origin = Origin.for_file(str(path))
    got: list[bytes] = []
    position = 1
    chunks = list(read_chunks(str(path), RECEIVED_AT, chunk_lines, origin, len(data), chunk_bytes))
    for chunk in chunks:
        count = sum(len(batch.lines) for batch in chunk)
        size = sum(line_bytes(batch.lines) for batch in chunk)
        assert count <= chunk_lines
        last = next((len(batch.lines[-1]) for batch in reversed(chunk) if len(batch.lines)), 0)
        # a chunk closes once it reaches the byte bound: it passes it by its last line at most
        assert size <= chunk_bytes or size - last < chunk_bytes
        for batch in chunk:
            assert batch.fault is None
            assert batch.first_position == position or not len(batch.lines)
            got.extend(batch.lines)
            position += len(batch.lines)
    assert got == lines
    assert chunks[-1][-1].finished is not None and chunks[-1][-1].finished.lines == len(lines)
