"""``haulage run --subscription`` (the local windowed pull) on log lines delivered through Pub/Sub, as ratios to PyPI's parser.

    python benchmarks/pull_bench.py [--lines 100000] [--lines-per-message 1] [--run-for 20]

Line delivery — the CDN publishes log lines to Pub/Sub, often one per
message — costs more per line than files: each message is pulled, leased,
decoded, recorded in the output's ledger as a unit of its own and
acknowledged. ``messages_bench.py`` times decoding and parsing alone; this
measures the whole local streaming run, against Google's Pub/Sub emulator
(started as the tests start it):

1. PyPI's parser (the ``linehaul`` package) on the same lines, in this run;
2. ``--lines`` lines of the generated corpus published as messages of
   ``--lines-per-message`` lines (publishing is not measured);
3. ``haulage run --subscription S --output-dir TMP --run-for T`` as a child
   process, default options, its CPU (user + system) measured; the run must
   have read every line published and balanced its books;
4. the same command on a subscription with nothing to read, for as long: its
   CPU is the fixed part (start-up, the idle pulls of the last window), so
   the difference is what the lines cost.

The wall-clock time of a run is ``--run-for`` by construction (the pull runs
until then), so only CPU rates are printed. The emulator's own CPU (a Java
process) is not haulage's and is not counted. ``--haulage`` names another
executable, to compare code versions in the same minutes.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from anchor import linehaul_rate, linehaul_version  # noqa: E402
from stages import add_corpus_arguments, add_run_arguments, child_cpu, make_corpus, emulator_starters  # noqa: E402

_BOOKS = re.compile(r"lines read ([\d,]+) \+ file faults ([\d,]+) = rows ([\d,]+) \+ dead letters ([\d,]+): balanced")


def run_pull(haulage: str, subscription: str, env: dict, run_for: float, window_seconds: float) -> tuple[float, str]:
    """CPU seconds of one ``haulage run --subscription`` and its standard output."""
    with tempfile.TemporaryDirectory() as out:
        before = child_cpu()
        done = subprocess.run(
            [haulage, "run", "--subscription", subscription, "--output-dir", out, "--run-for", f"{run_for:g}",
             "--window-seconds", f"{window_seconds:g}", "--quiet"],
            env=env, capture_output=True, text=True, timeout=run_for + 600,
        )
        cpu = child_cpu() - before
    if done.returncode != 0:
        raise RuntimeError(f"haulage run failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return cpu, done.stdout


def lines_read(summary: str) -> int:
    """The run summary's books: lines read (they must balance)."""
    found = _BOOKS.search(summary)
    if not found:
        raise RuntimeError(f"no balanced books in the run summary:\n{summary[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_corpus_arguments(ap, lines=100_000, seed=7, days=1)
    add_run_arguments(ap, repeat=1, what="runs of each measurement")
    ap.add_argument("--lines-per-message", type=int, default=1, metavar="K")
    ap.add_argument("--run-for", type=float, default=None, metavar="SECONDS",
                    help="how long each run pulls (default: 8 s plus 1 s per 10,000 lines)")
    ap.add_argument("--window-seconds", type=float, default=10.0)
    ap.add_argument("--haulage", default=str(Path(sys.executable).with_name("haulage")),
                    help="the haulage executable to measure (default: this environment's)")
    args = ap.parse_args(argv)
    run_for = args.run_for if args.run_for is not None else 8 + args.lines / 10_000

    corpus = make_corpus(args.lines, args.seed, args.days, args.fresh_agents)
    lines, n, k = corpus.lines, len(corpus.lines), args.lines_per_message
    print(f"corpus: {corpus.describe()}; messages of {k} line(s): {-(-n // k):,}")
    print(f"load  : {os.getloadavg()[0]:.2f} (1-minute load average at start; {os.cpu_count()} cores); "
          "rates are lines per CPU-second of haulage's process (the emulator's CPU not counted)")
    pypi, _, _ = linehaul_rate(lines, args.anchor_lines)
    print(f"PyPI's parser (linehaul {linehaul_version()}), parse + JSON per line: {pypi:>10,.0f} lines/s (= 1×)")

    emulators = emulator_starters()
    with emulators.pubsub_emulator() as emulator:
        env = {**os.environ, **emulator.env()}
        best = idle = float("inf")
        for _ in range(args.repeat):
            with emulators.pubsub_channel(emulator, ack_deadline_seconds=60) as channel:
                started = time.perf_counter()
                futures = [channel.publisher.publish(channel.topic, b"".join(line + b"\n" for line in lines[i : i + k]))
                           for i in range(0, n, k)]
                for future in futures:
                    future.result(timeout=120)
                published = time.perf_counter() - started
                cpu, summary = run_pull(args.haulage, channel.subscription, env, run_for, args.window_seconds)
                if lines_read(summary) != n:
                    raise RuntimeError(f"the run read {lines_read(summary):,} of {n:,} lines in {run_for:g} s: "
                                       "give it more time (--run-for)")
                best = min(best, cpu)
            with emulators.pubsub_channel(emulator, prefix="idle", ack_deadline_seconds=60) as channel:
                idle = min(idle, run_pull(args.haulage, channel.subscription, env, run_for, args.window_seconds)[0])
        print(f"published {-(-n // k):,} messages in {published:.1f} s (not measured)")

    def show(label: str, rate: float, note: str = "") -> None:
        print(f"{label:<52}: {rate:>10,.0f} lines per CPU-second {rate / pypi:>7,.1f}× PyPI{note}")

    show(f"haulage run --subscription, {run_for:g} s, whole process", n / best, f"   ({best:.2f} CPU s)")
    print(f"{'the same run with nothing to read (start-up, idle pulls)':<52}: {idle:>10.2f} CPU s")
    beyond = best - idle
    if beyond > 0:
        show("what the lines cost (the difference)", n / beyond,
             f"   ({beyond:.2f} CPU s; {1e6 * beyond / -(-n // k):,.1f} µs per message)")
    else:
        print("what the lines cost: within the noise of the idle run (use more --lines)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
