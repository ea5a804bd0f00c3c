"""What flows between the pipeline's stages.

Elements are batches, never single lines: a Beam element costs microseconds
of runner overhead, a parsed line about as much, so per-line elements would
spend half the time in the runner. A *chunk* (``list[LineBatch]``) is the unit
the parser consumes and the sinks flush: one file part in batch runs, one
window of messages in streaming runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from haulage.parsers import Origin
from haulage.parsers.framing import FileFault


@dataclass(slots=True)
class LineBatch:
    """Consecutive raw lines of one source, or the fault that ended it."""

    origin: Origin
    first_position: int
    lines: list[bytes]
    received_at: str
    fault: Optional[FileFault] = None


Chunk = list[LineBatch]

TableDay = tuple[str, str]
"""``(table, "YYYY-MM-DD")``: the unit of partitioning in every sink."""


@dataclass(slots=True)
class ParsedChunk:
    """Rows of one chunk, already split by table and UTC day.

    ``lines`` and ``faults`` say how many input lines and file-level faults
    the rows stand for, so the sinks can keep the books balanced:
    lines + faults == rows written + dead letters.
    """

    rows: dict[TableDay, list[dict[str, Any]]] = field(default_factory=dict)
    lines: int = 0
    faults: int = 0
