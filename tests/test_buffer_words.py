"""``words_at`` against ``int.from_bytes`` of the slice, at every kind of offset (aligned or not, at the buffer's end)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from haulage.parsers.buffer_words import words_at


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=70), st.lists(st.integers(0, 80), max_size=30), st.integers(1, 8), st.booleans())
def test_words_at_reads_the_little_endian_bytes_at_each_offset(raw, offsets, width, from_bytes_object):
    data = np.frombuffer(raw, np.uint8) if from_bytes_object else np.frombuffer(bytearray(raw), np.uint8)
    at = np.array([offset for offset in offsets if offset <= len(raw)] + list(range(max(0, len(raw) - 9), len(raw) + 1)), np.int64)
    got = words_at(data, at, width)
    assert got.dtype == np.uint64
    assert got.tolist() == [int.from_bytes(raw[a : a + width], "little") for a in at.tolist()]


def test_words_at_takes_the_byte_path_for_an_unaligned_buffer():
    raw = bytes(range(40))
    data = np.frombuffer(raw, np.uint8)[1:]  # a view that starts one byte in: not 8-byte aligned
    at = np.arange(len(data) + 1)
    assert words_at(data, at, 8).tolist() == [int.from_bytes(raw[1 + a : 9 + a], "little") for a in at.tolist()]
