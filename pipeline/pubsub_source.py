"""Streaming input from Pub/Sub, in two shapes.

* :class:`ReadPubSubChunks` — Beam's ``ReadFromPubSub``: unbounded, for
  Dataflow, where the service acks a message only after the bundle that
  consumed it is committed.
* :class:`PullPubSubWindows` — for local runs. Beam's DirectRunner Pub/Sub
  source acks messages *before* they are processed and cannot stop cleanly,
  so a local run that ends (``--run-for``) or crashes would lose what it had
  pulled. Here one DoFn pulls a window of messages, emits it as one chunk —
  the fused parse and sink stages write it synchronously — and only then
  acks it. Stopping loses nothing; a crash redelivers, and the redelivered
  lines get the same event ids.

A message carries newline-separated log lines (gzip-compressed when it starts
with the gzip magic or says ``compression=gzip``), or with
``message_format="gcs-notification"`` a Cloud Storage OBJECT_FINALIZE
notification for a log file, which is then read whole.
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

from .elements import MESSAGE, Chunk, LineBatch, SourceUnit
from .file_source import read_file

_LOG = logging.getLogger("haulage")

from .options import GCS_NOTIFICATION


def chunk_from_lines_message(data: bytes, attributes: Mapping[str, str], message_id: str, subscription: str, received_at: str) -> Chunk:
    """One message of log lines → one chunk (gzip detected from its magic bytes)."""
    origin = Origin.for_message(subscription, message_id)
    name = origin.label + (".gz" if attributes.get("compression", "").lower() == "gzip" else "")
    batches = Chunk()
    lines = faults = 0
    for item in iter_line_batches(io.BytesIO(data), name):
        if isinstance(item, FileFault):
            if item.reason == "empty-file":
                item = FileFault("empty-message", f"{origin.label}: message has no data", 1)
            batches.append(LineBatch(origin, item.position, [], received_at, item))
            faults += 1
        else:
            batches.append(LineBatch(origin, item[0], item[1], received_at))
            lines += len(item[1])
    if not batches:
        batches.append(LineBatch(origin, 1, [], received_at))
    batches[-1].finished = SourceUnit(origin.key, MESSAGE, origin.label, len(data), lines, faults)
    return batches


def notified_object(attributes: Mapping[str, str]) -> Optional[str]:
    """``gs://bucket/object`` of an OBJECT_FINALIZE notification, else None."""
    if attributes.get("eventType") != "OBJECT_FINALIZE":
        return None
    bucket, name = attributes.get("bucketId"), attributes.get("objectId")
    if not bucket or not name:
        return None
    return f"gs://{bucket}/{name}"


class _MessageDecoder:
    """Turns a message into chunks according to the configured format."""

    def __init__(self, subscription: str, message_format: str, chunk_lines: int = 20000) -> None:
        self.subscription = subscription
        self.message_format = message_format
        self.chunk_lines = chunk_lines
        self.ignored = Metrics.counter("haulage", "notifications_ignored")
        self.messages = Metrics.counter("haulage", "messages_read")

    def chunks(self, data: bytes, attributes: Mapping[str, str], message_id: str, received_at: str) -> Iterator[Chunk]:
        self.messages.inc()
        if self.message_format == GCS_NOTIFICATION:
            path = notified_object(attributes)
            if path is None:  # deletes, metadata updates: nothing to read
                self.ignored.inc()
                return
            # named by its content, like the same file read by a batch run or a replay
            yield from read_file(path, received_at, self.chunk_lines)
        else:
            yield chunk_from_lines_message(data, attributes, message_id, self.subscription, received_at)


class _DecodeMessageFn(beam.DoFn):
    def __init__(self, subscription: str, message_format: str) -> None:
        self._subscription = subscription
        self._format = message_format

    def setup(self) -> None:
        self._decoder = _MessageDecoder(self._subscription, self._format)

    def process(self, message: Any) -> Iterator[Chunk]:
        received_at = iso_from_epoch(int(time.time()))
        yield from self._decoder.chunks(message.data or b"", message.attributes or {}, message.message_id or "", received_at)


def merge_chunks(chunks: list[Chunk]) -> Chunk:
    merged = Chunk()
    for chunk in chunks:
        merged.extend(chunk)
    return merged


def chunk_lines(chunk: Chunk) -> int:
    return max(1, sum(len(batch.lines) for batch in chunk))


class ReadPubSubChunks(beam.PTransform):
    """Unbounded: ``ReadFromPubSub`` → chunks of up to ``max_lines`` lines or ``window_seconds``.

    A CDN sends one log line per message; parsing and writing per message
    would make one BigQuery request (or one Parquet file) per line. Messages
    are therefore batched — by line count, and by time so a quiet stream
    still flushes — before they are parsed and written.
    """

    def __init__(
        self,
        message_format: str,
        subscription: Optional[str] = None,
        topic: Optional[str] = None,
        window_seconds: float = 60.0,
        max_lines: int = 50_000,
    ) -> None:
        super().__init__()
        self._format = message_format
        self._subscription = subscription
        self._topic = topic
        self._window_seconds = window_seconds
        self._max_lines = max_lines

    def expand(self, pbegin):
        chunks = (
            pbegin
            | "ReadFromPubSub" >> beam.io.ReadFromPubSub(subscription=self._subscription, topic=self._topic, with_attributes=True)
            | "DecodeMessages" >> beam.ParDo(_DecodeMessageFn(self._subscription or self._topic or "", self._format)).with_output_types(Chunk)
        )
        if self._format == GCS_NOTIFICATION:
            return chunks  # a notified file already arrives in chunks of up to chunk_lines lines
        return (
            chunks
            | "BatchMessages" >> beam.BatchElements(
                min_batch_size=1,
                max_batch_size=self._max_lines,
                max_batch_duration_secs=self._window_seconds,
                element_size_fn=chunk_lines,
            )
            | "MergeBatches" >> beam.Map(merge_chunks).with_output_types(Chunk)
        )


class PullWindowsFn(beam.DoFn):
    """Pulls windows of messages, emits each as one chunk, acks after downstream wrote it."""

    MAX_MESSAGES = 1000

    def __init__(self, subscription: str, topic: Optional[str], message_format: str, run_for: Optional[float], window_seconds: float) -> None:
        self._subscription = subscription
        self._topic = topic
        self._format = message_format
        self._run_for = run_for
        self._window = window_seconds

    def process(self, _: object) -> Iterator[Chunk]:
        from google.api_core import exceptions as gexc
        from google.cloud import pubsub_v1

        subscriber = pubsub_v1.SubscriberClient()
        subscription = self._subscription
        temporary = False
        if self._topic:
            subscription = f"{self._topic.replace('/topics/', '/subscriptions/')}-haulage-{int(time.time())}"
            subscriber.create_subscription(request={"name": subscription, "topic": self._topic, "ack_deadline_seconds": 600})
            temporary = True
        decoder = _MessageDecoder(subscription, self._format)
        started = time.monotonic()
        deadline = started + self._run_for if self._run_for else float("inf")
        ack_deadline = int(min(600, self._window + 60))
        try:
            while True:
                window_end = min(time.monotonic() + self._window, deadline)
                received_at = iso_from_epoch(int(time.time()))
                chunk = Chunk()
                ack_ids: list[str] = []
                while (remaining := window_end - time.monotonic()) > 0:
                    try:
                        response = subscriber.pull(
                            request={"subscription": subscription, "max_messages": self.MAX_MESSAGES},
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
                    for received in response.received_messages:
                        m = received.message
                        for part in decoder.chunks(m.data, dict(m.attributes), m.message_id, received_at):
                            chunk.extend(part)
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

    def __init__(self, message_format: str, subscription: Optional[str], topic: Optional[str], run_for: Optional[float], window_seconds: float) -> None:
        super().__init__()
        self._fn = PullWindowsFn(subscription or "", topic, message_format, run_for, window_seconds)

    def expand(self, pbegin):
        return pbegin | "Start" >> beam.Create([None]) | "PullWindows" >> beam.ParDo(self._fn).with_output_types(Chunk)
