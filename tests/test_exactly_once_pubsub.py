"""Exactly once from Pub/Sub (local windowed pulls) into Parquet.

Messages are redelivered on purpose with ``seek`` (Pub/Sub marks every message
published since a time as unacknowledged again): while a first delivery is
still being written, and after a crash between the commit and the
acknowledgement. Notifications of the same file arrive twice. A window is
written for longer than the subscription's ack deadline. ``--topic`` is
interrupted with Ctrl-C. Every test checks the output line by line against
the generator's oracle (each line once) and reports to the fault table.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import warnings
from pathlib import Path

import pytest

from support import emulators
from support import exactly_once as eo
from support import killable
from support import pipeline_check as pc

pytestmark = pytest.mark.emulator



@pytest.fixture
def channel(pubsub_emulator):
    """A topic and a subscription (10 s ack deadline, acked messages kept for seek)."""
    with emulators.pubsub_channel(pubsub_emulator, "once", retain_acked_messages=True) as channel:
        yield channel.publisher, channel.subscriber, channel.topic, channel.subscription


def publish_lines(publisher, topic: str, subscription: str, items, per_message: int = 20) -> list[pc.Source]:
    sources = []
    for start in range(0, len(items), per_message):
        part = items[start:start + per_message]
        message_id = publisher.publish(topic, pc.joined(pc.lines_of(part))).result(timeout=30)
        sources.append(pc.Source(f"{subscription}#{message_id}", part))
    return sources


def expected_holdings(subscription: str, sources: list[pc.Source]) -> eo.Holdings:
    """Event ids a message's lines get (``<key of subscription#message id>-<line>``) and its dead letters."""
    import collections

    from haulage.parsers import Origin

    ids, dead = collections.Counter(), collections.Counter()
    for source in sources:
        key = Origin.for_message(subscription, source.label.rpartition("#")[2]).key
        for position, (_, expect) in enumerate(source.items, start=1):
            if expect.is_row:
                ids[f"{key}-{position}"] += 1
            else:
                dead[(f"{source.label}:{position}", expect.reason)] += 1
    return eo.Holdings(ids, dead)


def seek_back(subscriber, subscription: str, since: float) -> None:
    """Make every message published since ``since`` deliverable again (acked or not)."""
    from google.protobuf import timestamp_pb2

    stamp = timestamp_pb2.Timestamp()
    stamp.FromSeconds(int(since) - 1)
    subscriber.seek(request={"subscription": subscription, "time": stamp})


def wait_for_files(folder: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if folder.exists() and any(p.is_file() and p.suffix == ".parquet" for p in folder.rglob("*")):
            return
        time.sleep(0.1)
    pytest.fail(f"nothing was written under {folder} within {timeout:g}s")


def pull_run(subscription: str, out: Path, run_for: str, *extra: str) -> pc.CliResult:
    result = pc.run_cli(["run", "--subscription", subscription, "--output-dir", str(out), "--run-for", run_for,
                         "--window-seconds", "2", "--quiet", *extra])
    assert result.code == 0, result.stdout + result.stderr
    return result


def assert_drained(subscriber, subscription: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        response = subscriber.pull(request={"subscription": subscription, "max_messages": 100,
                                            "return_immediately": True}, timeout=10)
    assert list(response.received_messages) == [], "the subscription still has messages to deliver"


def test_redelivered_while_the_first_delivery_is_written(channel, pubsub_emulator, tmp_path):
    """A delivery outlives its lease (here: Pub/Sub gives every message out
    again while haulage is still writing them); the second delivery is
    written by another haulage process first. Each line is in the tables once."""
    publisher, subscriber, topic, subscription = channel
    items = pc.labelled(120, seed=301)
    since = time.time()
    sources = publish_lines(publisher, topic, subscription, items)
    out = tmp_path / "out"
    env = {**os.environ, **pubsub_emulator.env(), "HAULAGE_FAILPOINT": "parquet:staged=sleep:6"}
    first = killable.start_haulage(["run", "--subscription", subscription, "--output-dir", str(out), "--run-for", "4",
                                    "--window-seconds", "2", "--quiet"], env, log=str(tmp_path / "first.log"))
    wait_for_files(out)  # the first process has the messages and is writing them
    with emulators.patched_env(pubsub_emulator.env()):
        seek_back(subscriber, subscription, since)
        second = pull_run(subscription, out, "4")
        first.join(60)
        assert first.exitcode == 0, (tmp_path / "first.log").read_text()[-2000:]
        assert_drained(subscriber, subscription)
    output = pc.read_parquet_output(out)
    pc.check_output(output, sources)
    assert second.summary().lines_read > 0, "the second process got no redelivery: the test tested nothing"
    eo.compare("Pub/Sub: redelivered while in flight", "seek while the first delivery was being written",
               eo.parquet_holdings(out), expected_holdings(subscription, sources), by_source=False)


def test_crash_after_the_commit_before_the_ack(channel, pubsub_emulator, tmp_path):
    """kill -9 right after a window is committed, before it is acknowledged:
    the redelivered messages are recognised and acknowledged, not written again."""
    publisher, subscriber, topic, subscription = channel
    items = pc.labelled(100, seed=303)
    since = time.time()
    sources = publish_lines(publisher, topic, subscription, items)
    out = tmp_path / "out"
    env = {**os.environ, **pubsub_emulator.env(), "HAULAGE_FAILPOINT": "pubsub:committed=kill"}
    code = killable.run_haulage(["run", "--subscription", subscription, "--output-dir", str(out), "--run-for", "6",
                                 "--window-seconds", "2", "--quiet"], env, log=str(tmp_path / "killed.log"))
    assert code == -signal.SIGKILL, f"not killed between commit and ack: {code}"
    with emulators.patched_env(pubsub_emulator.env()):
        seek_back(subscriber, subscription, since)  # redeliver now rather than after the lease runs out
        again = pull_run(subscription, out, "5")
        assert_drained(subscriber, subscription)
    assert eo.summary_counts(again.stdout).get("messages") == len(sources), again.stdout
    pc.check_output(pc.read_parquet_output(out), sources)
    eo.compare("Pub/Sub: crash between commit and ack", "SIGKILL after the commit, then redelivery",
               eo.parquet_holdings(out), expected_holdings(subscription, sources), by_source=False)


def test_the_same_notification_twice(channel, pubsub_emulator, gcs_emulator, google_credentials, tmp_path):
    """Cloud Storage may notify a new object more than once: in the same window
    and again later. The file's lines are in the tables once."""
    publisher, subscriber, topic, subscription = channel
    items = pc.labelled(200, seed=305)
    bucket = gcs_emulator.client().bucket(gcs_emulator.bucket)
    prefix = emulators.unique_name("twice")
    sources = []
    for i, part in enumerate((items[:120], items[120:])):
        name = f"{prefix}/downloads-{i}.log.gz"
        bucket.blob(name).upload_from_string(pc.gzipped(pc.lines_of(part)), content_type="application/gzip")
        sources.append(pc.Source(f"gs://{gcs_emulator.bucket}/{name}", part))

    def notify(source: pc.Source) -> None:
        name = source.label.split("/", 3)[3]
        payload = json.dumps({"kind": "storage#object", "bucket": gcs_emulator.bucket, "name": name}).encode()
        publisher.publish(topic, payload, eventType="OBJECT_FINALIZE", bucketId=gcs_emulator.bucket, objectId=name,
                          payloadFormat="JSON_API_V1").result(timeout=30)

    for source in (sources[0], sources[1], sources[0]):  # file 0 twice in one window
        notify(source)
    out = tmp_path / "out"
    env = {**google_credentials, **pubsub_emulator.env(), **gcs_emulator.env()}
    emulators.reset_beam_credentials_cache()
    try:
        with emulators.patched_env(env):
            allow = ("--message-format", "gcs-notification", "--notification-allow", f"gs://{gcs_emulator.bucket}/{prefix}/")
            pull_run(subscription, out, "5", *allow)
            notify(sources[0])  # and once more, later
            later = pull_run(subscription, out, "4", *allow)
            assert_drained(subscriber, subscription)
    finally:
        emulators.reset_beam_credentials_cache()
    assert eo.summary_counts(later.stdout) == {"files": 1}, later.stdout
    pc.check_output(pc.read_parquet_output(out), sources)
    eo.compare("Pub/Sub: same notification twice", "file notified 3 times (twice in one window)",
               eo.parquet_holdings(out), file_holdings(bucket, sources), by_source=False)


def file_holdings(bucket, sources: list[pc.Source]) -> eo.Holdings:
    """Event ids of files named by their content (haulage.pipeline.sources.identity's rule)."""
    import collections
    import io

    from haulage.pipeline.sources.identity import file_key

    ids, dead = collections.Counter(), collections.Counter()
    for source in sources:
        data = bucket.blob(source.label.split("/", 3)[3]).download_as_bytes()
        key = file_key(io.BytesIO(data), len(data))
        for position, (_, expect) in enumerate(source.items, start=1):
            if expect.is_row:
                ids[f"{key}-{position}"] += 1
            else:
                dead[(f"{source.label}:{position}", expect.reason)] += 1
    return eo.Holdings(ids, dead)


def test_a_window_written_for_longer_than_the_ack_deadline_is_not_redelivered(channel, pubsub_emulator, tmp_path):
    """The subscription's ack deadline is 10 s; writing the window takes 14 s.
    haulage keeps extending the lease, so nobody else is given the messages."""
    publisher, subscriber, topic, subscription = channel
    items = pc.labelled(60, seed=307)
    sources = publish_lines(publisher, topic, subscription, items)
    out = tmp_path / "out"
    env = {**os.environ, **pubsub_emulator.env(), "HAULAGE_FAILPOINT": "parquet:staged=sleep:14"}
    slow = killable.start_haulage(["run", "--subscription", subscription, "--output-dir", str(out), "--run-for", "2",
                                   "--window-seconds", "2", "--quiet"], env, log=str(tmp_path / "slow.log"))
    wait_for_files(out)
    stolen = []
    with emulators.patched_env(pubsub_emulator.env()), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        while slow.is_alive():
            response = subscriber.pull(request={"subscription": subscription, "max_messages": 100,
                                                "return_immediately": True}, timeout=10)
            stolen.extend(m.message.message_id for m in response.received_messages)
            if response.received_messages:
                subscriber.modify_ack_deadline(request={"subscription": subscription, "ack_deadline_seconds": 0,
                                                        "ack_ids": [m.ack_id for m in response.received_messages]})
            time.sleep(0.5)
        assert slow.exitcode == 0, (tmp_path / "slow.log").read_text()[-2000:]
        assert_drained(subscriber, subscription)
    assert stolen == [], f"{len(stolen)} deliveries to another subscriber while haulage was writing them"
    pc.check_output(pc.read_parquet_output(out), sources)
    eo.compare("Pub/Sub: window longer than the ack deadline", "14 s commit, 10 s deadline, a rival puller",
               eo.parquet_holdings(out), expected_holdings(subscription, sources), by_source=False)


class _Recorder:
    """fsync, rename and acknowledge calls, in order (observation only)."""

    def __init__(self, monkeypatch) -> None:
        from google.cloud import pubsub_v1

        self.events: list[tuple[str, str, str]] = []
        real_fsync, real_replace, real_rename = os.fsync, os.replace, os.rename
        events = self.events

        def fsync(fd):
            try:
                events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}"), ""))
            except OSError:
                pass
            return real_fsync(fd)

        def replace(src, dst, *a, **k):
            events.append(("rename", os.fspath(src), os.fspath(dst)))
            return real_replace(src, dst, *a, **k)

        def rename(src, dst, *a, **k):
            events.append(("rename", os.fspath(src), os.fspath(dst)))
            return real_rename(src, dst, *a, **k)

        monkeypatch.setattr(os, "fsync", fsync)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(os, "rename", rename)
        original = pubsub_v1.SubscriberClient

        class Recording(original):
            def acknowledge(self, *args, **kwargs):
                events.append(("ack", "", ""))
                return super().acknowledge(*args, **kwargs)

        monkeypatch.setattr(pubsub_v1, "SubscriberClient", Recording)


def test_everything_is_fsynced_before_the_ack(channel, pubsub_emulator, tmp_path, monkeypatch):
    """Before a window is acknowledged, each file it put in a table folder was
    fsynced before its rename, and the folder after it."""
    publisher, subscriber, topic, subscription = channel
    items = pc.labelled(80, seed=309)
    sources = publish_lines(publisher, topic, subscription, items)
    out = tmp_path / "out"
    recorder = _Recorder(monkeypatch)
    with emulators.patched_env(pubsub_emulator.env()):
        pull_run(subscription, out, "4")
    events = recorder.events
    acks = [i for i, e in enumerate(events) if e[0] == "ack"]
    assert acks, "nothing was acknowledged"
    tables = tuple(str(out / t) + "/" for t in eo.TABLES)
    published = [(i, src, dst) for i, (kind, src, dst) in enumerate(events) if kind == "rename" and dst.startswith(tables)]
    assert published, "no file was moved into a table folder"
    for i, src, dst in published:
        before_ack = next(a for a in acks if a > i)
        synced_file = any(kind == "fsync" and path in (src, dst) for kind, path, _ in events[:i])
        synced_dir = any(kind == "fsync" and path == os.path.dirname(dst) for kind, path, _ in events[i:before_ack])
        assert synced_file, f"{dst} was not fsynced before it was renamed into place"
        assert synced_dir, f"the folder of {dst} was not fsynced before the ack"
    pc.check_output(pc.read_parquet_output(out), sources)
    eo.compare("Pub/Sub: fsync before ack", "fsync/rename/ack order recorded", eo.parquet_holdings(out),
               expected_holdings(subscription, sources), by_source=False)


def test_topic_mode_loses_nothing_when_interrupted(pubsub_emulator, tmp_path):
    """``--topic`` interrupted with Ctrl-C while a window is in flight; the next
    ``--topic`` run gets what the first did not acknowledge."""
    from google.cloud import pubsub_v1

    with emulators.patched_env(pubsub_emulator.env()):
        publisher = pubsub_v1.PublisherClient()
        topic = publisher.topic_path(pubsub_emulator.project, emulators.unique_name("topic"))
        publisher.create_topic(name=topic)
        out = tmp_path / "out"
        env = {**os.environ, **pubsub_emulator.env()}
        first = killable.start_haulage(["run", "--topic", topic, "--output-dir", str(out), "--run-for", "60",
                                        "--window-seconds", "2", "--quiet"], env, log=str(tmp_path / "first.log"))
        deadline = time.monotonic() + 20
        while not list(publisher.list_topic_subscriptions(request={"topic": topic})):
            assert time.monotonic() < deadline, "haulage made no subscription on the topic"
            time.sleep(0.2)
        subscription = list(publisher.list_topic_subscriptions(request={"topic": topic}))[0]
        items = pc.labelled(120, seed=311)
        sources = publish_lines(publisher, topic, subscription, items[:60])
        wait_for_files(out / "file_downloads")  # the first window is in
        sources += publish_lines(publisher, topic, subscription, items[60:])
        time.sleep(0.5)  # pulled, not yet written
        os.kill(first.pid, signal.SIGINT)
        first.join(120)  # a loaded machine can take tens of seconds to hand back leases and stop Beam
        assert first.exitcode == 130, (first.exitcode, (tmp_path / "first.log").read_text()[-2000:])
        # what was in flight comes back once its lease (the subscription's 10 s deadline) runs out
        again = pc.run_cli(["run", "--topic", topic, "--output-dir", str(out), "--run-for", "13",
                            "--window-seconds", "2", "--quiet"])
        assert again.code == 0, again.stderr
        publisher.stop()
    pc.check_output(pc.read_parquet_output(out), sources)
    eo.compare("Pub/Sub: --topic interrupted", "Ctrl-C with a window in flight, then --topic again",
               eo.parquet_holdings(out), expected_holdings(subscription, sources), by_source=False)


def test_crash_after_the_load_before_the_ack_into_bigquery(channel, pubsub_emulator, bigquery_emulator, tmp_path):
    """The same crash with BigQuery as the output. The pull does not ask BigQuery's ledger about each pull
    (a query each: ``graph.pull_ledger_ref``); the redelivered messages are read again, and the load step
    drops them because the ledger lists them. Each line is in the tables once."""
    import uuid

    from test_pipeline_bigquery import create_tables

    publisher, subscriber, topic, subscription = channel
    client = bigquery_emulator.client()
    dataset_id = f"haulage_{uuid.uuid4().hex[:8]}"
    create_tables(client, dataset_id)
    dataset = f"{bigquery_emulator.project}:{dataset_id}"
    staging = str(tmp_path / "staging")
    items = pc.labelled(100, seed=307)
    since = time.time()
    sources = publish_lines(publisher, topic, subscription, items)
    env = {**os.environ, **pubsub_emulator.env(), **bigquery_emulator.env(), "HAULAGE_FAILPOINT": "pubsub:committed=kill"}
    argv = ["run", "--subscription", subscription, "--bigquery-dataset", dataset, "--staging-dir", staging,
            "--window-seconds", "2", "--quiet"]
    try:
        code = killable.run_haulage([*argv, "--run-for", "6"], env, log=str(tmp_path / "killed.log"))
        assert code == -signal.SIGKILL, f"not killed between the load and the ack: {code}"
        loaded = eo.bigquery_holdings(client, dataset_id)
        assert sum(loaded.ids.values()) > 0, "nothing was loaded before the kill: the test tested nothing"
        with emulators.patched_env({**pubsub_emulator.env(), **bigquery_emulator.env()}):
            seek_back(subscriber, subscription, since)
            again = pc.run_cli([*argv, "--run-for", "5"])
            assert again.code == 0, again.stdout + again.stderr
            assert_drained(subscriber, subscription)
        assert eo.summary_counts(again.stdout).get("messages") == len(sources), again.stdout
        eo.compare("Pub/Sub → BigQuery: crash between load and ack", "SIGKILL after the load, then redelivery",
                   eo.bigquery_holdings(client, dataset_id), expected_holdings(subscription, sources), by_source=False)
    finally:
        client.delete_dataset(dataset_id, delete_contents=True)
