"""Which log file is this? An identity that does not depend on its name.

Rule: a file's identity is a hash of its size and of its first and last
64 KiB **as stored** (for gzip files: the compressed bytes). The event ids of
its lines are ``<16 hex of that hash>-<line number>``, and the ledgers record
the file as ingested under the same 16 hex digits.

So the same file gets the same ids whichever glob matched it, from any
working directory, read from the bucket or from a local copy (Beam reads
``gs://`` objects raw, never transcoded), and under any other name; two files
with different bytes get different ids. Why not the whole content: reading a
file twice (once to name it, once to parse it) would double the I/O; head,
tail and size separate any two real log files (they differ in their first
line already) while costing two small reads. Files up to 128 KiB are hashed
whole.

Assumption, stated in the README: **log files are immutable once written** —
CDN log objects are never appended to or rewritten. A file that grows or is
re-compressed is a different file (other bytes) and would be ingested again;
a file copied byte for byte is the same file and is not.
"""

from __future__ import annotations

import hashlib
import os
from typing import BinaryIO, Optional

from ...parsers import Origin

__all__ = ["SAMPLE_BYTES", "file_key", "file_origin", "file_size"]

SAMPLE_BYTES = 64 * 1024
_DOMAIN = b"haulage file identity v1\n"


def _read_exactly(stream: BinaryIO, n: int) -> bytes:
    parts, left = [], n
    while left > 0:
        data = stream.read(left)
        if not data:
            break
        parts.append(data)
        left -= len(data)
    return b"".join(parts)


def file_key(stream: BinaryIO, size: int) -> str:
    """16 hex digits naming the file whose raw bytes ``stream`` reads (``size`` bytes)."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(_DOMAIN)
    digest.update(str(size).encode() + b"\n")
    digest.update(_read_exactly(stream, SAMPLE_BYTES))
    if size > 2 * SAMPLE_BYTES:
        stream.seek(size - SAMPLE_BYTES)
    elif size > SAMPLE_BYTES:
        stream.seek(SAMPLE_BYTES)
    if size > SAMPLE_BYTES:
        digest.update(b"\n--tail--\n")
        digest.update(_read_exactly(stream, SAMPLE_BYTES))
    return digest.hexdigest()


def file_size(path: str) -> int:
    """Bytes of a local file or of an object on any Beam filesystem."""
    if "://" not in path:
        return os.stat(path).st_size
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.match([path])[0].metadata_list[0].size_in_bytes


def file_origin(path: str, size: Optional[int] = None, label_prefix: str = "") -> tuple[Origin, int]:
    """The origin of ``path``'s lines (label: the path; key: :func:`file_key`) and its size.

    Raises ``OSError`` (or the filesystem's own error) when the file cannot be read.
    """
    from .files import open_binary

    if size is None:
        size = file_size(path)
    with open_binary(path) as stream:
        key = file_key(stream, size)
    return Origin(label_prefix + path, key), size
