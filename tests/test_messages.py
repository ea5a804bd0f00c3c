"""A Pub/Sub message of lines → line batches: the short way for small plain messages against the full reader.

Rule under test: ``line_batches_of_message`` gives the same batches (origin,
positions, lines, faults, the message's unit) whether or not a small plain
message takes the short way (``framing.small_plain_lines``), for any data:
plain, gzip, empty, damaged, with or without a final newline.
"""

from __future__ import annotations

import gzip

from hypothesis import given, settings
from hypothesis import strategies as st

from haulage.pipeline.sources import messages

SUBSCRIPTION = "projects/p/subscriptions/logs"
RECEIVED_AT = "2026-10-01T00:00:00Z"

pieces = st.sampled_from([b"download|Thu, 01 Oct 2026 00:00:00 GMT|US|/p|TLSv1.3|c|x|1|sdist|pip/24", b"\n", b"\r", b"|",
                          b"\xff", b"", b"simple|x", b"\x00"])
plain = st.lists(pieces, max_size=12).map(b"".join)
data = st.one_of(plain, plain, plain.map(gzip.compress), plain.map(lambda b: gzip.compress(b)[:-5]), st.binary(max_size=40))


@settings(max_examples=200, deadline=None)
@given(data, st.sampled_from([{}, {"compression": "gzip"}]))
def test_the_short_way_gives_the_full_readers_batches(payload, attributes):
    short = list(messages.line_batches_of_message(payload, attributes, "m1", SUBSCRIPTION, RECEIVED_AT))
    real = messages.small_plain_lines
    messages.small_plain_lines = lambda *args, **kwargs: None  # the full reader for every message
    try:
        full = list(messages.line_batches_of_message(payload, attributes, "m1", SUBSCRIPTION, RECEIVED_AT))
    finally:
        messages.small_plain_lines = real
    assert short == full


def test_a_one_line_message_is_one_batch_carrying_its_unit():
    (batch,) = messages.line_batches_of_message(b"download|a|b\n", {}, "m7", SUBSCRIPTION, RECEIVED_AT)
    assert (batch.first_position, batch.lines, batch.fault) == (1, [b"download|a|b"], None)
    assert batch.finished is not None and (batch.finished.lines, batch.finished.faults) == (1, 0)
    assert batch.finished.unit_id == batch.origin.key


@settings(max_examples=200, deadline=None)
@given(data, st.sampled_from([{}, {"compression": "gzip"}]), st.sampled_from([1, 2, 20_000]), st.sampled_from([5, 4 << 20]))
def test_a_small_message_is_chunked_as_bounded_chunks_would_chunk_it(payload, attributes, chunk_lines, chunk_bytes):
    decoder = messages.MessageDecoder(SUBSCRIPTION, "lines", chunk_lines, chunk_bytes)
    short = list(decoder.chunks(payload, attributes, "m2", RECEIVED_AT))
    real = messages.small_message_batch
    messages.small_message_batch = lambda *args, **kwargs: None  # the reader and bounded_chunks for every message
    try:
        full = list(decoder.chunks(payload, attributes, "m2", RECEIVED_AT))
    finally:
        messages.small_message_batch = real
    assert short == full
