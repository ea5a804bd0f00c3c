"""``haulage run --subscription …`` against Google's Pub/Sub emulator, on both local graphs.

Every test runs twice (tests/support/streaming.py): on the windowed pull
(the default local runner) and on the Dataflow graph itself
(``--runner BundleBasedDirectRunner --streaming``). They publish labelled
log lines (expected values from the generator's oracle, benchmarks/corpus.py),
run the CLI in-process for a short ``--run-for``, and check that

* every line is a row with the expected values exactly once — the multiset of
  event ids equals the expected one — or a dead letter naming its message
  and line with the expected reason; the summary's books balance and agree;
* every message pulled was acknowledged once, and *when* is what each graph
  promises: the windowed pull after the message's lines were written, Beam's
  direct runner right after the pull, before any of them was; afterwards the
  subscription has nothing left to deliver, even when every acknowledged id
  is "nacked" (deadline 0);
* Cloud Storage notifications are read only inside ``--notification-allow``:
  a forged one is a dead letter with the reason and its object is never
  requested from the storage emulator (its request log is checked);
* stopping mid-stream and starting again loses and repeats nothing.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import threading
import time
import urllib.parse
import uuid

import pytest

from support import emulators
from support import pipeline_check as pc
from support import streaming as st
from test_pipeline_bigquery import create_tables

pytestmark = pytest.mark.emulator

RUN_FOR = "9"
WINDOW = "3"



@pytest.fixture(params=sorted(st.GRAPHS))
def graph(request) -> str:
    return request.param


@pytest.fixture
def pubsub(pubsub_emulator):
    """A fresh topic and subscription on the emulator, with a publisher."""
    with emulators.pubsub_channel(pubsub_emulator) as channel:
        yield channel.publisher, channel.topic, channel.subscription


@pytest.fixture
def bigquery_dataset(bigquery_emulator):
    """A fresh dataset with haulage's tables; (client, dataset id, --bigquery-dataset value)."""
    client = bigquery_emulator.client()
    dataset_id = f"haulage_{uuid.uuid4().hex[:8]}"
    create_tables(client, dataset_id)
    try:
        with emulators.patched_env(bigquery_emulator.env()):
            yield client, dataset_id, f"{bigquery_emulator.project}:{dataset_id}"
    finally:
        client.delete_dataset(dataset_id, delete_contents=True)


def _check_received_at(out: pc.Output, started: float, ended: float) -> None:
    for dead in out.rows["unprocessed"]:
        when = dt.datetime.strptime(dead["received_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
        assert started - 1 <= when.timestamp() <= ended + 1, dead


def _lines_per_message(sources: list[pc.Source]) -> dict[str, int]:
    return {s.label.rpartition("#")[2]: len(s.items) if s.fault is None else (s.readable or 0) + 1 for s in sources}


def test_lines_into_bigquery_exactly_once(graph, pubsub, pubsub_emulator, bigquery_dataset, monkeypatch):
    publisher, topic, subscription = pubsub
    client, dataset_id, dataset_arg = bigquery_dataset
    items = pc.labelled(440, seed=21)
    items, damaged = items[:400], items[400:]
    bad = [e for _, e in items if not e.is_row]
    assert len({e.reason for e in bad}) >= 5 and len(bad) >= 20
    assert {e.date for _, e in items if e.is_row} == {"2026-10-01", "2026-10-02"}
    assert any(line.startswith(b"<") and e.is_row for line, e in items), "no legacy syslog line"
    assert {e.table for _, e in items} == {"file_downloads", "simple_requests", "unprocessed"}

    sources: list[pc.Source] = []
    kinds: dict[str, str] = {}

    def publish(data: bytes, part: list, kind: str, fault=None, readable=None, **attributes: str) -> None:
        message_id = st.publish(publisher, topic, data, **attributes)
        sources.append(pc.Source(f"{subscription}#{message_id}", part, fault=fault, readable=readable))
        kinds[message_id] = kind

    # one line per message (no newline; an empty line is sent as "\n")
    for item in items[:60]:
        publish(item[0] or b"\n", [item], "single")
    # several lines per message, newline-terminated, 1 to 13 lines each
    position, size = 60, 1
    while position < 300:
        part = items[position:min(position + size, 300)]
        publish(pc.joined(pc.lines_of(part)), part, "multi")
        position += len(part)
        size = size % 13 + 1
    # a gzip message cut short: the lines before the cut, then one dead letter naming the message
    whole = pc.gzipped(pc.lines_of(damaged))
    publish(whole[: len(whole) // 2], damaged, "truncated", fault="truncated-gzip", compression="gzip")
    # a message with attributes but no data: one dead letter naming it
    publish(b"", [], "empty", fault="empty-message", readable=0, origin="test")
    # published while haulage runs, once it has acknowledged something: one
    # gzip-compressed message and a few more single lines
    gz, late = items[300:390], items[390:400]
    assert any(line.startswith(b"<") for line, e in gz if e.is_row), "the gzip message should hold a legacy line"

    def publish_late() -> None:
        spy.acknowledged.wait(timeout=float(RUN_FOR) - 4)
        publish(pc.gzipped(pc.lines_of(gz)), gz, "gzip", compression="gzip")
        for item in late:
            publish(item[0] or b"\n", [item], "late")

    spy = st.PubSubSpy(monkeypatch, st.Written(st.bigquery_rows(client, dataset_id), subscription))
    late_publisher = threading.Thread(target=publish_late, daemon=True)
    late_publisher.start()
    started = time.time()
    with emulators.patched_env(pubsub_emulator.env()):
        result = st.run(graph, "--subscription", subscription, "--bigquery-dataset", dataset_arg,
                        "--run-for", RUN_FOR, "--window-seconds", WINDOW)
        ended = time.time()
        late_publisher.join(timeout=30)
        assert result.code == 0, result.stdout + result.stderr
        assert ended - started >= float(RUN_FOR) - 1

        out = st.bigquery_rows(client, dataset_id)()
        acc = pc.check_output(out, sources, check_folders=False)
        # exactly once, by event id: the multiset of ids is the expected set
        for src in sources:
            if src.fault == "truncated-gzip":
                src.readable = acc.lines - sum(len(s.items) for s in sources if s.fault is None)
        assert st.event_ids(out) == st.expected_event_ids(subscription, sources)
        summary = result.summary()
        pc.check_summary(summary, out, acc)
        assert 400 < acc.lines < 440 and acc.faults == 2
        assert summary.reasons["truncated-gzip"] == summary.reasons["empty-message"] == 1
        for (table, day), n in acc.expected_per_day.items():
            assert summary.per_day[(table, day)] == n
        _check_received_at(out, started, ended)
        kinds_with_dead = {kinds[d["source"].rpartition(":")[0].rpartition("#")[2]] for d in out.rows["unprocessed"]}
        assert {"single", "multi", "gzip", "truncated", "empty"} <= kinds_with_dead

        spy.check_acks(graph, _lines_per_message(sources))
        spy.assert_nothing_left(subscription)


def _emulator_requests(gcs_emulator) -> str:
    return urllib.parse.unquote(gcs_emulator.log_path.read_text(errors="replace"))


def test_notifications_only_from_the_allowed_location(graph, pubsub, pubsub_emulator, gcs_emulator,
                                                       google_credentials, tmp_path, monkeypatch):
    publisher, topic, subscription = pubsub
    items = pc.labelled(300, seed=31)
    bucket = gcs_emulator.client().bucket(gcs_emulator.bucket)
    prefix = emulators.unique_name("notified")
    allowed = f"gs://{gcs_emulator.bucket}/{prefix}/"
    sources: list[pc.Source] = []
    finalize = {"eventType": "OBJECT_FINALIZE", "payloadFormat": "JSON_API_V1"}

    def notify(bucket_id: str, name: str, **attributes: str) -> str:
        payload = json.dumps({"kind": "storage#object", "bucket": bucket_id, "name": name}).encode()
        return st.publish(publisher, topic, payload, **{**finalize, "bucketId": bucket_id, "objectId": name, **attributes})

    for i, (part, data) in enumerate(((items[:180], pc.gzipped), (items[180:], pc.joined))):
        name = f"{prefix}/downloads-{i}.log" + (".gz" if data is pc.gzipped else "")
        bucket.blob(name).upload_from_string(data(pc.lines_of(part)))
        sources.append(pc.Source(f"gs://{gcs_emulator.bucket}/{name}", part))
        notify(gcs_emulator.bucket, name)
    # forged: objects that exist but are outside the allow-list; and a notification without an object
    secret = f"{prefix}-secret/credentials.log"
    bucket.blob(secret).upload_from_string(b"not a log line\n")
    forged = {
        notify(gcs_emulator.bucket, secret): ("notification-not-allowed", secret),
        notify("someone-elses-bucket", f"{prefix}/downloads-0.log.gz"): ("notification-not-allowed", "someone-elses-bucket"),
        st.publish(publisher, topic, b"{}", **finalize, bucketId=gcs_emulator.bucket): ("bad-notification", "bucketId"),
    }
    for message_id in forged:
        sources.append(pc.Source(f"{subscription}#{message_id}", [], fault=forged[message_id][0], readable=0))
    # a deletion is acknowledged and otherwise ignored
    st.publish(publisher, topic, b"{}", eventType="OBJECT_DELETE", bucketId=gcs_emulator.bucket,
               objectId=f"{prefix}/gone.log.gz", payloadFormat="JSON_API_V1")

    out_dir = tmp_path / "out"
    env = {**google_credentials, **pubsub_emulator.env(), **gcs_emulator.env()}
    emulators.reset_beam_credentials_cache()
    started = time.time()
    try:
        with emulators.patched_env(env):
            result = st.run(graph, "--subscription", subscription, "--message-format", "gcs-notification",
                            "--notification-allow", allowed, "--output-dir", str(out_dir),
                            "--run-for", "8", "--window-seconds", WINDOW)
            ended = time.time()
    finally:
        emulators.reset_beam_credentials_cache()
    assert result.code == 0, result.stdout + result.stderr
    out = pc.read_parquet_output(out_dir)
    acc = pc.check_output(out, sources)
    pc.check_summary(result.summary(), out, acc)
    assert acc.lines == 300 and acc.faults == 3
    _check_received_at(out, started, ended)
    refused = {d["source"].rpartition(":")[0].rpartition("#")[2]: d for d in out.rows["unprocessed"]
               if pc.reason_of(d) in ("notification-not-allowed", "bad-notification")}
    assert set(refused) == set(forged)
    for message_id, (reason, named) in forged.items():
        dead = refused[message_id]
        assert dead["error"].startswith(f"{reason}: {subscription}#{message_id}: ") and named in dead["error"], dead
        assert allowed in dead["error"] or reason == "bad-notification"
        assert json.loads(dead["line"])["eventType"] == "OBJECT_FINALIZE"  # the notification, for the investigation
    # the forged objects were never requested from the storage emulator; the allowed ones were
    requests = _emulator_requests(gcs_emulator)
    assert secret not in requests
    assert "someone-elses-bucket" not in requests
    assert f"{prefix}/downloads-0.log.gz" in requests and f"{prefix}/downloads-1.log" in requests


def test_stop_mid_stream_and_start_again_loses_and_repeats_nothing(graph, pubsub, pubsub_emulator, bigquery_dataset,
                                                                   monkeypatch):
    """The first run stops (--run-for) while messages are still being published; the second reads the rest."""
    publisher, topic, subscription = pubsub
    client, dataset_id, dataset_arg = bigquery_dataset
    items = pc.labelled(400, seed=71)
    sources: list[pc.Source] = []

    def publish_steadily() -> None:
        for start in range(0, len(items), 10):  # 40 messages of 10 lines, ~7 a second
            part = items[start:start + 10]
            message_id = st.publish(publisher, topic, pc.joined(pc.lines_of(part)))
            sources.append(pc.Source(f"{subscription}#{message_id}", part))
            time.sleep(0.14)

    spy = st.PubSubSpy(monkeypatch, st.Written(st.bigquery_rows(client, dataset_id), subscription))
    publishing = threading.Thread(target=publish_steadily, daemon=True)
    with emulators.patched_env(pubsub_emulator.env()):
        publishing.start()
        first = st.run(graph, "--subscription", subscription, "--bigquery-dataset", dataset_arg,
                       "--run-for", "2", "--window-seconds", "1")
        assert first.code == 0, first.stdout + first.stderr
        assert publishing.is_alive(), "the first run should stop while messages are still being published"
        read_first = first.summary().lines_read
        publishing.join(timeout=60)
        assert 0 < read_first < len(items), read_first
        second = st.run(graph, "--subscription", subscription, "--bigquery-dataset", dataset_arg,
                        "--run-for", "3", "--window-seconds", "1")
        assert second.code == 0, second.stdout + second.stderr
    out = st.bigquery_rows(client, dataset_id)()
    acc = pc.check_output(out, sources, check_folders=False)
    assert acc.lines == len(items) == read_first + second.summary().lines_read
    assert st.event_ids(out) == st.expected_event_ids(subscription, sources)
    assert first.summary().balanced and second.summary().balanced
    spy.check_acks(graph, _lines_per_message(sources))
    with emulators.patched_env(pubsub_emulator.env()):
        spy.assert_nothing_left(subscription)


def test_topic_mode(graph, pubsub_emulator, tmp_path):
    """``--topic``: the windowed pull reads through ``<topic>-haulage``, made on first use and kept (what a
    stopped run did not acknowledge waits there); Beam's read through a subscription of its own, deleted at the end."""
    from google.cloud import pubsub_v1

    with emulators.patched_env(pubsub_emulator.env()):
        publisher = pubsub_v1.PublisherClient()
        topic = publisher.topic_path(pubsub_emulator.project, emulators.unique_name("topic"))
        publisher.create_topic(name=topic)
        items = pc.labelled(40, seed=17, bad_fraction=0.1)
        out = tmp_path / "out"
        results: list[pc.CliResult] = []
        runner = threading.Thread(target=lambda: results.append(st.run(
            graph, "--topic", topic, "--output-dir", str(out), "--run-for", "8", "--window-seconds", "2", "--quiet")))
        runner.start()
        deadline = time.monotonic() + 7
        while time.monotonic() < deadline:  # publish only once haulage's subscription exists
            if list(publisher.list_topic_subscriptions(request={"topic": topic})):
                break
            time.sleep(0.2)
        else:
            pytest.fail("haulage did not create a subscription on the topic")
        for line, _ in items:
            publisher.publish(topic, line).result()
        runner.join(timeout=60)
        assert results and results[0].code == 0, results and results[0].stdout + results[0].stderr
        output = pc.read_parquet_output(out)
        for table in ("file_downloads", "simple_requests"):
            expected = collections.Counter(e.date for _, e in items if e.table == table)
            assert output.per_day(table) == expected, table
        dead = output.rows["unprocessed"]
        assert len(dead) == sum(1 for _, e in items if e.table == "unprocessed") > 0
        kept = topic.replace("/topics/", "/subscriptions/") + "-haulage"
        subscriptions = list(publisher.list_topic_subscriptions(request={"topic": topic}))
        if graph == st.WINDOWED_PULL:  # read through haulage's own subscription, named in the dead letters
            assert all(row["source"].startswith(kept + "#") for row in dead)
            assert subscriptions == [kept], "the subscription must stay"
        else:  # Beam's read makes its own subscription and deletes it; dead letters name the topic
            assert all(row["source"].startswith(topic + "#") for row in dead)
            assert subscriptions == [], "Beam's temporary subscription left behind"
