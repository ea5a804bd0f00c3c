"""``haulage setup`` against the real local emulators, then ``haulage run`` on what it made.

* First run creates the dataset, the three tables (schemas from
  parsers/schemas.py, DAY partitions, clustering), the views, the topic, the
  subscription and its dead-letter topic and subscription; the second run
  reports every resource unchanged, ends with "nothing to change", and a
  snapshot of every resource taken before and after is identical.
* ``haulage run --bigquery-dataset`` (batch, a small gzip file) then writes
  into exactly those tables — every line accounted for, checked against the
  generator's oracle — and the views count the series as schema.md defines
  them; ``haulage run --subscription`` reads the subscription setup made;
  Parquet written by ``haulage run --output-dir`` loads into the same tables
  (the backfill route of deploy/README.md).
* An older table gets the code's new NULLABLE columns (also inside RECORDs)
  and keeps its rows (bqemulator applies a schema patch to the table's
  metadata only, so the test cannot query the new columns there); a table lacking a REQUIRED column, or with another
  type, is refused (exit 1) and left untouched.
* An existing subscription with other settings is updated in place; one on
  another topic is refused. The dead-letter policy really routes a message
  that failed max-delivery-attempts times (the emulator implements it).
* Emulator limits, reported as such by setup rather than faked: the Pub/Sub
  emulator has no IAM (bindings "skipped") and cannot update a subscription's
  expiration policy (reported "left as it is"), bqemulator does not return a
  view's SQL (views "not compared"), gcp-storage-emulator has no bucket
  notifications ("skipped"); the notification code is exercised against a
  small stand-in for the JSON API instead.
"""

from __future__ import annotations

import collections
import http.server
import json
import threading
import time
import uuid
from typing import Any

import pytest

from haulage.deploy import bigquery_views
from haulage.parsers.schemas import CLUSTERING, DESCRIPTIONS, DOWNLOADS, PARTITION_COLUMN, TABLE_NAMES, bigquery_schema
from support import emulators
from support import pipeline_check as pc

pytestmark = pytest.mark.emulator

PROJECT = "test-project"


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def _names() -> dict[str, str]:
    tag = uuid.uuid4().hex[:8]
    return {
        "dataset": f"pypi_{tag}",
        "topic": f"projects/{PROJECT}/topics/cdn-{tag}",
        "subscription": f"projects/{PROJECT}/subscriptions/haulage-{tag}",
    }


def _setup_argv(n: dict[str, str], *extra: str) -> list[str]:
    return ["setup", "--bigquery-dataset", f"{PROJECT}:{n['dataset']}", "--topic", n["topic"],
            "--subscription", n["subscription"], *extra]


def _resource_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith("  ")]


def _paths(schema: list[dict], prefix: str = "") -> dict[str, tuple[str, str]]:
    out = {}
    for f in schema:
        out[prefix + f["name"]] = (f["type"], f.get("mode") or "NULLABLE")
        out.update(_paths(f.get("fields", []), prefix + f["name"] + "."))
    return out


@pytest.fixture
def cloud(bigquery_emulator, pubsub_emulator):
    """BigQuery and Pub/Sub emulators in the environment; yields their clients."""
    from google.cloud import pubsub_v1

    with emulators.patched_env({**bigquery_emulator.env(), **pubsub_emulator.env()}):
        publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
        bq = bigquery_emulator.client()
        try:
            yield type("Cloud", (), {"bq": bq, "publisher": publisher, "subscriber": subscriber})
        finally:
            subscriber.close()
            publisher.stop()
            bq.close()


def _snapshot(cloud, n: dict[str, str]) -> dict[str, Any]:
    """Everything setup controls, as plain data (with BigQuery's modification times)."""
    out: dict[str, Any] = {}
    for item in cloud.bq.list_tables(f"{PROJECT}.{n['dataset']}"):
        t = cloud.bq.get_table(item.reference)
        out[f"bq:{t.table_id}"] = {
            "type": t.table_type,
            "schema": [f.to_api_repr() for f in t.schema],
            "partitioning": t.time_partitioning.to_api_repr() if t.time_partitioning else None,
            "clustering": t.clustering_fields,
            "description": t.description,
            "modified": t.modified,
            "view_query": t.view_query,
        }
    ds = cloud.bq.get_dataset(f"{PROJECT}.{n['dataset']}")
    out["bq:dataset"] = {"location": ds.location, "description": ds.description, "modified": ds.modified}
    from google.pubsub_v1 import Subscription, Topic

    for name in (n["topic"], n["topic"] + "-dead-letter"):
        out[name] = Topic.to_dict(cloud.publisher.get_topic(request={"topic": name}))
    for name in (n["subscription"], n["subscription"] + "-dead-letter"):
        out[name] = Subscription.to_dict(cloud.subscriber.get_subscription(request={"subscription": name}))
    return out


def _rows(bq, dataset: str, table: str) -> list[dict[str, Any]]:
    return [dict(r) for r in bq.query(f"SELECT * FROM `{PROJECT}.{dataset}.{table}`").result()]


# --------------------------------------------------------------------------


def test_setup_twice_then_run_uses_exactly_what_setup_made(cloud, tmp_path):
    n = _names()
    argv = _setup_argv(n, "--partition-expiration-days", "400")

    first = pc.run_cli(argv)
    assert first.code == 0, first
    lines = _resource_lines(first.stdout)
    assert len(lines) == 1 + 3 + 2 + 6 + 4 + 2, first.stdout  # dataset, tables, ledger+locks, views, topics+subs, 2 IAM bindings
    for line in lines:
        assert " created" in line or "skipped: the server has no IAM (emulator)" in line, line
    assert first.stdout.splitlines()[-1].startswith("done: created 16, updated 0")

    # what exists is what the code defines
    for table in TABLE_NAMES:
        t = cloud.bq.get_table(f"{PROJECT}.{n['dataset']}.{table}")
        assert _paths([f.to_api_repr() for f in t.schema]) == _paths(bigquery_schema(table))
        assert [f.name for f in t.schema] == [f["name"] for f in bigquery_schema(table)]
        assert (t.time_partitioning.type_, t.time_partitioning.field) == ("DAY", PARTITION_COLUMN[table])
        assert t.time_partitioning.expiration_ms == 400 * 86_400_000
        assert (t.clustering_fields or []) == list(CLUSTERING[table])
        assert t.description == DESCRIPTIONS[table]
    views = {v.name for v in bigquery_views.views(PROJECT, n["dataset"])}
    assert {t.table_id for t in cloud.bq.list_tables(f"{PROJECT}.{n['dataset']}") if t.table_type == "VIEW"} == views
    sub = cloud.subscriber.get_subscription(request={"subscription": n["subscription"]})
    assert sub.topic == n["topic"] and sub.ack_deadline_seconds == 600
    assert sub.message_retention_duration.total_seconds() == 7 * 86_400
    assert "expiration_policy" in sub and not sub.expiration_policy.ttl  # never expires
    assert (sub.dead_letter_policy.dead_letter_topic, sub.dead_letter_policy.max_delivery_attempts) == \
        (n["topic"] + "-dead-letter", 10)
    dead = cloud.subscriber.get_subscription(request={"subscription": n["subscription"] + "-dead-letter"})
    assert dead.topic == n["topic"] + "-dead-letter"  # dead letters have somewhere to stay

    before = _snapshot(cloud, n)
    second = pc.run_cli(argv)
    assert second.code == 0, second
    for line in _resource_lines(second.stdout):
        assert "exists, unchanged" in line or "skipped" in line, line
    assert second.stdout.splitlines()[-1].startswith("nothing to change")
    assert _snapshot(cloud, n) == before

    # ---- batch: haulage run writes into the tables setup made
    items = pc.labelled(400, seed=23)
    path = tmp_path / "in" / "downloads.log.gz"
    path.parent.mkdir()
    path.write_bytes(pc.gzipped(pc.lines_of(items)))
    run = pc.run_cli(["run", "--input", str(path), "--bigquery-dataset", f"{PROJECT}:{n['dataset']}", "--quiet"])
    assert run.code == 0, run.stderr
    out = pc.output_from_rows({t: _rows(cloud.bq, n["dataset"], t) for t in TABLE_NAMES})
    acc = pc.check_output(out, [pc.Source(str(path), items)], check_folders=False)
    pc.check_summary(run.summary(), out, acc, files=1)

    # the views count the series exactly as schema.md defines them
    want: dict[tuple, collections.Counter] = collections.defaultdict(collections.Counter)
    for row in out.rows[DOWNLOADS]:
        c = row["classification"]
        key = (row["timestamp"][:10], row["project"])
        want[key].update(total=1, without_mirrors=c["traffic"] != "mirror", human=c["traffic"] == "human",
                         ci=c["ci"] is True, automation=c["traffic"] == "automation", mirror=c["traffic"] == "mirror",
                         unknown_traffic=c["traffic"] == "unknown", pypi_compatible=c["kind"] != "bot")
    got = {(str(r["day"]), r["project"]): {k: r[k] for k in bigquery_views.daily_columns()}
           for r in _rows(cloud.bq, n["dataset"], "daily_project_downloads")}
    assert got == {k: {c: v[c] for c in bigquery_views.daily_columns()} for k, v in want.items()}
    per_series = {s: len(_rows(cloud.bq, n["dataset"], bigquery_views.series_view_name(s))) for s in bigquery_views.SERIES}
    assert per_series == {s: sum(v[s] for v in want.values()) for s in bigquery_views.SERIES}
    assert 0 < per_series["ci"] < per_series["human"] < per_series["without_mirrors"] < per_series["total"]

    # ---- streaming: haulage run reads the subscription setup made
    stream = pc.labelled(60, seed=29, bad_fraction=0.0)
    for start in range(0, len(stream), 20):
        cloud.publisher.publish(n["topic"], pc.joined(pc.lines_of(stream[start:start + 20]))).result(timeout=30)
    before_rows = {t: len(out.rows[t]) for t in TABLE_NAMES}
    live = pc.run_cli(["run", "--subscription", n["subscription"], "--bigquery-dataset", f"{PROJECT}:{n['dataset']}",
                       "--run-for", "6", "--window-seconds", "2", "--quiet"])
    assert live.code == 0, live.stderr
    summary = live.summary()
    assert summary.lines_read == len(stream) and summary.balanced
    after_rows = {t: len(_rows(cloud.bq, n["dataset"], t)) for t in TABLE_NAMES}
    assert sum(after_rows.values()) - sum(before_rows.values()) == summary.rows + summary.dead_letters
    # and setup still finds nothing to change once data is flowing
    third = pc.run_cli(argv)
    assert third.code == 0 and third.stdout.splitlines()[-1].startswith("nothing to change"), third.stdout


def test_parquet_backfill_loads_into_the_tables_setup_made(cloud, tmp_path):
    """deploy/README.md step 8: a backfill writes Parquet, `bq load` appends it to the tables.

    Here: `haulage run --output-dir` locally, then a PARQUET load job per file into the
    setup-made tables of bqemulator (real BigQuery load semantics may be stricter)."""
    from google.cloud import bigquery

    dataset = _unique("backfill")
    assert pc.run_cli(["setup", "--bigquery-dataset", f"{PROJECT}:{dataset}"]).code == 0
    items = pc.labelled(300, seed=31)
    path = tmp_path / "archive.log.gz"
    path.write_bytes(pc.gzipped(pc.lines_of(items)))
    run = pc.run_cli(["run", "--input", str(path), "--output-dir", str(tmp_path / "out"), "--quiet"])
    assert run.code == 0, run.stderr
    parquet = pc.read_parquet_output(tmp_path / "out")
    for table in TABLE_NAMES:
        for file in sorted((tmp_path / "out" / table).glob("date=*/part-*.parquet")):
            with file.open("rb") as fh:
                cloud.bq.load_table_from_file(fh, f"{PROJECT}.{dataset}.{table}", job_config=bigquery.LoadJobConfig(
                    source_format="PARQUET", write_disposition="WRITE_APPEND")).result()
    out = pc.output_from_rows({t: _rows(cloud.bq, dataset, t) for t in TABLE_NAMES})
    pc.check_output(out, [pc.Source(str(path), items)], check_folders=False)
    assert {t: len(out.rows[t]) for t in TABLE_NAMES} == {t: len(parquet.rows[t]) for t in TABLE_NAMES}
    daily = {str(r["day"]): r["total"] for r in _rows(cloud.bq, dataset, "daily_downloads")}
    assert daily == dict(parquet.per_day(DOWNLOADS))


def _create_table(bq, dataset: str, table: str, schema: list[dict], clustering=("project",)):
    from google.cloud import bigquery

    t = bigquery.Table(f"{PROJECT}.{dataset}.{table}", schema=[bigquery.SchemaField.from_api_repr(f) for f in schema])
    t.time_partitioning = bigquery.TimePartitioning(type_="DAY", field=PARTITION_COLUMN[table])
    t.clustering_fields = list(clustering) or None
    t.description = DESCRIPTIONS[table]
    return bq.create_table(t)


def _without(schema: list[dict], *dotted: str) -> list[dict]:
    schema = json.loads(json.dumps(schema))
    for name in dotted:
        *parents, leaf = name.split(".")
        fields = schema
        for p in parents:
            fields = next(f for f in fields if f["name"] == p)["fields"]
        fields[:] = [f for f in fields if f["name"] != leaf]
    return schema


OLD_ROW = {
    "timestamp": "2026-10-01T12:00:00Z", "country_code": "DE", "url": "/packages/aa/bb/x/requests-2.0-py3-none-any.whl",
    "project": "requests", "file": {"filename": "requests-2.0-py3-none-any.whl", "project": "requests", "version": "2.0",
                                    "type": "bdist_wheel"},
    "details": {"installer": {"name": "pip", "version": "24.0"}, "python": "3.12.1"},
    "classification": {"kind": "installer", "traffic": "human", "mirror": False, "ci": False},
    "event_id": "old-1",
}


def test_older_table_gets_the_new_nullable_columns_and_keeps_its_rows(cloud):
    dataset = _unique("older")
    cloud.bq.create_dataset(f"{PROJECT}.{dataset}")
    older = _without(bigquery_schema(DOWNLOADS), "details.installer.subcommand", "details.user_data", "user_agent",
                     "agent_fingerprint")
    _create_table(cloud.bq, dataset, DOWNLOADS, older)
    assert cloud.bq.insert_rows_json(f"{PROJECT}.{dataset}.{DOWNLOADS}", [OLD_ROW], row_ids=["old-1"]) == []
    argv = ["setup", "--bigquery-dataset", f"{PROJECT}:{dataset}"]

    result = pc.run_cli(argv)
    assert result.code == 0, result
    (line,) = [l for l in _resource_lines(result.stdout) if f" {DOWNLOADS} " in l]
    assert ("updated: added columns details.installer.subcommand, details.user_data, user_agent, "
            "agent_fingerprint") in line
    table = cloud.bq.get_table(f"{PROJECT}.{dataset}.{DOWNLOADS}")
    assert _paths([f.to_api_repr() for f in table.schema]) == _paths(bigquery_schema(DOWNLOADS))
    # the row written before is still there (bqemulator changes only the table's metadata on a schema
    # patch, not its DuckDB storage, so the new columns cannot be queried there; BigQuery adds them
    # as NULL for existing rows)
    (kept,) = _rows(cloud.bq, dataset, DOWNLOADS)
    assert kept["event_id"] == "old-1" and kept["details"]["installer"]["name"] == "pip"
    assert kept["classification"]["traffic"] == "human"

    again = pc.run_cli(argv)
    assert again.code == 0 and again.stdout.splitlines()[-1].startswith("nothing to change"), again.stdout


def test_incompatible_tables_are_refused_and_left_untouched(cloud):
    dataset = _unique("incompatible")
    cloud.bq.create_dataset(f"{PROJECT}.{dataset}")
    no_event_id = _without(bigquery_schema(DOWNLOADS), "event_id")          # REQUIRED in the code
    _create_table(cloud.bq, dataset, DOWNLOADS, no_event_id)
    retyped = json.loads(json.dumps(bigquery_schema("simple_requests")))
    next(f for f in retyped if f["name"] == "project")["type"] = "INTEGER"
    _create_table(cloud.bq, dataset, "simple_requests", retyped)
    before = {t: [f.to_api_repr() for f in cloud.bq.get_table(f"{PROJECT}.{dataset}.{t}").schema]
              for t in (DOWNLOADS, "simple_requests")}

    result = pc.run_cli(["setup", "--bigquery-dataset", f"{PROJECT}:{dataset}"])
    assert result.code == 1, result
    text = result.stdout
    (downloads,) = [l for l in _resource_lines(text) if f" {DOWNLOADS} " in l]
    assert "refused" in downloads and "event_id is missing and REQUIRED" in downloads
    (simple,) = [l for l in _resource_lines(text) if " simple_requests " in l]
    assert "refused" in simple and "project is INTEGER in the table, STRING in the code" in simple
    assert text.splitlines()[-1].startswith("refused: 2 resource(s)")
    # the other table was still created; the refused ones are as they were
    assert " unprocessed " in text and cloud.bq.get_table(f"{PROJECT}.{dataset}.unprocessed")
    for t, schema in before.items():
        assert [f.to_api_repr() for f in cloud.bq.get_table(f"{PROJECT}.{dataset}.{t}").schema] == schema


def test_existing_subscription_is_updated_in_place_and_one_on_another_topic_is_refused(cloud):
    n = _names()
    cloud.publisher.create_topic(request={"name": n["topic"]})
    cloud.subscriber.create_subscription(request={"name": n["subscription"], "topic": n["topic"],
                                                  "ack_deadline_seconds": 10})
    argv = ["setup", "--topic", n["topic"], "--subscription", n["subscription"], "--retention-days", "3",
            "--max-delivery-attempts", "7", "--ack-deadline-seconds", "120"]
    result = pc.run_cli(argv)
    assert result.code == 0, result
    (line,) = [l for l in _resource_lines(result.stdout) if l.split()[0] == "subscription"]
    assert "updated: ack deadline 10s -> 120s" in line and "-> 3d" in line
    # Pub/Sub makes it never expire; the emulator refuses that one update, and setup says so
    assert "-> never" in line or "expiration policy left as it is: the server refused" in line
    assert f"dead letters none -> {n['topic']}-dead-letter after 7 attempts" in line
    sub = cloud.subscriber.get_subscription(request={"subscription": n["subscription"]})
    assert sub.ack_deadline_seconds == 120 and sub.message_retention_duration.total_seconds() == 3 * 86_400
    assert sub.dead_letter_policy.max_delivery_attempts == 7
    assert pc.run_cli(argv).stdout.splitlines()[-1].startswith("nothing to change")

    other = f"projects/{PROJECT}/topics/{_unique('other')}"
    refused = pc.run_cli(["setup", "--topic", other, "--subscription", n["subscription"]])
    assert refused.code == 1
    assert f"is attached to {n['topic']}, not {other}" in refused.stdout
    assert cloud.subscriber.get_subscription(request={"subscription": n["subscription"]}).topic == n["topic"]


def test_topic_retention_is_added_to_an_existing_topic_once(cloud):
    topic = _names()["topic"]
    assert pc.run_cli(["setup", "--topic", topic]).code == 0
    argv = ["setup", "--topic", topic, "--topic-retention-days", "2"]
    result = pc.run_cli(argv)
    assert result.code == 0 and "updated: message retention none -> 2d" in result.stdout, result.stdout
    assert cloud.publisher.get_topic(request={"topic": topic}).message_retention_duration.total_seconds() == 2 * 86_400
    assert pc.run_cli(argv).stdout.splitlines()[-1].startswith("nothing to change")


def test_dead_letter_policy_keeps_a_message_nobody_could_process(cloud):
    """The emulator enforces dead-letter policies: after 5 failed deliveries the
    message is on the dead-letter subscription setup made, with its history."""
    n = _names()
    result = pc.run_cli(["setup", "--topic", n["topic"], "--subscription", n["subscription"],
                         "--max-delivery-attempts", "5", "--ack-deadline-seconds", "10"])
    assert result.code == 0, result
    cloud.publisher.publish(n["topic"], b"download|poison").result(timeout=30)
    deliveries = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        resp = cloud.subscriber.pull(request={"subscription": n["subscription"], "max_messages": 10}, timeout=10)
        if resp.received_messages:
            deliveries += len(resp.received_messages)
            cloud.subscriber.modify_ack_deadline(request={
                "subscription": n["subscription"], "ack_deadline_seconds": 0,
                "ack_ids": [m.ack_id for m in resp.received_messages]})
            continue
        dead = cloud.subscriber.pull(request={"subscription": n["subscription"] + "-dead-letter", "max_messages": 10},
                                     timeout=10)
        if dead.received_messages:
            (m,) = dead.received_messages
            assert m.message.data == b"download|poison"
            assert m.message.attributes["CloudPubSubDeadLetterSourceDeliveryCount"] == "5"
            assert deliveries == 5
            return
        time.sleep(0.2)
    pytest.fail(f"message not dead-lettered after {deliveries} deliveries")


# --------------------------------------------------------------------------
# bucket notifications (file delivery)


def test_notification_is_reported_skipped_on_the_gcs_emulator(pubsub_emulator, gcs_emulator):
    """gcp-storage-emulator has no notificationConfigs API: setup says so, exit 0, nothing faked."""
    n = _names()
    with emulators.patched_env({**pubsub_emulator.env(), **gcs_emulator.env()}):
        result = pc.run_cli(["setup", "--topic", n["topic"], "--notification-bucket", gcs_emulator.bucket])
    assert result.code == 0, result
    (line,) = [l for l in _resource_lines(result.stdout) if l.split()[0] == "notification"]
    assert "skipped: the server does not support bucket notifications" in line
    assert "nothing to change" not in result.stdout.splitlines()[-1]  # the topic was created


class _FakeNotificationsApi(http.server.BaseHTTPRequestHandler):
    """Just the Cloud Storage JSON API calls setup makes: get bucket, list and insert notificationConfigs."""

    configs: list[dict] = []
    requests: list[tuple[str, str]] = []

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?")[0]
        self.requests.append(("GET", path))
        if path == "/storage/v1/b/logs-bucket":
            return self._send(200, {"kind": "storage#bucket", "name": "logs-bucket", "id": "logs-bucket",
                                    "projectNumber": "123456789"})
        if path == "/storage/v1/b/logs-bucket/notificationConfigs":
            return self._send(200, {"kind": "storage#notifications", "items": self.configs})
        return self._send(404, {"error": {"code": 404, "message": "not found"}})

    def do_POST(self):
        path = self.path.split("?")[0]
        self.requests.append(("POST", path))
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if path != "/storage/v1/b/logs-bucket/notificationConfigs":
            return self._send(404, {"error": {"code": 404, "message": "not found"}})
        body.update(id=str(len(self.configs) + 1), kind="storage#notification", etag="1")
        self.configs.append(body)
        return self._send(200, body)

    def log_message(self, *args):
        pass


def test_notification_created_once_then_reused(pubsub_emulator):
    _FakeNotificationsApi.configs, _FakeNotificationsApi.requests = [], []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeNotificationsApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    n = _names()
    argv = ["setup", "--topic", n["topic"], "--notification-bucket", "logs-bucket", "--notification-prefix", "fastly/"]
    try:
        env = {**pubsub_emulator.env(), "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{server.server_address[1]}"}
        with emulators.patched_env(env):
            first = pc.run_cli(argv)
            second = pc.run_cli(argv)
    finally:
        server.shutdown()
        server.server_close()
    assert first.code == 0, first
    (line,) = [l for l in _resource_lines(first.stdout) if l.split()[0] == "notification"]
    assert "created: OBJECT_FINALIZE, JSON_API_V1, id 1" in line
    (config,) = _FakeNotificationsApi.configs
    assert config["topic"] == f"//pubsub.googleapis.com/{n['topic']}"
    assert (config["event_types"], config["payload_format"], config["object_name_prefix"]) == \
        (["OBJECT_FINALIZE"], "JSON_API_V1", "fastly/")
    assert "publish the notifications" in first.stdout  # the IAM step was considered (skipped: no IAM in the emulator)
    # and it says which allow-list haulage run should read these notifications with
    assert "--message-format gcs-notification --notification-allow gs://logs-bucket/fastly/" in first.stderr
    assert second.code == 0 and second.stdout.splitlines()[-1].startswith("nothing to change"), second.stdout
    assert [r for r in _FakeNotificationsApi.requests if r[0] == "POST"] == [("POST", "/storage/v1/b/logs-bucket/notificationConfigs")]
