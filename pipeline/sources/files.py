"""Batch input: globs (local or ``gs://``) to chunks of raw lines.

Files are listed in the driver, spread over workers with a Reshuffle, and each
is read as a stream (never whole into memory). A damaged or empty file
yields every line that could be read and one fault per damaged region (see
parsers/framing.py): it never fails the run. Chunks are bounded by lines and
by bytes.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator, Optional, Sequence

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from ...parsers import Origin
from ...parsers.framing import FileFault, iter_line_runs
from ...parsers.line_block import LineBlock
from ...parsers.lines import event_key
from ...parsers.timestamps import iso_from_epoch
from ..elements import FILE, Chunk, LineBatch, SourceUnit, tune_gc
from ..metrics import Counters, StageCpu
from ..progress import Progress
from .identity import file_origin

__all__ = [
    "InputError", "InputFile", "expand_inputs", "open_binary", "DEFAULT_CHUNK_BYTES", "unreadable_chunk",
    "read_chunks", "read_file", "ReadFileFn", "ReadLogFiles",
]


_LOG = logging.getLogger("haulage")


class InputError(ValueError):
    """An --input pattern that cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class InputFile:
    """A file to read. Its identity (for event ids and the ledger) comes from
    its content when it is read: see :mod:`.identity`."""

    path: str
    size: int


def expand_inputs(patterns: Sequence[str]) -> list[InputFile]:
    """Every file the patterns match, sorted, each path once; an empty match is an error."""
    found: dict[str, InputFile] = {}
    for given in patterns:
        # Beam's local filesystem matches nothing for a pattern without a
        # folder ('*.gz'), so local patterns are made absolute first.
        pattern = given if "://" in given else os.path.abspath(os.path.expanduser(given))
        try:
            results = FileSystems.match([pattern])[0].metadata_list
        except Exception as exc:  # Beam wraps every filesystem error in its own types
            raise InputError(f"--input {given!r}: cannot list files: {exc}") from None
        files = [m for m in results if not m.path.endswith("/")]
        if not files:
            raise InputError(f"--input {given!r} matches no files (quote globs so the shell does not expand them)")
        for m in files:
            found.setdefault(m.path, InputFile(m.path, m.size_in_bytes))
    return sorted(found.values(), key=lambda f: f.path)


def open_binary(path: str) -> BinaryIO:
    """A raw byte stream for a local path or any Beam filesystem (gs://)."""
    if "://" not in path:
        return open(path, "rb")
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


DEFAULT_CHUNK_BYTES = 4 << 20
"""Raw line bytes per chunk: with ``--chunk-lines`` the bound on what one unit of work holds."""


def unreadable_chunk(path: str, received_at: str, exc: BaseException, label_prefix: str = "") -> Chunk:
    """The one-fault chunk of a file that cannot be opened.

    Its unit is named by the path and the error (there is no content to name
    it by): run again, the same failure is skipped as already reported, and a
    file that has become readable is read under its content identity.
    """
    detail = f"{path}: cannot open: {exc}"
    origin = Origin(label_prefix + path, event_key("unreadable:" + detail))
    unit = SourceUnit(origin.key, FILE, origin.label, 0, 0, 1)
    return Chunk([LineBatch(origin, 1, [], received_at, FileFault("unreadable-file", detail, 1), unit)])


def read_chunks(
    path: str, received_at: str, chunk_lines: int, origin: Origin, size: int, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> Iterator[Chunk]:
    """A file as chunks of at most ``chunk_lines`` lines and about ``chunk_bytes`` bytes of lines.

    A chunk is closed as soon as either bound is reached (a chunk holds at
    least one line, so a single line is never split; framing bounds a line
    at 64 KiB). Faults ride on the chunk where they occur, in file order,
    and reading goes on after them (see parsers/framing.py); the file's
    unit rides on the last chunk.

    Lines travel as :class:`~haulage.parsers.line_block.LineBlock` buffers,
    as framing hands them on: splitting them into a Python object per line,
    only for the parser to join them again, cost a twentieth of a run.
    """
    pending = Chunk()
    room_lines, room_bytes = chunk_lines, chunk_bytes
    total_lines = faults = 0
    try:
        stream = open_binary(path)
    except Exception as exc:
        yield unreadable_chunk(path, received_at, exc)
        return
    with stream:
        for item in iter_line_runs(stream, path):
            if isinstance(item, FileFault):
                pending.append(LineBatch(origin, item.position, [], received_at, item))
                room_bytes -= len(item.partial) + len(item.raw)
                faults += 1
            else:
                position, data, count = item
                block = LineBlock.from_bytes(data, position)
                total_lines += count
                while len(block):
                    take, taken_bytes = _lines_that_fit(block, room_lines, room_bytes)
                    pending.append(LineBatch(origin, block.first_position, block[:take], received_at))
                    room_lines -= take
                    room_bytes -= taken_bytes
                    block = block[take:]
                    if room_lines <= 0 or room_bytes <= 0:
                        yield pending
                        pending, room_lines, room_bytes = Chunk(), chunk_lines, chunk_bytes
                continue
            if room_bytes <= 0:
                yield pending
                pending, room_lines, room_bytes = Chunk(), chunk_lines, chunk_bytes
    if not pending:
        pending.append(LineBatch(origin, total_lines + faults + 1, [], received_at))
    pending[-1].finished = SourceUnit(origin.key, FILE, origin.label, size, total_lines, faults)
    yield pending


def _lines_that_fit(block: LineBlock, room_lines: int, room_bytes: int) -> tuple[int, int]:
    """How many lines of ``block`` (from the first) fit the room left, at least one; and their bytes (``\\n`` excluded)."""
    take = min(len(block), room_lines)
    # bytes of the first k lines, k = 1..take: where line k ends, less the k newlines before it
    ends = block.starts[1 : take + 1] - np.arange(1, take + 1)
    fits = max(1, int(np.searchsorted(ends, room_bytes, side="right")))
    return fits, int(ends[fits - 1])


def read_file(
    path: str,
    received_at: str,
    chunk_lines: int,
    size: Optional[int] = None,
    label_prefix: str = "",
    skip: Optional[Callable[[str], bool]] = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> Iterator[Chunk]:
    """A file named by its content (:func:`.identity.file_origin`) as chunks.

    ``skip(unit_id)`` true means the file is already ingested: nothing is
    read beyond what naming it took, and nothing is yielded.
    """
    try:
        origin, size = file_origin(path, size, label_prefix)
    except Exception as exc:  # missing, permission, filesystem errors: a dead letter, not a crash
        yield unreadable_chunk(path, received_at, exc, label_prefix)
        return
    if skip is not None and skip(origin.key):
        return
    yield from read_chunks(path, received_at, chunk_lines, origin, size, chunk_bytes)


class ReadFileFn(beam.DoFn):
    """Reads each listed file that is not yet ingested, once per bundle.

    ``committed`` holds the unit ids the output's ledger had when the run
    started: those files are skipped (counted as ``units_skipped.file``).
    A file whose content was already read in the same bundle (a copy under
    another name) is skipped the same way; across bundles the sink's commit
    catches it.
    """

    def __init__(
        self,
        total_files: int,
        total_bytes: int,
        chunk_lines: int,
        received_at: str,
        label_prefix: str = "",
        committed: Optional[frozenset[str]] = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> None:
        self._label_prefix = label_prefix
        self._chunk_bytes = chunk_bytes
        self._total_files = total_files
        self._total_bytes = total_bytes
        self._chunk_lines = chunk_lines
        self._received_at = received_at
        self._committed = committed or frozenset()
        self._files_read = Metrics.counter("haulage", "files_read")
        self._files_skipped = Metrics.counter("haulage", "units_skipped." + FILE)

    def setup(self) -> None:
        tune_gc()
        self._progress = Progress(self._total_files, self._total_bytes)
        self._cpu = StageCpu(Counters(), "read")
        self._seen: set[str] = set()

    def start_bundle(self) -> None:
        self._seen = set()

    def _skip(self, unit_id: str) -> bool:
        if unit_id in self._committed or unit_id in self._seen:
            self._files_skipped.inc()
            return True
        self._seen.add(unit_id)
        return False

    def process(self, item: InputFile) -> Iterator[Chunk]:
        cpu = self._cpu
        started = cpu.now()
        for chunk in read_file(
            item.path, self._received_at, self._chunk_lines, item.size, self._label_prefix, self._skip, self._chunk_bytes
        ):
            cpu.add_since(started)  # what the chunk costs downstream is the parser's and the sink's
            yield chunk
            started = cpu.now()
            self._progress.add(lines=sum(len(b.lines) for b in chunk))
        self._files_read.inc()
        self._progress.add(files=1, nbytes=item.size)
        cpu.add_since(started)

    def teardown(self) -> None:
        progress = getattr(self, "_progress", None)
        if progress is not None and progress.files:
            progress.add(force=True)


class ReadLogFiles(beam.PTransform):
    """Listed input files → chunks of raw lines, files spread across workers.

    A chunk holds at most ``chunk_lines`` lines and about ``chunk_bytes``
    bytes of lines, so what a worker holds per chunk is bounded by bytes
    whatever the lines look like. Files whose unit id is in ``committed``
    (the output's ledger) are skipped.
    """

    def __init__(
        self,
        files: Sequence[InputFile],
        chunk_lines: int = 20000,
        label_prefix: str = "",
        committed: Optional[frozenset[str]] = None,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> None:
        super().__init__()
        self._files = list(files)
        self._chunk_lines = chunk_lines
        self._chunk_bytes = chunk_bytes
        self._label_prefix = label_prefix
        self._committed = committed

    def expand(self, pbegin):
        """Input files → chunks of lines (files the output already holds are skipped)."""
        received_at = iso_from_epoch(int(time.time()))
        total_bytes = sum(f.size for f in self._files)
        return (
            pbegin
            | "ListFiles" >> beam.Create(self._files)
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadFiles" >> beam.ParDo(ReadFileFn(
                len(self._files), total_bytes, self._chunk_lines, received_at, self._label_prefix, self._committed,
                self._chunk_bytes,
            )).with_output_types(Chunk)
        )
