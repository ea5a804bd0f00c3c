"""Streaming input from Pub/Sub, in two shapes.

* :class:`ReadPubSubChunks` — Beam's ``ReadFromPubSub``: unbounded, for
  Dataflow, where the service acks a message only after the bundle that
  consumed it is committed.
* :class:`~haulage.pipeline.pubsub_windows.PullPubSubWindows` (in
  pubsub_windows.py) — for local runs: windows of messages, acknowledged
  only after they are committed.

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
