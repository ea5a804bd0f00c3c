"""Exactly once into BigQuery: load jobs with deterministic ids and a ledger.

Against the real emulators: bqemulator (loading ``gs://`` staging files from
the Cloud Storage emulator's disk), gcp-storage-emulator for the staging
folder, and a fault-injecting HTTP proxy in front of bqemulator for the
transient errors. Every test compares the event ids (and dead letters) in
the tables with those of a clean run, itself checked against the oracle.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal

import pytest

from haulage.deploy.bigquery_setup import BigQueryRequest, ensure_bigquery
from support import emulators
from support import exactly_once as eo
from support import killable
from support import pipeline_check as pc
from support.fault_proxy import Rule, fault_proxy

pytestmark = pytest.mark.emulator

# The steps of a BigQuery load commit (haulage.pipeline.bigquery_commit.STEPS), and where to kill.
BIGQUERY_KILL_POINTS = (
    "parquet:marker-written",  # while staging
    "bigquery:staged",
    "bigquery:batch-written",
    "bigquery:table-loaded",  # after the first table
    "bigquery:table-loaded=kill@2",  # after the second
    "bigquery:ledger-loaded",
    "bigquery:cleaned",
)
_names = itertools.count()


@pytest.fixture(scope="module")
def bigquery(gcs_emulator):
    """A bqemulator that reads gs:// load sources from the storage emulator's disk."""
    with emulators.bigquery_emulator(gcs_local_root=gcs_emulator.data_dir / ".cloudstorage") as emu:
        yield emu


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> eo.Archive:
    return eo.write_archive(tmp_path_factory.mktemp("bq-logs"), seed=907)


def new_dataset(bigquery) -> str:
    name = f"once_{next(_names)}_{os.getpid()}"
    ensure_bigquery(bigquery.client(), BigQueryRequest(bigquery.project, name))
    return name


@contextlib.contextmanager
def environment(env):
    emulators.reset_beam_credentials_cache()
    try:
        with emulators.patched_env(env):
            yield
    finally:
        emulators.reset_beam_credentials_cache()


def env_for(bigquery, gcs_emulator, google_credentials, bigquery_url=None) -> dict[str, str]:
    return {**google_credentials, **gcs_emulator.env(), "BIGQUERY_EMULATOR_HOST": bigquery_url or bigquery.url}


def run(env, dataset: str, staging: str, *inputs: str, project: str = "test-project", extra=()) -> pc.CliResult:
    with environment(env):
        result = pc.run_cli(["run", "--input", *inputs, "--bigquery-dataset", f"{project}:{dataset}",
                             "--staging-dir", staging, "--quiet", *extra])
    assert result.code == 0, result.stdout + result.stderr
    return result


@pytest.fixture(scope="module")
def reference(bigquery, gcs_emulator, google_credentials, archive):
    dataset = new_dataset(bigquery)
    env = env_for(bigquery, gcs_emulator, google_credentials)
    result = run(env, dataset, f"gs://{gcs_emulator.bucket}/staging-reference", str(archive.root / "*" / "*.gz"))
    client = bigquery.client()
    rows = {t: [dict(r) for r in client.query(f"SELECT * FROM `{dataset}.{t}`").result()] for t in eo.TABLES}
    out = pc.output_from_rows(rows)
    acc = pc.check_output(out, archive.sources, check_folders=False)
    pc.check_summary(result.summary(), out, acc, files=len(archive.files))
    return eo.bigquery_holdings(client, dataset)


def test_run_twice_and_through_other_globs(bigquery, gcs_emulator, google_credentials, archive, reference, tmp_path):
    dataset = new_dataset(bigquery)
    env = env_for(bigquery, gcs_emulator, google_credentials)
    staging = f"gs://{gcs_emulator.bucket}/staging-{dataset}"
    run(env, dataset, staging, str(archive.root / "*" / "*.gz"))
    again = run(env, dataset, staging, str(archive.root / "*" / "*.gz"))
    assert eo.summary_counts(again.stdout) == {"files": 4}, again.stdout
    day1 = run(env, dataset, staging, str(archive.root / "2026-10-01" / "*.gz"))
    assert eo.summary_counts(day1.stdout) == {"files": 2}, day1.stdout
    copies = tmp_path / "copies"
    copies.mkdir()
    for i, path in enumerate(archive.files):
        shutil.copyfile(path, copies / f"renamed-{i}.log.gz")
    copied = run(env, dataset, staging, str(copies / "*.gz"))
    assert eo.summary_counts(copied.stdout) == {"files": 4}, copied.stdout
    eo.compare("BigQuery: run twice, other glob, copies", "4 repeated runs of the same 4 files",
               eo.bigquery_holdings(bigquery.client(), dataset), reference)


def _empty(client, dataset: str) -> None:
    for table in (*eo.TABLES, "_haulage_ledger"):
        client.query(f"DELETE FROM `{dataset}.{table}` WHERE TRUE").result()


def test_killed_at_every_step_of_a_load_then_run_again(bigquery, gcs_emulator, google_credentials, archive,
                                                       reference, tmp_path):
    """kill -9 while staging, after staging, after the batch is written down,
    after each table's load job, after the ledger's, after clean-up; the next
    run finishes what was started (same job ids) and skips what is in."""
    from haulage.pipeline import bigquery_commit

    assert set(bigquery_commit.STEPS) == {p.split("=")[0] for p in BIGQUERY_KILL_POINTS[1:]}
    client = bigquery.client()
    dataset = new_dataset(bigquery)
    env = env_for(bigquery, gcs_emulator, google_credentials)
    for n, point in enumerate(BIGQUERY_KILL_POINTS):
        _empty(client, dataset)
        staging = f"gs://{gcs_emulator.bucket}/staging-kill-{n}-{dataset}"
        step, _, action = point.partition("=")
        argv = ["run", "--input", str(archive.root / "*" / "*.gz"), "--bigquery-dataset", f"test-project:{dataset}",
                "--staging-dir", staging, "--quiet"]
        log = tmp_path / f"kill-{n}.log"
        code = killable.run_haulage(argv, {**os.environ, **env, "HAULAGE_FAILPOINT": f"{step}={action or 'kill'}"},
                                    log=str(log))
        assert code == -signal.SIGKILL, f"not killed at {point}: {code}\n{log.read_text()[-3000:]}"
        again = run(env, dataset, staging, str(archive.root / "*" / "*.gz"))
        assert again.summary().balanced
        eo.compare(f"BigQuery: kill -9 at {point}", "SIGKILL, then the same run",
                   eo.bigquery_holdings(client, dataset), reference)


def test_transient_errors_are_retried_never_dead_lettered(bigquery, gcs_emulator, google_credentials, archive,
                                                          reference):
    """Server errors, throttling, a dropped connection, and a load job whose
    answer is lost after BigQuery started it: retried, looked up, loaded once."""
    client = bigquery.client()
    dataset = new_dataset(bigquery)
    with fault_proxy(bigquery.url) as proxy:
        proxy.add(
            # the legacy path's insertAll (streaming inserts), including its one-by-one pass
            Rule("error:500:backendError", "POST", r"/insertAll", times=4),
            Rule("error:503:backendError", "POST", r"/projects/[^/]+/jobs(\?|$)", times=2),
            Rule("lost:503:backendError", "POST", r"/projects/[^/]+/jobs(\?|$)", body='"load"', times=1),
            Rule("error:429:rateLimitExceeded", "POST", r"/projects/[^/]+/jobs(\?|$)", body='"query"', times=1, skip=1),
            Rule("reset", "GET", r"/jobs/", times=1, skip=1),
            Rule("error:502:backendError", "GET", r"/queries/", times=1),
        )
        env = env_for(bigquery, gcs_emulator, google_credentials, proxy.url)
        staging = f"gs://{gcs_emulator.bucket}/staging-transient-{dataset}"
        with emulators.patched_env({"HAULAGE_RETRY_INITIAL": "0.05"}):
            result = run(env, dataset, staging, str(archive.root / "*" / "*.gz"))
        injected = list(proxy.injected)
    assert injected, "no fault was injected: the test did not test anything"
    summary = result.summary()
    assert "bigquery-rejected" not in summary.reasons, summary.reasons
    assert summary.balanced
    eo.compare("BigQuery: transient errors", f"{len(injected)} injected: " + ", ".join(
        sorted({a.split(':')[0] + ':' + a.split(':')[1] if ':' in a else a for a, _, _ in injected})),
        eo.bigquery_holdings(client, dataset), reference)
