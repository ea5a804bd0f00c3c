"""``haulage replay --bigquery-dataset`` against the BigQuery emulator: whole days
replaced by one MERGE per table, idempotent, one day only, --merge, kill -9."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from haulage.deploy.bigquery_setup import BigQueryRequest, ensure_bigquery
from haulage.cli.main import main
from support.emulators import patched_env
from support.logfiles import corpus, write_gzip

pytestmark = pytest.mark.emulator
HAULAGE = str(Path(sys.executable).with_name("haulage"))
_datasets = itertools.count()


@pytest.fixture
def dataset(bigquery_emulator):
    name = f"replay_{next(_datasets)}_{os.getpid()}"
    ensure_bigquery(bigquery_emulator.client(), BigQueryRequest(bigquery_emulator.project, name))
    with patched_env(bigquery_emulator.env()):
        yield bigquery_emulator.client(), f"{bigquery_emulator.project}:{name}", f"{bigquery_emulator.project}.{name}"


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("bq-archive")
    labelled = corpus.generate_labelled(3000, seed=33, start_date="2026-10-01", days=3, bad_fraction=0.01)
    labelled.sort(key=lambda pair: pair[1].timestamp or "")
    files = [write_gzip(root / f"downloads-{i}.log.gz", [l for l, _ in labelled[i * 500 : (i + 1) * 500]]) for i in range(6)]
    return root, files, labelled


def rows(client, table_id: str, table: str) -> list[tuple]:
    key = "source, error" if table == "unprocessed" else "event_id, CAST(timestamp AS STRING), project, classification.traffic"
    return sorted(tuple(r.values()) for r in client.query(f"SELECT {key} FROM `{table_id}.{table}`").result())


def per_day(client, table_id: str, table: str = "file_downloads") -> dict[str, int]:
    sql = f"SELECT CAST(DATE(timestamp) AS STRING) AS d, COUNT(*) AS n FROM `{table_id}.{table}` GROUP BY d"
    return dict(sorted((r["d"], r["n"]) for r in client.query(sql).result()))


def expected(labelled, table: str = "file_downloads") -> dict[str, int]:
    return dict(sorted(Counter(e.date for _, e in labelled if e.table == table).items()))


def replay(spec: str, *args: str) -> int:
    return main(["replay", *args, "--bigquery-dataset", spec, "--quiet"])


def test_replay_twice_identical_and_exact(dataset, archive):
    client, spec, table_id = dataset
    root, _, labelled = archive
    assert replay(spec, "--input", str(root / "*.gz")) == 0
    first = {t: rows(client, table_id, t) for t in ("file_downloads", "simple_requests", "unprocessed")}
    assert replay(spec, "--input", str(root / "*.gz")) == 0
    assert {t: rows(client, table_id, t) for t in first} == first
    assert per_day(client, table_id) == expected(labelled)
    assert per_day(client, table_id, "simple_requests") == expected(labelled, "simple_requests")
    assert len(first["unprocessed"]) == sum(1 for _, e in labelled if e.table == "unprocessed")
    staging = [t.table_id for t in client.list_tables(table_id.replace(".", ":", 0)) if t.table_id.startswith("_haulage_replay")]
    assert staging == []


def test_replaces_days_written_by_haulage_run_and_leaves_other_days(dataset, archive, tmp_path):
    client, spec, table_id = dataset
    root, files, labelled = archive
    # load jobs: a second run skips what the first ingested
    for _ in range(2):
        assert main(["run", "--input", str(root / "*.gz"), "--bigquery-dataset", spec, "--quiet"]) == 0
    assert per_day(client, table_id) == expected(labelled)
    # legacy streaming inserts (asked for) have no ledger: they add every row again, each time
    for _ in range(2):
        assert main(["run", "--input", str(root / "*.gz"), "--bigquery-dataset", spec, "--quiet",
                     "--bigquery-method", "streaming-inserts"]) == 0
    doubled = per_day(client, table_id)
    assert doubled == {d: 3 * n for d, n in expected(labelled).items()}
    # rebuild only 2026-10-02 from the files that hold it
    assert replay(spec, "--input", *map(str, files[1:5]), "--from", "2026-10-02", "--to", "2026-10-02") == 0
    after = per_day(client, table_id)
    assert after["2026-10-02"] == expected(labelled)["2026-10-02"]
    assert after["2026-10-01"] == doubled["2026-10-01"] and after["2026-10-03"] == doubled["2026-10-03"]


def test_merge_replaces_rows_of_the_given_files_only(dataset, archive, tmp_path):
    client, spec, table_id = dataset
    root, files, labelled = archive
    assert replay(spec, "--input", str(root / "*.gz")) == 0
    complete = rows(client, table_id, "file_downloads")
    from haulage.pipeline.sources.identity import file_origin

    key = file_origin(str(files[3]))[0].key
    assert sum(r[0].startswith(key + "-") for r in complete) > 400
    # merging one file replaces its rows and keeps every other file's, idempotently
    for _ in range(2):
        assert replay(spec, "--input", str(files[3]), "--merge") == 0
        assert rows(client, table_id, "file_downloads") == complete
    # without --merge the days it covers are rebuilt from it alone; merging the others back restores them
    assert replay(spec, "--input", str(files[3])) == 0
    alone = rows(client, table_id, "file_downloads")
    assert len(alone) < len(complete) and sum(r[0].startswith(key + "-") for r in alone) > 400
    assert replay(spec, "--input", *[str(f) for f in files if f != files[3]], "--merge") == 0
    assert rows(client, table_id, "file_downloads") == complete


def test_killed_replay_rerun_ends_exact(dataset, archive):
    client, spec, table_id = dataset
    root, _, labelled = archive
    command = [HAULAGE, "replay", "--input", str(root / "*.gz"), "--bigquery-dataset", spec, "--quiet"]
    started = time.monotonic()
    subprocess.run(command, check=True, capture_output=True)
    full = time.monotonic() - started
    reference = {t: rows(client, table_id, t) for t in ("file_downloads", "simple_requests")}
    assert per_day(client, table_id) == expected(labelled)
    for fraction in (0.3, 0.6, 0.85, 0.95):
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(full * fraction)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        subprocess.run(command, check=True, capture_output=True)
        assert {t: rows(client, table_id, t) for t in reference} == reference, f"kill at {fraction:.0%}"
