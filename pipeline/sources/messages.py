"""Pub/Sub messages to chunks of lines: what both Pub/Sub sources decode with.

A message carries newline-separated log lines (gzip-compressed when it starts
with the gzip magic or says ``compression=gzip``), or with
``message_format="gcs-notification"`` a Cloud Storage OBJECT_FINALIZE
notification for a log file, which is then streamed in chunks if it is inside
the allow-list (:mod:`haulage.pipeline.sources.notifications`) and a dead letter if
not. Everything is cut into chunks of at most ``chunk_lines`` lines and
``chunk_bytes`` bytes. The sources are :class:`~haulage.pipeline.sources.pubsub.ReadPubSubChunks`
(the Dataflow graph) and :class:`~haulage.pipeline.sources.pubsub_windows.PullPubSubWindows`
(the local windowed pull).
"""

from __future__ import annotations

import io
from typing import Callable, Iterator, Mapping, Optional

from apache_beam.metrics import Metrics

from ...parsers import Origin
from ...parsers.framing import FileFault, iter_line_batches, small_plain_lines
from ..elements import FILE, MESSAGE, Chunk, LineBatch, SourceUnit
from ..options import DEFAULT_CHUNK_LINES, GCS_NOTIFICATION
from .batching import bounded_chunks
from .files import DEFAULT_CHUNK_BYTES, read_file
from .notifications import NotificationPolicy, Refusal

__all__ = ["MessageDecoder", "line_batches_of_message", "small_message_batch"]


def line_batches_of_message(
    data: bytes, attributes: Mapping[str, str], message_id: str, subscription: str, received_at: str,
    origin: Optional[Origin] = None,
) -> Iterator[LineBatch]:
    """One message of log lines, as line batches read lazily (gzip detected from its magic bytes).

    The last batch carries the message's :class:`SourceUnit` (``finished``):
    the message is complete once that batch is written. A small plain message
    (a few lines, as line delivery sends) is split at once, without the full
    reader (:func:`~haulage.parsers.framing.small_plain_lines`: the same lines).
    """
    origin = origin or Origin.for_message(subscription, message_id)
    small = small_message_batch(data, attributes, origin, received_at)
    if small is not None:
        yield small
        return
    name = _name(origin, attributes)
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


def _name(origin: Origin, attributes: Mapping[str, str]) -> str:
    """What the reader calls the message: its label, with ``.gz`` when it says it is gzip-compressed."""
    return origin.label + (".gz" if attributes.get("compression", "").lower() == "gzip" else "")


def small_message_batch(data: bytes, attributes: Mapping[str, str], origin: Origin, received_at: str) -> Optional[LineBatch]:
    """A small plain message (a few lines, as line delivery sends) as its one line batch, carrying its unit; else None.

    The same batch :func:`line_batches_of_message` reads with the full reader
    (:func:`~haulage.parsers.framing.small_plain_lines` says when that holds).
    """
    lines = small_plain_lines(data, _name(origin, attributes))
    if lines is None:
        return None
    return LineBatch(origin, 1, lines, received_at, None, SourceUnit(origin.key, MESSAGE, origin.label, len(data), len(lines), 0))


class MessageDecoder:
    """Turns a message into chunks of at most ``chunk_lines`` lines and ``chunk_bytes`` bytes.

    Lines messages are cut into chunks as they inflate (a small gzip message
    can hold gigabytes); a notification is checked against the allow-list
    (:mod:`haulage.pipeline.sources.notifications`) and its file streamed in chunks,
    never read whole. ``skip(unit_id)`` true means that message or file is
    already ingested: nothing of it is yielded (counted as
    ``units_skipped.<kind>``).
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
        self.skipped = {kind: Metrics.counter("haulage", f"units_skipped.{kind}") for kind in (FILE, MESSAGE)}

    def chunks(
        self,
        data: bytes,
        attributes: Mapping[str, str],
        message_id: str,
        received_at: str,
        skip: Optional[Callable[[str], bool]] = None,
    ) -> Iterator[Chunk]:
        """One message → chunks of lines (nothing when ``skip`` says it is already ingested)."""
        self.messages.inc()
        for chunk in self._chunks(data, attributes, message_id, received_at, skip or _nothing_ingested):
            self.decoded.inc(sum(len(b.lines) + (b.fault is not None) for b in chunk))
            yield chunk

    def _chunks(self, data, attributes, message_id, received_at, skip: Callable[[str], bool]) -> Iterator[Chunk]:
        origin = Origin.for_message(self.subscription, message_id)
        if self.message_format != GCS_NOTIFICATION:
            if skip(origin.key):
                self.skipped[MESSAGE].inc()
                return
            small = small_message_batch(data, attributes, origin, received_at)
            if small is not None and len(small.lines) <= self.chunk_lines and len(data) <= self.chunk_bytes:
                yield Chunk([small])  # what bounded_chunks would make of it: one chunk, as it is
                return
            batches = (small,) if small is not None else line_batches_of_message(
                data, attributes, message_id, self.subscription, received_at, origin)
            yield from bounded_chunks(batches, self.chunk_lines, self.chunk_bytes)
            return
        decision = self.policy.decide(attributes)
        if decision is None:  # deletes, metadata updates: nothing to read
            self.ignored.inc()
        elif isinstance(decision, Refusal):
            if skip(origin.key):  # its dead letter is already written
                self.skipped[MESSAGE].inc()
                return
            self.refused.inc()
            fault = FileFault(decision.reason, f"{origin.label}: {decision.detail}", 1, decision.attributes.encode())
            unit = SourceUnit(origin.key, MESSAGE, origin.label, len(data), 0, 1)
            yield Chunk([LineBatch(origin, 1, [], received_at, fault, unit)])
        else:
            def skip_file(unit_id: str) -> bool:
                if skip(unit_id):
                    self.skipped[FILE].inc()
                    return True
                return False

            # named by its content, like the same file read by a batch run or a replay
            yield from read_file(decision, received_at, self.chunk_lines, skip=skip_file, chunk_bytes=self.chunk_bytes)


def _nothing_ingested(unit_id: str) -> bool:
    return False
