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

from haulage.pipeline.sources.identity import file_origin
from haulage.cli.main import main
from support import killable
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
    # `haulage run` twice: the second run skips what the first ingested
    for _ in range(2):
        assert main(["run", "--input", str(root / "*.gz"), "--output-dir", str(out), "--quiet"]) == 0
    expected = dict(sorted(expected_per_day(labelled)["file_downloads"].items()))
    assert per_day(out) == expected
    before = table_rows(out, "file_downloads")
    assert replay(out, "--input", str(root / "*.gz")) == 0
    assert per_day(out) == expected
    assert table_rows(out, "file_downloads") == before  # the same rows, rebuilt


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
    key = file_origin(str(files[2]))[0].key
    ids = [r[-1] for r in complete]
    assert sum(i.startswith(key + "-") for i in ids) > 400
    # merging one file replaces its rows and keeps every other file's, idempotently
    for _ in range(2):
        assert replay(out, "--input", str(files[2]), "--merge") == 0
        assert table_rows(out, "file_downloads") == complete
    # without --merge, the days that file covers are rebuilt from it alone
    assert replay(out, "--input", str(files[2])) == 0
    alone = table_rows(out, "file_downloads")
    assert {r[-1].split("-")[0] for r in alone if r[-1].split("-")[0] != key} < {i.split("-")[0] for i in ids}
    assert sum(i[-1].startswith(key + "-") for i in alone) == sum(i.startswith(key + "-") for i in ids)
    # merging the other files back: complete again
    others = [str(f) for f in files if f != files[2]]
    assert replay(out, "--input", *others, "--merge") == 0
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

    def without_event_id(out, table):  # other bytes, so other event ids (named by content)
        return sorted(r[:-1] for r in table_rows(out, table))

    for table in ("file_downloads", "simple_requests"):
        assert without_event_id(tmp_path / "out-a", table) == without_event_id(tmp_path / "out-b", table)
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


REPLAY_COMMIT_STEPS = (
    "replay:intent-written",
    "replay:marker-written",
    "replay:first-day-swapped",
    "replay:all-days-swapped",
    "replay:visible",
)


def test_killed_replay_rerun_ends_exact(tmp_path):
    """kill -9 while staging (inside the staging commit) and at every step of
    the replay's commit; each re-run of the replay ends exact."""
    from haulage.pipeline.jobs import replay_parquet as replay_module

    assert tuple(replay_module.STEPS) == REPLAY_COMMIT_STEPS
    labelled = corpus.generate_labelled(1200, seed=23, start_date="2026-10-01", days=2, bad_fraction=0.02)
    labelled.sort(key=lambda pair: pair[1].timestamp or "")
    root = tmp_path / "in"
    for i in range(4):
        write_gzip(root / f"downloads-{i}.log.gz", [line for line, _ in labelled[i * 300:(i + 1) * 300]])
    reference = tmp_path / "reference"
    assert replay(reference, "--input", str(root / "*.gz")) == 0
    expected = {t: table_rows(reference, t) for t in ("file_downloads", "simple_requests")}

    out = tmp_path / "out"
    # days first written by a run of half the files
    assert main(["run", "--input", str(root / "downloads-[01].log.gz"), "--output-dir", str(out), "--quiet"]) == 0
    argv = ["replay", "--input", str(root / "*.gz"), "--output-dir", str(out), "--quiet"]
    for step in ("parquet:marker-written", *REPLAY_COMMIT_STEPS):
        code = killable.run_haulage(argv, {**os.environ, "HAULAGE_FAILPOINT": f"{step}=kill"})
        assert code == -signal.SIGKILL, (step, code)
        assert main(argv) == 0
        for table, rows in expected.items():
            assert table_rows(out, table) == rows, f"after a kill at {step}"
    assert not [p for p in (out / "_staging").glob("*")] if (out / "_staging").exists() else True
    assert not list((out / "_ledger" / "pending").glob("*.json"))
