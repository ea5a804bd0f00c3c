"""Batch input: globs (local or ``gs://``) to chunks of raw lines.

Files are listed in the driver, spread over workers with a Reshuffle, and each
is read as a stream (never whole into memory). A damaged or empty file
yields what could be read plus one fault: it never fails the run.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import BinaryIO, Callable, Iterator, Optional, Sequence

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from haulage.parsers import Origin
from haulage.parsers.framing import FileFault, iter_line_batches
from haulage.parsers.lines import event_key
from haulage.parsers.timestamps import iso_from_epoch

from .elements import FILE, Chunk, LineBatch, SourceUnit, tune_gc
from .progress import Progress
from .source_identity import file_origin

_LOG = logging.getLogger("haulage")


class InputError(ValueError):
    """An --input pattern that cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class InputFile:
    """A file to read. Its identity (for event ids and the ledger) comes from
    its content when it is read: see :mod:`source_identity`."""

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


def read_chunks(path: str, received_at: str, chunk_lines: int, origin: Origin, size: int) -> Iterator[Chunk]:
    """A file as chunks of about ``chunk_lines`` lines; its fault and its unit ride on the last chunk."""
    pending = Chunk()
    pending_lines = total_lines = faults = 0
    try:
        stream = open_binary(path)
    except Exception as exc:
        yield unreadable_chunk(path, received_at, exc)
        return
    with stream:
        for item in iter_line_batches(stream, path):
            if isinstance(item, FileFault):
                pending.append(LineBatch(origin, item.position, [], received_at, item))
                faults += 1
                break
            first_position, lines = item
            pending.append(LineBatch(origin, first_position, lines, received_at))
            pending_lines += len(lines)
            total_lines += len(lines)
            if pending_lines >= chunk_lines:
                yield pending
                pending, pending_lines = Chunk(), 0
    if not pending:
        pending.append(LineBatch(origin, total_lines + 1, [], received_at))
    pending[-1].finished = SourceUnit(origin.key, FILE, origin.label, size, total_lines, faults)
    yield pending


def read_file(
    path: str,
    received_at: str,
    chunk_lines: int,
    size: Optional[int] = None,
    label_prefix: str = "",
    skip: Optional[Callable[[str], bool]] = None,
) -> Iterator[Chunk]:
    """A file named by its content (:func:`source_identity.file_origin`) as chunks.

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
    yield from read_chunks(path, received_at, chunk_lines, origin, size)


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
    ) -> None:
        self._label_prefix = label_prefix
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
        for chunk in read_file(item.path, self._received_at, self._chunk_lines, item.size, self._label_prefix, self._skip):
            yield chunk
            self._progress.add(lines=sum(len(b.lines) for b in chunk))
        self._files_read.inc()
        self._progress.add(files=1, nbytes=item.size)

    def teardown(self) -> None:
        progress = getattr(self, "_progress", None)
        if progress is not None and progress.files:
            progress.add(force=True)


class ReadLogFiles(beam.PTransform):
    """Listed input files → chunks of raw lines, files spread across workers.

    Files whose unit id is in ``committed`` (the output's ledger) are skipped.
    """

    def __init__(
        self,
        files: Sequence[InputFile],
        chunk_lines: int = 20000,
        label_prefix: str = "",
        committed: Optional[frozenset[str]] = None,
    ) -> None:
        super().__init__()
        self._files = list(files)
        self._chunk_lines = chunk_lines
        self._label_prefix = label_prefix
        self._committed = committed

    def expand(self, pbegin):
        received_at = iso_from_epoch(int(time.time()))
        total_bytes = sum(f.size for f in self._files)
        return (
            pbegin
            | "ListFiles" >> beam.Create(self._files)
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadFiles" >> beam.ParDo(ReadFileFn(len(self._files), total_bytes, self._chunk_lines, received_at, self._label_prefix, self._committed)).with_output_types(Chunk)
        )
