"""Shared pieces of the benchmarks: the corpus in memory and as gzip, inflate timings.

Every benchmark builds its lines with :func:`make_corpus` (``benchmarks/corpus.py``,
realistic mix, ``fresh_agents`` share of never-seen agents) and reports the
share of distinct agents, since that is what decides how much the agent cache
helps.
"""

from __future__ import annotations

import gc
import gzip
import time
import zlib
from dataclasses import dataclass
from typing import Callable

from corpus import FRESH_AGENTS, generate_lines

__all__ = [
    "Corpus", "make_corpus", "best_of", "clock", "inflate_rates", "add_corpus_arguments", "add_run_arguments",
    "child_cpu", "collect_like_workers",
]

clock = time.process_time
"""The clock of every in-process measurement: this process's CPU time. The machine is shared
(other work keeps the load at several times its 2 cores), and CPU time is what a stage would
take on a core of its own; wall time there mostly measures the neighbours. PyPI's parser is
measured with the same clock, so the ratios compare like with like."""


def emulator_starters():
    """The tests' emulator starters (``tests/support/emulators.py``), for benchmarks that run against an emulator."""
    import sys
    from pathlib import Path

    tests = str(Path(__file__).resolve().parents[1] / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from support import emulators

    return emulators


def child_cpu() -> float:
    """CPU seconds (user + system) used so far by this process's finished children."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Corpus:
    lines: list[bytes]
    distinct_agents: int

    @property
    def text(self) -> bytes:
        return b"\n".join(self.lines) + b"\n"

    def describe(self) -> str:
        n = len(self.lines)
        return (
            f"{n:,} lines, {self.distinct_agents:,} distinct agents ({100 * self.distinct_agents / n:.1f} % of lines), "
            f"{sum(map(len, self.lines)) / n:.0f} bytes per line"
        )


def add_corpus_arguments(ap, lines: int, seed: int, days: float) -> None:
    ap.add_argument("--lines", type=int, default=lines)
    ap.add_argument("--seed", type=int, default=seed)
    ap.add_argument("--days", type=float, default=days)
    ap.add_argument("--fresh-agents", type=float, default=FRESH_AGENTS,
                    help=f"share of lines whose agent was never seen before (default {FRESH_AGENTS})")


def add_run_arguments(ap, repeat: int, what: str = "passes of each measurement") -> None:
    """``--repeat`` (the best run is reported) and ``--anchor-lines`` (lines given to PyPI's parser)."""
    from anchor import DEFAULT_ANCHOR_LINES

    ap.add_argument("--repeat", type=int, default=repeat, help=f"{what}; the best is reported")
    ap.add_argument("--anchor-lines", type=int, default=DEFAULT_ANCHOR_LINES, help="lines given to PyPI's parser")


def collect_like_workers() -> None:
    """Set the garbage collector and malloc as haulage's workers and ``haulage parse`` do (``pipeline.elements.tune_gc``).

    The parsers keep tens of thousands of parsed agents alive, which the
    default thresholds would rescan over and over: a measurement with them
    would time the collector, not the parser. And without the workers'
    malloc settings (``pipeline.malloc_tuning``) the first pass over the
    blocks pays page faults for every MB-sized buffer, which glibc only
    stops doing after it has seen such buffers freed: a "cold" parse would
    time the kernel's page faults, not the parser's first lines.
    """
    from haulage.pipeline.malloc_tuning import keep_freed_memory

    keep_freed_memory()
    gc.collect()
    gc.set_threshold(50_000, *gc.get_threshold()[1:])
    gc.freeze()


def make_corpus(n: int, seed: int, days: float, fresh_agents: float) -> Corpus:
    lines = generate_lines(n, seed=seed, days=days, fresh_agents=fresh_agents)
    distinct = len({line.split(b"|", 9)[-1] for line in lines})
    return Corpus(lines, distinct)


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    """Shortest wall time of ``repeat`` calls (the least disturbed by other load)."""
    best = float("inf")
    for _ in range(repeat):
        started = clock()
        fn()
        best = min(best, clock() - started)
    return best


def gzip_bytes(data: bytes, level: int = 6) -> bytes:
    return gzip.compress(data, compresslevel=level, mtime=0)


def inflate_rates(compressed: bytes, n_lines: int, repeat: int) -> dict[str, float]:
    """lines/s of inflating ``compressed`` (one gzip member) with zlib and with ISA-L, one core."""
    rates = {"zlib": n_lines / best_of(repeat, lambda: zlib.decompress(compressed, wbits=31))}
    try:
        from isal import isal_zlib
    except ImportError:  # pragma: no cover - isal is a test/bench dependency
        return rates
    rates["isal"] = n_lines / best_of(repeat, lambda: isal_zlib.decompress(compressed, wbits=31))
    return rates
