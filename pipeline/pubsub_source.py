"""Streaming input from Pub/Sub, in two shapes.

* :class:`ReadPubSubChunks` — Beam's ``ReadFromPubSub``, decode, batch: the
  graph that runs on Dataflow (where the service acks a message only after
  the bundle that consumed it is committed) and, unchanged, on Beam's
  direct runner here (``--runner BundleBasedDirectRunner``, see
  :mod:`haulage.pipeline.direct_streaming`: that runner acks on pull).
* :class:`PullPubSubWindows` — haulage's default local runner. One DoFn pulls
  a window of messages, emits it in chunks — the fused parse and sink stages
  write them synchronously — and only then acks it. Stopping loses nothing;
  a crash redelivers, and the redelivered lines get the same event ids.

A message carries newline-separated log lines (gzip-compressed when it starts
with the gzip magic or says ``compression=gzip``), or with
``message_format="gcs-notification"`` a Cloud Storage OBJECT_FINALIZE
notification for a log file, which is then streamed in chunks if it is inside
the allow-list (:mod:`haulage.pipeline.notifications`) and a dead letter if
not. Everything is cut into chunks of at most ``chunk_lines`` lines and
``chunk_bytes`` bytes, and windows and batches are capped the same way.
"""

from __future__ import annotations

import io
import logging
import time
from typing import Any, Iterator, Mapping, Optional

import apache_beam as beam
from apache_beam.metrics import Metrics

from haulage.parsers import Origin
from haulage.parsers.framing import FileFault, iter_line_batches
from haulage.parsers.timestamps import iso_from_epoch

from .batching import BatchChunks, bounded_chunks, chunk_size
from .elements import MESSAGE, Chunk, LineBatch, SourceUnit
from .file_source import read_file
from .notifications import NotificationPolicy, Refusal
from .options import DEFAULT_CHUNK_BYTES, DEFAULT_CHUNK_LINES, GCS_NOTIFICATION
from .pubsub_clients import subscriber_client

_LOG = logging.getLogger("haulage")


def line_batches_of_message(data: bytes, attributes: Mapping[str, str], message_id: str, subscription: str, received_at: str) -> Iterator[LineBatch]:
    """One message of log lines, as line batches read lazily (gzip detected from its magic bytes).

    The last batch carries the message's :class:`SourceUnit` (``finished``):
    the message is complete once that batch is written.
    """
    origin = Origin.for_message(subscription, message_id)
    name = origin.label + (".gz" if attributes.get("compression", "").lower() == "gzip" else "")
    held: Optional[LineBatch] = None  # one batch behind, so the last one can be marked
    lines = faults = 0
    for item in iter_line_batches(io.BytesIO(data), name):
        if held is not None:
            yield held
        if isinstance(item, FileFault):
            if item.reason == "empty-file":
                item = FileFault("empty-message", f"{origin.label}: message has no data", 1)
            held = LineBatch(origin, item.position, [], received_at, item)
            faults += 1
        else:
            held = LineBatch(origin, item[0], item[1], received_at)
            lines += len(item[1])
    if held is None:
        held = LineBatch(origin, 1, [], received_at)
    held.finished = SourceUnit(origin.key, MESSAGE, origin.label, len(data), lines, faults)
    yield held


class _MessageDecoder:
    """Turns a message into chunks of at most ``chunk_lines`` lines and ``chunk_bytes`` bytes.

    Lines messages are cut into chunks as they inflate (a small gzip message
    can hold gigabytes); a notification is checked against the allow-list
    (:mod:`haulage.pipeline.notifications`) and its file streamed in chunks,
    never read whole.
    """

    def __init__(
        self,
        subscription: str,
        message_format: str,
        chunk_lines: int = DEFAULT_CHUNK_LINES,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        policy: Optional[NotificationPolicy] = None,
    ) -> None:
        self.subscription = subscription
        self.message_format = message_format
        self.chunk_lines = chunk_lines
        self.chunk_bytes = chunk_bytes
        self.policy = policy or NotificationPolicy(())
        self.ignored = Metrics.counter("haulage", "notifications_ignored")
        self.refused = Metrics.counter("haulage", "notifications_refused")
        self.messages = Metrics.counter("haulage", "messages_read")
        # lines plus file faults handed on: what the parser will count as lines_read + file_faults
        self.decoded = Metrics.counter("haulage", "lines_decoded")

    def chunks(self, data: bytes, attributes: Mapping[str, str], message_id: str, received_at: str) -> Iterator[Chunk]:
        self.messages.inc()
        for chunk in self._chunks(data, attributes, message_id, received_at):
            self.decoded.inc(sum(len(b.lines) + (b.fault is not None) for b in chunk))
            yield chunk

    def _chunks(self, data: bytes, attributes: Mapping[str, str], message_id: str, received_at: str) -> Iterator[Chunk]:
        if self.message_format != GCS_NOTIFICATION:
            batches = line_batches_of_message(data, attributes, message_id, self.subscription, received_at)
            yield from bounded_chunks(batches, self.chunk_lines, self.chunk_bytes)
            return
        decision = self.policy.decide(attributes)
        if decision is None:  # deletes, metadata updates: nothing to read
            self.ignored.inc()
        elif isinstance(decision, Refusal):
            self.refused.inc()
            origin = Origin.for_message(self.subscription, message_id)
            fault = FileFault(decision.reason, f"{origin.label}: {decision.detail}", 1, decision.attributes.encode())
            unit = SourceUnit(origin.key, MESSAGE, origin.label, len(data), 0, 1)
            yield Chunk([LineBatch(origin, 1, [], received_at, fault, unit)])
        else:
            # named by its content, like the same file read by a batch run or a replay
            yield from bounded_chunks(read_file(decision, received_at, self.chunk_lines), self.chunk_lines, self.chunk_bytes)


class _DecodeMessageFn(beam.DoFn):
    def __init__(self, subscription: str, message_format: str, chunk_lines: int, chunk_bytes: int,
                 policy: Optional[NotificationPolicy]) -> None:
        self._args = (subscription, message_format, chunk_lines, chunk_bytes, policy)

    def setup(self) -> None:
        self._decoder = _MessageDecoder(*self._args)

    def process(self, message: Any) -> Iterator[Chunk]:
        received_at = iso_from_epoch(int(time.time()))
        yield from self._decoder.chunks(message.data or b"", message.attributes or {}, message.message_id or "", received_at)


class ReadPubSubChunks(beam.PTransform):
    """Unbounded: ``ReadFromPubSub`` → chunks of ≤ ``chunk_lines`` lines and ≤ ``chunk_bytes`` bytes.

    A CDN sends one log line per message; parsing and writing per message
    would make one BigQuery request (or one Parquet file) per line. Lines
    messages are therefore batched (:class:`~haulage.pipeline.batching.BatchChunks`:
    by lines, bytes and ``window_seconds``) before they are parsed and
    written. A notified file already arrives in bounded chunks and is not
    batched: its chunks go straight to the parser, in the step that read it.
    """

    def __init__(
        self,
        message_format: str,
        subscription: Optional[str] = None,
        topic: Optional[str] = None,
        window_seconds: float = 60.0,
        chunk_lines: int = DEFAULT_CHUNK_LINES,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        policy: Optional[NotificationPolicy] = None,
    ) -> None:
        super().__init__()
        self._format = message_format
        self._subscription = subscription
        self._topic = topic
        self._window_seconds = window_seconds
        self._chunk_lines = chunk_lines
        self._chunk_bytes = chunk_bytes
        self._policy = policy

    def expand(self, pbegin):
        decode = _DecodeMessageFn(self._subscription or self._topic or "", self._format, self._chunk_lines,
                                  self._chunk_bytes, self._policy)
        chunks = (
            pbegin
            | "ReadFromPubSub" >> beam.io.ReadFromPubSub(subscription=self._subscription, topic=self._topic, with_attributes=True)
            | "DecodeMessages" >> beam.ParDo(decode).with_output_types(Chunk)
        )
        if self._format == GCS_NOTIFICATION:
            return chunks
        return chunks | "BatchMessages" >> BatchChunks(self._chunk_lines, self._chunk_bytes, self._window_seconds)


class PullWindowsFn(beam.DoFn):
    """Pulls windows of messages, emits them as chunks, acks after downstream wrote them.

    A window ends after ``window_seconds`` or as soon as it holds
    ``chunk_lines`` lines or ``chunk_bytes`` bytes; a message bigger than
    that (a notified file) is emitted in several chunks before the window is
    acknowledged. Pulls ask for as many messages as the bytes left in the
    window are likely to hold, judged by the messages seen so far.
    """

    MAX_MESSAGES = 1000
    FIRST_PULL = 10  # messages, before their size is known

    def __init__(
        self,
        subscription: str,
        topic: Optional[str],
        message_format: str,
        run_for: Optional[float],
        window_seconds: float,
        chunk_lines: int = DEFAULT_CHUNK_LINES,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        policy: Optional[NotificationPolicy] = None,
    ) -> None:
        self._subscription = subscription
        self._topic = topic
        self._format = message_format
        self._run_for = run_for
        self._window = window_seconds
        self._chunk_lines = chunk_lines
        self._chunk_bytes = chunk_bytes
        self._policy = policy

    def process(self, _: object) -> Iterator[Chunk]:
        from google.api_core import exceptions as gexc

        subscriber = subscriber_client()
        subscription = self._subscription
        temporary = False
        if self._topic:
            subscription = f"{self._topic.replace('/topics/', '/subscriptions/')}-haulage-{int(time.time())}"
            subscriber.create_subscription(request={"name": subscription, "topic": self._topic, "ack_deadline_seconds": 600})
            temporary = True
        decoder = _MessageDecoder(subscription, self._format, self._chunk_lines, self._chunk_bytes, self._policy)
        bytes_per_message = max(1, self._chunk_bytes // self.FIRST_PULL)
        started = time.monotonic()
        deadline = started + self._run_for if self._run_for else float("inf")
        ack_deadline = int(min(600, self._window + 60))
        try:
            while True:
                window_end = min(time.monotonic() + self._window, deadline)
                received_at = iso_from_epoch(int(time.time()))
                chunk = Chunk()
                held_lines = held_bytes = 0
                full = False
                ack_ids: list[str] = []
                while not full and (remaining := window_end - time.monotonic()) > 0:
                    room = max(1, min(self.MAX_MESSAGES, (self._chunk_bytes - held_bytes) // bytes_per_message))
                    try:
                        response = subscriber.pull(
                            request={"subscription": subscription, "max_messages": room},
                            timeout=max(1.0, min(remaining, 10.0)),
                        )
                    except (gexc.DeadlineExceeded, gexc.ServiceUnavailable):
                        continue
                    if not response.received_messages:
                        time.sleep(min(0.2, max(0.0, window_end - time.monotonic())))
                        continue
                    new_ids = [m.ack_id for m in response.received_messages]
                    # the window may outlast the subscription's ack deadline
                    subscriber.modify_ack_deadline(
                        request={"subscription": subscription, "ack_ids": new_ids, "ack_deadline_seconds": ack_deadline}
                    )
                    ack_ids.extend(new_ids)
                    pulled_bytes = 0
                    for received in response.received_messages:
                        m = received.message
                        for part in decoder.chunks(m.data, dict(m.attributes), m.message_id, received_at):
                            lines, nbytes = chunk_size(part)
                            pulled_bytes += nbytes
                            if chunk and (held_lines + lines > self._chunk_lines or held_bytes + nbytes > self._chunk_bytes):
                                yield chunk  # the window is full: write what it holds, finish this pull, then ack
                                chunk, held_lines, held_bytes, full = Chunk(), 0, 0, True
                            chunk.extend(part)
                            held_lines += lines
                            held_bytes += nbytes
                    full = full or held_lines >= self._chunk_lines or held_bytes >= self._chunk_bytes
                    bytes_per_message = max(1, pulled_bytes // len(response.received_messages))
                if chunk:
                    yield chunk  # parsed and written synchronously by the fused stages below
                for start in range(0, len(ack_ids), 1000):
                    subscriber.acknowledge(request={"subscription": subscription, "ack_ids": ack_ids[start : start + 1000]})
                if ack_ids:
                    _LOG.info("window: %d messages written and acknowledged", len(ack_ids))
                if time.monotonic() >= deadline:
                    return
        finally:
            if temporary:
                try:
                    subscriber.delete_subscription(request={"subscription": subscription})
                except Exception:  # best effort; an orphan subscription expires on its own
                    _LOG.warning("could not delete temporary subscription %s", subscription)
            subscriber.close()


class PullPubSubWindows(beam.PTransform):
    """Bounded local streaming: windows of messages until ``run_for`` seconds pass."""

    def __init__(
        self,
        message_format: str,
        subscription: Optional[str],
        topic: Optional[str],
        run_for: Optional[float],
        window_seconds: float,
        chunk_lines: int = DEFAULT_CHUNK_LINES,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        policy: Optional[NotificationPolicy] = None,
    ) -> None:
        super().__init__()
        self._fn = PullWindowsFn(subscription or "", topic, message_format, run_for, window_seconds, chunk_lines, chunk_bytes, policy)

    def expand(self, pbegin):
        return pbegin | "Start" >> beam.Create([None]) | "PullWindows" >> beam.ParDo(self._fn).with_output_types(Chunk)
