"""Writing generated log lines to files for pipeline tests."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path
from typing import Iterable

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import corpus  # noqa: E402  (the independent oracle: labels come from how lines were built)

__all__ = ["corpus", "write_gzip"]


def write_gzip(path: Path, lines: Iterable[bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wb") as out:
        out.write(b"".join(line + b"\n" for line in lines))
    return path
