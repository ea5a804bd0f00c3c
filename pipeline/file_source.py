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
from typing import BinaryIO, Iterator, Optional, Sequence

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from haulage.parsers import Origin
from haulage.parsers.framing import FileFault, iter_line_batches
from haulage.parsers.timestamps import iso_from_epoch

from .elements import Chunk, LineBatch, tune_gc
from .progress import Progress

_LOG = logging.getLogger("haulage")


class InputError(ValueError):
    """An --input pattern that cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class InputFile:
    """A file to read; ``identity`` names it for event ids (see Origin.for_file)."""

    path: str
    size: int
    identity: str


_GLOB_CHARS = "*?["


def pattern_root(pattern: str) -> str:
    """The fixed folder a glob starts from: ``logs/2026-*/x.gz`` → ``logs/``."""
    cut = min((i for i in (pattern.find(c) for c in _GLOB_CHARS) if i >= 0), default=len(pattern))
    return pattern[: pattern.rfind("/", 0, cut) + 1]


def identity_below(root: str, path: str) -> str:
    """``path`` relative to ``root``; the base name when it is not below it."""
    if root and path.startswith(root):
        return path[len(root) :]
    return path.rstrip("/").rsplit("/", 1)[-1]


def expand_inputs(patterns: Sequence[str]) -> list[InputFile]:
    """Every file the patterns match, sorted, each once; an empty match is an error.

    Two different files with the same identity would share event ids, so
    that is refused with the way out in the message.
    """
    found: dict[str, InputFile] = {}
    for given in patterns:
        # Beam's local filesystem matches nothing for a pattern without a
        # folder ('*.gz'); absolute patterns also make roots unambiguous.
        pattern = given if "://" in given else os.path.abspath(os.path.expanduser(given))
        try:
            results = FileSystems.match([pattern])[0].metadata_list
        except Exception as exc:  # Beam wraps every filesystem error in its own types
            raise InputError(f"--input {given!r}: cannot list files: {exc}") from None
        files = [m for m in results if not m.path.endswith("/")]
        if not files:
            raise InputError(f"--input {given!r} matches no files (quote globs so the shell does not expand them)")
        root = pattern_root(pattern)
        for m in files:
            found.setdefault(m.path, InputFile(m.path, m.size_in_bytes, identity_below(root, m.path)))
    by_identity: dict[str, str] = {}
    for item in found.values():
        other = by_identity.setdefault(item.identity, item.path)
        if other != item.path:
            raise InputError(
                f"{other} and {item.path} would get the same event ids (both are {item.identity!r} below their "
                "--input folder); give one pattern from a folder above both, e.g. 'logs/*/*.gz'"
            )
    return sorted(found.values(), key=lambda f: f.path)


def open_binary(path: str) -> BinaryIO:
    """A raw byte stream for a local path or any Beam filesystem (gs://)."""
    if "://" not in path:
        return open(path, "rb")
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


DEFAULT_CHUNK_BYTES = 4 << 20
"""Raw line bytes per chunk: with ``--chunk-lines`` the bound on what one unit of work holds."""


def read_chunks(
    path: str,
    received_at: str,
    chunk_lines: int,
    label_prefix: str = "",
    identity: Optional[str] = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> Iterator[Chunk]:
    """A file as chunks of at most ``chunk_lines`` lines and about ``chunk_bytes`` bytes of lines.

    A chunk is closed as soon as either bound is reached (a chunk holds at
    least one line, so a single line is never split; framing bounds a line
    at 64 KiB). Faults ride on the chunk where they occur, in file order,
    and reading goes on after them. ``label_prefix`` marks where dead
    letters came from (a replay names itself there); event ids depend only
    on the file's name.
    """
    origin = Origin.for_file(path, identity)
    if label_prefix:
        origin = Origin(label_prefix + origin.label, origin.key)
    try:
        stream = open_binary(path)
    except Exception as exc:
        yield Chunk([LineBatch(origin, 1, [], received_at, FileFault("unreadable-file", f"{path}: cannot open: {exc}", 1))])
        return
    pending = Chunk()
    room_lines, room_bytes = chunk_lines, chunk_bytes
    with stream:
        for item in iter_line_batches(stream, path):
            if isinstance(item, FileFault):
                pending.append(LineBatch(origin, item.position, [], received_at, item))
                room_bytes -= len(item.partial) + len(item.raw)
            else:
                position, lines = item
                while lines:
                    take, size = _lines_that_fit(lines, room_lines, room_bytes)
                    part = lines if take == len(lines) else lines[:take]
                    pending.append(LineBatch(origin, position, part, received_at))
                    room_lines -= take
                    room_bytes -= size
                    position += take
                    lines = lines[take:] if take < len(lines) else []
                    if room_lines <= 0 or room_bytes <= 0:
                        yield pending
                        pending, room_lines, room_bytes = Chunk(), chunk_lines, chunk_bytes
                continue
            if room_bytes <= 0:
                yield pending
                pending, room_lines, room_bytes = Chunk(), chunk_lines, chunk_bytes
    if pending:
        yield pending


def _lines_that_fit(lines: list[bytes], room_lines: int, room_bytes: int) -> tuple[int, int]:
    """How many of ``lines`` (from the first) fit the room left, at least one; and their bytes."""
    take = min(len(lines), room_lines)
    size = sum(map(len, lines[:take])) if take < len(lines) else sum(map(len, lines))
    if size <= room_bytes:
        return take, size
    used = 0
    for count, line in enumerate(lines[:take]):
        if count and used + len(line) > room_bytes:
            return count, used
        used += len(line)
    return take, used


class ReadFileFn(beam.DoFn):
    def __init__(
        self, total_files: int, total_bytes: int, chunk_lines: int, received_at: str, label_prefix: str = "",
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> None:
        self._label_prefix = label_prefix
        self._chunk_bytes = chunk_bytes
        self._total_files = total_files
        self._total_bytes = total_bytes
        self._chunk_lines = chunk_lines
        self._received_at = received_at
        self._files_read = Metrics.counter("haulage", "files_read")

    def setup(self) -> None:
        tune_gc()
        self._progress = Progress(self._total_files, self._total_bytes)

    def process(self, item: InputFile) -> Iterator[Chunk]:
        for chunk in read_chunks(
            item.path, self._received_at, self._chunk_lines, self._label_prefix, item.identity, self._chunk_bytes
        ):
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

    A chunk holds at most ``chunk_lines`` lines and about ``chunk_bytes``
    bytes of lines, so what a worker holds per chunk is bounded by bytes
    whatever the lines look like.
    """

    def __init__(
        self, files: Sequence[InputFile], chunk_lines: int = 20000, label_prefix: str = "",
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    ) -> None:
        super().__init__()
        self._files = list(files)
        self._chunk_lines = chunk_lines
        self._chunk_bytes = chunk_bytes
        self._label_prefix = label_prefix

    def expand(self, pbegin):
        received_at = iso_from_epoch(int(time.time()))
        total_bytes = sum(f.size for f in self._files)
        return (
            pbegin
            | "ListFiles" >> beam.Create(self._files)
            | "SpreadFiles" >> beam.Reshuffle()
            | "ReadFiles" >> beam.ParDo(ReadFileFn(
                len(self._files), total_bytes, self._chunk_lines, received_at, self._label_prefix, self._chunk_bytes
            )).with_output_types(Chunk)
        )
