"""End-to-end ``haulage run`` throughput versus the parse stage alone.

    python benchmarks/pipeline_bench.py [--lines 1000000] [--files 20] [--workers 1]

Generates gzip log files, runs ``haulage run --input … --output-dir …`` with
default options (DirectRunner → Beam's FnApiRunner, Parquet sink) as a
subprocess, and prints its lines/s (wall clock, start-up included) next to the
parse stage alone on the same lines, with the ratio between the two. Target
on a 2-core machine: >= 60,000 lines/s end to end.
"""

from __future__ import annotations

import argparse
import gzip
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import generate_lines  # noqa: E402
from parse_bench import parse_stage  # noqa: E402

from haulage.parsers import LineParser  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--workers", type=int, default=1, help="haulage run --workers (default: the default, 1)")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args(argv)

    lines = generate_lines(args.lines, seed=args.seed, days=3)
    with tempfile.TemporaryDirectory() as tmp:
        inputs = os.path.join(tmp, "in")
        os.makedirs(inputs)
        per_file = -(-len(lines) // args.files)
        for i in range(args.files):
            part = lines[i * per_file : (i + 1) * per_file]
            with gzip.open(os.path.join(inputs, f"downloads-{i:04d}.log.gz"), "wb", compresslevel=6) as out:
                out.write(b"\n".join(part) + b"\n")
        size = sum(os.path.getsize(os.path.join(inputs, f)) for f in os.listdir(inputs))
        print(f"input: {len(lines):,} lines in {args.files} gzip files ({size / 1e6:.1f} MB)")

        command = [str(Path(sys.executable).with_name("haulage")), "run", "--input", os.path.join(inputs, "*.gz"),
                   "--output-dir", os.path.join(tmp, "out"), "--quiet"]
        if args.workers != 1:
            command += ["--workers", str(args.workers)]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            print(done.stdout, done.stderr, sep="\n")
            return 1
        summary_line = done.stdout.splitlines()[0]

    end_to_end = len(lines) / elapsed
    stage = max(parse_stage(lines, LineParser()) for _ in range(2))
    print(f"haulage run end to end (workers={args.workers}): {end_to_end:>10,.0f} lines/s  ({elapsed:.1f}s wall, start-up included; target >= 60,000)")
    print(f"parse stage alone, same lines          : {stage:>10,.0f} lines/s")
    print(f"end to end / parse stage               : {end_to_end / stage:>10.2f}")
    print(f"run summary: {summary_line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
