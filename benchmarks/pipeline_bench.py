"""``haulage run`` end to end (gzip files → Parquet), as ratios to PyPI's parser on the same lines.

    python benchmarks/pipeline_bench.py [--lines 1000000] [--files 16] [--workers default 1 2] [--repeat 1]
                                        [--sink parquet|bigquery]

Generates gzip log files (``benchmarks/corpus.py``, ≥ 5 % distinct agents by
default), then runs ``haulage run --input … --output-dir …`` as a subprocess
once per ``--workers`` setting (``default`` = no option given: what a user
gets) and prints lines/s (wall clock, process start-up included) next to:

* PyPI's parser (the ``linehaul`` package) on the same lines, in this run;
* inflate alone, every file inflated (ISA-L, as framing does; zlib without
  it) by as many processes as the machine has cores — the ceiling the issue
  measures against;
* the same run without the process start-up (the run summary's own clock starts
  once Beam and haulage are imported and the files listed: ≈ 1–2 s a run);
* where the CPU went, as the run summary reports it: reading (inflate and
  framing), parsing, writing, and the rest (start-up, Beam);
* the scaling of N workers over one worker.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from anchor import linehaul_rate, linehaul_version  # noqa: E402
from stages import add_corpus_arguments, add_run_arguments, child_cpu, gzip_bytes, make_corpus, emulator_starters  # noqa: E402

from haulage.parsers.framing import isal_zlib  # noqa: E402


def _inflate_file(path: str) -> int:
    """Inflate one file as framing does: ISA-L when installed, else zlib."""
    with open(path, "rb") as f:
        return len((isal_zlib or zlib).decompress(f.read(), wbits=31))


def inflate_all_cores(paths: list[str], processes: int) -> float:
    """Seconds to inflate every file with ``processes`` processes (pool start-up excluded)."""
    with ProcessPoolExecutor(processes) as pool:
        list(pool.map(_inflate_file, paths[:processes]))  # warm the workers
        started = time.perf_counter()
        list(pool.map(_inflate_file, paths))
        return time.perf_counter() - started


def run_haulage(pattern: str, out: str, workers: str, sink: list[str] | None = None,
                env: dict | None = None) -> tuple[float, float, str]:
    """``(wall seconds, CPU seconds of haulage and its workers, first summary line and the CPU-by-stage line)``.

    ``sink`` replaces ``--output-dir out`` (e.g. ``--bigquery-dataset …``).
    """
    command = [str(Path(sys.executable).with_name("haulage")), "run", "--input", pattern,
               *(sink or ["--output-dir", out]), "--quiet"]
    if workers != "default":
        command += ["--workers", workers]
    started, cpu_before = time.perf_counter(), child_cpu()
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    elapsed, cpu = time.perf_counter() - started, child_cpu() - cpu_before
    if done.returncode != 0:
        raise SystemExit(f"haulage run failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    lines = done.stdout.splitlines()
    stages = next((line for line in lines if line.startswith("CPU ")), "")
    return elapsed, cpu, lines[0] + ("\n" + stages if stages else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_corpus_arguments(ap, lines=1_000_000, seed=11, days=3)
    ap.add_argument("--files", type=int, default=16)
    ap.add_argument("--workers", nargs="+", default=["default", "1", "2"],
                    help="haulage run --workers settings to measure ('default' = option not given)")
    add_run_arguments(ap, repeat=1, what="runs per setting")
    ap.add_argument("--sink", choices=("parquet", "bigquery"), default="parquet",
                    help="bigquery: load jobs into a local bqemulator (started here; its own CPU is not counted, "
                         "haulage's staging, uploads and job handling are)")
    args = ap.parse_args(argv)
    if args.sink == "bigquery":
        with _bigquery() as (sink, env):
            return _measure(args, sink, env)
    return _measure(args, None, None)


def _bigquery():
    """A bqemulator with haulage's tables; yields (haulage sink arguments, environment)."""
    import contextlib

    emulators = emulator_starters()

    from haulage.deploy.bigquery_setup import BigQueryRequest, ensure_bigquery

    @contextlib.contextmanager
    def started():
        with emulators.bigquery_emulator() as emu, tempfile.TemporaryDirectory() as staging:
            ensure_bigquery(emu.client(), BigQueryRequest(emu.project, "bench"))
            yield (["--bigquery-dataset", f"{emu.project}:bench", "--staging-dir", staging],
                   {**os.environ, **emu.env()})

    return started()


def _measure(args, sink: list[str] | None, env: dict | None) -> int:

    corpus = make_corpus(args.lines, args.seed, args.days, args.fresh_agents)
    lines = corpus.lines
    n = len(lines)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        inputs = os.path.join(tmp, "in")
        os.makedirs(inputs)
        per_file = -(-n // args.files)
        paths = []
        for i in range(args.files):
            part = lines[i * per_file : (i + 1) * per_file]
            paths.append(os.path.join(inputs, f"downloads-{i:04d}.log.gz"))
            with open(paths[-1], "wb") as out:
                out.write(gzip_bytes(b"\n".join(part) + b"\n"))
        size = sum(os.path.getsize(p) for p in paths)
        print(f"input : {corpus.describe()}; {args.files} gzip files, {size / 1e6:.1f} MB")
        print(f"load  : {os.getloadavg()[0]:.2f} (1-minute load average at start; {cores} cores). Wall-clock rates "
              "need a quiet machine; lines per CPU-second do not")

        pypi, _, _ = linehaul_rate(lines, args.anchor_lines)
        print(f"PyPI's parser (linehaul {linehaul_version()}), parse + JSON per line, one core: {pypi:>10,.0f} lines/s (= 1×)")
        inflate = n / inflate_all_cores(paths, cores)  # wall clock: the ceiling on this machine as it is now
        inflater = "ISA-L" if isal_zlib is not None else "zlib"
        print(f"inflate alone, {inflater}, {cores} processes{'':<16}: {inflate:>10,.0f} lines/s  {inflate / pypi:>7,.1f}× PyPI")

        rates: dict[str, float] = {}
        for workers in args.workers:
            best, best_cpu = float("inf"), float("inf")
            for attempt in range(args.repeat):
                out = os.path.join(tmp, f"out-{workers}-{attempt}")
                if sink is not None:  # a fresh dataset state: the ledger would skip files already loaded
                    _empty_bigquery(env)
                elapsed, cpu, summary = run_haulage(os.path.join(inputs, "*.gz"), out, workers, sink, env)
                if elapsed < best:
                    best_summary = summary
                best, best_cpu = min(best, elapsed), min(best_cpu, cpu)
            rates[workers] = n / best
            print(f"haulage run → {args.sink}, workers={workers:<8} end to end   : {rates[workers]:>10,.0f} lines/s  "
                  f"{rates[workers] / pypi:>7,.1f}× PyPI  inflate-alone/this {inflate / rates[workers]:4.1f}  "
                  f"({best:.1f} s wall, start-up included; {best_cpu:.1f} CPU s = {n / best_cpu:,.0f} lines per CPU-second, "
                  f"{n / best_cpu / pypi:,.1f}× PyPI per core)")
            stages = best_summary.partition("\n")[2]
            if stages:
                print(f"{'':<38}where the CPU went: {stages}")
            pipeline_seconds = _summary_seconds(best_summary)
            if pipeline_seconds:
                steady = n / pipeline_seconds
                print(f"{'':<13}{'':<25}imports excluded : {steady:>10,.0f} lines/s  {steady / pypi:>7,.1f}× PyPI  "
                      f"inflate-alone/this {inflate / steady:4.1f}  ({pipeline_seconds:.1f} s by the run summary's own clock: "
                      f"the {best - pipeline_seconds:.1f} s before it import Beam and haulage and list the files)")
        print(f"run summary: {summary.partition(chr(10))[0]}")
        if "1" in rates:
            for workers, rate in rates.items():
                if workers not in ("1", "default"):
                    print(f"scaling: workers={workers} / workers=1 = {rate / rates['1']:.2f}")
    return 0


def _summary_seconds(summary: str) -> float | None:
    """The seconds in the run summary's first line ("N lines read from F files in 6.1s (…)"): the pipeline's own clock."""
    import re

    found = re.search(r" in ([0-9.]+)s ", summary)
    return float(found.group(1)) if found else None


def _empty_bigquery(env: dict) -> None:
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    client = bigquery.Client(project="test-project", credentials=AnonymousCredentials(),
                             client_options=ClientOptions(api_endpoint=env["BIGQUERY_EMULATOR_HOST"]))
    for table in ("file_downloads", "simple_requests", "unprocessed", "_haulage_ledger"):
        client.query(f"DELETE FROM `bench.{table}` WHERE TRUE").result()


if __name__ == "__main__":
    sys.exit(main())
