"""Parse-stage and ``haulage parse`` throughput, as ratios to PyPI's parser on the same lines.

    python benchmarks/parse_bench.py [--lines 200000] [--fresh-agents 0.05] [--repeat 3]

Prints, all on one generated corpus (``benchmarks/corpus.py``; the share of
distinct agents is printed, ≥ 5 % by default as in PyPI's traffic):

* PyPI's parser (the ``linehaul`` package) on the first lines, in this run —
  the anchor of every "× PyPI" figure;
* inflate alone, zlib and ISA-L (``isal``), one core;
* splitting a buffer into blocks of lines (numpy);
* the parse stage alone (blocks in memory → Arrow record batches, one core,
  :class:`ColumnarParser`): cold (a fresh agent cache, the first lines a
  worker sees), steady state (the next as many lines of the same traffic,
  the popular agents cached, the never-seen ones parsed: what a worker does
  most of its life) and warm (the same lines again, every agent cached), by
  phase; and the row parser (the reference) on the same lines;
* ``haulage parse FILE.gz > /dev/null`` end to end (process start-up included): with
  ``--workers 1`` per CPU-second, and with its default (one worker per core) by the
  wall clock, the CPU of all its processes alongside;
* where the time of ``haulage parse`` goes: process start-up, inflate (ISA-L, as framing does),
  split into lines, agents (looking up and parsing user agents), the rest of
  parsing, write (NDJSON).
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from anchor import linehaul_rate, linehaul_version  # noqa: E402
from stages import (  # noqa: E402
    Corpus, add_corpus_arguments, add_run_arguments, best_of, child_cpu, clock, collect_like_workers, gzip_bytes,
    inflate_rates, make_corpus,
)

from haulage.parsers import LineParser, Origin  # noqa: E402
from haulage.parsers.columnar import ColumnarParser  # noqa: E402
from haulage.parsers.framing import FileFault, isal_zlib, iter_line_runs  # noqa: E402
from haulage.parsers.line_block import BLOCK_BYTES, BLOCK_LINES, LineBlock, gather_blocks  # noqa: E402
from haulage.parsers.ndjson import ndjson_chunks  # noqa: E402
from haulage.parsers.ndjson_sinks import default_workers  # noqa: E402

RECEIVED_AT = "2026-10-01T00:00:00Z"
ORIGIN = Origin.for_file("bench.log.gz")


def blocks_of(lines: list[bytes]) -> list[LineBlock]:
    """The lines as blocks bounded as the parser's are (BLOCK_LINES lines or BLOCK_BYTES bytes), each one buffer."""
    blocks, start = [], 0
    while start < len(lines):
        end, size = start, 0
        while end < len(lines) and end - start < BLOCK_LINES and size < BLOCK_BYTES:
            size += len(lines[end]) + 1
            end += 1
        blocks.append(LineBlock.from_bytes(b"\n".join(lines[start:end]) + b"\n", start + 1))
        start = end
    return blocks


def columnar_stage(blocks: list[LineBlock], parser: ColumnarParser) -> float:
    """Seconds to parse every block into record batches (one core)."""
    started = clock()
    for block in blocks:
        parser.parse_block(block, ORIGIN, RECEIVED_AT)
    return clock() - started


def row_stage(lines: list[bytes], parser: LineParser) -> float:
    """Seconds for the row parser (the reference) over the same lines, in batches of BLOCK_LINES."""
    started = clock()
    for start in range(0, len(lines), BLOCK_LINES):
        parser.parse_batch(lines[start : start + BLOCK_LINES], ORIGIN, start + 1, RECEIVED_AT)
    return clock() - started


def parse_command_stages(compressed: bytes) -> dict[str, float]:
    """Seconds per stage of what ``haulage parse`` does to one gzip file (cold agent cache).

    As the command does it: framing inflates with ISA-L when it is installed
    (zlib otherwise) and hands on runs of lines as buffers, gathered into blocks;
    the NDJSON goes to ``/dev/null``, as in the end-to-end measurement.
    """
    inflate = best_of(1, lambda: _inflate(compressed))
    started = clock()
    blocks = [
        item for item in gather_blocks(iter_line_runs(io.BytesIO(compressed), "bench.log.gz"))
        if not isinstance(item, FileFault)
    ]
    framing = clock() - started
    parser = ColumnarParser(agent_columns=False)  # as the command makes it: the NDJSON writer needs no agent columns
    started = clock()
    parsed = [parser.parse_block(block, ORIGIN, RECEIVED_AT) for block in blocks]
    parse = clock() - started
    with open(os.devnull, "wb") as sink:  # as in the end-to-end run: NDJSON to /dev/null, not copied into memory
        started = clock()
        for block in parsed:
            for chunk in ndjson_chunks(block):
                sink.write(chunk)
        write = clock() - started
    agents = parser.seconds["agents"]
    return {"inflate": inflate, "split": max(0.0, framing - inflate), "agents": agents,
            "parse (rest)": max(0.0, parse - agents), "write": write}


def _inflate(compressed: bytes) -> bytes:
    """What framing inflates with: ISA-L when installed, else zlib."""
    import zlib

    return (isal_zlib or zlib).decompress(compressed, wbits=31)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_corpus_arguments(ap, lines=200_000, seed=7, days=1)
    add_run_arguments(ap, repeat=3)
    args = ap.parse_args(argv)

    # twice the lines: the second half (same agent pool, fresh agents of its own) is what a worker
    # whose cache already holds the popular agents meets next (the "steady state" line)
    both = make_corpus(2 * args.lines, args.seed, args.days * 2, args.fresh_agents)
    corpus = Corpus(both.lines[: args.lines], len({line.split(b"|", 9)[-1] for line in both.lines[: args.lines]}))
    lines, later = corpus.lines, both.lines[args.lines :]
    n = len(lines)
    print(f"corpus: {corpus.describe()}")
    print(f"load  : {os.getloadavg()[0]:.2f} (1-minute load average at start; {os.cpu_count()} cores); "
          "rates are lines per CPU-second of the process measured (see stages.clock)")

    pypi, rows, unprocessed = linehaul_rate(lines, args.anchor_lines)
    print(f"PyPI's parser (linehaul {linehaul_version()}), parse + JSON per line, first {min(n, args.anchor_lines):,} lines: "
          f"{pypi:>10,.0f} lines/s   (= 1×; {rows:,} rows, {unprocessed:,} unprocessed)")

    def show(label: str, rate: float, note: str = "") -> None:
        print(f"{label:<44}: {rate:>12,.0f} lines/s  {rate / pypi:>8,.1f}× PyPI{note}")

    collect_like_workers()
    compressed = gzip_bytes(corpus.text)
    for name, rate in inflate_rates(compressed, n, args.repeat).items():
        show(f"inflate alone, {name}, one core", rate)

    started = clock()
    blocks = blocks_of(lines)
    show(f"split into {len(blocks)} blocks of ≤ {BLOCK_BYTES >> 20} MiB (numpy)", n / (clock() - started))
    gc.collect()
    parser = ColumnarParser()
    cold = n / columnar_stage(blocks, parser)
    parser.seconds = dict.fromkeys(parser.seconds, 0.0)
    warm_seconds = min(columnar_stage(blocks, parser) for _ in range(args.repeat))
    warm_phases = dict(parser.seconds)
    misses = parser.cache_misses
    steady = len(later) / columnar_stage(blocks_of(later), parser)
    show("parse stage, one core, cold agent cache", cold)
    show("parse stage, one core, steady state", steady,
         f"   (the next {len(later):,} lines: {100 * (parser.cache_misses - misses) / len(later):.1f} % of them "
         "bring an agent the cache does not hold)")
    show("parse stage, one core, warm agent cache", n / warm_seconds)
    total = sum(warm_phases.values())
    print("  warm parse stage by phase: " + ", ".join(f"{k} {100 * v / total:.0f} %" for k, v in warm_phases.items()))
    rows = LineParser()
    row_stage(lines, rows)
    show("row parser (reference), one core, warm cache", n / min(row_stage(lines, rows) for _ in range(args.repeat)))

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.log.gz")
        with open(path, "wb") as out:
            out.write(compressed)
        haulage = Path(sys.executable).with_name("haulage")
        for workers, label in (("1", "haulage parse --workers 1 (gzip → NDJSON)"),
                               (str(default_workers()), f"haulage parse, {default_workers()} workers (default)")):
            elapsed = cpu = float("inf")
            for _ in range(args.repeat):
                started, cpu_before = time.perf_counter(), child_cpu()
                with open(os.devnull, "wb") as sink:
                    subprocess.run([str(haulage), "parse", "--workers", workers, path], stdout=sink, check=True)
                elapsed = min(elapsed, time.perf_counter() - started)
                cpu = min(cpu, child_cpu() - cpu_before)
            if workers == "1":
                show(label, n / cpu, f"   ({cpu:.2f} CPU s, start-up included; wall {elapsed:.2f} s = {n / elapsed:,.0f} lines/s)")
            else:
                show(label + ", wall", n / elapsed,
                     f"   ({elapsed:.2f} s wall, start-up included; {cpu:.2f} CPU s of all its processes = "
                     f"{n / cpu:,.0f} lines per CPU-second)")

    stages = parse_command_stages(compressed)
    with tempfile.TemporaryDirectory() as tmp:  # what the process spends before the first line: imports, set-up
        path = os.path.join(tmp, "one.log")
        with open(path, "wb") as out:
            out.write(lines[0] + b"\n")
        startup = float("inf")
        for _ in range(args.repeat):
            cpu_before = child_cpu()
            with open(os.devnull, "wb") as sink:
                subprocess.run([str(haulage), "parse", path], stdout=sink, check=True)
            startup = min(startup, child_cpu() - cpu_before)
    stages = {"start-up": startup, **stages}
    total = sum(stages.values())
    print("where haulage parse spends its time (stages measured one by one, cold agent cache):")
    for name, seconds in stages.items():
        rate = f"{n / seconds:>12,.0f} lines/s" if seconds > 0 and name != "start-up" else ""
        print(f"  {name:<14} {100 * seconds / total:5.1f} %   {seconds:6.2f} s   {rate}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
