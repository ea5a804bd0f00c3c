"""Where each line of a block comes from, when one block holds the lines of many sources.

Why: a Pub/Sub message is a source of its own (its lines' event ids are
``<message key>-<line number>``), and with line delivery every message is
one log line. Parsed one source at a time, such lines cannot use the
columnar parser (a block of one line costs its fixed set of kernels), so
the lines of many small sources are parsed as one block, and this says,
line by line, which source and which line number of it each one is.

The rule: the ``i``-th line of the block is line ``position[i]`` of source
``source[i]``; its event id is that source's key, ``-``, and that number,
exactly what the row parser writes for the line parsed on its own, and a
dead letter made of it carries that source's label and receive time.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .lines import Origin

__all__ = ["BlockSources", "SourcePart", "event_ids"]

SourcePart = tuple[Origin, int, Optional[str], int]
"""One source's run of lines in a block: its origin, the line number of its first line, when it was
received (None for files), and how many lines."""


class BlockSources:
    """The source and line number of every line of a block made of consecutive runs of lines (:data:`SourcePart`).

    A block of one source (a file's lines) needs no per-line arrays: its
    line ``i`` is line ``first + i`` of that source.
    """

    __slots__ = ("origins", "received_at", "lines", "_first", "_source", "_position")

    def __init__(self, parts: Sequence[SourcePart]) -> None:
        if not parts:
            raise ValueError("a block has at least one source")
        self.origins = [origin for origin, _, _, _ in parts]
        self.received_at = [received for _, _, received, _ in parts]
        counts = np.array([count for _, _, _, count in parts], np.int64)
        self.lines = int(counts.sum())
        self._first = parts[0][1]
        self._source: Optional[np.ndarray] = None
        self._position: Optional[np.ndarray] = None
        if len(parts) > 1:
            firsts = np.array([first for _, first, _, _ in parts], np.int64)
            self._source = np.repeat(np.arange(len(parts), dtype=np.int64), counts)
            # a line's number: its block index, minus where its part starts, plus the part's first number
            starts = np.cumsum(counts) - counts
            self._position = np.arange(self.lines, dtype=np.int64) - np.repeat(starts - firsts, counts)

    def __len__(self) -> int:
        return self.lines

    @classmethod
    def single(cls, origin: Origin, first_position: int, received_at: Optional[str], lines: int) -> "BlockSources":
        """Every line from ``origin``, numbered from ``first_position``."""
        return cls([(origin, first_position, received_at, lines)])

    def line(self, i: int) -> tuple[Origin, int, Optional[str]]:
        """The origin, line number and receive time of the block's ``i``-th line (what the row parser takes)."""
        if self._source is None:
            return self.origins[0], self._first + i, self.received_at[0]
        source = int(self._source[i])
        return self.origins[source], int(self._position[i]), self.received_at[source]  # type: ignore[index]

    def event_ids(self, rows: np.ndarray) -> pa.Array:
        """The event ids of the block's lines ``rows`` (block indices), as the row parser writes them."""
        if self._source is None:
            return event_ids(self.origins[0].key, rows + self._first)
        prefixes = pa.array([origin.key + "-" for origin in self.origins], pa.string())
        numbers = pc.cast(pa.array(self._position[rows]), pa.string())  # type: ignore[index]
        return pc.binary_join_element_wise(prefixes.take(pa.array(self._source[rows])), numbers, "")


def event_ids(key: str, positions: np.ndarray) -> pa.Array:
    """``"{origin key}-{line number}"`` for lines of one source, as the row parser writes it."""
    return pc.binary_join_element_wise(pa.scalar(key + "-"), pc.cast(pa.array(positions), pa.string()), "")
