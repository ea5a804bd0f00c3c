"""Parse-stage and ``haulage parse`` throughput on a realistic generated corpus.

    python benchmarks/parse_bench.py [--lines 300000] [--repeat 3]

Prints lines/s of (1) the parse stage alone — ``LineParser.parse_batch`` over
in-memory lines in batches of 1,000, one core, cold agent cache on the first
pass and warm after — and (2) ``haulage parse FILE > /dev/null`` end to end
(gzip reading, parsing, NDJSON encoding, process start-up included), plus the
ratio to PyPI's parser measured in the same run: the ``linehaul`` package
from PyPI (a test dependency), parsing each line with its
``linehaul.events.parser.parse`` and serialising the row as PyPI's loader
does (tests/support/pypi_oracle.py), on the first --pypi-lines lines of the
same corpus (it is ~100× slower, so a subset).
"""

from __future__ import annotations

import argparse
import gc
import gzip
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import generate_lines  # noqa: E402

from haulage.parsers import LineParser, Origin  # noqa: E402

BATCH = 1_000


def pypi_stage(lines: list[bytes]) -> float:
    """PyPI's parser (linehaul) on the same kind of lines: lines/s, one core."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from support.pypi_oracle import pypi_store_line

    started = time.perf_counter()
    for raw in lines:
        pypi_store_line(raw.decode("utf-8", "replace"))
    return len(lines) / (time.perf_counter() - started)


def parse_stage(lines: list[bytes], parser: LineParser) -> float:
    origin = Origin.for_file("bench.log.gz")
    started = time.perf_counter()
    for start in range(0, len(lines), BATCH):
        parser.parse_batch(lines[start : start + BATCH], origin, start + 1, "2026-10-01T00:00:00Z")
    return len(lines) / (time.perf_counter() - started)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=300_000)
    ap.add_argument("--repeat", type=int, default=3, help="warm passes; the best is reported")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--pypi-lines", type=int, default=20_000, help="lines given to PyPI's parser (it is slow)")
    args = ap.parse_args(argv)

    t = time.perf_counter()
    lines = generate_lines(args.lines, seed=args.seed, days=1)
    distinct = len({line.split(b"|", 9)[-1] for line in lines})
    print(f"corpus: {len(lines):,} lines, {distinct:,} distinct agents, generated in {time.perf_counter() - t:.1f}s")

    gc.collect()
    pypi = pypi_stage(lines[: args.pypi_lines])
    print(f"PyPI's parser (linehaul)      : {pypi:>12,.0f} lines/s   (first {min(args.pypi_lines, len(lines)):,} lines)")

    gc.collect()
    parser = LineParser()
    cold = parse_stage(lines, parser)
    warm = max(parse_stage(lines, parser) for _ in range(args.repeat))
    hits, misses = parser.cache_hits, parser.cache_misses
    print(f"parse stage, cold agent cache : {cold:>12,.0f} lines/s   (x{cold / pypi:,.0f} PyPI)")
    print(f"parse stage, warm agent cache : {warm:>12,.0f} lines/s   (target >= 200,000; x{warm / pypi:,.0f} PyPI)")
    print(f"agent cache                   : {hits:,} hits, {misses:,} misses ({100 * hits / (hits + misses):.2f}% hits)")

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.log.gz")
        with gzip.open(path, "wb", compresslevel=6) as out:
            out.write(b"\n".join(lines) + b"\n")
        haulage = Path(sys.executable).with_name("haulage")
        started = time.perf_counter()
        with open(os.devnull, "wb") as sink:
            subprocess.run([str(haulage), "parse", path], stdout=sink, check=True)
        elapsed = time.perf_counter() - started
    print(f"haulage parse end to end      : {len(lines) / elapsed:>12,.0f} lines/s   ({elapsed:.2f}s incl. start-up; x{len(lines) / elapsed / pypi:,.0f} PyPI)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
