"""``haulage replay`` into the local Parquet sink: whole days rebuilt, idempotent,
resumable after kill -9, --merge by event id, legacy archives."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import duckdb
import gzip
import pytest

from haulage.parsers import Origin
from haulage.pipeline.cli import main
from support.logfiles import corpus, write_gzip

HAULAGE = str(Path(sys.executable).with_name("haulage"))
DAYS = ("2026-10-01", "2026-10-02", "2026-10-03")


def table_rows(out: Path, table: str) -> list[tuple]:
    """Every row of a table as comparable tuples (nested values as text), the event id last."""
    files = str(out / table / "*" / "*.parquet")
    if not list((out / table).glob("*/*.parquet")):
        return []
    rel = duckdb.sql(f"SELECT * EXCLUDE (date) FROM read_parquet('{files}', hive_partitioning=true)")
    if "event_id" in rel.columns:
        rel = rel.select(*[f'"{c}"' for c in rel.columns if c != "event_id"], "event_id")
    return sorted(tuple(str(v) for v in row) for row in rel.fetchall())


def per_day(out: Path, table: str = "file_downloads") -> dict[str, int]:
    if not list((out / table).glob("*/*.parquet")):
        return {}
    rel = duckdb.sql(
        f"SELECT CAST(date AS VARCHAR), count(*) FROM read_parquet('{out / table}/*/*.parquet', hive_partitioning=true) GROUP BY 1"
    )
    return dict(sorted(rel.fetchall()))


def expected_per_day(labelled) -> dict[str, Counter]:
    counts: dict[str, Counter] = {}
    for _, expect in labelled:
        if expect.table != "unprocessed":
            counts.setdefault(expect.table, Counter())[expect.date] += 1
    return counts


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """Three days of logs in six files, with ~1 % bad lines; and the oracle's counts."""
    root = tmp_path_factory.mktemp("archive")
    labelled = corpus.generate_labelled(6000, seed=21, start_date="2026-10-01", days=3, bad_fraction=0.01)
    labelled.sort(key=lambda pair: pair[1].timestamp or "")
    files = []
    for i in range(6):
        part = labelled[i * 1000 : (i + 1) * 1000]
        files.append(write_gzip(root / f"downloads-{i}.log.gz", [line for line, _ in part]))
    return root, files, labelled


def replay(out: Path, *args: str) -> int:
    return main(["replay", *args, "--output-dir", str(out), "--quiet"])


def test_replay_twice_gives_identical_tables(archive, tmp_path, capsys):
    root, _, labelled = archive
    out = tmp_path / "out"
    assert replay(out, "--input", str(root / "*.gz")) == 0
    first = {t: table_rows(out, t) for t in ("file_downloads", "simple_requests", "unprocessed")}
    for _ in range(2):
        assert replay(out, "--input", str(root / "*.gz")) == 0
    again = {t: table_rows(out, t) for t in ("file_downloads", "simple_requests", "unprocessed")}
    # dead letters differ only by received_at if a run crossed midnight; compare without it
    assert again["file_downloads"] == first["file_downloads"]
    assert again["simple_requests"] == first["simple_requests"]
    assert [r[1:] for r in again["unprocessed"]] == [r[1:] for r in first["unprocessed"]]
    expected = expected_per_day(labelled)
    assert per_day(out) == dict(sorted(expected["file_downloads"].items()))
    assert per_day(out, "simple_requests") == dict(sorted(expected["simple_requests"].items()))
    bad = sum(1 for _, e in labelled if e.table == "unprocessed")
    assert len(again["unprocessed"]) == bad


def test_replaces_days_first_written_by_the_streaming_or_batch_run(archive, tmp_path):
    root, files, labelled = archive
    out = tmp_path / "out"
    # `haulage run` twice appends: the days hold every row twice
    for _ in range(2):
        assert main(["run", "--input", str(root / "*.gz"), "--output-dir", str(out), "--quiet"]) == 0
    doubled = per_day(out)
    assert doubled == {d: 2 * n for d, n in expected_per_day(labelled)["file_downloads"].items()}
    assert replay(out, "--input", str(root / "*.gz")) == 0
    assert per_day(out) == dict(sorted(expected_per_day(labelled)["file_downloads"].items()))


def test_replay_one_day_leaves_other_days_untouched(archive, tmp_path):
    root, _, labelled = archive
    out = tmp_path / "out"
    assert replay(out, "--input", str(root / "*.gz")) == 0
    before = {day: [r for r in table_rows(out, "file_downloads") if r[0].startswith(day)] for day in DAYS}
    # the files holding day 2 also hold edges of days 1 and 3: --from/--to keeps those days out
    day2_files = [str(f) for f in sorted(root.glob("*.gz"))[1:5]]
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "file_downloads").glob("date=*/*.parquet") if "2026-10-02" not in str(p)}
    assert replay(out, "--input", *day2_files, "--from", "2026-10-02", "--to", "2026-10-02") == 0
    after_rows = table_rows(out, "file_downloads")
    for day in ("2026-10-01", "2026-10-03"):
        assert [r for r in after_rows if r[0].startswith(day)] == before[day]
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # files of other days not rewritten
    assert per_day(out)["2026-10-02"] == expected_per_day(labelled)["file_downloads"]["2026-10-02"]
    assert [r for r in after_rows if r[0].startswith("2026-10-02")] == before["2026-10-02"]


def test_merge_replaces_only_rows_of_the_given_files(archive, tmp_path):
    root, files, labelled = archive
    out = tmp_path / "out"
    assert replay(out, "--input", str(root / "*.gz")) == 0
    complete = table_rows(out, "file_downloads")
    key = Origin.for_file(str(files[2])).key
    ids = [r[-1] for r in complete]
    assert sum(i.startswith(key + "-") for i in ids) > 400
    # a shorter copy of one file (same name → same event ids): merging it keeps
    # every other file's rows and exactly the first 500 lines of this one
    with gzip.open(files[2]) as handle:
        lines = handle.read().splitlines()
    half = write_gzip(tmp_path / "half" / files[2].name, lines[:500])
    assert replay(out, "--input", str(half), "--merge") == 0
    expected = [r for r in complete if not r[-1].startswith(key + "-") or int(r[-1].rsplit("-", 1)[1]) <= 500]
    assert len(expected) < len(complete)
    assert table_rows(out, "file_downloads") == expected
    # fill the gap from the real file, twice: back to complete, idempotently
    for _ in range(2):
        assert replay(out, "--input", str(files[2]), "--merge") == 0
        assert table_rows(out, "file_downloads") == complete


def test_legacy_archive_gives_the_same_rows_as_its_current_format_twin(tmp_path):
    gen = corpus.Corpus(5)
    current, legacy = [], []
    epoch = 1_790_000_000
    for i in range(300):
        line, expect = gen.good(epoch + i * 7, "simple" if i % 10 == 0 else "download")
        current.append(line)
        legacy.append(_as_v3(line) if i % 2 else _as_v2(line))
    write_gzip(tmp_path / "a" / "same-name.log.gz", current)
    write_gzip(tmp_path / "b" / "same-name.log.gz", legacy)
    for name in ("a", "b"):
        assert replay(tmp_path / f"out-{name}", "--input", str(tmp_path / name / "*.gz")) == 0
    assert table_rows(tmp_path / "out-a", "file_downloads") == table_rows(tmp_path / "out-b", "file_downloads")
    assert table_rows(tmp_path / "out-a", "simple_requests") == table_rows(tmp_path / "out-b", "simple_requests")
    assert len(table_rows(tmp_path / "out-a", "file_downloads")) + len(table_rows(tmp_path / "out-a", "simple_requests")) == 300


def _syslog(message: bytes) -> bytes:
    return b"<134>2026-09-21T10:00:00Z cache-itm18828 linehaul[411617]: " + message


def _as_v3(line: bytes) -> bytes:
    return _syslog(b"3@" + line)


def _as_v2(line: bytes) -> bytes:
    if not line.startswith(b"download|"):
        return _as_v3(line)  # v2 has no simple lines
    fields = line.split(b"|", 9)
    return _syslog(b"2@" + b"|".join(fields[1:]))


def test_killed_replay_rerun_ends_exact(tmp_path):
    """kill -9 at several moments (reading, staging, committing); each re-run ends exact."""
    labelled = corpus.generate_labelled(60000, seed=8, start_date="2026-10-01", days=3, bad_fraction=0.01)
    labelled.sort(key=lambda pair: pair[1].timestamp or "")
    src = tmp_path / "in"
    for i in range(12):
        write_gzip(src / f"downloads-{i:02d}.log.gz", [line for line, _ in labelled[i * 5000 : (i + 1) * 5000]])
    reference = tmp_path / "reference"
    assert replay(reference, "--input", str(src / "*.gz")) == 0
    expected = {t: table_rows(reference, t) for t in ("file_downloads", "simple_requests")}

    out = tmp_path / "out"
    assert main(["run", "--input", str(src / "downloads-0*.log.gz"), "--output-dir", str(out), "--quiet"]) == 0
    command = [HAULAGE, "replay", "--input", str(src / "*.gz"), "--output-dir", str(out), "--quiet"]
    started = time.monotonic()
    subprocess.run(command, check=True, capture_output=True)
    full = time.monotonic() - started
    for fraction in (0.15, 0.4, 0.6, 0.8, 0.9, 0.97):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(full * fraction)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        subprocess.run(command, check=True, capture_output=True)
        for table, rows in expected.items():
            assert table_rows(out, table) == rows, f"after a kill at {fraction:.0%} of a run"
    assert not list(out.glob(".staging-*")) and not list(out.glob(".replaced-*"))
