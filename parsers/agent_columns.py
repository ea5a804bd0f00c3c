"""Agent-derived columns (``details``, ``classification``, ``user_agent``, ``agent_fingerprint``) from one index per row.

The columnar parser dictionary-encodes a block's agent column: ``D`` distinct
agents and one index per row. Each distinct agent is looked up in the LRU
(:class:`~haulage.parsers.agents.AgentCache`, parsed on a miss) and becomes an
:class:`~haulage.parsers.agents.AgentResult`. This module turns those results
into Arrow columns without touching a row in Python:

* :class:`AgentStore` converts each ``AgentResult`` to columnar form **once**
  (when first seen) and gives it a store index, so a block costs gathers by
  the ``D`` store indices, not a conversion of ``D`` dicts. The nested
  ``details`` / ``classification`` dicts are stored **flat, leaf by leaf**:
  every string leaf (and ``user_agent``) is a column of one Arrow table
  (nulls stored as ``""``), every boolean leaf and the fingerprint a numpy
  array, and whether each node (leaf or struct) is valid a row of one numpy
  boolean matrix, a node being null wherever an ancestor is. A block then
  costs one ``take`` of that table (every string leaf at once) and numpy
  fancy indexing for the rest — no struct ``take``, no per-leaf ``take``.
  The string table grows in chunks merged like an LSM tree (each result is
  copied O(log n) times in its life), and the store starts afresh past
  ``limit`` results or ``max_bytes`` of strings, so memory stays bounded.
* :meth:`AgentStore.columns` builds the ``n``-row columns: string leaves
  become dictionary arrays over the block's ``D`` values sharing the one row
  index buffer; each node's validity over the rows is one gather per
  distinct null pattern over the ``D`` values (most nodes share a few);
  booleans and fingerprints are gathered through the row indices in numpy.
* :func:`expand` does the same for any plain Arrow column of ``D`` values
  (the parser uses it for a simple request's ``project``).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat
from typing import Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .agents import AgentResult
from .batch_schema import DICTIONARY_STRING, batch_schema
from .schemas import DOWNLOADS, arrow_schema

__all__ = ["AgentStore", "AgentColumns", "expand", "DETAILS_TYPE", "CLASSIFICATION_TYPE"]

DETAILS_TYPE = arrow_schema(DOWNLOADS).field("details").type
CLASSIFICATION_TYPE = arrow_schema(DOWNLOADS).field("classification").type

AgentColumns = tuple[pa.StructArray, pa.StructArray, pa.DictionaryArray, pa.Int64Array]
"""``details``, ``classification``, ``user_agent`` and ``agent_fingerprint`` of a block's rows."""


@dataclass(frozen=True)
class _Node:
    """One node of an agent-derived column: a struct, a string leaf, a boolean leaf or the fingerprint.

    ``valid`` is the node's row in the store's validity matrix; ``slot`` is
    its column in the string table (string leaves) or its row in the boolean
    matrix (boolean leaves).
    """

    name: str
    type: pa.DataType  # as in batch_schema
    valid: int
    slot: int = -1
    children: tuple["_Node", ...] = ()


class _Layout:
    """Numbers every node of the four agent-derived columns: validity rows, string columns, boolean rows."""

    def __init__(self) -> None:
        self.valid_rows = 0
        self.string_columns: list[str] = []
        self.bool_rows = 0
        schema = batch_schema(DOWNLOADS)
        self.details = self._node("details", schema.field("details").type)
        self.classification = self._node("classification", schema.field("classification").type)
        self.user_agent = self._node("user_agent", schema.field("user_agent").type)
        self.fingerprint = self._node("agent_fingerprint", schema.field("agent_fingerprint").type)

    def _node(self, path: str, type_: pa.DataType) -> _Node:
        valid = self.valid_rows
        self.valid_rows += 1
        if pa.types.is_struct(type_):
            children = tuple(self._node(f"{path}.{field.name}", field.type) for field in type_)
            return _Node(path.rsplit(".", 1)[-1], type_, valid, children=children)
        if type_ == DICTIONARY_STRING:
            self.string_columns.append(path)
            return _Node(path.rsplit(".", 1)[-1], type_, valid, len(self.string_columns) - 1)
        if pa.types.is_boolean(type_):
            self.bool_rows += 1
            return _Node(path.rsplit(".", 1)[-1], type_, valid, self.bool_rows - 1)
        if pa.types.is_int64(type_):
            return _Node(path.rsplit(".", 1)[-1], type_, valid)
        raise TypeError(f"no columnar form for agent-derived {path}: {type_}")


_LAYOUT = _Layout()
_EMPTY_STRING = pa.scalar("", pa.string())


class _Converted:
    """Columnar form of a run of new results: string columns, validity and boolean rows, fingerprints.

    ``pa.array`` converts the dicts (in C++, the fastest way measured: a
    Python walk of the dicts leaf by leaf costs twice as much), then each
    struct is flattened level by level, which gives every node the nulls of
    its ancestors.
    """

    def __init__(self, new: Sequence[AgentResult]) -> None:
        n = len(new)
        self.strings: list[Optional[pa.Array]] = [None] * len(_LAYOUT.string_columns)
        self.valid = np.empty((_LAYOUT.valid_rows, n), bool)
        self.bools = np.empty((_LAYOUT.bool_rows, n), bool)
        self._flatten(_LAYOUT.details, pa.array([r.details for r in new], DETAILS_TYPE))
        self._flatten(_LAYOUT.classification, pa.array([r.classification for r in new], CLASSIFICATION_TYPE))
        self._flatten(_LAYOUT.user_agent, pa.array([r.user_agent for r in new], pa.string()))
        fingerprints = pa.array([r.fingerprint for r in new], pa.int64())
        self.valid[_LAYOUT.fingerprint.valid] = _flags(fingerprints.is_valid()) if fingerprints.null_count else True
        self.fingerprints = pc.fill_null(fingerprints, 0).to_numpy(zero_copy_only=False)

    def _flatten(self, node: _Node, column: pa.Array) -> None:
        self.valid[node.valid] = _flags(column.is_valid()) if column.null_count else True
        if node.children:
            for child, values in zip(node.children, column.flatten()):
                self._flatten(child, values)
        elif node.type == DICTIONARY_STRING:
            self.strings[node.slot] = pc.fill_null(column, _EMPTY_STRING) if column.null_count else column
        else:  # boolean leaf
            self.bools[node.slot] = _flags(pc.fill_null(column, False))

    def batch(self) -> pa.RecordBatch:
        return pa.RecordBatch.from_arrays(self.strings, names=_LAYOUT.string_columns)


def _flags(column: pa.BooleanArray) -> np.ndarray:
    return column.to_numpy(zero_copy_only=False)


class AgentStore:
    """The agent-derived columns of every ``AgentResult`` seen, each converted once, stored flat.

    Results are recognised by identity (the cache hands out one object per
    agent) and kept referenced while stored, so an identity is never reused.
    The store starts afresh before it would pass ``limit`` results, or once
    its string leaves hold more than ``max_bytes``: results are bounded in
    number *and* in size whatever the traffic. The byte bound matters for
    agents no family takes, whose raw agent (up to 8 KiB) is their
    ``user_agent``; agents too long for the cache are parsed, hence stored,
    again at every sight, so without it 65,536 of them could hold a GiB.
    """

    def __init__(self, limit: int = 1 << 16, max_bytes: int = 64 << 20) -> None:
        self._limit = limit
        self._max_bytes = max_bytes
        self._reset()

    def _reset(self) -> None:
        self._ids: dict[int, int] = {}
        self._kept: list[AgentResult] = []
        self._strings: list[pa.RecordBatch] = []
        self._bytes = 0
        capacity = min(self._limit, 1024)
        self._valid = np.zeros((_LAYOUT.valid_rows, capacity), bool)
        self._bools = np.zeros((_LAYOUT.bool_rows, capacity), bool)
        self._fingerprints = np.zeros(capacity, np.int64)

    def __len__(self) -> int:
        return len(self._kept)

    @property
    def nbytes(self) -> int:
        """Bytes of the stored string leaves (``user_agent`` included)."""
        return self._bytes

    def lookup(self, results: Sequence[AgentResult]) -> np.ndarray:
        """The store index of each of ``results`` (int64, in their order), converting the never-seen ones."""
        ids = self._ids
        sids = np.fromiter(map(ids.get, map(id, results), repeat(-1)), np.int64, len(results))
        missing = np.flatnonzero(sids < 0)
        if len(missing):
            if len(self._kept) + len(missing) > self._limit or self._bytes > self._max_bytes:
                self._reset()
                ids, missing = self._ids, np.arange(len(results))
            new = [results[i] for i in missing.tolist()]
            fresh: list[AgentResult] = []
            for result in new:  # each new result once, however often it appears
                if id(result) not in ids:
                    ids[id(result)] = len(self._kept) + len(fresh)
                    fresh.append(result)
            self._append(fresh)
            sids[missing] = [ids[id(result)] for result in new]
        return sids

    def _append(self, new: list[AgentResult]) -> None:
        start, stop = len(self._kept), len(self._kept) + len(new)
        converted = _Converted(new)
        if stop > self._fingerprints.shape[0]:
            self._grow(stop)
        self._kept.extend(new)
        self._valid[:, start:stop] = converted.valid
        self._bools[:, start:stop] = converted.bools
        self._fingerprints[start:stop] = converted.fingerprints
        chunks = self._strings
        chunks.append(converted.batch())
        self._bytes += chunks[-1].nbytes
        # merge trailing chunks of similar size, so there are O(log n) chunks
        while len(chunks) > 1 and chunks[-2].num_rows <= 2 * chunks[-1].num_rows:
            last = chunks.pop()
            chunks[-1] = pa.concat_batches([chunks[-1], last])

    def _grow(self, needed: int) -> None:
        capacity = min(max(needed, 2 * self._fingerprints.shape[0]), max(needed, self._limit))
        for name in ("_valid", "_bools"):
            old = getattr(self, name)
            grown = np.zeros((old.shape[0], capacity), bool)
            grown[:, : old.shape[1]] = old
            setattr(self, name, grown)
        fingerprints = np.zeros(capacity, np.int64)
        fingerprints[: len(self._fingerprints)] = self._fingerprints
        self._fingerprints = fingerprints

    def results(self, sids: np.ndarray) -> list[AgentResult]:
        """The stored results at ``sids``."""
        kept = self._kept
        return [kept[i] for i in sids.tolist()]

    def columns(self, sids: np.ndarray, indices: pa.Int32Array) -> AgentColumns:
        """The ``n``-row agent-derived columns: row ``i`` holds those of the result at ``sids[indices[i]]``.

        ``sids`` come from :meth:`lookup` (``D`` store indices); ``indices``
        (no nulls) picks one of them per row. Values are exactly what
        ``pa.array`` of the results' dicts would give, taken by ``indices``.
        """
        if indices.offset:
            indices = pa.array(indices.to_numpy())  # one index buffer from row 0, shared by every leaf
        n = len(indices)
        rows = indices.to_numpy()
        if len(sids):
            table = pa.Table.from_batches(self._strings).take(pa.array(sids))
            strings = [c.chunk(0) if c.num_chunks == 1 else c.combine_chunks() for c in table.columns]
        else:
            strings = [pa.array([], pa.string())] * len(_LAYOUT.string_columns)
        block = _Block(n, indices, rows, strings, self._valid[:, sids], self._bools[:, sids])
        fingerprint = self._fingerprints[sids][rows] if len(sids) else np.zeros(n, np.int64)
        return (
            block.build(_LAYOUT.details),
            block.build(_LAYOUT.classification),
            block.build(_LAYOUT.user_agent),
            pa.Array.from_buffers(pa.int64(), n, [block.bitmaps[_LAYOUT.fingerprint.valid], pa.py_buffer(fingerprint)]),
        )


class _Block:
    """The agent-derived columns of one block, from its ``D`` results' stored values and the row indices.

    Rule for validity: a node's rows are valid where its value at the row's
    index is; nodes whose ``D`` values are all valid have no bitmap, and the
    others share one bitmap per distinct pattern, all gathered through the
    row indices in one numpy call (as are the boolean leaves' values).
    """

    def __init__(self, n: int, indices: pa.Int32Array, rows: np.ndarray, strings: list[pa.Array],
                 valid: np.ndarray, bools: np.ndarray) -> None:
        self.n, self.strings = n, strings
        self.index_buffer = indices.buffers()[1]
        self.bitmaps: list[Optional[pa.Buffer]] = [None] * len(valid)
        patterns: dict[bytes, int] = {}
        which = {int(node): patterns.setdefault(valid[node].tobytes(), len(patterns)) for node in np.flatnonzero(~valid.all(axis=1))}
        if which:
            firsts = {pattern: node for node, pattern in reversed(which.items())}
            buffers = _bitmaps(valid[[firsts[p] for p in range(len(patterns))]], rows)
            for node, pattern in which.items():
                self.bitmaps[node] = buffers[pattern]
        self.bool_values = _bitmaps(bools, rows)

    def build(self, node: _Node) -> pa.Array:
        bitmap = self.bitmaps[node.valid]
        if node.children:
            return pa.StructArray.from_buffers(node.type, self.n, [bitmap], children=[self.build(c) for c in node.children])
        if node.type == DICTIONARY_STRING:
            codes = pa.Array.from_buffers(pa.int32(), self.n, [bitmap, self.index_buffer])
            return pa.DictionaryArray.from_arrays(codes, self.strings[node.slot], safe=False)
        return pa.Array.from_buffers(pa.bool_(), self.n, [bitmap, self.bool_values[node.slot]])


def _bitmaps(flags: np.ndarray, rows: np.ndarray) -> list[pa.Buffer]:
    """Per row of the 2-d boolean ``flags``: the Arrow bitmap (least significant bit first) of ``flags[row, rows]``."""
    packed = np.ascontiguousarray(np.packbits(np.take(flags, rows, axis=1), axis=1, bitorder="little"))
    return [pa.py_buffer(bits) for bits in packed]


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
