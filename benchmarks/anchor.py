"""PyPI's own parser, measured on the caller's lines: the anchor of every ratio.

PyPI's download statistics are made by its ``linehaul`` package (PyPI:
``linehaul``; the cloud function that runs it reads each gzip log file line by
line). For every line it decodes the bytes, calls
``linehaul.events.parser.parse``, and writes the result as one JSON object
(``json.dumps(cattr.unstructure(result))``) or keeps the raw line as
unprocessed. :func:`linehaul_rate` does exactly that per-line work on lines
already in memory — inflating the file is left out, which flatters linehaul a
little and so keeps every "× PyPI" ratio conservative.

Measured in the same process, on the same lines, right next to what it is
compared with: the machine is shared and noisy, so a figure from another run
(or a constant in the code) would make the ratio meaningless.
"""

from __future__ import annotations

import json
import logging
import time
import warnings
from datetime import datetime
from typing import Sequence

__all__ = ["linehaul_rate", "linehaul_version", "DEFAULT_ANCHOR_LINES"]

DEFAULT_ANCHOR_LINES = 20_000
"""Lines given to linehaul (it runs at a few thousand lines/s; 20k ≈ 5 s)."""


def linehaul_version() -> str:
    from importlib.metadata import version

    return version("linehaul")


def _converter():
    import cattr

    converter = cattr.Converter()
    # what the cloud function's own converter does with timestamps
    converter.register_unstructure_hook(datetime, lambda d: d.strftime("%Y-%m-%d %H:%M:%S +00:00"))
    return converter


def linehaul_rate(lines: Sequence[bytes], limit: int = DEFAULT_ANCHOR_LINES) -> tuple[float, int, int]:
    """``(lines/s, rows, unprocessed)`` of PyPI's per-line work on the first ``limit`` lines."""
    from linehaul.events.parser import parse

    logging.getLogger("linehaul").setLevel(logging.CRITICAL)  # it logs every unknown agent
    sample = list(lines[:limit])
    unstructure = _converter().unstructure
    dumps = json.dumps
    out: list[bytes] = []
    with warnings.catch_warnings():
        # pyparsing warns about linehaul's deprecated argument on every call under pytest
        warnings.simplefilter("ignore")
        started = time.process_time()  # CPU time, like every figure it anchors (benchmarks/stages.py)
        rows, unprocessed = _run(sample, parse, unstructure, dumps, out)
        elapsed = time.process_time() - started
    return len(sample) / elapsed, rows, unprocessed


def _run(sample, parse, unstructure, dumps, out) -> tuple[int, int]:
    rows = unprocessed = 0
    for line in sample:
        try:
            result = parse(line.decode())
            if result is not None:
                out.append(dumps(unstructure(result)).encode() + b"\n")
                rows += 1
            else:
                unprocessed += 1
        except Exception:  # the cloud function keeps such lines as unprocessed
            unprocessed += 1
    return rows, unprocessed
