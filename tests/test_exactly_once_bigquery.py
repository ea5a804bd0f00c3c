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

# The steps of a BigQuery load commit (haulage.pipeline.sinks.bigquery_commit.STEPS), and where to kill.
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
    from haulage.pipeline.sinks import bigquery_commit

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
            # streaming inserts (the old default): a request refused as a whole sends the sink row by row,
            # and there BigQuery is briefly unavailable
            Rule("error:400:invalid", "POST", r"/insertAll", times=1),
            Rule("error:500:backendError", "POST", r"/insertAll", times=3),
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


def test_legacy_streaming_inserts_retry_transient_errors_too(bigquery, google_credentials, gcs_emulator, archive,
                                                             reference):
    """Asked for explicitly, the legacy insertAll path retries server errors and
    throttling, including in its row-by-row pass, instead of dead-lettering rows."""
    client = bigquery.client()
    dataset = new_dataset(bigquery)
    with fault_proxy(bigquery.url) as proxy:
        proxy.add(
            Rule("error:400:invalid", "POST", r"/insertAll", times=1),  # refused as a whole: row by row
            Rule("error:503:backendError", "POST", r"/insertAll", times=2),
            Rule("error:500:internalError", "POST", r"/insertAll", times=1),
            Rule("reset", "POST", r"/insertAll", times=1),
        )
        env = env_for(bigquery, gcs_emulator, google_credentials, proxy.url)
        with emulators.patched_env({"HAULAGE_RETRY_INITIAL": "0.05"}), environment(env):
            result = pc.run_cli(["run", "--input", str(archive.root / "*" / "*.gz"), "--bigquery-dataset",
                                 f"test-project:{dataset}", "--bigquery-method", "streaming-inserts", "--quiet"])
        injected = list(proxy.injected)
    assert result.code == 0, result.stdout + result.stderr
    assert len(injected) == 5, injected
    assert "bigquery-rejected" not in result.summary().reasons, result.summary().reasons
    eo.compare("BigQuery (streaming inserts): transient errors", f"{len(injected)} injected into insertAll",
               eo.bigquery_holdings(client, dataset), reference)


# --------------------------------------------------------------------------
# replays


def replay(env, dataset: str, *argv: str) -> pc.CliResult:
    with environment(env):
        return pc.run_cli(["replay", *argv, "--bigquery-dataset", f"test-project:{dataset}", "--quiet"])


def test_merge_with_a_range_touches_only_that_range(bigquery, gcs_emulator, google_credentials, archive, reference):
    """``replay --merge --from D --to D``: the replayed files' rows on other days stay."""
    dataset = new_dataset(bigquery)
    env = env_for(bigquery, gcs_emulator, google_credentials)
    pattern = str(archive.root / "*" / "*.gz")
    assert replay(env, dataset, "--input", pattern).code == 0
    merged = replay(env, dataset, "--input", pattern, "--merge", "--from", "2026-10-01", "--to", "2026-10-01")
    assert merged.code == 0, merged.stderr
    eo.compare("BigQuery: replay --merge of one day", "merge limited to 2026-10-01 over files of 2 days",
               eo.bigquery_holdings(bigquery.client(), dataset), reference, by_source=False)


def test_replays_never_share_staging(bigquery, gcs_emulator, google_credentials, archive, reference, tmp_path,
                                     monkeypatch):
    """A replay that died after staging leaves its files; the next replay with
    the same ``--staging-dir`` must not load them along with its own."""
    from haulage.pipeline.jobs import replay_parquet as replay_module

    dataset = new_dataset(bigquery)
    env = env_for(bigquery, gcs_emulator, google_credentials)
    staging = str(tmp_path / "staging")
    pattern = str(archive.root / "*" / "*.gz")
    real_commit = replay_module.BigQueryDayStore.commit

    def dies(self, *args, **kwargs):
        raise RuntimeError("replay killed after staging (test)")

    monkeypatch.setattr(replay_module.BigQueryDayStore, "commit", dies)
    with pytest.raises(RuntimeError):
        replay(env, dataset, "--input", pattern, "--staging-dir", staging)
    monkeypatch.setattr(replay_module.BigQueryDayStore, "commit", real_commit)
    assert replay(env, dataset, "--input", pattern, "--staging-dir", staging).code == 0
    eo.compare("BigQuery: --staging-dir reused", "a replay died after staging, then the same replay",
               eo.bigquery_holdings(bigquery.client(), dataset), reference, by_source=False)


def test_concurrent_replays_take_turns(bigquery, gcs_emulator, google_credentials, archive, reference, tmp_path):
    """Two replays of one dataset at once: the second is refused while the first
    commits (before: it deleted the first one's staging tables), and run again
    afterwards; both days end exact."""
    client = bigquery.client()
    dataset = new_dataset(bigquery)
    env = env_for(bigquery, gcs_emulator, google_credentials)
    with fault_proxy(bigquery.url) as proxy:
        # hold the first replay's commit (its MERGE into a data table) until released
        proxy.add(Rule("hold", "POST", r"/projects/[^/]+/jobs(\?|$)", body=r"MERGE `[^`]*\.file_downloads`", times=1))
        first_env = {**os.environ, **env_for(bigquery, gcs_emulator, google_credentials, proxy.url)}
        first = killable.start_haulage(
            ["replay", "--input", str(archive.root / "2026-10-01" / "*.gz"), "--from", "2026-10-01", "--to",
             "2026-10-01", "--bigquery-dataset", f"test-project:{dataset}", "--quiet"], first_env,
            log=str(tmp_path / "first.log"))
        assert proxy.held.wait(120), (tmp_path / "first.log").read_text()[-2000:]
        second_argv = ("--input", str(archive.root / "2026-10-02" / "*.gz"), "--from", "2026-10-02", "--to", "2026-10-02")
        second = replay(env, dataset, *second_argv)
        proxy.release()
        first.join(120)
    assert first.exitcode == 0, (tmp_path / "first.log").read_text()[-3000:]
    if second.code != 0:  # refused while the first held the lock: run it again now
        assert "another replay holds" in second.stderr, second.stderr
        assert replay(env, dataset, *second_argv).code == 0
    eo.compare("BigQuery: two replays at once", "a second replay while the first commits",
               eo.bigquery_holdings(client, dataset), reference, by_source=False)


def test_run_after_replay_and_replay_after_run(bigquery, gcs_emulator, google_credentials, archive, reference):
    dataset = new_dataset(bigquery)
    env = env_for(bigquery, gcs_emulator, google_credentials)
    staging = f"gs://{gcs_emulator.bucket}/staging-mix-{dataset}"
    pattern = str(archive.root / "*" / "*.gz")
    run(env, dataset, staging, str(archive.root / "2026-10-01" / "*.gz"))
    assert replay(env, dataset, "--input", pattern).code == 0
    after = run(env, dataset, staging, pattern)
    assert eo.summary_counts(after.stdout) == {"files": 4}, after.stdout
    assert replay(env, dataset, "--input", pattern, "--merge", "--from", "2026-10-02", "--to", "2026-10-02").code == 0
    run(env, dataset, staging, pattern)
    eo.compare("BigQuery: run after replay, replay after run", "run, replay, run, replay --merge of a day, run",
               eo.bigquery_holdings(bigquery.client(), dataset), reference, by_source=False)


def test_storage_write_api_evidence(bigquery, archive, tmp_path):
    """Why haulage does not offer the Storage Write API for line delivery (README, *Exactly once*).

    Its exactly-once primitive works in bqemulator 1.4: an application-created
    PENDING stream takes rows at explicit offsets, refuses a repeated offset
    (ALREADY_EXISTS: a retried append is not written twice), and is committed
    whole. But committing rows into haulage's tables fails there — the
    emulator builds the table's Arrow schema without the fields of RECORD
    columns (details, classification, file) — so a sink built on it could not
    be tested against a real component. If this test starts failing, the
    emulator has learnt it: the sink can then be built and tested."""
    import grpc
    import pyarrow.parquet as pq
    from google.api_core import exceptions as gexc
    from google.cloud.bigquery_storage_v1 import BigQueryWriteClient, types
    from google.cloud.bigquery_storage_v1.services.big_query_write.transports import BigQueryWriteGrpcTransport

    from haulage.pipeline.sinks.parquet_ledger import committed_files

    out = tmp_path / "out"
    assert pc.run_cli(["run", "--input", str(archive.files[0]), "--output-dir", str(out), "--quiet"]).code == 0
    rows = pq.read_table(committed_files(str(out), "file_downloads")[0])
    dataset = new_dataset(bigquery)
    channel = grpc.insecure_channel(f"127.0.0.1:{bigquery.grpc_port}")
    writer = BigQueryWriteClient(transport=BigQueryWriteGrpcTransport(channel=channel))
    parent = f"projects/{bigquery.project}/datasets/{dataset}/tables/file_downloads"
    stream = writer.create_write_stream(parent=parent, write_stream=types.WriteStream(type_=types.WriteStream.Type.PENDING))

    def append(offset: int):
        batch = rows.combine_chunks().to_batches()[0]
        data = types.AppendRowsRequest.ArrowData(
            writer_schema=types.ArrowSchema(serialized_schema=rows.schema.serialize().to_pybytes()),
            rows=types.ArrowRecordBatch(serialized_record_batch=batch.serialize().to_pybytes()))
        request = types.AppendRowsRequest(write_stream=stream.name, arrow_rows=data)
        request.offset = offset
        return list(writer.append_rows(iter([request])))[0]

    assert append(0).append_result.offset == 0
    assert append(0).error.code == 6  # ALREADY_EXISTS: the same rows at the same offset are not appended twice
    assert writer.finalize_write_stream(name=stream.name).row_count == rows.num_rows
    with pytest.raises(gexc.GoogleAPICallError) as failure:
        writer.batch_commit_write_streams(request={"parent": parent, "write_streams": [stream.name]})
    assert "STRUCT with no fields" in str(failure.value), failure.value
    channel.close()


@pytest.mark.parametrize("shape", ["streaming", "batch"])
def test_retried_bundles_on_dataflow_load_once(bigquery, gcs_emulator, google_credentials, archive, reference, shape):
    """The remote-runner shapes of the sink (streaming: bundles kept by the
    runner, loaded per interval; batch: bundles staged as files, loaded at the
    end): a staging bundle run twice, and the load step run twice after it
    finished, put every line in once."""
    from haulage.parsers.agents import DEFAULT_AGENT_CACHE_SIZE
    from haulage.pipeline.sinks import bigquery as bigquery_sink
    from haulage.pipeline.datasets import DatasetRef
    from haulage.pipeline.sources.files import ReadFileFn, expand_inputs
    from haulage.pipeline.parse_transform import ParseChunkFn

    dataset = new_dataset(bigquery)
    env = env_for(bigquery, gcs_emulator, google_credentials)
    staging = f"gs://{gcs_emulator.bucket}/staging-bundles-{dataset}"
    files = expand_inputs([str(archive.root / "*" / "*.gz")])
    reader = ReadFileFn(len(files), sum(f.size for f in files), 50, "2026-11-01T00:00:00Z")
    reader.setup()
    parser = ParseChunkFn(DEFAULT_AGENT_CACHE_SIZE)
    parser.setup()
    with environment(env):
        ref = DatasetRef("test-project", dataset)
        stage_fn, load_fn = {"streaming": (bigquery_sink.StageGroupsFn, bigquery_sink.LoadBatchesFn),
                             "batch": (bigquery_sink.StageFilesFn, bigquery_sink.LoadStagedFn)}[shape]
        stage = stage_fn(ref, staging, "run-retried", False)
        stage.setup()
        staged = []
        for bundle in (files[:2], files[2:], files[2:]):  # the second bundle is retried
            stage.start_bundle()
            for item in bundle:
                reader.start_bundle()
                for chunk in reader.process(item):
                    for parsed in parser.process(chunk):
                        stage.process(getattr(parsed, "value", parsed))
            staged.extend(v.value for v in stage.finish_bundle() or ())
        stage.teardown()
        load = load_fn(ref, staging, "run-retried")
        load.setup()
        for _ in range(2):  # the load step retried after it finished
            list(load.process((None, staged)) or ())
    eo.compare(f"BigQuery: retried bundles (Dataflow {shape})", "a staging bundle and the load step each run twice",
               eo.bigquery_holdings(bigquery.client(), dataset), reference)
