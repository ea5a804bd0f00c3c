"""The Arrow schema of parsed record batches: the table schema, with shared values dictionary-encoded.

``parsers/schemas.py`` defines the columns; this module says how the columnar
parser *carries* them. A batch of 20,000 downloads holds a few thousand
distinct agents and urls, so every column derived from the agent
(``details.*``, ``classification.*``, ``user_agent``) or from the url
(``url``, ``file.filename``, and a simple request's ``project``) is a
dictionary array: a dictionary of the batch's distinct values and one index
per row. Building such a column costs an index array instead of a copy of
every value, and Parquet writes dictionary arrays as they are (no re-hashing).

Rule: string leaves of the columns listed in :data:`DICTIONARY_COLUMNS` are
``dictionary<int32, string>``; everything else (booleans, timestamps, the
other strings) is exactly as in ``arrow_schema``. Values are the same either
way: ``batch.to_pylist()`` equals the plain table's. :func:`plain` and
:func:`conform` convert between the two.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

import pyarrow as pa

from .arrow_rows import rows_to_arrow
from .schemas import DOWNLOADS, SIMPLE, UNPROCESSED, arrow_schema

__all__ = ["DICTIONARY_COLUMNS", "DICTIONARY_STRING", "batch_schema", "conform", "plain", "empty_batch", "rows_batch"]

DICTIONARY_STRING = pa.dictionary(pa.int32(), pa.string())

DICTIONARY_COLUMNS: dict[str, frozenset[str]] = {
    DOWNLOADS: frozenset({"url", "file.filename", "details", "classification", "user_agent"}),
    SIMPLE: frozenset({"url", "project", "details", "classification", "user_agent"}),
    UNPROCESSED: frozenset(),
}


def _encoded(field: pa.Field, path: str, chosen: frozenset[str], inside: bool) -> pa.Field:
    here = inside or path in chosen
    if pa.types.is_struct(field.type):
        children = [_encoded(child, f"{path}.{child.name}", chosen, here) for child in field.type]
        return pa.field(field.name, pa.struct(children), nullable=field.nullable)
    if here and pa.types.is_string(field.type):
        return pa.field(field.name, DICTIONARY_STRING, nullable=field.nullable)
    return field


@lru_cache(maxsize=None)
def batch_schema(table: str) -> pa.Schema:
    """The schema of ``table``'s record batches as the columnar parser emits them."""
    chosen = DICTIONARY_COLUMNS[table]
    return pa.schema([_encoded(field, field.name, chosen, False) for field in arrow_schema(table)])


def conform(table: str, data: pa.RecordBatch | pa.Table) -> pa.RecordBatch | pa.Table:
    """``data`` (plain or batch schema) in :func:`batch_schema`; a no-op when it already is."""
    schema = batch_schema(table)
    return data if data.schema.equals(schema) else data.cast(schema)


def plain(table: str, data: pa.RecordBatch | pa.Table) -> pa.RecordBatch | pa.Table:
    """``data`` in the table's plain ``arrow_schema`` (dictionaries decoded)."""
    schema = arrow_schema(table)
    return data if data.schema.equals(schema) else data.cast(schema)


def empty_batch(table: str) -> pa.RecordBatch:
    """A record batch of no rows with the table's batch schema (a block that yielded nothing for it)."""
    return pa.RecordBatch.from_pylist([], schema=batch_schema(table))


def rows_batch(table: str, rows: Sequence[dict[str, Any]]) -> pa.RecordBatch:
    """The row parser's row dicts of ``table`` as one record batch in :func:`batch_schema` (rows in their order)."""
    batches = conform(table, rows_to_arrow(table, rows)).combine_chunks().to_batches()
    return batches[0] if batches else empty_batch(table)
