"""Helpers for the streaming tests: the two local graphs, a Pub/Sub spy, the sinks read back.

haulage runs a streaming source here in two ways (README, "Streaming on this
machine"):

* ``windowed-pull`` — the default local runner: PullPubSubWindows pulls a
  window, writes it, then acknowledges it;
* ``dataflow-graph`` — ``--runner BundleBasedDirectRunner``: the very graph
  submitted to Dataflow (ReadPubSub → ParseLogLines → sink) on Beam's direct
  runner, whose Pub/Sub read acknowledges what it pulls at once.

The end-to-end tests run both and check each against what it promises.
"""

from __future__ import annotations

import collections
import threading
import time
import warnings
from typing import Any, Callable, Iterable, Optional

from . import pipeline_check as pc

WINDOWED_PULL = "windowed-pull"
DATAFLOW_GRAPH = "dataflow-graph"
GRAPHS: dict[str, list[str]] = {
    WINDOWED_PULL: [],
    DATAFLOW_GRAPH: ["--runner", "BundleBasedDirectRunner", "--streaming"],
}


def message_key(subscription: str, message_id: str) -> str:
    """The event-id prefix of a message's lines (haulage.parsers.Origin.for_message)."""
    from haulage.parsers import Origin

    return Origin.for_message(subscription, message_id).key


def expected_event_ids(subscription: str, sources: Iterable[pc.Source]) -> collections.Counter:
    """The event ids the row lines of these messages must have, each once."""
    ids: collections.Counter = collections.Counter()
    for src in sources:
        label = src.label
        assert label.startswith(subscription + "#"), label
        key = message_key(subscription, label.rpartition("#")[2])
        readable = src.readable if src.readable is not None else len(src.items)
        for position, (_, e) in enumerate(src.items[:readable], start=1):
            if e.is_row:
                ids[f"{key}-{position}"] += 1
    return ids


def event_ids(out: pc.Output) -> collections.Counter:
    return collections.Counter(r["event_id"] for t in pc.ROW_TABLES for r in out.rows[t])


class Written:
    """What a sink holds right now, per message: rows (by event id) plus dead letters (by source)."""

    def __init__(self, rows: Callable[[], pc.Output], subscription: str) -> None:
        self._rows = rows
        self._subscription = subscription

    def per_message(self, message_ids: Iterable[str]) -> dict[str, int]:
        out = self._rows()
        keys = {message_key(self._subscription, m): m for m in message_ids}
        labels = {f"{self._subscription}#{m}": m for m in message_ids}
        counts = {m: 0 for m in keys.values()}
        for table in pc.ROW_TABLES:
            for row in out.rows[table]:
                m = keys.get(row["event_id"].rpartition("-")[0])
                if m is not None:
                    counts[m] += 1
        for dead in out.rows["unprocessed"]:
            m = labels.get(dead["source"].rpartition(":")[0])
            if m is not None:
                counts[m] += 1
        return counts


def parquet_rows(out_dir) -> Callable[[], pc.Output]:
    def read() -> pc.Output:
        return pc.read_parquet_output(out_dir) if out_dir.exists() else pc.Output()

    return read


def bigquery_rows(client, dataset_id: str) -> Callable[[], pc.Output]:
    def read() -> pc.Output:
        return pc.output_from_rows({t: [dict(r) for r in client.query(f"SELECT * FROM `{dataset_id}.{t}`").result()]
                                    for t in pc.TABLES})

    return read


class PubSubSpy:
    """Records what every Pub/Sub subscriber in this process pulls and acknowledges (observation only).

    Both local graphs are covered: haulage's windowed pull uses
    ``pubsub_v1.SubscriberClient``, Beam's direct-runner read evaluator
    ``google.cloud.pubsub.SubscriberClient`` (the same class, bound under a
    second name). At each acknowledge call it notes, for every message
    acknowledged, how many of its lines the sink holds at that moment.
    """

    def __init__(self, monkeypatch, written: Written) -> None:
        from google.cloud import pubsub, pubsub_v1

        self.original = pubsub_v1.SubscriberClient
        self.written = written
        self.pulled: dict[str, str] = {}  # ack id -> message id
        self.acks: list[dict[str, int]] = []  # per acknowledge call: message id -> lines written then
        self.acknowledged = threading.Event()
        self._lock = threading.Lock()
        spy = self

        class SpySubscriber(self.original):
            def pull(self, *args, **kwargs):
                response = super().pull(*args, **kwargs)
                with spy._lock:
                    for m in response.received_messages:
                        spy.pulled[m.ack_id] = m.message.message_id
                return response

            def acknowledge(self, *args, **kwargs):
                request = kwargs.get("request") or (args[0] if args else None) or kwargs
                with spy._lock:
                    messages = [spy.pulled[a] for a in request["ack_ids"]]
                spy.acks.append(spy.written.per_message(messages))
                try:
                    return super().acknowledge(*args, **kwargs)
                finally:
                    spy.acknowledged.set()

        monkeypatch.setattr(pubsub_v1, "SubscriberClient", SpySubscriber)
        monkeypatch.setattr(pubsub, "SubscriberClient", SpySubscriber)

    def check_acks(self, graph: str, lines_per_message: dict[str, int]) -> None:
        """Every message pulled was acknowledged once; when depends on the graph.

        windowed-pull: only after all of its lines were written;
        dataflow-graph: before any of them was (Beam acks right after the pull).
        """
        acked = [m for call in self.acks for m in call]
        assert sorted(acked) == sorted(self.pulled.values()), "pulled and acknowledged messages differ"
        assert sorted(acked) == sorted(lines_per_message), "acknowledged messages differ from those published"
        for call in self.acks:
            for message, written_then in call.items():
                if graph == WINDOWED_PULL:
                    assert written_then == lines_per_message[message], (
                        f"message {message} acknowledged with {written_then} of {lines_per_message[message]} lines written")
                else:
                    assert written_then == 0, f"message {message} had {written_then} lines written before its ack"

    def assert_nothing_left(self, subscription: str) -> None:
        """'Nack' everything received: a message that was not really acknowledged would come straight back."""
        subscriber = self.original()
        try:
            ack_ids = list(self.pulled)
            for start in range(0, len(ack_ids), 500):
                subscriber.modify_ack_deadline(request={
                    "subscription": subscription, "ack_ids": ack_ids[start:start + 500], "ack_deadline_seconds": 0})
            assert pull_now(subscriber, subscription) == [], "the subscription still has messages to deliver"
        finally:
            subscriber.close()


def pull_now(subscriber, subscription: str, tries: int = 3) -> list[Any]:
    """Whatever the subscription would deliver right now (pulled and left unacknowledged)."""
    got: list[Any] = []
    with warnings.catch_warnings():  # return_immediately is deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        for _ in range(tries):
            response = subscriber.pull(request={"subscription": subscription, "max_messages": 100,
                                                "return_immediately": True}, timeout=10)
            got += list(response.received_messages)
            time.sleep(0.3)
    return got


def publish(publisher, topic: str, data: bytes, **attributes: str) -> str:
    return publisher.publish(topic, data, **attributes).result(timeout=30)


def run(graph: str, *args: str, extra: Optional[list[str]] = None) -> pc.CliResult:
    """``haulage run`` in this process on the given graph."""
    return pc.run_cli(["run", *GRAPHS[graph], *args, *(extra or [])])
