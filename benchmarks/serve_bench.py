#!/usr/bin/env python3
"""How fast ``haulage serve`` answers a project page over a year of Parquet.

    python benchmarks/serve_bench.py [--data DIR] [--days 365] [--popular-per-day 100000]
        [--others-per-day 100000] [--rounds 3] [--screenshot docs/serve-page.png]

Generates the dataset with benchmarks/serve_data.py when ``--data`` has none
(its docstring states what a day holds), makes its rollups (timed; nothing
to do when ``DATA/_rollups/`` is current), then for each round starts a fresh
``haulage serve`` process and asks for the popular project's page in each
range (all, 90d, 30d, 7d) once — each the first request for that page, so no
page is served from the server's cache — then a small project's page. It
prints the wall-clock time of every request (client side, HTTP included)
with the median over rounds, and the time of ``haulage stats --json`` on the
same data for comparison. ``--screenshot`` writes a PNG of the popular
project's page with Debian's headless Chromium. ``--after-commit`` adds a
copy of a part file to the newest day (as a commit would), times the
popular project's year page once more (the day and its month are rolled up
again first), and removes the file.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serve_data import write_dataset  # noqa: E402

HAULAGE = str(Path(sys.executable).with_name("haulage"))
RANGES = ("all", "90d", "30d", "7d")


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*.parquet"))


def _rows(path: Path) -> dict[str, int]:
    import duckdb

    out = {}
    for table in ("file_downloads", "simple_requests"):
        glob = str(path / table / "*" / "*.parquet")
        out[table] = duckdb.sql(f"SELECT count(*) FROM read_parquet('{glob}')").fetchone()[0]
    return out


def _get(url: str) -> tuple[float, int, int]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=3600) as answer:
        body = answer.read()
        status = answer.status
    return time.perf_counter() - started, status, len(body)


def _serve(data: Path) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([HAULAGE, "serve", "--output-dir", str(data), "--port", "0", "--quiet"],
                               stdout=subprocess.PIPE, text=True)
    line = process.stdout.readline()
    match = re.search(r"http://[^ ]+/", line)
    if match is None:
        process.kill()
        raise SystemExit(f"haulage serve did not start: {line!r}")
    return process, match.group(0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", help="dataset folder (generated there when empty; default: a temporary folder)")
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--popular-per-day", type=int, default=100_000)
    ap.add_argument("--others-per-day", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--project", default="popular-project")
    ap.add_argument("--small", nargs="*", default=["boto3", "pytest"],
                    help="other projects of the dataset also timed (boto3 ≈ 16k, pytest ≈ 250 downloads a day)")
    ap.add_argument("--ranges", nargs="+", default=list(RANGES), choices=RANGES)
    ap.add_argument("--screenshot", help="write a PNG of the project page here")
    ap.add_argument("--after-commit", action="store_true",
                    help="also time the year's page after a part file is added to the newest day (removed after)")
    args = ap.parse_args(argv)

    temporary = None
    if args.data:
        data = Path(args.data)
    else:
        temporary = tempfile.mkdtemp(prefix="haulage-serve-bench-")
        data = Path(temporary)
    try:
        if not (data / "file_downloads").exists():
            print(f"generating {args.days} days into {data} …", file=sys.stderr)
            started = time.perf_counter()
            write_dataset(str(data), args.days, args.popular_per_day, args.others_per_day, popular=args.project)
            print(f"generated in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        rows = _rows(data)
        import duckdb

        days = len(list((data / "file_downloads").iterdir()))
        sizes = dict(duckdb.execute(f"SELECT project, count(*) FROM read_parquet('{data}/file_downloads/*/*.parquet') "
                                    "WHERE list_contains($p, project) GROUP BY project",
                                    {"p": [args.project, *args.small]}).fetchall())
        print(f"dataset: {days} days, {rows['file_downloads']:,} download rows, {rows['simple_requests']:,} simple "
              f"rows, {_size(data) / 1e9:.2f} GB of Parquet; downloads a day: "
              + ", ".join(f"{p} {sizes.get(p, 0) / days:,.0f}" for p in (args.project, *args.small)))

        # the rollups (stats/rollups.py): made once from the rows, then kept
        # under DATA/_rollups/ until the files change; 0 s when they are current
        from haulage.stats.backends import DuckDBBackend

        started = time.perf_counter()
        backend = DuckDBBackend(str(data))
        if backend.rollups is not None:
            backend.rollups.warm()
        rollup_seconds = time.perf_counter() - started
        print(f"rollups made or found in {rollup_seconds:.1f} s", file=sys.stderr)

        timings: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            process, url = _serve(data)
            try:
                for project in (args.project, *args.small):
                    for key in args.ranges:
                        seconds, status, size = _get(f"{url}project/{project}?range={key}")
                        assert status == 200, (project, key, status)
                        timings.setdefault(f"{project} {key}", []).append(seconds)
                        print(f"  {project} {key}: {seconds:.2f} s", file=sys.stderr, flush=True)
                if args.screenshot and _ == 0:
                    chromium = shutil.which("chromium")
                    if chromium is None:
                        print("no chromium: no screenshot (apt-get install -y chromium)", file=sys.stderr)
                    else:
                        with tempfile.TemporaryDirectory() as profile:
                            subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                                            "--no-first-run", "--disable-background-networking", "--disable-sync",
                                            "--disable-component-update", f"--user-data-dir={profile}",
                                            "--window-size=1200,2050", f"--screenshot={args.screenshot}",
                                            f"{url}project/{args.project}?range=90d"],
                                           check=True, capture_output=True)
                        print(f"wrote {args.screenshot}", file=sys.stderr)
            finally:
                process.terminate()
                process.wait()

        after_commit = None
        if args.after_commit:
            # a new part file on the newest day, as a commit adds one: the next page
            # counts that day again and puts its month together again (then the file goes)
            newest = sorted((data / "file_downloads").iterdir())[-1]
            extra = newest / "part-bench-extra.parquet"
            shutil.copy(sorted(newest.glob("*.parquet"))[-1], extra)
            try:
                process, url = _serve(data)
                try:
                    after_commit, status, _ = _get(f"{url}project/{args.project}?range=all")
                    assert status == 200
                    again, _, _ = _get(f"{url}project/{args.project}?range=all")
                finally:
                    process.terminate()
                    process.wait()
            finally:
                extra.unlink()

        started = time.perf_counter()
        subprocess.run([HAULAGE, "stats", args.project, "--output-dir", str(data), "--json"], check=True,
                       capture_output=True)
        stats_seconds = time.perf_counter() - started

        print(f"rollups of the whole dataset made (or found current) in {rollup_seconds:.1f} s")
        print(f"first request of each page after a fresh start, {args.rounds} rounds (seconds):")
        print(f"  {'page':<28}{'median':>8}  all rounds")
        for name, values in timings.items():
            print(f"  {name:<28}{statistics.median(values):>8.3f}  {' '.join(f'{v:.3f}' for v in values)}")
        if after_commit is not None:
            print(f"{args.project} all, first request after a new file on the newest day: {after_commit:.3f} s "
                  f"(the same page again: {again:.3f} s)")
        print(f"haulage stats {args.project} --json (process start included): {stats_seconds:.3f} s")
    finally:
        if temporary:
            shutil.rmtree(temporary, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
