"""Parsed blocks as NDJSON, byte for byte what ``orjson.dumps({"table": …, "row": row_dict})`` gives — without the dicts.

``haulage parse`` writes one JSON object per input line, in input order:
``{"table":"file_downloads","row":{…}}``. Building each row as a dict and
encoding it would cost more than parsing it, so each table's JSON lines are
assembled column-wise with Arrow: every column becomes a column of JSON
texts, and one element-wise join per table glues them between the literal
keys. Repeated values are encoded once: timestamps per distinct second,
dictionary columns per dictionary value, and everything derived from the
agent (``details``, ``classification``, ``user_agent``,
``agent_fingerprint``) per distinct agent, from the parser's
:class:`~haulage.parsers.agents.AgentResult` objects. Lines of all tables are
then put back in line order with one ``take``, and the block's output is the
data buffer of that string array.

Rules that make it byte-identical to orjson: keys in the row parser's order,
compact separators, strings escaped only for ``"``, ``\\`` and control
characters below U+0020 (any value needing that is encoded by orjson
itself), ``null`` for missing values, timestamps as ``YYYY-MM-DDTHH:MM:SSZ``.
Rows without the agent side-car (the row parser's lines: legacy formats,
dead letters) are encoded per row with orjson; they are few.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from .columnar import ParsedBlock
from .grammar import DOWNLOAD, SIMPLE

__all__ = ["block_ndjson", "json_texts"]

_NEEDS_ESCAPE = r'["\\\x00-\x1f]'
_ISO = "%Y-%m-%dT%H:%M:%SZ"


def json_texts(column: pa.Array) -> pa.Array:
    """A string column as JSON texts: ``"value"`` (escaped as orjson does) or ``null``."""
    if pa.types.is_dictionary(column.type):
        encoded = json_texts(column.dictionary.cast(pa.string()))
        return pc.fill_null(encoded.take(column.indices), "null")
    if pa.types.is_integer(column.type):
        return pc.fill_null(pc.cast(column, pa.string()), "null")
    quoted = pc.binary_join_element_wise('"', column, '"', "")
    if not _may_need_escape(column):
        return pc.fill_null(quoted, "null")
    needs = pc.match_substring_regex(column, _NEEDS_ESCAPE)
    if pc.any(needs).as_py():
        rows = np.flatnonzero(pc.fill_null(needs, False).to_numpy(zero_copy_only=False))
        fixed = [orjson.dumps(value).decode() for value in column.take(pa.array(rows)).to_pylist()]
        mask = np.zeros(len(column), bool)
        mask[rows] = True
        quoted = pc.replace_with_mask(quoted, pa.array(mask), pa.array(fixed, pa.string()))
    return pc.fill_null(quoted, "null")


def _may_need_escape(column: pa.Array) -> bool:
    """Whether any byte of the column's values is ``"``, ``\\`` or a control character (one numpy pass)."""
    if len(column) == 0:
        return False
    offsets = np.frombuffer(column.buffers()[1], np.int32, len(column) + 1, column.offset)
    data = column.buffers()[2]
    if data is None:
        return False
    raw = np.frombuffer(data, np.uint8)[offsets[0] : offsets[-1]]
    return bool(((raw < 0x20) | (raw == 0x22) | (raw == 0x5C)).any())


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


_FRAGMENTS: dict[int, tuple[object, str, str, str]] = {}
"""JSON of each AgentResult's ``details``, ``classification`` and fingerprint, made once per result
(the result is kept referenced, so its id is not reused); emptied past :data:`_FRAGMENTS_LIMIT`."""
_FRAGMENTS_LIMIT = 1 << 16


def _fragments(result) -> tuple[object, str, str, str]:
    found = _FRAGMENTS.get(id(result))
    if found is None:
        if len(_FRAGMENTS) >= _FRAGMENTS_LIMIT:
            _FRAGMENTS.clear()
        fingerprint = "null" if result.fingerprint is None else str(result.fingerprint)
        found = _FRAGMENTS[id(result)] = (
            result, orjson.dumps(result.details).decode(), orjson.dumps(result.classification).decode(), fingerprint
        )
    return found


def _agent_parts(codes: np.ndarray, results: list) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Per row: the details JSON; the classification JSON; the fingerprint."""
    parts = [_fragments(r) for r in results]
    details = [p[1] for p in parts]
    middle = [p[2] for p in parts]
    fingerprints = [p[3] for p in parts]
    index = pa.array(codes)
    return (
        pa.array(details, pa.string()).take(index),
        pa.array(middle, pa.string()).take(index),
        pa.array(fingerprints, pa.string()).take(index),
    )


class _Value:
    """A string column to be written as a JSON value inside the line being assembled."""

    __slots__ = ("column",)

    def __init__(self, column: pa.Array) -> None:
        self.column = column


def _join(parts: list) -> pa.Array:
    """Concatenate literal text, ready JSON columns and :class:`_Value` columns, row by row.

    A ``_Value`` column without nulls and without a byte that needs escaping
    goes in as it is, its quotes merged into the neighbouring literals
    (saving a copy of the column); otherwise it is encoded by
    :func:`json_texts`. Adjacent literals are merged, so the element-wise
    join sees as few operands as possible.
    """
    operands: list = []
    for part in parts:
        if isinstance(part, _Value):
            column = part.column
            if pa.types.is_string(column.type) and column.null_count == 0 and not _may_need_escape(column):
                operands.extend(['"', column, '"'])
                continue
            part = json_texts(column)
        operands.append(part)
    merged: list = []
    for operand in operands:
        if isinstance(operand, str) and merged and isinstance(merged[-1], str):
            merged[-1] += operand
        else:
            merged.append(operand)
    return pc.binary_join_element_wise(*merged, "")


def _table_lines(table: str, batch: pa.RecordBatch, agents: Optional[tuple[np.ndarray, list]]) -> pa.Array:
    """One JSON line (with its ``\n``) per row of ``batch``."""
    if agents is None or table not in (DOWNLOAD, SIMPLE):
        return _row_by_row(table, batch)
    column = batch.column
    details, classification, fingerprint = _agent_parts(*agents)
    head = [
        f'{{"table":"{table}","row":{{"timestamp":', _iso_texts(column("timestamp")),
        ',"country_code":', _Value(column("country_code")),
        ',"url":', _Value(column("url")),
        ',"project":', _Value(column("project")),
    ]
    tls = [',"tls_protocol":', _Value(column("tls_protocol")), ',"tls_cipher":', _Value(column("tls_cipher"))]
    tail = [
        ',"classification":', classification, ',"user_agent":', _Value(column("user_agent")),
        ',"event_id":', _Value(column("event_id")), ',"agent_fingerprint":', fingerprint, "}}\n",
    ]
    if table == DOWNLOAD:
        file = column("file")
        middle = [
            ',"file":{"filename":', _Value(file.field("filename")), ',"project":', _Value(file.field("project")),
            ',"version":', _Value(file.field("version")), ',"type":', _Value(file.field("type")),
            '},"details":', details, *tls,
        ]
    else:
        middle = [*tls, ',"details":', details]
    return _join([*head, *middle, *tail])


def _row_by_row(table: str, batch: pa.RecordBatch) -> pa.Array:
    dumps = orjson.dumps
    out = []
    for row in batch.to_pylist():
        for key, value in row.items():
            if hasattr(value, "strftime"):
                row[key] = value.strftime(_ISO)
        out.append(dumps({"table": table, "row": row}).decode() + "\n")
    return pa.array(out, pa.string())


def block_ndjson(parsed: ParsedBlock) -> memoryview:
    """Every row and dead letter of ``parsed`` as NDJSON, in line order (bytes-like, not copied)."""
    parts, positions = [], []
    for table, batch in parsed.batches.items():
        parts.append(_table_lines(table, batch, parsed.agents.get(table)))
        positions.append(parsed.positions[table])
    if not parts:
        return memoryview(b"")
    lines = pa.concat_arrays(parts) if len(parts) > 1 else parts[0]
    if len(parts) > 1:
        lines = lines.take(pa.array(np.argsort(np.concatenate(positions), kind="stable")))
    offsets = np.frombuffer(lines.buffers()[1], np.int32, len(lines) + 1, lines.offset)
    return memoryview(lines.buffers()[2]).cast("B")[offsets[0] : offsets[-1]]
