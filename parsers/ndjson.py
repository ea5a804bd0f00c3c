"""Parsed blocks as NDJSON, byte for byte what ``orjson.dumps({"table": …, "row": row_dict})`` gives — without the dicts.

``haulage parse`` writes one JSON object per input line, in input order:
``{"table":"file_downloads","row":{…}}``. Building each row as a dict and
encoding it would cost more than parsing it, so a block's output is cut
from texts that already exist by Arrow's ``take``:

* every text a line is made of — the literal keys between values, each
  column's values, each distinct agent's JSON fragments, each row's
  timestamp — is an element of one string array, the block's
  *pieces* (:class:`_Pieces`); a dictionary column contributes its distinct
  values, not one per row;
* each line is a fixed sequence of *segments* (literal, value, literal,
  value, …), each the index of a piece; the indices of all lines of all
  tables, laid out in line order, are one index array;
* ``pieces.take(indices)`` concatenates them: its data buffer *is* the
  NDJSON, lines already in input order (no per-table join, no reorder
  afterwards). It is taken a chunk of lines at a time (:func:`ndjson_chunks`).

A value is written as a JSON string by merging its quotes into the literals
on either side: each literal exists in four variants (closing quote of the
value before it or not, opening quote of the value after it or not), and a
line picks the variant its neighbours need. A value that is ``null``, or
that holds a byte needing an escape (``"``, ``\\`` or a control character
below U+0020), is instead a ready JSON text (``null``, or orjson's encoding
of it) without quotes around it. Everything derived from the agent
(``details``, ``classification``, ``user_agent``, ``agent_fingerprint``) is
orjson's encoding of the parser's :class:`~haulage.parsers.agents.AgentResult`,
made once per result.

Rules that make it byte-identical to orjson: keys in the row parser's order,
compact separators, strings escaped only as above, ``null`` for missing
values, timestamps as ``YYYY-MM-DDTHH:MM:SSZ``. Dead letters are cut the
same way (their four keys). A downloads or simple-requests table holding
rows of the row parser (legacy formats, merged in line order) has no agent
side-car: its rows are encoded one by one with orjson, each line one piece;
they are rare in current logs.
``tests/test_ndjson.py`` holds the output to the row parser's dicts through
orjson.
"""

from __future__ import annotations

import struct
from operator import itemgetter
from typing import Iterator, Optional, Union

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .columnar import ParsedBlock
from .grammar import DOWNLOAD, SIMPLE
from .lines import UNPROCESSED

__all__ = ["block_ndjson", "ndjson_chunks", "json_texts", "CHUNK_LINES"]

_NEEDS_ESCAPE = r'["\\\x00-\x1f]'
_ISO = "%Y-%m-%dT%H:%M:%SZ"
_MAX_OFFSET = (1 << 31) - 1

CHUNK_LINES = 4096
"""Lines per chunk of output (:func:`ndjson_chunks`): about 4 MB of NDJSON for the usual ~1 KB a line."""


def json_texts(column: pa.Array) -> pa.Array:
    """A string column as JSON texts: ``"value"`` (escaped as orjson does) or ``null``."""
    if pa.types.is_dictionary(column.type):
        encoded = json_texts(column.dictionary.cast(pa.string()))
        return pc.fill_null(encoded.take(column.indices), "null")
    if pa.types.is_integer(column.type):
        return pc.fill_null(pc.cast(column, pa.string()), "null")
    quoted = pc.binary_join_element_wise('"', column, '"', "")
    escaped = _escaped(column)
    if escaped is not None:
        rows, fixed = escaped
        mask = np.zeros(len(column), bool)
        mask[rows] = True
        quoted = pc.replace_with_mask(quoted, pa.array(mask), fixed)
    return pc.fill_null(quoted, "null")


def _may_need_escape(column: pa.Array) -> bool:
    """Whether any byte of the column's values is ``"``, ``\\`` or a control character (one numpy pass)."""
    if len(column) == 0:
        return False
    data = column.buffers()[2]
    if data is None:
        return False
    offsets = np.frombuffer(column.buffers()[1], np.int32, len(column) + 1, column.offset)
    raw = np.frombuffer(data, np.uint8)[offsets[0] : offsets[-1]]
    return bool(((raw < 0x20) | (raw == 0x22) | (raw == 0x5C)).any())


def _escaped(column: pa.Array) -> Optional[tuple[np.ndarray, pa.Array]]:
    """The rows of a string column whose value needs escaping, and orjson's text of each (None: none do)."""
    if not _may_need_escape(column):
        return None
    needs = pc.fill_null(pc.match_substring_regex(column, _NEEDS_ESCAPE), False)
    rows = np.flatnonzero(needs.to_numpy(zero_copy_only=False))
    if not len(rows):
        return None
    fixed = [orjson.dumps(value).decode() for value in column.take(pa.array(rows)).to_pylist()]
    return rows, pa.array(fixed, pa.string())


def _iso_texts(timestamps: pa.Array) -> pa.Array:
    """``"YYYY-MM-DDTHH:MM:SSZ"`` (quoted) per row, built as a byte matrix with numpy.

    Rows carry whole seconds (the logs have no finer resolution). The date
    text is made once per distinct day; the clock digits are arithmetic.
    """
    n = len(timestamps)
    seconds = timestamps.view(pa.int64()).to_numpy(zero_copy_only=False) // 1_000_000
    days, clock = np.divmod(seconds, 86_400)
    distinct, which = np.unique(days, return_inverse=True)
    dates = np.frombuffer(
        "".join(str(np.datetime64(int(day), "D")) for day in distinct.tolist()).encode(), np.uint8
    ).reshape(len(distinct), 10)
    text = np.empty((n, 22), np.uint8)
    text[:, 0] = text[:, 21] = ord('"')
    text[:, 1:11] = dates[which]
    text[:, 11], text[:, 14], text[:, 17], text[:, 20] = ord("T"), ord(":"), ord(":"), ord("Z")
    hours, rest = np.divmod(clock, 3600)
    minutes, secs = np.divmod(rest, 60)
    for at, value in ((12, hours), (15, minutes), (18, secs)):
        text[:, at] = 48 + value // 10
        text[:, at + 1] = 48 + value % 10
    offsets = np.arange(0, 22 * (n + 1), 22, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(text)])


# --------------------------------------------------------------- per-agent fragments

_FRAGMENTS: dict[str, dict[int, tuple[object, bytes, bytes]]] = {DOWNLOAD: {}, SIMPLE: {}}
"""Per table, per AgentResult (by id): the result (kept referenced, so its id is not reused), its
fragments (:func:`_agent_fragments`) as one UTF-8 text, and their lengths as int32 bytes. Made
once per result; a table's dict is emptied past :data:`_FRAGMENTS_LIMIT`."""
_FRAGMENTS_LIMIT = 1 << 15
_TEXT, _LENGTHS = 1, 2


def _agent_fragments(table: str, result) -> tuple[bytes, ...]:
    """The texts of a line that depend only on its agent, in line order, each ending where a row value follows.

    Downloads: ``details``; ``classification`` and ``user_agent`` (adjacent in
    the row); the fingerprint and the line's end. Simple requests:
    ``details`` to ``user_agent``; the fingerprint and the line's end.
    """
    dumps = orjson.dumps
    details = dumps(result.details)
    rest = dumps(result.classification) + b',"user_agent":' + dumps(result.user_agent)
    end = (b"null" if result.fingerprint is None else b"%d" % result.fingerprint) + b"}}\n"
    return (details, rest, end) if table == DOWNLOAD else (details + b',"classification":' + rest, end)


def _fragment_entry(table: str, result) -> tuple[object, bytes, bytes]:
    known = _FRAGMENTS[table]
    if len(known) >= _FRAGMENTS_LIMIT:
        known.clear()
    fragments = _agent_fragments(table, result)
    entry = known[id(result)] = (result, b"".join(fragments), _LENGTHS_OF[len(fragments)](*map(len, fragments)))
    return entry


_LENGTHS_OF = {k: struct.Struct(f"={k}i").pack for k in (2, 3)}
"""Packs a result's fragment lengths as native int32s (what numpy reads them as)."""


def _agent_pieces(table: str, results: list) -> pa.Array:
    """The fragments of ``results`` (``k`` per result, :func:`_agent_fragments`), as one string array of ``k * len(results)``.

    Each result's fragments are encoded once and kept as bytes, so a block
    joins bytes (no per-fragment conversion to Arrow).
    """
    known = _FRAGMENTS[table]
    get = known.get
    entries = [get(id(result)) or _fragment_entry(table, result) for result in results]
    data = b"".join(map(itemgetter(_TEXT), entries))
    lengths = np.frombuffer(b"".join(map(itemgetter(_LENGTHS), entries)), np.int32)
    offsets = np.zeros(len(lengths) + 1, np.int32)  # a block's distinct agents hold far less than 2 GiB
    np.cumsum(lengths, out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(lengths), [None, pa.py_buffer(offsets), pa.py_buffer(data)])


# --------------------------------------------------------------- pieces and segments


class _Pieces:
    """The texts a block's lines are cut from, gathered as string arrays and concatenated once.

    :meth:`add` returns the index the array's first element will have in the
    concatenation, so segments can name pieces before it exists.
    """

    __slots__ = ("arrays", "size")

    def __init__(self) -> None:
        self.arrays: list[pa.Array] = []
        self.size = 0

    def add(self, array: pa.Array) -> int:
        base = self.size
        self.arrays.append(array)
        self.size += len(array)
        return base

    def texts(self) -> pa.Array:
        return pa.concat_arrays(self.arrays) if len(self.arrays) > 1 else self.arrays[0]


Quoted = Union[bool, np.ndarray]
"""Whether a row's value is written between quotes: one flag for all rows, or one per row."""


class _Segment:
    """One value of every row of a table: the piece each row takes, and whether it goes between quotes."""

    __slots__ = ("ids", "quoted")

    def __init__(self, ids: np.ndarray, quoted: Quoted) -> None:
        self.ids = ids
        self.quoted = quoted


_NULL = pa.array(["null", ""])
"""The first pieces of every block: ``null`` and the empty text (what a narrower table's lines are padded with)."""


def _string_segment(pieces: _Pieces, column: pa.Array, null_id: int) -> _Segment:
    """A string (or dictionary of strings) column as JSON strings: raw values between quotes where they can be.

    A dictionary column contributes each distinct value once. A null row
    takes the piece ``null``; a value needing an escape takes orjson's text
    of it (one piece per such value); neither goes between quotes.
    """
    if pa.types.is_dictionary(column.type):
        values = column.dictionary
        codes = column.indices
        if codes.null_count:
            codes = pc.fill_null(codes, 0)
        codes = codes.to_numpy(zero_copy_only=False)
    else:
        values, codes = column, None
    if not pa.types.is_string(values.type):
        values = values.cast(pa.string())
    ids = np.arange(len(values), dtype=np.int64) + pieces.add(values)
    quoted: Quoted = True
    escaped = _escaped(values)
    if escaped is not None:
        rows, fixed = escaped
        ids[rows] = np.arange(len(rows)) + pieces.add(fixed)
        quoted = np.ones(len(values), bool)
        quoted[rows] = False
    if values.null_count:
        missing = ~values.is_valid().to_numpy(zero_copy_only=False)
        ids[missing] = null_id
        if quoted is True:
            quoted = np.ones(len(values), bool)
        quoted[missing] = False
    if codes is not None:
        ids = ids[codes]
        if quoted is not True:
            quoted = quoted[codes]
        if column.null_count:
            missing = ~column.is_valid().to_numpy(zero_copy_only=False)
            ids[missing] = null_id
            quoted = np.array(quoted, bool) if quoted is not True else np.ones(len(column), bool)
            quoted[missing] = False
    return _Segment(ids, quoted)


class _Template:
    """A table's line as literal keys around value segments, each literal in its four quote variants.

    ``literals[j]`` stands before value ``j`` (the last one, if there are
    ``len(values) + 1``, after the last value). Variant ``2 * a + b`` of a
    literal carries the closing quote of the value before it when ``a`` and
    the opening quote of the value after it when ``b``.
    """

    def __init__(self, literals: list[str]) -> None:
        self.literals = literals
        self.array = pa.array(
            [("\"" if a else "") + text + ("\"" if b else "") for text in literals for a in (0, 1) for b in (0, 1)],
            pa.string(),
        )

    def segments(self, pieces: _Pieces, values: list[_Segment], rows: int) -> np.ndarray:
        """The ``(rows, width)`` piece indices of the lines: literal, value, literal, value, …"""
        base = pieces.add(self.array)
        width = len(self.literals) + len(values)
        out = np.empty((rows, width), np.int64)
        before: Quoted = False
        for j, literal in enumerate(self.literals):
            after: Quoted = values[j].quoted if j < len(values) else False
            out[:, 2 * j] = base + 4 * j + 2 * np.asarray(before, np.int64) + np.asarray(after, np.int64)
            if j < len(values):
                out[:, 2 * j + 1] = values[j].ids
                before = after
        return out


_TEMPLATES = {
    DOWNLOAD: _Template([
        '{"table":"file_downloads","row":{"timestamp":', ',"country_code":', ',"url":', ',"project":',
        ',"file":{"filename":', ',"project":', ',"version":', ',"type":', '},"details":',
        ',"tls_protocol":', ',"tls_cipher":', ',"classification":', ',"event_id":', ',"agent_fingerprint":',
    ]),
    SIMPLE: _Template([
        '{"table":"simple_requests","row":{"timestamp":', ',"country_code":', ',"url":', ',"project":',
        ',"tls_protocol":', ',"tls_cipher":', ',"details":', ',"event_id":', ',"agent_fingerprint":',
    ]),
    UNPROCESSED: _Template(['{"table":"unprocessed","row":{"received_at":', ',"source":', ',"line":', ',"error":', "}}\n"]),
}
"""Literal keys of each table's line, in the row parser's key order (:func:`~haulage.parsers.lines.dead_letter`'s
for dead letters)."""


def _table_segments(table: str, batch: pa.RecordBatch, agents: Optional[tuple[np.ndarray, list]], pieces: _Pieces, null_id: int) -> np.ndarray:
    """The piece indices of each row's line, ``(rows, width)``."""
    column = batch.column
    rows = batch.num_rows
    if table == UNPROCESSED:
        values = [_stamp_segment(pieces, column("received_at"))]
        values += [_string_segment(pieces, column(name), null_id) for name in ("source", "line", "error")]
        return _TEMPLATES[table].segments(pieces, values, rows)
    if agents is None or table not in _TEMPLATES:
        return _row_by_row(table, batch, pieces)
    codes, results = agents
    fragments = _agent_pieces(table, results)
    per_agent = len(fragments) // len(results)
    agent_base = pieces.add(fragments) + per_agent * codes.astype(np.int64)
    agent = [_Segment(agent_base + k, False) for k in range(per_agent)]

    def text(values: pa.Array) -> _Segment:
        return _string_segment(pieces, values, null_id)

    head = [_stamp_segment(pieces, column("timestamp")), text(column("country_code")), text(column("url")), text(column("project"))]
    tls = [text(column("tls_protocol")), text(column("tls_cipher"))]
    tail = [text(column("event_id")), agent[-1]]
    if table == DOWNLOAD:
        file = column("file")
        values = [
            *head, text(file.field("filename")), text(file.field("project")), text(file.field("version")),
            text(file.field("type")), agent[0], *tls, agent[1], *tail,
        ]
    else:
        values = [*head, *tls, agent[0], *tail]
    return _TEMPLATES[table].segments(pieces, values, rows)


def _stamp_segment(pieces: _Pieces, timestamps: pa.Array) -> _Segment:
    """A timestamp column (never null: the parser rejects a line without one) as quoted ISO texts."""
    return _Segment(np.arange(len(timestamps), dtype=np.int64) + pieces.add(_iso_texts(timestamps)), False)


def _row_by_row(table: str, batch: pa.RecordBatch, pieces: _Pieces) -> np.ndarray:
    """Each row's whole line through orjson, one piece per row: ``(rows, 1)``."""
    dumps = orjson.dumps
    out = []
    for row in batch.to_pylist():
        for key, value in row.items():
            if hasattr(value, "strftime"):
                row[key] = value.strftime(_ISO)
        out.append(dumps({"table": table, "row": row}).decode() + "\n")
    base = pieces.add(pa.array(out, pa.string()))
    return (np.arange(len(out), dtype=np.int64) + base)[:, None]


def _in_line_order(segments: list[np.ndarray], positions: list[np.ndarray], empty_id: int) -> tuple[np.ndarray, np.ndarray]:
    """The tables' ``(rows, width)`` segment matrices as one flat index array, lines in order of position.

    Lines of a narrower table are padded with the empty piece, so every line
    has the same number of segments and the lines are the rows of one matrix
    (cheaper than placing segments one by one; an empty segment costs the
    ``take`` next to nothing). Also returns where each line's segments start
    in the flat array (one entry per line, plus the end).
    """
    rows = sum(len(matrix) for matrix in segments)
    width = max(matrix.shape[1] for matrix in segments)
    if len(segments) == 1:
        out = segments[0]
    else:
        rank = np.empty(rows, np.int64)
        rank[np.argsort(np.concatenate(positions), kind="stable")] = np.arange(rows)
        out = np.empty((rows, width), np.int64)
        at = 0
        for matrix in segments:
            where = rank[at : at + len(matrix)]
            out[where, : matrix.shape[1]] = matrix
            if matrix.shape[1] < width:
                out[where, matrix.shape[1] :] = empty_id
            at += len(matrix)
    return out.ravel(), np.arange(0, width * (rows + 1), width, dtype=np.int64)


def ndjson_chunks(parsed: ParsedBlock) -> Iterator[memoryview]:
    """Every row and dead letter of ``parsed`` as NDJSON, in line order, in chunks of :data:`CHUNK_LINES` lines.

    Each chunk is the data buffer of one ``take`` (bytes-like, not copied),
    made when the previous one has been consumed: the output is held a few MB
    at a time instead of a whole block's (~35 MB for a 16 MiB block), for the
    same CPU (``haulage parse`` of the 200k-line benchmark file peaked at
    347 MB RSS instead of 420 MB).
    """
    pieces = _Pieces()
    null_id = pieces.add(_NULL)
    empty_id = null_id + 1
    segments, positions = [], []
    for table, batch in parsed.batches.items():
        if batch.num_rows:
            segments.append(_table_segments(table, batch, parsed.agents.get(table), pieces, null_id))
            positions.append(parsed.positions[table])
    if not segments:
        return
    texts = pieces.texts()
    order, line_starts = _in_line_order(segments, positions, empty_id)
    lengths = np.diff(np.frombuffer(texts.buffers()[1], np.int32, len(texts) + 1, texts.offset))
    wide = None
    for first in range(0, len(line_starts) - 1, CHUNK_LINES):
        chunk = order[line_starts[first] : line_starts[min(first + CHUNK_LINES, len(line_starts) - 1)]]
        source = texts
        if int(lengths[chunk].sum()) > _MAX_OFFSET:  # these lines hold more than 2 GiB: 64-bit offsets
            wide = source = wide if wide is not None else texts.cast(pa.large_string())
        lines = source.take(pa.array(chunk))
        ends = np.frombuffer(lines.buffers()[1], np.int64 if source is wide else np.int32, len(lines) + 1, lines.offset)
        yield memoryview(lines.buffers()[2]).cast("B")[ends[0] : ends[-1]]


def block_ndjson(parsed: ParsedBlock) -> bytes:
    """Every row and dead letter of ``parsed`` as NDJSON, in line order, as one bytes (:func:`ndjson_chunks` joined)."""
    return b"".join(ndjson_chunks(parsed))
