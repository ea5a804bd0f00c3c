"""``haulage run --bigquery-dataset`` against bqemulator, compared with the
Parquet output of the same input.

The dataset and its three tables are created here with google-cloud-bigquery
from ``haulage.parsers.schemas`` (DAY partitions on PARTITION_COLUMN,
clustering per CLUSTERING), as ``haulage setup`` would. The same local gzip
files are then run once into BigQuery and once into Parquet, and the two are
compared; the BigQuery rows are also checked line by line against the
generator's oracle (benchmarks/corpus.py).
"""

from __future__ import annotations

import collections
import uuid

import pytest

from support import emulators
from support import pipeline_check as pc

pytestmark = pytest.mark.emulator


def create_tables(client, dataset_id: str) -> None:
    """The tables as `haulage setup` makes them (its own code), checked for layout."""
    from haulage.deploy.bigquery_setup import BigQueryRequest, ensure_bigquery
    from haulage.parsers.schemas import CLUSTERING, PARTITION_COLUMN, TABLE_NAMES

    ensure_bigquery(client, BigQueryRequest(client.project, dataset_id))
    for name in TABLE_NAMES:
        table = client.get_table(f"{dataset_id}.{name}")
        assert table.time_partitioning.type_ == "DAY"
        assert table.time_partitioning.field == PARTITION_COLUMN[name]
        assert (table.clustering_fields or []) == list(CLUSTERING[name])


def query_table(client, dataset_id: str, table: str) -> list[dict]:
    return [dict(r) for r in client.query(f"SELECT * FROM `{dataset_id}.{table}`").result()]


def _get(row: dict, dotted: str):
    value = row
    for part in dotted.split("."):
        if value is None:
            return None
        value = value[part]
    return value


COMPARED = {
    "file_downloads": ("timestamp", "country_code", "url", "project", "file.filename", "file.project",
                       "file.version", "file.type", "details.installer.name", "details.installer.version",
                       "details.installer.subcommand", "details.python", "details.implementation.name",
                       "details.distro.name", "details.distro.libc.lib", "details.system.release", "details.ci",
                       "details.user_data", "tls_protocol", "tls_cipher", "classification.kind",
                       "classification.traffic", "classification.mirror", "classification.ci", "classification.cloud",
                       "user_agent"),
    "simple_requests": ("timestamp", "country_code", "url", "project", "tls_protocol", "tls_cipher",
                        "details.installer.name", "details.python", "classification.kind", "classification.traffic",
                        "classification.ci", "classification.cloud", "user_agent"),
}


class InsertSpy:
    """Records the insert ids the sink sends with each streaming insert (observation only)."""

    def __init__(self, monkeypatch) -> None:
        from google.cloud import bigquery

        self.calls: list[tuple[str, list[str], list[dict]]] = []
        original = bigquery.Client.insert_rows_json
        spy = self

        def insert_rows_json(client, table, json_rows, *args, **kwargs):
            spy.calls.append((str(table).rsplit(".", 1)[-1], list(kwargs.get("row_ids") or []), list(json_rows)))
            return original(client, table, json_rows, *args, **kwargs)

        monkeypatch.setattr(bigquery.Client, "insert_rows_json", insert_rows_json)

    def take(self) -> list:
        calls, self.calls = self.calls, []
        return calls


@pytest.mark.parametrize("days", [1.0, 6.0], ids=["2-days-uploaded-as-staged", "7-days-merged"])
def test_run_into_bigquery_matches_parquet(bigquery_emulator, tmp_path, monkeypatch, days):
    """Uploading staged files: a table's files (one per day) go up as they are, up to
    MAX_UPLOADS_AS_STAGED of them, else merged into one upload; the rows are the same either way."""
    from haulage.pipeline.sinks import bigquery_commit

    merged: list[int] = []
    encode = bigquery_commit._parquet_bytes
    monkeypatch.setattr(bigquery_commit, "_parquet_bytes", lambda table, *a: merged.append(table.num_rows) or encode(table, *a))
    items = pc.labelled(600, seed=41, days=days)
    folder = tmp_path / "in"
    folder.mkdir()
    sources = []
    for i, part in enumerate((items[:250], items[250:500], items[500:])):
        path = folder / f"downloads-{i}.log.gz"
        path.write_bytes(pc.gzipped(pc.lines_of(part)))
        sources.append(pc.Source(str(path), part))
    # a damaged file too, so the dead letters include a file fault
    broken = items[:40]
    whole = pc.gzipped(pc.lines_of(broken))
    (folder / "cut.log.gz").write_bytes(whole[: len(whole) // 2])
    sources.append(pc.Source(str(folder / "cut.log.gz"), broken, fault="truncated-gzip"))
    pattern = str(folder / "*.gz")

    client = bigquery_emulator.client()
    dataset_id = f"haulage_{uuid.uuid4().hex[:8]}"
    create_tables(client, dataset_id)
    staging = ["--staging-dir", str(tmp_path / "staging")]
    try:
        spy = InsertSpy(monkeypatch)
        # --workers 1: the spy records the inserts made in this process (a worker per core would fork)
        with emulators.patched_env(bigquery_emulator.env()):
            to_bq = pc.run_cli(["run", "--input", pattern, "--bigquery-dataset",
                                f"{bigquery_emulator.project}:{dataset_id}", "--quiet", "--workers", "1", *staging])
        assert to_bq.code == 0, to_bq.stdout + to_bq.stderr
        first_inserts = spy.take()
        days_loaded = collections.Counter(table for table, day in to_bq.summary().per_day if table != "unprocessed")
        assert max(days_loaded.values()) == (2 if days == 1.0 else 7), days_loaded
        assert bool(merged) == (days > 1.0), merged  # 7 days: merged; 2: the staged files themselves
        to_parquet = pc.run_cli(["run", "--input", pattern, "--output-dir", str(tmp_path / "out"), "--quiet"])
        assert to_parquet.code == 0, to_parquet.stderr

        parquet = pc.read_parquet_output(tmp_path / "out")
        parquet_acc = pc.check_output(parquet, sources)
        pc.check_summary(to_parquet.summary(), parquet, parquet_acc, files=4)

        bq = pc.output_from_rows({t: query_table(client, dataset_id, t) for t in pc.TABLES})
        bq_acc = pc.check_output(bq, sources, check_folders=False)
        pc.check_summary(to_bq.summary(), bq, bq_acc, files=4)
        assert to_bq.summary().per_day == to_parquet.summary().per_day

        for table in pc.TABLES:
            assert bq.per_day(table) == parquet.per_day(table), table
        # rows sit in the partition of their own day
        for table in pc.TABLES:
            partitions = collections.Counter({
                f"{r['partition_id'][:4]}-{r['partition_id'][4:6]}-{r['partition_id'][6:]}": r["total_rows"]
                for r in client.query(
                    f"SELECT partition_id, total_rows FROM `{dataset_id}.INFORMATION_SCHEMA.PARTITIONS` "
                    f"WHERE table_name = '{table}' AND total_rows > 0").result()})
            assert partitions == parquet.per_day(table), (table, partitions)

        for table, columns in COMPARED.items():
            bq_rows = {r["event_id"]: r for r in bq.rows[table]}
            pq_rows = {r["event_id"]: r for r in parquet.rows[table]}
            assert set(bq_rows) == set(pq_rows), table
            assert len(bq_rows) == len(bq.rows[table]) == len(parquet.rows[table])
            for event_id, pq_row in pq_rows.items():
                for column in columns:  # named columns first, for a clear message
                    assert _get(bq_rows[event_id], column) == _get(pq_row, column), (table, event_id, column)
                assert bq_rows[event_id] == pq_row  # and then every column
            # the sample is not all nulls
            assert {_get(r, "details.installer.name") for r in pq_rows.values()} >= {"pip", "uv"}
            assert {_get(r, "classification.traffic") for r in pq_rows.values()} >= {"human", "ci", "mirror"}

        def dead(rows):
            return sorted((r["source"], r["error"], r["line"]) for r in rows)

        assert dead(bq.rows["unprocessed"]) == dead(parquet.rows["unprocessed"])

        # load jobs: nothing went through insertAll
        assert first_inserts == []
        # the same files again: the ledger lists them, nothing is loaded twice
        with emulators.patched_env(bigquery_emulator.env()):
            again = pc.run_cli(["run", "--input", pattern, "--bigquery-dataset",
                                f"{bigquery_emulator.project}:{dataset_id}", "--quiet", "--workers", "1", *staging])
        assert again.code == 0, again.stdout + again.stderr
        assert "4 files already ingested, skipped" in again.stdout, again.stdout
        assert again.summary().lines_read == 0
        assert pc.output_from_rows({t: query_table(client, dataset_id, t) for t in pc.TABLES}).count() == bq.count()
        ledger = query_table(client, dataset_id, "_haulage_ledger")
        assert sorted(r["source"] for r in ledger) == sorted(s.label for s in sources)
        assert sum(r["lines"] for r in ledger) + sum(r["faults"] for r in ledger) == bq.count()
    finally:
        client.delete_dataset(dataset_id, delete_contents=True)


def spy_ids(calls, table: str) -> list[str]:
    return [i for t, ids, _ in calls if t == table for i in ids]


def test_rows_bigquery_refuses_become_dead_letters(bigquery_emulator, tmp_path):
    """A table whose schema disagrees with the rows (here simple_requests.url is
    a RECORD): BigQuery refuses those rows, and the sink turns each into an
    ``unprocessed`` row (reason ``bigquery-rejected``, the row as JSON) — none
    is lost and the books still balance."""
    import json

    from google.cloud import bigquery

    items = pc.labelled(300, seed=61)
    path = tmp_path / "downloads.log.gz"
    path.write_bytes(pc.gzipped(pc.lines_of(items)))
    client = bigquery_emulator.client()
    dataset_id = f"haulage_{uuid.uuid4().hex[:8]}"
    create_tables(client, dataset_id)
    try:
        table = client.get_table(f"{dataset_id}.simple_requests")
        client.delete_table(table)
        table.schema = [bigquery.SchemaField("url", "RECORD", fields=[bigquery.SchemaField("path", "STRING")])
                        if f.name == "url" else f for f in table.schema]
        client.create_table(bigquery.Table(table.reference, schema=table.schema))

        with emulators.patched_env(bigquery_emulator.env()):
            result = pc.run_cli(["run", "--input", str(path), "--bigquery-dataset",
                                 f"{bigquery_emulator.project}:{dataset_id}", "--quiet",
                                 "--staging-dir", str(tmp_path / "staging")])
        assert result.code == 0, result.stdout + result.stderr
        summary = result.summary()
        assert summary.balanced and summary.lines_read == 300

        simple = [e for _, e in items if e.table == "simple_requests"]
        downloads = [e for _, e in items if e.table == "file_downloads"]
        bad = [e for _, e in items if not e.is_row]
        assert simple and downloads and bad
        assert summary.reasons["bigquery-rejected"] == len(simple)
        assert summary.rows == len(downloads)
        assert summary.dead_letters == len(bad) + len(simple)

        rows = {t: query_table(client, dataset_id, t) for t in pc.TABLES}
        assert rows["simple_requests"] == []
        assert len(rows["file_downloads"]) == len(downloads)
        rejected = [r for r in rows["unprocessed"] if pc.reason_of(r) == "bigquery-rejected"]
        assert len(rows["unprocessed"]) == len(bad) + len(simple)
        kept = sorted((json.loads(r["line"])["timestamp"], json.loads(r["line"])["project"]) for r in rejected)
        assert kept == sorted((e.timestamp, e.project) for e in simple)
        for r in rejected:
            assert r["source"] == f"bigquery:simple_requests/{json.loads(r['line'])['event_id']}"
    finally:
        client.delete_dataset(dataset_id, delete_contents=True)


def test_streaming_inserts_when_asked_send_event_ids_as_insert_ids(bigquery_emulator, tmp_path, monkeypatch):
    """The legacy method stays available explicitly: each row's insert id is its
    event id, so BigQuery's best-effort de-duplication can drop a resend."""
    items = pc.labelled(300, seed=43)
    path = tmp_path / "downloads.log.gz"
    path.write_bytes(pc.gzipped(pc.lines_of(items)))
    client = bigquery_emulator.client()
    dataset_id = f"haulage_{uuid.uuid4().hex[:8]}"
    create_tables(client, dataset_id)
    try:
        spy = InsertSpy(monkeypatch)
        with emulators.patched_env(bigquery_emulator.env()):
            result = pc.run_cli(["run", "--input", str(path), "--bigquery-dataset",
                                 f"{bigquery_emulator.project}:{dataset_id}", "--bigquery-method", "streaming-inserts",
                                 "--quiet"])
        assert result.code == 0, result.stdout + result.stderr
        calls = spy.take()
        bq = pc.output_from_rows({t: query_table(client, dataset_id, t) for t in pc.TABLES})
        pc.check_output(bq, [pc.Source(str(path), items)], check_folders=False)
        for table, ids, rows in calls:
            assert len(ids) == len(rows) and 0 < len(rows) <= 500
            if table != "unprocessed":
                assert ids == [r["event_id"] for r in rows]
        assert sorted(spy_ids(calls, "file_downloads")) == sorted(r["event_id"] for r in bq.rows["file_downloads"])
        dead_ids = spy_ids(calls, "unprocessed")
        assert len(dead_ids) == len(set(dead_ids)) == len(bq.rows["unprocessed"])
    finally:
        client.delete_dataset(dataset_id, delete_contents=True)
