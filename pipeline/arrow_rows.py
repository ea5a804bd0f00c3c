"""Row dicts → Arrow tables with the schema from ``haulage.deploy.schemas``.

Rows carry timestamps as ISO 8601 text (what NDJSON and BigQuery want);
Arrow gets them as one vectorised parse per column instead of a datetime
object per row.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from haulage.deploy.schemas import PARTITION_COLUMN, arrow_schema

ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@lru_cache(maxsize=None)
def _schemas(table: str) -> tuple[pa.Schema, pa.Schema, int]:
    final = arrow_schema(table)
    index = final.get_field_index(PARTITION_COLUMN[table])
    textual = final.set(index, pa.field(final.field(index).name, pa.string(), nullable=False))
    return final, textual, index


def rows_to_arrow(table: str, rows: Sequence[dict[str, Any]]) -> pa.Table:
    final, textual, index = _schemas(table)
    data = pa.Table.from_pylist(list(rows), schema=textual)
    stamps = pc.strptime(data.column(index), format=ISO_FORMAT, unit="us").cast(final.field(index).type)
    return data.set_column(index, final.field(index), stamps)
