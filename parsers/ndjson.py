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
    needs = pc.match_substring_regex(column, _NEEDS_ESCAPE)
    if pc.any(needs).as_py():
        rows = np.flatnonzero(pc.fill_null(needs, False).to_numpy(zero_copy_only=False))
        fixed = [orjson.dumps(value).decode() for value in column.take(pa.array(rows)).to_pylist()]
        mask = np.zeros(len(column), bool)
        mask[rows] = True
        quoted = pc.replace_with_mask(quoted, pa.array(mask), pa.array(fixed, pa.string()))
    return pc.fill_null(quoted, "null")


def _iso_texts(timestamps: pa.Array) -> pa.Array:
    """``"YYYY-MM-DDTHH:MM:SSZ"`` per row, formatted once per distinct second."""
    encoded = timestamps.view(pa.int64()).dictionary_encode()
    seconds = pc.divide(encoded.dictionary, 1_000_000)  # rows carry whole seconds
    distinct = seconds.cast(pa.timestamp("s", tz="UTC"))
    texts = pc.binary_join_element_wise('"', pc.strftime(distinct, format=_ISO), '"', "")
    return texts.take(encoded.indices)


def _agent_parts(codes: np.ndarray, results: list) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Per row: the details JSON; ``,"classification":…,"user_agent":…``; the fingerprint."""
    dumps = orjson.dumps
    details, middle, fingerprints = [], [], []
    for r in results:
        details.append(dumps(r.details).decode())
        middle.append(dumps(r.classification).decode())
        fingerprints.append("null" if r.fingerprint is None else str(r.fingerprint))
    index = pa.array(codes)
    return (
        pa.array(details, pa.string()).take(index),
        pa.array(middle, pa.string()).take(index),
        pa.array(fingerprints, pa.string()).take(index),
    )


def _table_lines(table: str, batch: pa.RecordBatch, agents: Optional[tuple[np.ndarray, list]]) -> pa.Array:
    """One JSON line (with its ``\\n``) per row of ``batch``."""
    if agents is None or table not in (DOWNLOAD, SIMPLE):
        return _row_by_row(table, batch)
    column = batch.column
    details, classification, fingerprint = _agent_parts(*agents)
    user_agent = json_texts(column("user_agent"))
    head = [
        f'{{"table":"{table}","row":{{"timestamp":', _iso_texts(column("timestamp")),
        ',"country_code":', json_texts(column("country_code")),
        ',"url":', json_texts(column("url")),
        ',"project":', json_texts(column("project")),
    ]
    tls = [',"tls_protocol":', json_texts(column("tls_protocol")), ',"tls_cipher":', json_texts(column("tls_cipher"))]
    tail = [
        ',"classification":', classification, ',"user_agent":', user_agent,
        ',"event_id":', json_texts(column("event_id")), ',"agent_fingerprint":', fingerprint, "}}\n",
    ]
    if table == DOWNLOAD:
        file = column("file")
        middle = [
            ',"file":{"filename":', json_texts(file.field("filename")), ',"project":', json_texts(file.field("project")),
            ',"version":', json_texts(file.field("version")), ',"type":', json_texts(file.field("type")),
            '},"details":', details, *tls,
        ]
    else:
        middle = [*tls, ',"details":', details]
    return pc.binary_join_element_wise(*head, *middle, *tail, "")


def _row_by_row(table: str, batch: pa.RecordBatch) -> pa.Array:
    dumps = orjson.dumps
    out = []
    for row in batch.to_pylist():
        for key, value in row.items():
            if hasattr(value, "strftime"):
                row[key] = value.strftime(_ISO)
        out.append(dumps({"table": table, "row": row}).decode() + "\n")
    return pa.array(out, pa.string())


def block_ndjson(parsed: ParsedBlock) -> bytes:
    """Every row and dead letter of ``parsed`` as NDJSON, in line order."""
    parts, positions = [], []
    for table, batch in parsed.batches.items():
        parts.append(_table_lines(table, batch, parsed.agents.get(table)))
        positions.append(parsed.positions[table])
    if not parts:
        return b""
    lines = pa.concat_arrays(parts) if len(parts) > 1 else parts[0]
    if len(parts) > 1:
        lines = lines.take(pa.array(np.argsort(np.concatenate(positions), kind="stable")))
    offsets = np.frombuffer(lines.buffers()[1], np.int32, len(lines) + 1, lines.offset)
    return lines.buffers()[2].to_pybytes()[offsets[0] : offsets[-1]]
