"""Agent-derived columns (``details``, ``classification``, ``user_agent``) from one index per row.

The columnar parser dictionary-encodes a batch's agent column: ``D`` distinct
agents and one index per row. Each distinct agent is looked up in the LRU
(:class:`~haulage.parsers.agents.AgentCache`, parsed on a miss) and becomes an
:class:`~haulage.parsers.agents.AgentResult`. This module turns those results
into Arrow columns without touching a row in Python:

* :class:`AgentStore` converts each ``AgentResult`` to Arrow **once** (when
  first seen) and keeps it, so a batch costs a ``take`` of its ``D`` results,
  not a conversion of ``D`` dicts. Results are kept in a few chunks merged
  like an LSM tree (each result is copied O(log n) times in its life), and
  the store starts afresh past ``limit`` results so memory stays bounded.
* :func:`expand` builds an ``n``-row column from ``D`` values and the row
  indices: string leaves become dictionary arrays over the ``D`` values
  sharing the one index buffer; struct and leaf validity is one boolean
  ``take`` per distinct null pattern; boolean leaves are taken.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .schemas import DOWNLOADS, arrow_schema

from .agents import AgentResult

__all__ = ["AgentStore", "expand", "DETAILS_TYPE", "CLASSIFICATION_TYPE"]

DETAILS_TYPE = arrow_schema(DOWNLOADS).field("details").type
CLASSIFICATION_TYPE = arrow_schema(DOWNLOADS).field("classification").type


class AgentStore:
    """Arrow ``details`` and ``classification`` of every ``AgentResult`` seen, each converted once.

    Results are recognised by identity (the cache hands out one object per
    agent) and kept referenced while stored, so an identity is never reused.
    """

    def __init__(self, limit: int = 1 << 16) -> None:
        self._limit = limit
        self._reset()

    def _reset(self) -> None:
        self._ids: dict[int, int] = {}
        self._kept: list[AgentResult] = []
        self._details: list[pa.Array] = []
        self._classification: list[pa.Array] = []

    def __len__(self) -> int:
        return len(self._kept)

    def lookup(self, results: Sequence[AgentResult]) -> tuple[pa.StructArray, pa.StructArray]:
        """``details`` and ``classification`` of ``results``, in their order."""
        if not results:
            return pa.array([], DETAILS_TYPE), pa.array([], CLASSIFICATION_TYPE)
        if len(self._kept) + len(results) > self._limit:
            self._reset()
        ids = self._ids
        new: list[AgentResult] = []
        for result in results:
            if id(result) not in ids:
                ids[id(result)] = len(self._kept) + len(new)
                new.append(result)
        if new:
            self._append(new)
        sids = np.fromiter((ids[id(r)] for r in results), np.int64, len(results))
        return self._take(self._details, sids), self._take(self._classification, sids)

    def _append(self, new: list[AgentResult]) -> None:
        self._kept.extend(new)
        self._details.append(pa.array([r.details for r in new], DETAILS_TYPE))
        self._classification.append(pa.array([r.classification for r in new], CLASSIFICATION_TYPE))
        # merge trailing chunks of similar size, so there are O(log n) chunks
        while len(self._details) > 1 and len(self._details[-2]) <= 2 * len(self._details[-1]):
            for chunks in (self._details, self._classification):
                last = chunks.pop()
                chunks[-1] = pa.concat_arrays([chunks[-1], last])

    def _take(self, chunks: list[pa.Array], sids: np.ndarray) -> pa.Array:
        if len(chunks) == 1:
            return chunks[0].take(pa.array(sids))
        # Arrow gathers across chunks itself (several times faster than splitting by chunk here)
        taken = pa.chunked_array(chunks).take(pa.array(sids))
        return taken.chunk(0) if taken.num_chunks == 1 else taken.combine_chunks()


class _Validity:
    """Validity bitmaps of ``n`` rows, one boolean take per distinct pattern over the ``D`` values."""

    def __init__(self, indices: pa.Int32Array) -> None:
        self._indices = indices
        self._seen: dict[bytes, Optional[pa.Buffer]] = {}

    def bitmap(self, valid: pa.Array) -> Optional[pa.Buffer]:
        """The rows' validity bitmap, given which of the ``D`` values are valid (None: all valid)."""
        if pc.all(valid).as_py() is not False:
            return None
        flags = valid.to_numpy(zero_copy_only=False)
        key = flags.tobytes()
        if key not in self._seen:
            self._seen[key] = pa.array(flags).take(self._indices).buffers()[1]
        return self._seen[key]


def expand(values: pa.Array, indices: pa.Int32Array, out_type: pa.DataType, validity: Optional[_Validity] = None) -> pa.Array:
    """The ``n``-row column ``values.take(indices)``, built as ``out_type`` (see :mod:`batch_schema`).

    ``values`` holds ``D`` plain values (string, bool or struct, with nulls);
    ``indices`` (no nulls) picks one per row. String leaves whose ``out_type``
    is a dictionary share ``indices`` as their index buffer.
    """
    if indices.offset:
        indices = pa.array(indices.to_numpy())  # one index buffer from row 0, shared by every leaf
    validity = validity or _Validity(indices)
    n = len(indices)
    bitmap = validity.bitmap(pc.is_valid(values))
    if pa.types.is_struct(out_type):
        children = [
            expand(values.field(i), indices, out_type.field(i).type, validity) for i in range(out_type.num_fields)
        ]
        return pa.StructArray.from_buffers(out_type, n, [bitmap], children=children)
    if pa.types.is_dictionary(out_type):
        codes = pa.Array.from_buffers(pa.int32(), n, [bitmap, indices.buffers()[1]])
        return pa.DictionaryArray.from_arrays(codes, pc.fill_null(values, ""), safe=False)
    return values.take(indices)
