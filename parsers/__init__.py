"""haulage.parsers — CDN log lines to rows, pure Python (no Beam).

See docs/parsers-api.md for the contract. Entry points:

* :class:`LineParser` — one line to one :class:`Record` (row or dead letter);
* :func:`haulage.parsers.agents.parse_agent` — one user agent to details + kind;
* :func:`haulage.parsers.framing.iter_line_batches` — byte streams to lines;
* :func:`haulage.parsers.ndjson_files.parse_files` — files to NDJSON (the job of ``haulage parse``).
"""

from .grammar import DOWNLOAD, SIMPLE
from .lines import (
    MAX_LINE_BYTES,
    REASONS,
    TABLES,
    UNPROCESSED,
    LineParser,
    Origin,
    Record,
    dead_letter,
)

__all__ = [
    "DOWNLOAD",
    "SIMPLE",
    "UNPROCESSED",
    "TABLES",
    "REASONS",
    "MAX_LINE_BYTES",
    "LineParser",
    "Origin",
    "Record",
    "dead_letter",
]
