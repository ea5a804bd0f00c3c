"""Pub/Sub on Dataflow: ``ReadFromPubSub``, decode, batch (:class:`ReadPubSubChunks`).

The graph that runs on Dataflow (where the service acks a message only after
the bundle that consumed it is committed) and, unchanged, on Beam's direct
runner here (``--runner BundleBasedDirectRunner``, see
:mod:`haulage.pipeline.runners.direct_streaming`: that runner acks on pull).
haulage's default local runner reads Pub/Sub with
:class:`~haulage.pipeline.sources.pubsub_windows.PullPubSubWindows` instead.
Both decode messages with :class:`~haulage.pipeline.sources.messages.MessageDecoder`;
windows and batches are capped by ``chunk_lines`` and ``chunk_bytes`` like chunks.
"""

from __future__ import annotations

import time
from typing import Any, Iterator, Optional

import apache_beam as beam

from ...parsers.timestamps import iso_from_epoch
from ..elements import Chunk
from ..options import DEFAULT_CHUNK_LINES, GCS_NOTIFICATION
from .batching import BatchChunks
from .files import DEFAULT_CHUNK_BYTES
from .messages import MessageDecoder
from .notifications import NotificationPolicy

__all__ = ["ReadPubSubChunks"]


class _DecodeMessageFn(beam.DoFn):
    def __init__(self, subscription: str, message_format: str, chunk_lines: int, chunk_bytes: int,
                 policy: Optional[NotificationPolicy]) -> None:
        self._args = (subscription, message_format, chunk_lines, chunk_bytes, policy)

    def setup(self) -> None:
        self._decoder = MessageDecoder(*self._args)

    def process(self, message: Any) -> Iterator[Chunk]:
        received_at = iso_from_epoch(int(time.time()))
        yield from self._decoder.chunks(message.data or b"", message.attributes or {}, message.message_id or "", received_at)


class ReadPubSubChunks(beam.PTransform):
    """Unbounded: ``ReadFromPubSub`` → chunks of ≤ ``chunk_lines`` lines and ≤ ``chunk_bytes`` bytes.

    A CDN sends one log line per message; parsing and writing per message
    would make one BigQuery request (or one Parquet file) per line. Lines
    messages are therefore batched (:class:`~haulage.pipeline.sources.batching.BatchChunks`:
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
        """ReadFromPubSub → decoded chunks, batched unless they are notified files."""
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

