"""Local streaming: pull Pub/Sub in windows; acknowledge only what is committed.

Beam's DirectRunner Pub/Sub source acknowledges messages *before* they are
processed, so a local run that crashes would lose what it had pulled (see
pipeline/runners/direct_streaming.py). Here one DoFn pulls a window of messages,
emits it in chunks — the fused parse and sink stages commit them
synchronously — and only then acknowledges it. Rules:

* **Bounded by bytes**: a window ends after ``window_seconds`` or as soon as
  it holds ``chunk_lines`` lines or ``chunk_bytes`` bytes of raw lines; a
  message or notified file bigger than that is emitted in several chunks
  (the sink commits once it has a source whole) before the window is
  acknowledged; and a pull asks for as many messages as the bytes left in
  the window are likely to hold, judged by the messages seen so far.
* **Notifications from the allow-list only** (pipeline/sources/notifications.py).

* **Acknowledged only after the commit**: the sink's commit (files fsynced
  and renamed and the ledger marker written, or the load jobs and the
  ledger's done) completes before ``process`` continues past ``yield``.
* **Leases are kept**: from the moment a message is pulled until it is
  acknowledged, a thread extends its ack deadline (to the subscription's
  own deadline, every third of it), so a slow window or a big notified file
  is not handed to another consumer meanwhile.
* **Redeliveries are recognised**: a message or file the output's ledger
  already lists, or that came twice in the same window, is acknowledged
  without being written again (counted as ``units_skipped.<kind>``). This
  covers a crash between the commit and the acknowledgement, a lease that
  ran out anyway (a paused process), and Cloud Storage notifying the same
  object twice. The sink's commit checks the ledger again under its lock.
  A BigQuery ledger is not asked here (``graph.pull_ledger_ref``: a query
  per pull and per file would cost more than the rest of the run); its
  load step drops what it already lists.
* **``--topic`` loses nothing**: it reads through the subscription
  ``<topic>-haulage``, created on first use and never deleted by haulage, so
  what a stopped or interrupted run did not acknowledge waits there for the
  next one (delete it yourself when you are done with it).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable, Iterable, Iterator, Optional

import apache_beam as beam

from ...parsers import Origin
from ...parsers.timestamps import iso_from_epoch
from .. import failpoints
from ..elements import Chunk
from ..ledgers import LedgerRef, OpenLedger
from ..options import DEFAULT_CHUNK_LINES
from .batching import chunk_size
from .files import DEFAULT_CHUNK_BYTES
from .messages import MessageDecoder
from .notifications import NotificationPolicy
from .pubsub_clients import subscriber_client

__all__ = ["STEPS", "LeaseKeeper", "PullPubSubWindows", "PullWindowsFn", "topic_subscription"]

_LOG = logging.getLogger("haulage")
STEPS = ("pubsub:committed", "pubsub:acked")
TOPIC_ACK_DEADLINE = 10
MAX_ACK_IDS = 1000


def topic_subscription(topic: str) -> str:
    """The subscription ``--topic projects/P/topics/T`` reads through: ``projects/P/subscriptions/T-haulage``."""
    return topic.replace("/topics/", "/subscriptions/", 1) + "-haulage"


class LeaseKeeper:
    """Extends the ack deadline of every message pulled and not yet acknowledged."""

    def __init__(self, subscriber: Any, subscription: str, lease_seconds: int) -> None:
        self._subscriber = subscriber
        self._subscription = subscription
        self.lease = lease_seconds
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="haulage-lease-keeper", daemon=True)

    def hold(self, ack_ids: Iterable[str]) -> None:
        """Keep extending the ack deadline of these messages until released."""
        with self._lock:
            self._held.update(ack_ids)

    def release(self, ack_ids: Iterable[str]) -> None:
        """Stop extending these messages (acknowledged, or handed back)."""
        with self._lock:
            self._held.difference_update(ack_ids)

    def start(self) -> "LeaseKeeper":
        """Start the thread that extends held leases; return self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop extending leases and wait for the thread."""
        self._stop.set()
        self._thread.join(timeout=10)

    def give_back(self) -> None:
        """Let Pub/Sub redeliver at once what is held and was not committed (a clean stop)."""
        with self._lock:
            held, self._held = sorted(self._held), set()
        for start in range(0, len(held), MAX_ACK_IDS):
            try:
                self._subscriber.modify_ack_deadline(request={
                    "subscription": self._subscription, "ack_ids": held[start:start + MAX_ACK_IDS],
                    "ack_deadline_seconds": 0})
            except Exception as exc:  # they come back when the lease runs out instead
                _LOG.warning("could not hand back %d messages: %s", len(held), exc)

    def _run(self) -> None:
        while not self._stop.wait(self.lease / 3):
            with self._lock:
                held = sorted(self._held)
            for start in range(0, len(held), MAX_ACK_IDS):
                try:
                    self._subscriber.modify_ack_deadline(request={
                        "subscription": self._subscription, "ack_ids": held[start:start + MAX_ACK_IDS],
                        "ack_deadline_seconds": self.lease})
                except Exception as exc:  # the next tick tries again; a lost lease means a redelivery, which is skipped
                    _LOG.warning("could not extend the ack deadline of %d messages: %s", len(held), exc)


class PullWindowsFn(beam.DoFn):
    """Pulls windows of messages, emits them in bounded chunks, acks after downstream committed them."""

    MAX_MESSAGES = 1000
    FIRST_PULL = 10  # messages, before their size is known

    def __init__(
        self,
        subscription: str,
        topic: Optional[str],
        message_format: str,
        run_for: Optional[float],
        window_seconds: float,
        ledger: Optional[LedgerRef] = None,
        chunk_lines: int = DEFAULT_CHUNK_LINES,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        policy: Optional[NotificationPolicy] = None,
    ) -> None:
        self._subscription = subscription
        self._topic = topic
        self._format = message_format
        self._run_for = run_for
        self._window = window_seconds
        self._ledger_ref = ledger
        self._chunk_lines = chunk_lines
        self._chunk_bytes = chunk_bytes
        self._policy = policy

    def setup(self) -> None:
        self._ledger: Optional[OpenLedger] = self._ledger_ref.open() if self._ledger_ref else None

    def _subscription_to_read(self, subscriber: Any) -> str:
        from google.api_core import exceptions as gexc

        if not self._topic:
            return self._subscription
        subscription = topic_subscription(self._topic)
        try:
            # a short deadline: the lease keeper extends it while haulage holds a message, and what a
            # stopped run could not hand back (an answer lost to Ctrl-C) is redelivered soon
            subscriber.create_subscription(request={"name": subscription, "topic": self._topic,
                                                    "ack_deadline_seconds": TOPIC_ACK_DEADLINE})
            _LOG.info("reading %s through the new subscription %s; it is kept, so nothing published while no "
                      "haulage runs is lost (delete it when done)", self._topic, subscription)
        except gexc.AlreadyExists:
            _LOG.info("reading %s through its subscription %s", self._topic, subscription)
        return subscription

    def process(self, _: object) -> Iterator[Chunk]:
        from google.api_core import exceptions as gexc

        subscriber = subscriber_client()
        subscription = self._subscription_to_read(subscriber)
        deadline_seconds = subscriber.get_subscription(request={"subscription": subscription}).ack_deadline_seconds
        keeper = LeaseKeeper(subscriber, subscription, max(10, min(600, deadline_seconds or 60))).start()
        decoder = MessageDecoder(subscription, self._format, self._chunk_lines, self._chunk_bytes, self._policy)
        bytes_per_message = max(1, self._chunk_bytes // self.FIRST_PULL)
        started = time.monotonic()
        deadline = started + self._run_for if self._run_for else float("inf")
        try:
            while True:
                window_end = min(time.monotonic() + self._window, deadline)
                received_at = iso_from_epoch(int(time.time()))
                messages: list[Any] = []
                seen: set[str] = set()  # units of this window: the same message or file twice is read once
                chunk = Chunk()
                held_lines = held_bytes = 0
                full = False
                while not full and (remaining := window_end - time.monotonic()) > 0:
                    room = max(1, min(self.MAX_MESSAGES, (self._chunk_bytes - held_bytes) // bytes_per_message))
                    try:
                        response = subscriber.pull(
                            request={"subscription": subscription, "max_messages": room},
                            timeout=max(1.0, min(remaining, 10.0)),
                        )
                    except (gexc.DeadlineExceeded, gexc.ServiceUnavailable):
                        continue
                    # the plain protobuf messages: each field read through the client's proto-plus wrappers
                    # costs microseconds, ≈ 15 µs a message in all, more than parsing its line
                    received_messages = type(response).pb(response).received_messages
                    if not received_messages:
                        time.sleep(min(0.2, max(0.0, window_end - time.monotonic())))
                        continue
                    keeper.hold(m.ack_id for m in received_messages)
                    messages.extend(received_messages)
                    skip = self._ingested(subscription, received_messages, seen)
                    pulled_bytes = 0
                    for received in received_messages:
                        m = received.message
                        for part in decoder.chunks(m.data, dict(m.attributes), m.message_id, received_at, skip):
                            lines, nbytes = chunk_size(part)
                            pulled_bytes += nbytes
                            if chunk and (held_lines + lines > self._chunk_lines or held_bytes + nbytes > self._chunk_bytes):
                                yield chunk  # the window is full: commit what it holds, finish this pull, then ack
                                chunk, held_lines, held_bytes, full = Chunk(), 0, 0, True
                            chunk.extend(part)
                            held_lines += lines
                            held_bytes += nbytes
                    full = full or held_lines >= self._chunk_lines or held_bytes >= self._chunk_bytes
                    bytes_per_message = max(1, pulled_bytes // len(received_messages))
                if chunk:
                    yield chunk  # parsed and committed synchronously by the fused stages below
                failpoints.reached("pubsub:committed")
                ack_ids = [m.ack_id for m in messages]
                for start in range(0, len(ack_ids), MAX_ACK_IDS):
                    subscriber.acknowledge(request={"subscription": subscription,
                                                    "ack_ids": ack_ids[start:start + MAX_ACK_IDS]})
                keeper.release(ack_ids)
                if ack_ids:
                    failpoints.reached("pubsub:acked")
                    _LOG.info("window: %d messages committed and acknowledged", len(ack_ids))
                if time.monotonic() >= deadline:
                    return
        finally:
            keeper.stop()
            keeper.give_back()
            subscriber.close()

    def _ingested(self, subscription: str, received: list[Any], seen: set[str]) -> Callable[[str], bool]:
        """``skip(unit_id)`` for one pull: already in the ledger, or already met in this window.

        The ledger is asked once for the pull's messages, and once per file.
        """
        messages = {Origin.for_message(subscription, r.message.message_id).key for r in received}
        done = self._ledger.committed(messages) if self._ledger is not None else set()

        def skip(unit_id: str) -> bool:
            if unit_id in seen or unit_id in done:
                return True
            if unit_id not in messages and self._ledger is not None and self._ledger.committed([unit_id]):
                return True
            seen.add(unit_id)
            return False

        return skip


class PullPubSubWindows(beam.PTransform):
    """Bounded local streaming: windows of messages until ``run_for`` seconds pass.

    ``ledger`` names the output's ledger, so redelivered messages and files
    already ingested are acknowledged without being written again.
    """

    def __init__(
        self,
        message_format: str,
        subscription: Optional[str],
        topic: Optional[str],
        run_for: Optional[float],
        window_seconds: float,
        ledger: Optional[LedgerRef] = None,
        chunk_lines: int = DEFAULT_CHUNK_LINES,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        policy: Optional[NotificationPolicy] = None,
    ) -> None:
        super().__init__()
        self._fn = PullWindowsFn(subscription or "", topic, message_format, run_for, window_seconds, ledger,
                                 chunk_lines, chunk_bytes, policy)

    def expand(self, pbegin):
        """One element that pulls windows of messages until stopped, yielding their chunks."""
        return pbegin | "Start" >> beam.Create([None]) | "PullWindows" >> beam.ParDo(self._fn).with_output_types(Chunk)
