"""``haulage run --subscription …`` against Google's Pub/Sub emulator.

Local runs pull windows of messages, write them, and only then acknowledge
them (pipeline/pubsub_source.py). These tests publish labelled log lines
(expected values from the generator's oracle, benchmarks/corpus.py), run the
CLI in-process for a short ``--run-for``, and check that

* every line is a row with the expected values in its day's folder, or a
  dead letter naming its message and line with the expected reason;
* the summary's books balance and agree with the files;
* every message pulled was acknowledged, each acknowledgement came after
  the rows of the messages it covers were in finished Parquet files, and
  afterwards the subscription has nothing left to deliver — even when the
  acknowledged ids are "nacked" (deadline 0), which would bring back any
  message that was not really acknowledged.
"""

from __future__ import annotations

import collections
import json
import threading
import time
import uuid
import warnings
from pathlib import Path

import pytest

from support import emulators
from support import pipeline_check as pc

pytestmark = pytest.mark.emulator

RUN_FOR = "15"
WINDOW = "5"


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class PubSubSpy:
    """Records what haulage's subscriber pulls and acknowledges (observation only).

    At each acknowledge call it notes how many rows the finished Parquet files
    under ``out_dir`` hold at that moment.
    """

    def __init__(self, monkeypatch, out_dir: Path) -> None:
        from google.cloud import pubsub_v1

        self.original = pubsub_v1.SubscriberClient
        self.out_dir = out_dir
        self.pulled: dict[str, str] = {}  # ack id -> message id
        self.acks: list[tuple[list[str], int]] = []  # (ack ids, rows in finished files then)
        self.acknowledged = threading.Event()  # set after the first acknowledge call
        spy = self

        class SpySubscriber(self.original):
            def pull(self, *args, **kwargs):
                response = super().pull(*args, **kwargs)
                for m in response.received_messages:
                    spy.pulled[m.ack_id] = m.message.message_id
                return response

            def acknowledge(self, *args, **kwargs):
                request = kwargs.get("request") or (args[0] if args else {})
                spy.acks.append((list(request["ack_ids"]), spy.rows_on_disk()))
                try:
                    return super().acknowledge(*args, **kwargs)
                finally:
                    spy.acknowledged.set()

        monkeypatch.setattr(pubsub_v1, "SubscriberClient", SpySubscriber)

    def rows_on_disk(self) -> int:
        import pyarrow.parquet as pq

        return sum(pq.read_metadata(p).num_rows for p in self.out_dir.rglob("part-*.parquet"))

    def check_acks(self, lines_per_message: dict[str, int]) -> None:
        """Every pulled message acked once, never before its rows were on disk."""
        acked = [a for ids, _ in self.acks for a in ids]
        assert sorted(acked) == sorted(self.pulled), "pulled and acknowledged messages differ"
        assert sorted(self.pulled.values()) == sorted(lines_per_message), "pulled messages differ from published"
        done = 0
        for ids, rows_then in self.acks:
            done += sum(lines_per_message[self.pulled[a]] for a in ids)
            assert rows_then >= done, f"acknowledged messages with {done} lines when only {rows_then} rows were written"

    def assert_nothing_left(self, subscription: str) -> None:
        subscriber = self.original()
        try:
            # "nack" everything haulage received: an unacknowledged message would come straight back
            ack_ids = list(self.pulled)
            for start in range(0, len(ack_ids), 500):
                subscriber.modify_ack_deadline(request={
                    "subscription": subscription, "ack_ids": ack_ids[start:start + 500], "ack_deadline_seconds": 0})
            with warnings.catch_warnings():  # return_immediately is deprecated
                warnings.simplefilter("ignore", DeprecationWarning)
                for _ in range(3):
                    resp = subscriber.pull(request={"subscription": subscription, "max_messages": 100,
                                                    "return_immediately": True}, timeout=10)
                    assert list(resp.received_messages) == [], "the subscription still has messages to deliver"
                    time.sleep(0.3)
        finally:
            subscriber.close()


@pytest.fixture
def pubsub(pubsub_emulator):
    """A fresh topic and subscription on the emulator, with a publisher."""
    from google.cloud import pubsub_v1

    with emulators.patched_env(pubsub_emulator.env()):
        publisher = pubsub_v1.PublisherClient()
        subscriber = pubsub_v1.SubscriberClient()
        topic = publisher.topic_path(pubsub_emulator.project, _unique("logs"))
        subscription = subscriber.subscription_path(pubsub_emulator.project, _unique("haulage"))
        publisher.create_topic(name=topic)
        subscriber.create_subscription(name=subscription, topic=topic, ack_deadline_seconds=10)
        subscriber.close()
        try:
            yield publisher, topic, subscription
        finally:
            publisher.stop()


def _publish(publisher, topic: str, data: bytes, **attributes: str) -> str:
    return publisher.publish(topic, data, **attributes).result(timeout=30)


def _check_received_at(out: pc.Output, started: float, ended: float) -> None:
    import datetime as dt

    for dead in out.rows["unprocessed"]:
        when = dt.datetime.strptime(dead["received_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.timezone.utc)
        assert started - 1 <= when.timestamp() <= ended + 1, dead


def test_run_subscription_lines(pubsub, pubsub_emulator, tmp_path, monkeypatch):
    publisher, topic, subscription = pubsub
    items = pc.labelled(440, seed=21)
    items, damaged = items[:400], items[400:]
    bad = [e for _, e in items if not e.is_row]
    assert len({e.reason for e in bad}) >= 5 and len(bad) >= 20
    assert {e.date for _, e in items if e.is_row} == {"2026-10-01", "2026-10-02"}
    assert any(line.startswith(b"<") and e.is_row for line, e in items), "no legacy syslog line"
    assert {e.table for _, e in items} == {"file_downloads", "simple_requests", "unprocessed"}

    sources: list[pc.Source] = []
    kinds: dict[str, str] = {}

    def publish(data: bytes, part: list, kind: str, fault=None, **attributes: str) -> None:
        message_id = _publish(publisher, topic, data, **attributes)
        sources.append(pc.Source(f"{subscription}#{message_id}", part, fault=fault))
        kinds[message_id] = kind

    # one line per message (no newline; an empty line is sent as "\n")
    for item in items[:100]:
        publish(item[0] or b"\n", [item], "single")
    # several lines per message, newline-terminated, 1 to 13 lines each
    position, size = 100, 1
    while position < 300:
        part = items[position:min(position + size, 300)]
        publish(pc.joined(pc.lines_of(part)), part, "multi")
        position += len(part)
        size = size % 13 + 1
    n_multi = len(sources) - 100
    # a gzip message cut short: the lines before the cut, then one dead letter naming the message
    whole = pc.gzipped(pc.lines_of(damaged))
    publish(whole[: len(whole) // 2], damaged, "truncated", fault="truncated-gzip", compression="gzip")
    # a message with attributes but no data: one dead letter naming it
    publish(b"", [], "empty", fault="empty-message", origin="test")
    # published while haulage runs, once its first window is written and
    # acknowledged: one gzip-compressed message and a few more single lines
    gz, late = items[300:390], items[390:400]
    assert any(line.startswith(b"<") for line, e in gz if e.is_row), "the gzip message should hold a legacy line"

    def publish_late() -> None:
        spy.acknowledged.wait(timeout=float(RUN_FOR) - 3)
        publish(pc.gzipped(pc.lines_of(gz)), gz, "gzip", compression="gzip")
        for item in late:
            publish(item[0] or b"\n", [item], "late")

    late_publisher = threading.Thread(target=publish_late, daemon=True)
    out_dir = tmp_path / "out"
    spy = PubSubSpy(monkeypatch, out_dir)
    late_publisher.start()
    started = time.time()
    with emulators.patched_env(pubsub_emulator.env()):
        result = pc.run_cli(["run", "--subscription", subscription, "--output-dir", str(out_dir),
                             "--run-for", RUN_FOR, "--window-seconds", WINDOW])
        ended = time.time()
        late_publisher.join(timeout=30)
        assert result.code == 0, result.stderr
        assert ended - started >= float(RUN_FOR) - 1
        assert len(sources) == 100 + n_multi + 2 + 1 + len(late)

        out = pc.read_parquet_output(out_dir)
        acc = pc.check_output(out, sources)
        summary = result.summary()
        pc.check_summary(summary, out, acc)
        assert 400 < acc.lines < 440 and acc.faults == 2
        assert summary.lines_read == acc.lines and summary.file_faults == 2
        assert summary.reasons["truncated-gzip"] == summary.reasons["empty-message"] == 1
        # per table and day, exactly what the oracle says
        for (table, day), n in acc.expected_per_day.items():
            assert summary.per_day[(table, day)] == n
        recovered_bad = [e for _, e in damaged[: acc.lines - 400] if not e.is_row]
        assert sum(summary.reasons.values()) == len(bad) + len(recovered_bad) + 2 and len(summary.reasons) >= 7
        _check_received_at(out, started, ended)
        # dead letters from every kind of message
        kinds_with_dead = {kinds[d["source"].rpartition(":")[0].rpartition("#")[2]] for d in out.rows["unprocessed"]}
        assert {"single", "multi", "gzip", "truncated", "empty"} <= kinds_with_dead

        # the late messages came in a later window: acknowledged separately, in files of their own
        assert len(spy.acks) >= 2
        assert len(out.files) > len({(f.parent.parent.name, f.parent.name) for f in out.files})

        spy.check_acks({s.label.rpartition("#")[2]: len(s.items) if s.fault is None else 1 for s in sources})
        spy.assert_nothing_left(subscription)


def test_run_subscription_gcs_notifications(pubsub, pubsub_emulator, gcs_emulator, google_credentials,
                                            tmp_path, monkeypatch):
    publisher, topic, subscription = pubsub
    items = pc.labelled(300, seed=31)
    bucket = gcs_emulator.client().bucket(gcs_emulator.bucket)
    prefix = _unique("notified")
    sources = []
    for i, part in enumerate((items[:180], items[180:])):
        name = f"{prefix}/downloads-{i}.log.gz"
        bucket.blob(name).upload_from_string(pc.gzipped(pc.lines_of(part)), content_type="application/gzip")
        sources.append(pc.Source(f"gs://{gcs_emulator.bucket}/{name}", part))
    published = []
    for src in sources:
        name = src.label.split("/", 3)[3]
        payload = json.dumps({"kind": "storage#object", "bucket": gcs_emulator.bucket, "name": name}).encode()
        published.append(_publish(publisher, topic, payload, eventType="OBJECT_FINALIZE", bucketId=gcs_emulator.bucket,
                                  objectId=name, payloadFormat="JSON_API_V1"))
    # a deletion is acknowledged and otherwise ignored
    published.append(_publish(publisher, topic, b"{}", eventType="OBJECT_DELETE", bucketId=gcs_emulator.bucket,
                              objectId=f"{prefix}/gone.log.gz", payloadFormat="JSON_API_V1"))

    out_dir = tmp_path / "out"
    spy = PubSubSpy(monkeypatch, out_dir)
    env = {**google_credentials, **pubsub_emulator.env(), **gcs_emulator.env()}
    emulators.reset_beam_credentials_cache()
    started = time.time()
    try:
        with emulators.patched_env(env):
            result = pc.run_cli(["run", "--subscription", subscription, "--message-format", "gcs-notification",
                                 "--notification-allow", f"gs://{gcs_emulator.bucket}/{prefix}/",
                                 "--output-dir", str(out_dir), "--run-for", "10", "--window-seconds", WINDOW])
            ended = time.time()
            assert result.code == 0, result.stderr
            out = pc.read_parquet_output(out_dir)
            acc = pc.check_output(out, sources)
            pc.check_summary(result.summary(), out, acc)
            assert acc.lines == 300
            _check_received_at(out, started, ended)
            lines = {mid: len(src.items) for mid, src in zip(published, sources)}
            lines[published[-1]] = 0
            spy.check_acks(lines)
            spy.assert_nothing_left(subscription)
    finally:
        emulators.reset_beam_credentials_cache()


def test_topic_mode_reads_through_a_temporary_subscription(pubsub_emulator, tmp_path):
    """``--topic``: a subscription is made at start, read, and deleted at the end."""
    from google.cloud import pubsub_v1

    with emulators.patched_env(pubsub_emulator.env()):
        publisher = pubsub_v1.PublisherClient()
        topic = publisher.topic_path(pubsub_emulator.project, _unique("topic"))
        publisher.create_topic(name=topic)
        items = pc.labelled(40, seed=17, bad_fraction=0.1)
        out = tmp_path / "out"
        results: list[pc.CliResult] = []
        runner = threading.Thread(target=lambda: results.append(pc.run_cli(
            ["run", "--topic", topic, "--output-dir", str(out), "--run-for", "10", "--window-seconds", "3", "--quiet"])))
        runner.start()
        subscriber = pubsub_v1.SubscriberClient()
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline:  # publish only once haulage's subscription exists
            if list(publisher.list_topic_subscriptions(request={"topic": topic})):
                break
            time.sleep(0.2)
        else:
            pytest.fail("haulage did not create a subscription on the topic")
        for line, _ in items:
            publisher.publish(topic, line).result()
        runner.join(timeout=60)
        assert results and results[0].code == 0, results and results[0].stderr
        output = pc.read_parquet_output(out)
        for table in ("file_downloads", "simple_requests"):
            expected = collections.Counter(e.date for _, e in items if e.table == table)
            assert output.per_day(table) == expected, table
        dead = output.rows["unprocessed"]
        assert len(dead) == sum(1 for _, e in items if e.table == "unprocessed") > 0
        assert all("-haulage-" in row["source"] for row in dead)  # read through haulage's own subscription
        assert not list(publisher.list_topic_subscriptions(request={"topic": topic})), "temporary subscription left behind"
        subscriber.close()
