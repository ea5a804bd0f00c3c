#!/usr/bin/env python3
"""A year (or any number of days) of day-partitioned haulage Parquet, fast.

    python benchmarks/serve_data.py --out /tmp/year [--days 365] [--popular-per-day 100000]
        [--others-per-day 100000] [--files-per-day 4] [--seed 7]

Why not run the pipeline on a year of generated logs: at ~70k lines/s a year
of a popular project would take hours here. Instead a few hundred thousand
corpus lines (benchmarks/corpus.py) go through the real parser once, and
their rows (agents with their parsed details and classification, countries,
TLS pairs) become templates; each day's rows are then drawn from the
templates with Arrow ``take`` and given that day's timestamps, project, file
and event ids. Country and TLS pair are drawn independently of the agent, so
(agent, country, TLS) tuples — client environments — are as varied as in
real traffic rather than bounded by the template count.

What a day holds (the assumptions, stated):

* the popular project (``--popular``, default ``popular-project``) with
  ``--popular-per-day`` downloads on a weekday (weekends 65 %), growing 30 %
  over the period; 12 releases, the newest downloaded most; simple-index
  requests for it at 0.6 × its downloads;
* ``--others-per-day`` downloads (and 0.6 × as many simple requests) of the
  corpus's ~200 other projects, Zipf-distributed;
* rows in time order, written as ``--files-per-day`` part files per table
  and day with the sink's row-group size and compression (zstd), so the
  popular project's rows are spread through every row group, as the sink
  writes them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import Corpus  # noqa: E402

from haulage.parsers.schemas import DOWNLOADS, SIMPLE, arrow_schema  # noqa: E402
from haulage.parsers import LineParser, Origin  # noqa: E402
from haulage.parsers.arrow_rows import rows_to_arrow  # noqa: E402
from haulage.pipeline.sinks.parquet import ROW_GROUP_ROWS  # noqa: E402

__all__ = ["templates", "write_dataset"]

SIMPLE_SHARE = 0.6
WEEKEND = 0.65
GROWTH = 0.30


def templates(lines: int, seed: int, pool_size: int) -> dict[str, pa.Table]:
    """Parsed rows of ``lines`` corpus lines, as Arrow tables per row table."""
    corpus = Corpus(seed, pool_size)
    parser = LineParser()
    origin = Origin.for_file("templates.log")
    raw = [corpus.good(1_790_000_000 + i, "simple" if i % 5 == 0 else "download")[0] for i in range(lines)]
    rows: dict[str, list] = {DOWNLOADS: [], SIMPLE: []}
    for record in parser.parse_batch(raw, origin, 1, "2026-10-01T00:00:00Z"):
        if record.table in rows:
            rows[record.table].append(record.row)
    return {table: rows_to_arrow(table, found) for table, found in rows.items()}


def _versions(n: int = 12) -> tuple[list[str], np.ndarray]:
    names = [f"3.{minor}.0" for minor in range(n)]
    weights = np.array([1.6 ** i for i in range(n)])  # the newest release downloaded most
    return names, weights / weights.sum()


class DayMaker:
    """Builds one day's rows for both tables from the templates."""

    def __init__(self, tables: dict[str, pa.Table], popular: str, seed: int) -> None:
        self.tables = tables
        self.popular = popular
        self.rng = np.random.default_rng(seed)
        self.versions, self.version_weights = _versions()
        self.schemas = {t: arrow_schema(t) for t in tables}

    def _draw(self, table: str, n: int) -> pa.Table:
        """n template rows, with country and TLS pair each from an independent template row."""
        template = self.tables[table]
        size = template.num_rows
        rows = template.take(pa.array(self.rng.integers(0, size, n)))
        country = template.column("country_code").take(pa.array(self.rng.integers(0, size, n)))
        tls_rows = pa.array(self.rng.integers(0, size, n))
        rows = rows.set_column(rows.schema.get_field_index("country_code"), "country_code", country)
        for name in ("tls_protocol", "tls_cipher"):
            rows = rows.set_column(rows.schema.get_field_index(name), name, template.column(name).take(tls_rows))
        return rows

    def _popular_files(self, n: int) -> tuple[pa.Array, pa.Array]:
        """project and file columns for n downloads of the popular project."""
        pick = self.rng.choice(len(self.versions), n, p=self.version_weights)
        wheel = self.rng.random(n) < 0.9
        names = [f"{self.popular.replace('-', '_')}-{v}-py3-none-any.whl" for v in self.versions]
        sdists = [f"{self.popular.replace('-', '_')}-{v}.tar.gz" for v in self.versions]
        filename = np.where(wheel, np.array(names, dtype=object)[pick], np.array(sdists, dtype=object)[pick])
        version = np.array(self.versions, dtype=object)[pick]
        kind = np.where(wheel, "bdist_wheel", "sdist").astype(object)
        project = pa.array(np.full(n, self.popular, dtype=object), pa.string())
        file = pa.StructArray.from_arrays(
            [pa.array(filename, pa.string()), project, pa.array(version, pa.string()), pa.array(kind, pa.string())],
            names=["filename", "project", "version", "type"])
        return project, file

    def day(self, day: dt.date, popular: int, others: int) -> dict[str, pa.Table]:
        out = {}
        day_key = day.strftime("%Y%m%d")
        midnight = int(dt.datetime.combine(day, dt.time(), dt.timezone.utc).timestamp()) * 1_000_000
        for table, share in ((DOWNLOADS, 1.0), (SIMPLE, SIMPLE_SHARE)):
            n_popular, n_others = int(popular * share), int(others * share)
            mine = self._draw(table, n_popular)
            if table == DOWNLOADS:
                project, file = self._popular_files(n_popular)
                mine = mine.set_column(mine.schema.get_field_index("project"), "project", project)
                mine = mine.set_column(mine.schema.get_field_index("file"), "file", file)
                url = pc.binary_join_element_wise("/packages/aa/bb/cafe/", file.field("filename"), "")
            else:
                project = pa.array(np.full(n_popular, self.popular, dtype=object), pa.string())
                mine = mine.set_column(mine.schema.get_field_index("project"), "project", project)
                url = pa.array(np.full(n_popular, f"/simple/{self.popular}/", dtype=object), pa.string())
            mine = mine.set_column(mine.schema.get_field_index("url"), "url", url)
            rows = pa.concat_tables([mine, self._draw(table, n_others)])
            n = rows.num_rows
            micros = np.sort(self.rng.integers(0, 86_400_000_000, n)) + midnight
            order = pa.array(self.rng.permutation(n))  # interleave projects before sorting by time
            rows = rows.take(order)
            rows = rows.set_column(rows.schema.get_field_index("timestamp"), "timestamp",
                                   pa.array(micros, pa.timestamp("us", tz="UTC")))
            ids = pc.binary_join_element_wise(f"{day_key}{table[0]}-", pc.cast(pa.array(np.arange(n)), pa.string()), "")
            rows = rows.set_column(rows.schema.get_field_index("event_id"), "event_id", ids)
            out[table] = rows.cast(self.schemas[table])
        return out


def write_dataset(out: str, days: int, popular_per_day: int, others_per_day: int, files_per_day: int = 4,
                  seed: int = 7, popular: str = "popular-project", end: dt.date = dt.date(2026, 9, 30),
                  template_lines: int = 200_000, pool_size: int = 40_000, quiet: bool = False) -> dict[str, int]:
    """Write the dataset under ``out``; returns rows written per table."""
    started = time.perf_counter()
    maker = DayMaker(templates(template_lines, seed, pool_size), popular, seed)
    written = {DOWNLOADS: 0, SIMPLE: 0}
    first = end - dt.timedelta(days=days - 1)
    for i in range(days):
        day = first + dt.timedelta(days=i)
        factor = (WEEKEND if day.weekday() >= 5 else 1.0) * (1 - GROWTH / 2 + GROWTH * i / max(1, days - 1))
        tables = maker.day(day, int(popular_per_day * factor), int(others_per_day * factor))
        for table, rows in tables.items():
            folder = os.path.join(out, table, f"date={day.isoformat()}")
            os.makedirs(folder, exist_ok=True)
            per_file = -(-rows.num_rows // files_per_day)
            for part in range(files_per_day):
                piece = rows.slice(part * per_file, per_file)
                if piece.num_rows:
                    pq.write_table(piece, os.path.join(folder, f"part-{part:03d}.parquet"),
                                   row_group_size=ROW_GROUP_ROWS, compression="zstd")
            written[table] += rows.num_rows
        if not quiet and (i + 1) % 30 == 0:
            print(f"  {i + 1}/{days} days, {written[DOWNLOADS]:,} downloads, {time.perf_counter() - started:.0f} s",
                  file=sys.stderr)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--popular-per-day", type=int, default=100_000)
    ap.add_argument("--others-per-day", type=int, default=100_000)
    ap.add_argument("--files-per-day", type=int, default=4)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--end", type=dt.date.fromisoformat, default=dt.date(2026, 9, 30),
                    help="last day (YYYY-MM-DD; default 2026-09-30)")
    args = ap.parse_args(argv)
    written = write_dataset(args.out, args.days, args.popular_per_day, args.others_per_day, args.files_per_day, args.seed,
                            end=args.end)
    print(", ".join(f"{t}: {n:,} rows" for t, n in written.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
