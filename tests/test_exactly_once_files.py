"""Exactly once into Parquet: files read under any name, runs repeated, killed,
retried, mixed with replays — every line of the input is in the tables once.

Each test compares the set of event ids (and dead letters) in the tables with
the set a clean run of the same input into a fresh folder produced, that clean
run being checked against the generator's oracle first. See
tests/support/exactly_once.py; the fault table is printed at the end of the run.
"""

from __future__ import annotations

import collections

import os
import shutil
import signal
from pathlib import Path

import pytest

from support import emulators
from support import exactly_once as eo
from support import killable
from support import pipeline_check as pc

# The steps of a Parquet commit, in order (haulage.pipeline.sinks.parquet_commit.STEPS).
PARQUET_COMMIT_STEPS = (
    "parquet:staged",
    "parquet:intent-written",
    "parquet:marker-written",
    "parquet:first-file-published",
    "parquet:all-files-published",
    "parquet:visible",
)


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> eo.Archive:
    return eo.write_archive(tmp_path_factory.mktemp("logs"), seed=901)


@pytest.fixture(scope="module")
def reference(archive, tmp_path_factory) -> eo.Holdings:
    """A clean run into a fresh folder, checked against the oracle."""
    out = tmp_path_factory.mktemp("reference")
    result = pc.run_cli(["run", "--input", str(archive.root / "*" / "*.gz"), "--output-dir", str(out), "--quiet"])
    assert result.code == 0, result.stderr
    parsed = pc.read_parquet_output(out)
    acc = pc.check_output(parsed, archive.sources)
    pc.check_summary(result.summary(), parsed, acc, files=len(archive.files))
    return eo.parquet_holdings(out)


def run(*argv: str) -> pc.CliResult:
    result = pc.run_cli(["run", *argv, "--quiet"])
    assert result.code == 0, result.stdout + result.stderr
    return result


def test_run_twice_other_globs_other_folders_each_line_once(archive, reference, tmp_path, monkeypatch):
    """The same files through two globs, from another working directory and as
    copies in another folder: one set of event ids, and the later runs say
    they skipped what was already ingested."""
    out = tmp_path / "out"
    root = archive.root
    run("--input", str(root / "*" / "*.gz"), "--output-dir", str(out))
    again = run("--input", str(root / "*" / "*.gz"), "--output-dir", str(out))
    assert eo.summary_counts(again.stdout) == {"files": 4}, again.stdout
    assert again.summary().lines_read == 0
    day1 = run("--input", str(root / "2026-10-01" / "*.gz"), "--output-dir", str(out))
    assert eo.summary_counts(day1.stdout) == {"files": 2}, day1.stdout
    monkeypatch.chdir(root / "2026-10-02")
    relative = run("--input", "*.gz", "--output-dir", str(out))
    assert eo.summary_counts(relative.stdout) == {"files": 2}, relative.stdout
    copies = tmp_path / "copies"
    copies.mkdir()
    for i, path in enumerate(archive.files):
        shutil.copyfile(path, copies / f"renamed-{i}.log.gz")
    copied = run("--input", str(copies / "*.gz"), "--output-dir", str(out))
    assert eo.summary_counts(copied.stdout) == {"files": 4}, copied.stdout
    eo.compare("run twice, other glob, other cwd, renamed copies", "4 repeated runs of the same 4 files",
               eo.parquet_holdings(out), reference)


@pytest.mark.emulator
def test_bucket_and_local_copy_give_the_same_event_ids(archive, reference, gcs_emulator, google_credentials, tmp_path):
    """Objects in Cloud Storage and a local copy of them are the same files."""
    bucket = gcs_emulator.client().bucket(gcs_emulator.bucket)
    for path in archive.files:
        bucket.blob(f"mirror-once/{path.parent.name}/{path.name}").upload_from_filename(str(path))
    from_bucket = tmp_path / "from-bucket"
    emulators.reset_beam_credentials_cache()
    try:
        with emulators.patched_env({**google_credentials, **gcs_emulator.env()}):
            # one day folder only: a glob rooted elsewhere than the local run's
            run("--input", f"gs://{gcs_emulator.bucket}/mirror-once/2026-10-01/*.gz", "--output-dir", str(from_bucket))
            day1 = {e for e in eo.parquet_holdings(from_bucket).ids}
            assert day1 and day1 < set(reference.ids)
            # then the local copies into the same dataset: day 1 is skipped, day 2 added
            local = run("--input", str(archive.root / "*" / "*.gz"), "--output-dir", str(from_bucket))
            assert eo.summary_counts(local.stdout) == {"files": 2}, local.stdout
            both = run("--input", f"gs://{gcs_emulator.bucket}/mirror-once/*/*.gz", "--output-dir", str(from_bucket))
            assert eo.summary_counts(both.stdout) == {"files": 4}, both.stdout
    finally:
        emulators.reset_beam_credentials_cache()
    eo.compare("bucket vs local copy", "2 gs:// globs + 1 local glob of the same files",
               eo.parquet_holdings(from_bucket), reference, by_source=False)


def _parsed_chunks(archive: eo.Archive) -> list:
    """The input as the sink receives it: parsed chunks of 50 lines."""
    from haulage.parsers.agents import DEFAULT_AGENT_CACHE_SIZE
    from haulage.pipeline.sources.files import ReadFileFn, expand_inputs
    from haulage.pipeline.parse_transform import ParseChunkFn

    files = expand_inputs([str(archive.root / "*" / "*.gz")])
    reader = ReadFileFn(len(files), sum(f.size for f in files), 50, "2026-11-01T00:00:00Z")
    reader.setup()
    parser = ParseChunkFn(DEFAULT_AGENT_CACHE_SIZE)
    parser.setup()
    parsed = []
    for item in files:
        for chunk in reader.process(item):
            for out in parser.process(chunk):
                parsed.append(getattr(out, "value", out))
    return parsed


def _run_bundle(sink, parsed, *, inspect=None) -> None:
    sink.start_bundle()
    for element in parsed:
        list(sink.process(element) or ())
    if inspect is not None:
        inspect()
    sink.finish_bundle()


def test_retried_bundle_writes_its_rows_once(archive, reference, tmp_path):
    """Beam may run a bundle again after its ``finish_bundle`` committed
    (Dataflow retries a bundle whose completion it did not record)."""
    from haulage.pipeline.sinks.parquet import WriteFilesFn

    parsed = _parsed_chunks(archive)
    out = tmp_path / "out"
    sink = WriteFilesFn(str(out), False)
    sink.setup()
    _run_bundle(sink, parsed)
    _run_bundle(sink, parsed)  # the same bundle, retried
    sink.teardown()
    eo.compare("retried bundle", "bundle run twice after finish_bundle", eo.parquet_holdings(out), reference)


def test_table_folders_never_show_unfinished_files(archive, reference, tmp_path, monkeypatch):
    """While a bundle is being written, ``<table>/date=*/*`` (what ``bq load
    gs://…/*`` or a DuckDB glob reads) shows nothing of it."""
    import importlib

    from haulage.pipeline.sinks import parquet as parquet_sink
    from haulage.pipeline.sinks.parquet import WriteFilesFn

    for name in ("parquet_sink", "parquet_commit"):  # flush to disk while the bundle is open
        try:
            monkeypatch.setattr(importlib.import_module(f"haulage.pipeline.{name}"), "ROW_GROUP_ROWS", 20)
        except ImportError:
            pass
    parsed = _parsed_chunks(archive)
    out = tmp_path / "out"
    sink = WriteFilesFn(str(out), False)
    sink.setup()
    seen: list[Path] = []

    def inspect() -> None:
        for table in eo.TABLES:
            seen.extend(eo.visible_parquet_files(out, table))
        written = [p for p in out.rglob("*") if p.is_file()]
        assert written, "nothing was written while the bundle was open: the test did not look at anything"

    _run_bundle(sink, parsed, inspect=inspect)
    sink.teardown()
    assert seen == [], f"files visible in table folders before the bundle finished: {[p.name for p in seen[:3]]}"
    eo.compare("in-progress files", "table folders listed mid-bundle", eo.parquet_holdings(out), reference)


def test_killed_at_every_commit_step_then_run_again(archive, reference, tmp_path):
    """``kill -9`` of ``haulage run`` at each step of a commit, then the same
    run again: each line once, and readers never saw a partial unit."""
    for step in PARQUET_COMMIT_STEPS:
        out = tmp_path / step.replace(":", "-")
        argv = ["run", "--input", str(archive.root / "*" / "*.gz"), "--output-dir", str(out), "--quiet"]
        log = tmp_path / f"{step.replace(':', '-')}.log"
        code = killable.run_haulage(argv, {**os.environ, "HAULAGE_FAILPOINT": f"{step}=kill"}, log=str(log))
        assert code == -signal.SIGKILL, f"haulage run was not killed at {step}: {code}\n{log.read_text()[-2000:]}"
        committed_before = _committed_view(out)
        again = run("--input", str(archive.root / "*" / "*.gz"), "--output-dir", str(out))
        assert again.summary().balanced
        eo.compare(f"kill -9 at {step}", "SIGKILL, then the same run", eo.parquet_holdings(out), reference)
        # what a reader saw between the crash and the re-run: whole files only (with a worker per
        # core, the worker that was not killed may have committed its files before the kill)
        assert_whole_units(committed_before, reference, step)
    from haulage.pipeline.sinks import parquet_commit

    assert tuple(parquet_commit.STEPS) == PARQUET_COMMIT_STEPS


def assert_whole_units(view: eo.Holdings, reference: eo.Holdings, step: str) -> None:
    """Every file (unit) in ``view`` is there with all of its rows and dead letters, once."""

    def by_unit(holdings: eo.Holdings) -> collections.Counter:
        units: collections.Counter = collections.Counter()
        for event_id, count in holdings.ids.items():
            units[event_id.rsplit("-", 1)[0]] += count
        for (source, _), count in holdings.dead.items():
            units[source.rpartition(":")[0]] += count
        return units

    seen, whole = by_unit(view), by_unit(reference)
    partial = {unit: (count, whole.get(unit)) for unit, count in seen.items() if count != whole.get(unit)}
    assert not partial, (step, partial)


def _committed_view(out: Path) -> eo.Holdings:
    """What a reader of the dataset sees: haulage's committed files."""
    from haulage.pipeline.sinks.parquet_ledger import committed_files

    import pyarrow.parquet as pq

    rows = {}
    for table in eo.TABLES:
        columns = ["event_id"] if table != "unprocessed" else ["source", "error"]
        rows[table] = [r for f in committed_files(str(out), table) for r in pq.read_table(f, columns=columns).to_pylist()]
    return eo.holdings_from_rows(rows)


def test_run_after_replay_and_replay_after_run(archive, reference, tmp_path):
    out = tmp_path / "out"
    pattern = str(archive.root / "*" / "*.gz")
    run("--input", str(archive.root / "2026-10-01" / "*.gz"), "--output-dir", str(out))
    assert pc.run_cli(["replay", "--input", pattern, "--output-dir", str(out), "--quiet"]).code == 0
    after_replay = run("--input", pattern, "--output-dir", str(out))
    assert eo.summary_counts(after_replay.stdout) == {"files": 4}, after_replay.stdout
    assert pc.run_cli(["replay", "--input", pattern, "--output-dir", str(out), "--quiet", "--merge",
                       "--from", "2026-10-02", "--to", "2026-10-02"]).code == 0
    run("--input", pattern, "--output-dir", str(out))
    # a replay's dead letters name the replay in their source: count them
    eo.compare("run after replay, replay after run", "run, replay, run, replay --merge of a day, run",
               eo.parquet_holdings(out), reference, by_source=False)
