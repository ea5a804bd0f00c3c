"""Whole blocks of lines → one Arrow record batch per table, vectorised; the row parser for the rest.

Why: a row built field by field as a Python dict costs microseconds, and
PyPI's traffic is millions of lines an hour. Here a block of lines (one
buffer, see :class:`~haulage.parsers.line_block.LineBlock`) is parsed with
Arrow's C++ kernels and numpy: every line's first nine ``|`` found in one
numpy pass over the buffer, one ``take`` per column straight from its
bytes, timestamps and urls dictionary-encoded and each distinct value
handled once, the agent column dictionary-encoded and **each distinct
agent looked up once** in the shared LRU (parsed on a miss), its ``details``
and ``classification`` gathered by index (:mod:`~haulage.parsers.agent_columns`).

The rule that keeps it exact: a line takes the vectorised path only when it
is valid UTF-8, at most :data:`~haulage.parsers.lines.MAX_LINE_BYTES` long,
starts ``download|`` or ``simple|``, has all ten fields, and passes every
check the row parser makes (timestamp, url, project, version, package type,
``/simple/<project>/``). Every other line — damaged lines, legacy syslog
formats — goes to :class:`~haulage.parsers.lines.LineParser` (the reference,
sharing the same agent cache), so its row or dead letter, with its reason,
is by construction what the row parser says. ``tests/test_columnar.py`` holds
the two paths to identical rows and dead letters on random corpora.

Output rows of each table are in line order; ``positions`` gives each row's
line number, which :func:`split_by_day` and the NDJSON writer use.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .schemas import PARTITION_COLUMN

from .agent_columns import AgentColumns, AgentStore, expand
from .agents import DEFAULT_AGENT_CACHE_SIZE, AgentCache
from .batch_schema import DICTIONARY_STRING, batch_schema, rows_batch
from .buffer_words import words_at
from .grammar import DOWNLOAD, SIMPLE, Rejected
from .line_block import LineBlock
from .line_sources import BlockSources
from .lines import MAX_LINE_BYTES, PACKAGE_TYPES, UNPROCESSED, LineParser, Origin
from .timestamp_columns import RFC1123_WIDTH, parse_rfc1123_matrix

__all__ = ["ColumnarParser", "ParsedBlock", "split_by_day", "concat_blocks", "PHASES"]

PHASES = ("fields", "agents", "columns", "fallback")
"""Where :attr:`ColumnarParser.seconds` accounts the parse time (see the benchmarks)."""
_clock = time.process_time  # CPU time: on a shared machine, wall time would count the neighbours too

_NULL_TEXT = b"(null)"
_BAR = ord("|")
_PACKAGE_TYPES = pa.array(sorted(PACKAGE_TYPES))
_MICROS_PER_DAY = 86_400 * 1_000_000


@dataclass
class ParsedBlock:
    """The rows of a block: a record batch per table (``batch_schema``) and each row's line number."""

    batches: dict[str, pa.RecordBatch] = field(default_factory=dict)
    positions: dict[str, np.ndarray] = field(default_factory=dict)
    lines: int = 0
    agents: dict[str, tuple[np.ndarray, list]] = field(default_factory=dict)
    """Per table whose rows all took the vectorised path: each row's agent code and the distinct
    AgentResults (what the NDJSON writer encodes once per agent)."""
    agent_columns_left_null: frozenset[str] = frozenset()
    """Tables whose agent-derived columns were not built (a parser made with ``agent_columns=False``):
    in those batches ``details``, ``classification``, ``user_agent`` and ``agent_fingerprint`` are
    null, and only :attr:`agents` says what they are."""

    @property
    def rows(self) -> int:
        """Rows of every table in this block, dead letters included."""
        return sum(batch.num_rows for batch in self.batches.values())


class ColumnarParser:
    """Parses blocks of lines with Arrow kernels; one per worker thread (not thread-safe).

    ``rows`` is the row parser used for the lines the vectorised path does
    not take; its agent cache is the one this parser looks agents up in.
    ``agent_columns=False`` is for a writer that takes everything derived
    from the agent from :attr:`ParsedBlock.agents` (the NDJSON writer): the
    batches' four agent-derived columns are then left null instead of built
    from the agent store (a twentieth of ``haulage parse``), except in a
    table that the row parser's rows are merged into, which gets them built.
    """

    def __init__(
        self, agent_cache_size: int = DEFAULT_AGENT_CACHE_SIZE, rows: Optional[LineParser] = None, *,
        agent_columns: bool = True,
    ) -> None:
        if rows is None:
            rows = LineParser(agent_cache_size=agent_cache_size)
            # A block looks up thousands of distinct agents at once: a front dict as large as
            # the LRU keeps those lookups at dict speed (the LRU still decides what is parsed).
            rows.agents = AgentCache(agent_cache_size, front_size=agent_cache_size)
        self.rows = rows
        self.agents = rows.agents
        self._store = AgentStore(limit=max(1 << 16, 4 * self.agents.maxsize))
        self._agent_columns_wanted = agent_columns
        self.seconds = dict.fromkeys(PHASES, 0.0)

    @property
    def cache_hits(self) -> int:
        """Agent cache hits so far (for the run summary's hit rate)."""
        return self.agents.hits

    @property
    def cache_misses(self) -> int:
        """Agent cache misses so far: agents parsed."""
        return self.agents.misses

    def parse_lines(
        self, lines: Sequence[bytes], origin: Origin, first_position: int = 1, received_at: Optional[str] = None
    ) -> ParsedBlock:
        """Lines without their ``\\n`` (framing's batches); positions count up from ``first_position``."""
        return self.parse_block(LineBlock.from_lines(lines, first_position), origin, received_at)

    def parse_block(self, block: LineBlock, origin: Origin, received_at: Optional[str] = None) -> ParsedBlock:
        """Every line of ``block`` as a row of its table or a dead letter, never raising."""
        return self.parse_sources(block, BlockSources.single(origin, block.first_position, received_at, len(block)))

    def parse_sources(self, block: LineBlock, sources: BlockSources) -> ParsedBlock:
        """:meth:`parse_block` for a block whose lines come from many sources (Pub/Sub messages), line by line in ``sources``.

        Each row's event id, and each dead letter's source and receive time,
        are those of its own source and line number. ``positions`` in the
        result still number the block's lines (from ``block.first_position``):
        they order the rows, the sources are in the rows.
        """
        n = len(block)
        if len(sources) != n:
            raise ValueError(f"{len(sources)} line sources for a block of {n} lines")
        if n == 0:
            return ParsedBlock()
        started = _clock()
        ten, bars = _bars(block)
        bytes_ = np.frombuffer(block.data, np.uint8)
        starts = block.starts[:-1]
        head = np.where(ten, bars[:, 0] - starts, -1)  # the length of field 0 where the line has ten fields
        is_download = _spans_equal(bytes_, starts, head, b"download")  # the line starts "download|"
        is_simple = _spans_equal(bytes_, starts, head, b"simple")
        fast = (is_download | is_simple) & (block.lengths() <= MAX_LINE_BYTES)
        fast[block.not_utf8()] = False
        data = pa.py_buffer(block.data)
        self.seconds["fields"] += _clock() - started

        out = ParsedBlock(lines=n)
        taken = np.zeros(n, bool)
        for table, build, mask in ((DOWNLOAD, self._downloads, fast & is_download), (SIMPLE, self._simple, fast & is_simple)):
            rows = np.flatnonzero(mask)
            if len(rows):
                batch, kept, agents = build(_Fields.of(data, block.starts, bars, rows), rows, sources)
                taken[kept] = True
                if batch.num_rows:
                    out.batches[table] = batch
                    out.positions[table] = kept + block.first_position
                    out.agents[table] = agents
                    if not self._agent_columns_wanted:
                        out.agent_columns_left_null = out.agent_columns_left_null | {table}
        started = _clock()
        self._fallback(block, np.flatnonzero(~taken), sources, out)
        self.seconds["fallback"] += _clock() - started
        return out

    # -- the vectorised tables -------------------------------------------------

    def _downloads(self, fields: "_Fields", rows: np.ndarray, sources: BlockSources) -> "_Built":
        started = _clock()
        # every check that needs no copy first, so that only the rows kept are copied
        stamps = _stamps(fields)
        ok = stamps.ok & ~fields.is_null_text(3) & ~fields.is_null_text(6) & ~fields.is_null_text(7)
        rows, fields, stamps = _kept(ok, rows, fields, stamps)
        package_type = fields.take(8)
        ok = pc.is_in(package_type, value_set=_PACKAGE_TYPES).to_numpy(zero_copy_only=False)
        if not ok.all():
            rows, fields, stamps = _kept(ok, rows, fields, stamps)
            package_type = package_type.filter(pa.array(ok))
        self.seconds["fields"] += _clock() - started
        if not len(rows):
            return _empty(DOWNLOAD), rows, None
        agent_columns, agents = self._agent_columns(fields)
        started = _clock()
        url_codes, urls = _encode(fields.take(3))
        schema = batch_schema(DOWNLOAD)
        url_index = pa.array(url_codes)
        filename = pa.DictionaryArray.from_arrays(url_index, _after_last_slash(urls), safe=False)
        project = fields.take(6)
        file = pa.StructArray.from_arrays(
            [filename, project, fields.take(7), package_type], fields=list(schema.field("file").type)
        )
        details, classification, user_agent, fingerprint = agent_columns
        columns = [
            stamps.timestamps(),
            fields.take_or_null(2),
            pa.DictionaryArray.from_arrays(url_index, urls, safe=False),
            project,
            file,
            details,
            fields.take_or_null(4),
            fields.take_or_null(5),
            classification,
            user_agent,
            sources.event_ids(rows),
            fingerprint,
        ]
        batch = pa.RecordBatch.from_arrays(columns, schema=schema)
        self.seconds["columns"] += _clock() - started
        return batch, rows, agents

    def _simple(self, fields: "_Fields", rows: np.ndarray, sources: BlockSources) -> "_Built":
        started = _clock()
        stamps = _stamps(fields)
        rows, fields, stamps = _kept(stamps.ok & ~fields.is_null_text(3), rows, fields, stamps)
        url_codes, urls = _encode(fields.take(3))
        projects: list[Optional[str]] = []
        url_ok = np.ones(len(urls), bool)
        for i, url in enumerate(urls.to_pylist()):
            try:
                projects.append(self.rows._simple_project(url))
            except Rejected:
                url_ok[i] = False
                projects.append(None)
        ok = url_ok[url_codes]
        if not ok.all():
            url_codes = url_codes[ok]
            rows, fields, stamps = _kept(ok, rows, fields, stamps)
        self.seconds["fields"] += _clock() - started
        if not len(rows):
            return _empty(SIMPLE), rows, None
        (details, classification, user_agent, fingerprint), agents = self._agent_columns(fields)
        started = _clock()
        url_index = pa.array(url_codes)
        columns = [
            stamps.timestamps(),
            fields.take_or_null(2),
            pa.DictionaryArray.from_arrays(url_index, urls, safe=False),
            expand(pa.array(projects, pa.string()), url_index, DICTIONARY_STRING),
            fields.take_or_null(4),
            fields.take_or_null(5),
            details,
            classification,
            user_agent,
            sources.event_ids(rows),
            fingerprint,
        ]
        batch = pa.RecordBatch.from_arrays(columns, schema=batch_schema(SIMPLE))
        self.seconds["columns"] += _clock() - started
        return batch, rows, agents

    def _agent_columns(self, fields: "_Fields") -> tuple[AgentColumns, tuple[np.ndarray, list]]:
        """``details``, ``classification``, ``user_agent`` and ``agent_fingerprint`` of every row, each distinct agent looked up once.

        The agents are the rows' field 9, copied here (so the copy is
        accounted to the "agents" phase, as everything about agents is).

        Rule: the block's distinct agents are found in the cache's front dict
        in one C-level pass (``map``), only the ones missing there take the
        LRU path (:meth:`AgentCache.lookup`, parsed on a miss); the store
        gives each result its index, and the columns are gathered by those
        indices (:class:`AgentStore`). Hits are counted as ``AgentCache.get``
        counts them.
        """
        started = _clock()
        encoded = fields.take(9).dictionary_encode()
        # the row parser strips the line's trailing "\r\n"; only the agent, the last field, can carry it
        distinct = pc.utf8_rtrim(encoded.dictionary, characters="\r\n").to_pylist()
        cache = self.agents
        results = list(map(cache.front.get, distinct))
        missing = results.count(None)
        cache.hits += len(results) - missing
        if missing:
            lookup = cache.lookup
            results = [lookup(agent) if result is None else result for agent, result in zip(distinct, results)]
        indices = encoded.indices
        if not self._agent_columns_wanted:
            self.seconds["agents"] += _clock() - started
            return _null_agent_columns(len(indices)), (indices.to_numpy(zero_copy_only=False), results)
        sids = self._store.lookup(results)
        self.seconds["agents"] += _clock() - started
        started = _clock()
        columns = self._store.columns(sids, indices)
        self.seconds["columns"] += _clock() - started
        return columns, (indices.to_numpy(zero_copy_only=False), results)

    def _build_agent_columns(self, table: str, out: ParsedBlock) -> None:
        """Replace the null agent-derived columns of ``table``'s batch by the built ones (see ``agent_columns``)."""
        codes, results = out.agents[table]
        columns = self._store.columns(self._store.lookup(results), pa.array(codes, pa.int32()))
        batch = out.batches[table]
        for name, column in zip(_AGENT_COLUMN_NAMES, columns):
            batch = batch.set_column(batch.schema.get_field_index(name), batch.schema.field(name), column)
        out.batches[table] = batch
        out.agent_columns_left_null = out.agent_columns_left_null - {table}

    # -- the row path ------------------------------------------------------------

    def _fallback(self, block: LineBlock, leftover: np.ndarray, sources: BlockSources, out: ParsedBlock) -> None:
        """Lines the vectorised path did not take, through the row parser (each with its own source); merged in line order."""
        if not len(leftover):
            return
        parse = self.rows.parse
        first_position = block.first_position
        rows: dict[str, list[dict]] = {}
        positions: dict[str, list[int]] = {}
        for i in leftover.tolist():
            record = parse(block.line(i), *sources.line(i))
            rows.setdefault(record.table, []).append(record.row)
            positions.setdefault(record.table, []).append(first_position + i)
        for table, table_rows in rows.items():
            batch = rows_batch(table, table_rows)
            where = np.asarray(positions[table], np.int64)
            if table in out.batches:
                if table in out.agent_columns_left_null:
                    self._build_agent_columns(table, out)  # the merged batch is all the writer will have
                batch, where = _merge(out.batches[table], out.positions[table], batch, where)
                del out.agents[table]
            out.batches[table] = batch
            out.positions[table] = where


_Built = tuple[pa.RecordBatch, np.ndarray, Optional[tuple[np.ndarray, list]]]
"""A vectorised table: its batch, the block indices of its rows, and its agent side-car."""


def _bars(block: LineBlock) -> tuple[np.ndarray, np.ndarray]:
    """Which lines have ten ``|``-separated fields, and where each line's first nine ``|`` are.

    The ten fields are what ``split("|", 9)`` gives: the first nine end at the
    first nine ``|`` of the line, the tenth (the agent, which may hold ``|``)
    runs to the end. All ``|`` of the block are found in one numpy pass; a
    line's first nine are the nine that follow the last one before its start,
    read through a sliding window over them (no index matrix). Row ``i`` of
    the ``(n, 9)`` result holds the byte offsets of line ``i``'s first nine
    (meaningless for a line without ten fields).
    """
    starts = block.starts
    bars = np.flatnonzero(np.frombuffer(block.data, np.uint8) == _BAR)
    if len(bars) < 9:
        return np.zeros(len(block), bool), np.zeros((len(block), 9), np.int64)
    first_bar = np.searchsorted(bars, starts[:-1])
    at = np.lib.stride_tricks.sliding_window_view(bars, 9)[np.minimum(first_bar, len(bars) - 9)]
    ten = first_bar + 8 < len(bars)
    ten &= at[:, 8] < starts[1:] - 1  # the ninth "|" is before the line's "\n"
    return ten, at


class _Fields:
    """Field ``j`` of the selected lines, copied straight from the block's bytes.

    Field ``j`` of row ``k`` spans from just after its ``j``-th ``|`` (the line
    start for ``j = 0``) to its ``j + 1``-th ``|``; the agent (``j = 9``) runs
    to the next line's start, keeping the ``\\n`` as the row parser's split
    does (stripped where it matters). The rows are in line order, so a
    field's spans are ascending and one ``take`` copies the column
    (:func:`_take_spans`), with no split of the whole line; checks that need
    only a field's length or a few of its bytes (:meth:`is_null_text`) copy
    nothing.
    """

    __slots__ = ("data", "cuts")

    def __init__(self, data: pa.Buffer, cuts: np.ndarray) -> None:
        self.data = data
        self.cuts = cuts
        """``(11, m)``: per row, the offset just before field 0 (its line start - 1), its nine
        ``|``, and the end of field 9 (the next line's start); field ``j`` is ``cuts[j] + 1 .. cuts[j + 1]``."""

    @classmethod
    def of(cls, data: pa.Buffer, starts: np.ndarray, bars: np.ndarray, rows: np.ndarray) -> "_Fields":
        """The fields of lines ``rows`` (ascending) of a block, from its line starts and :func:`_bars`."""
        cuts = np.empty((11, len(rows)), np.int64)
        cuts[0] = starts[rows] - 1
        cuts[1:10] = bars[rows].T
        cuts[10] = starts[rows + 1]
        return cls(data, cuts)

    def __len__(self) -> int:
        return self.cuts.shape[1]

    def bounds(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        """Where field ``j`` of every row begins and ends in :attr:`data` (end exclusive)."""
        return self.cuts[j] + 1, self.cuts[j + 1]

    def take(self, j: int) -> pa.Array:
        """Field ``j`` of every row as a string array (a copy of its bytes)."""
        return _take_spans(self.data, *self.bounds(j))

    def take_or_null(self, j: int) -> pa.Array:
        """Field ``j`` as :meth:`take` gives it, with ``(null)`` and empty values as nulls.

        A column whose values all have one width of at most 8 bytes (a
        country code, a TLS version) is copied as one word per row
        (:func:`words_at`) instead of by ``take``; its null rows then hold
        zero bytes of that width (what a null slot holds is never read).
        """
        begin, end = self.bounds(j)
        length = end - begin
        data = np.frombuffer(self.data, np.uint8)
        null = _null_spans(data, begin, length)
        widths = length[~null]
        width = int(widths[0]) if len(widths) else 0
        if 0 < width <= 8 and (widths == width).all():
            words = words_at(data, begin, width)
            words[null] = 0
            column = _fixed_width_strings(words, width)
        else:
            column = _take_spans(self.data, begin, end)
        if not null.any():
            return column
        validity = pa.py_buffer(np.packbits(~null, bitorder="little"))
        return pa.Array.from_buffers(pa.string(), len(column), [validity, *column.buffers()[1:]], null_count=int(null.sum()))

    def is_null_text(self, j: int) -> np.ndarray:
        """Where field ``j`` is ``(null)`` or empty — what the CDN writes for a missing value.

        Told from the field's length, and for the 6-byte ones from their bytes,
        without copying the field.
        """
        begin, end = self.bounds(j)
        return _null_spans(np.frombuffer(self.data, np.uint8), begin, end - begin)

    def fixed_width(self, j: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """``(which rows, their bytes)``: the rows whose field ``j`` is exactly ``width`` bytes, as indices
        into the rows, and those fields as an ``(len(which), width)`` uint8 matrix (one copy)."""
        begin, end = self.bounds(j)
        fits = end - begin == width
        if fits.all():
            which = np.arange(len(begin))
        else:
            which = np.flatnonzero(fits)
            begin, end = begin[which], end[which]
        if not len(which):
            return which, np.zeros((0, width), np.uint8)
        values = np.frombuffer(_take_spans(self.data, begin, end).buffers()[2], np.uint8, len(which) * width)
        return which, values.reshape(len(which), width)

    def subset(self, keep: np.ndarray) -> "_Fields":
        """The rows ``keep`` (ascending indices)."""
        return _Fields(self.data, np.take(self.cuts, keep, axis=1))


def _null_spans(data: np.ndarray, begin: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Where a field's span is ``(null)`` or empty: what the CDN writes for a missing value."""
    return (length == 0) | _spans_equal(data, begin, length, _NULL_TEXT)


def _spans_equal(data: np.ndarray, begin: np.ndarray, length: np.ndarray, text: bytes) -> np.ndarray:
    """Where the span ``data[begin : begin + length]`` is ``text`` (at most 8 bytes).

    Only spans of ``len(text)`` bytes are read, all at once as one word each
    (:func:`words_at`); a span whose length differs (for instance -1 for "no
    span") is not equal and is not read.
    """
    equal = length == len(text)
    candidates = np.flatnonzero(equal)
    if len(candidates):
        equal[candidates] = words_at(data, begin[candidates], len(text)) == np.uint64(int.from_bytes(text, "little"))
    return equal


def _fixed_width_strings(words: np.ndarray, width: int) -> pa.Array:
    """A string array of the first ``width`` bytes (≤ 8) of each little-endian uint64 in ``words``.

    The values buffer is the words' bytes with the top ``8 - width`` of each
    left out: a structured view whose one field is the first ``width`` bytes
    of each 8, copied contiguous in one numpy call.
    """
    n = len(words)
    first = np.dtype({"names": ["text"], "formats": [f"V{width}"], "offsets": [0], "itemsize": 8})
    values = np.ascontiguousarray(words.view(first)["text"])
    offsets = np.arange(0, width * n + 1, width, dtype=np.int32)
    return pa.Array.from_buffers(pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(values)])


def _take_spans(data: pa.Buffer, begin: np.ndarray, end: np.ndarray) -> pa.Array:
    """The bytes ``data[begin[k]:end[k]]`` of every ``k`` as a string array (ascending, non-overlapping spans, checked).

    The spans, with the gaps between them as extra elements, are the monotone
    offsets of one string array viewing ``data``; ``take`` of its even
    elements copies just the spans.
    """
    m = len(begin)
    if m and not (begin[0] >= 0 and end[-1] <= data.size and (begin <= end).all() and (end[:-1] <= begin[1:]).all()):
        # a negative length, or a span outside the buffer, would make Arrow's take read or write
        # past its buffers: refuse it
        raise ValueError("spans must lie in the buffer, ascending and not overlapping")
    offsets = np.empty(2 * m + 1, np.int32)
    offsets[0:-1:2] = begin
    offsets[1::2] = end
    offsets[-1] = end[-1] if m else 0
    spans = pa.Array.from_buffers(pa.string(), 2 * m, [None, pa.py_buffer(offsets), data])
    # the indices are in range by construction: Arrow's bounds check would be a wasted pass
    return pc.take(spans, pa.array(np.arange(0, 2 * m, 2)), boundscheck=False)


def _kept(ok: np.ndarray, rows: np.ndarray, fields: "_Fields", stamps: "_Stamps") -> tuple[np.ndarray, "_Fields", "_Stamps"]:
    """The rows where ``ok``: their line numbers, fields and timestamps (the same objects when all are)."""
    if ok.all():
        return rows, fields, stamps
    keep = np.flatnonzero(ok)
    return rows[keep], fields.subset(keep), stamps.subset(keep)


def _stamps(fields: _Fields) -> "_Stamps":
    """Every row's timestamp (field 1) parsed in one vectorised pass, straight from the block's bytes.

    Only a 29-byte field can be valid; those are copied as one ``(k, 29)``
    byte matrix and parsed per row, not per distinct text: a dozen numpy
    operations over the matrix cost less than hashing the texts to find
    the distinct ones.
    """
    m = len(fields)
    epochs, ok = np.zeros(m, np.int64), np.zeros(m, bool)
    which, matrix = fields.fixed_width(1, RFC1123_WIDTH)
    if len(which):
        epochs[which], ok[which] = parse_rfc1123_matrix(matrix)
    return _Stamps(epochs, ok)


@dataclass
class _Stamps:
    epochs: np.ndarray  # per row (0 where invalid)
    ok: np.ndarray

    def subset(self, keep: np.ndarray) -> "_Stamps":
        return _Stamps(self.epochs[keep], self.ok[keep])

    def timestamps(self) -> pa.Array:
        micros = self.epochs * 1_000_000
        return pa.Array.from_buffers(pa.timestamp("us", tz="UTC"), len(micros), [None, pa.py_buffer(micros)])


_AGENT_COLUMN_NAMES = ("details", "classification", "user_agent", "agent_fingerprint")


def _null_agent_columns(n: int) -> AgentColumns:
    """The four agent-derived columns of ``n`` rows, all null (a parser made with ``agent_columns=False``)."""
    schema = batch_schema(DOWNLOAD)
    return tuple(pa.nulls(n, schema.field(name).type) for name in _AGENT_COLUMN_NAMES)  # type: ignore[return-value]


def _empty(table: str) -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=batch_schema(table))


def _encode(column: pa.Array) -> tuple[np.ndarray, pa.Array]:
    """``(codes per row, distinct values)`` of a column."""
    encoded = column.dictionary_encode()
    return encoded.indices.to_numpy(zero_copy_only=False), encoded.dictionary


def _after_last_slash(texts: pa.Array) -> pa.Array:
    """Each text from just after its last ``/`` (the whole text if it has none): a url's file name.

    What ``replace_substring_regex(texts, "^.*/", "")`` gives for texts
    without a newline, found with numpy over the texts' bytes instead of a
    regular expression per text: every ``/`` in one pass, each text's last
    one by a sorted search of its end.
    """
    n = len(texts)
    offsets = np.frombuffer(texts.buffers()[1], np.int32, n + 1, texts.offset * 4).astype(np.int64)
    values = texts.buffers()[2]
    if values is None or n == 0:
        return texts
    slashes = np.flatnonzero(np.frombuffer(values, np.uint8, offsets[-1]) == ord("/"))
    if not len(slashes):
        return texts
    before_end = np.searchsorted(slashes, offsets[1:]) - 1  # the last "/" before each text's end, if any ...
    last = slashes[np.maximum(before_end, 0)]
    inside = (before_end >= 0) & (last >= offsets[:-1])  # ... and whether it is inside the text
    return _take_spans(values, np.where(inside, last + 1, offsets[:-1]), offsets[1:])


def _merge(first: pa.RecordBatch, first_positions: np.ndarray, second: pa.RecordBatch, second_positions: np.ndarray) -> tuple[pa.RecordBatch, np.ndarray]:
    """Two batches of one table as one, rows in line order."""
    table = pa.Table.from_batches([first, second]).combine_chunks()
    positions = np.concatenate([first_positions, second_positions])
    order = np.argsort(positions, kind="stable")
    return table.take(pa.array(order)).to_batches()[0], positions[order]


def concat_blocks(table: str, blocks: Sequence[pa.RecordBatch]) -> pa.Table:
    """Batches of one table as a table, without copying (each keeps its dictionaries)."""
    return pa.Table.from_batches(list(blocks), schema=batch_schema(table))


def split_by_day(table: str, batch: pa.RecordBatch) -> dict[str, pa.RecordBatch]:
    """``batch`` split by the UTC day of its partition column, rows kept in order within a day."""
    if batch.num_rows == 0:
        return {}
    micros = batch.column(PARTITION_COLUMN[table]).view(pa.int64()).to_numpy(zero_copy_only=False)
    days = micros // _MICROS_PER_DAY
    first, last = int(days[0]), int(days[-1])
    if first == last and (days == first).all():
        return {_iso_day(first): batch}
    order = np.argsort(days, kind="stable")
    ordered = batch.take(pa.array(order))
    days = days[order]
    cuts = [0, *(np.flatnonzero(np.diff(days)) + 1).tolist(), len(days)]
    return {_iso_day(int(days[a])): ordered.slice(a, b - a) for a, b in zip(cuts, cuts[1:])}


def _iso_day(day: int) -> str:
    return str(np.datetime64(day, "D"))
