"""One CDN log line → one :class:`Record` for ``file_downloads``,
``simple_requests`` or the ``unprocessed`` dead letter. Never raises.

The hot path is deliberately flat: a bounded ``split``, a memoised timestamp,
an LRU-cached agent, and one dict per row whose nested ``details`` and
``classification`` are shared with every other row of the same agent.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Iterable, NamedTuple, Optional, Union

from packaging.utils import canonicalize_name

from .agents import DEFAULT_AGENT_CACHE_SIZE, AgentCache, AgentResult
from .framing import MAX_FAULT_RAW_BYTES, MAX_LINE_BYTES, FileFault
from .grammar import DOWNLOAD, SIMPLE, Rejected, split_line
from .timestamps import BadTimestamp, TimestampCache, iso_from_epoch

__all__ = [
    "UNPROCESSED", "TABLES", "PACKAGE_TYPES", "REASONS", "event_key", "Origin", "Record", "dead_letter",
    "fault_dead_letter", "escape_binary", "decode_escaped", "LineParser",
]


UNPROCESSED = "unprocessed"
TABLES = (DOWNLOAD, SIMPLE, UNPROCESSED)

PACKAGE_TYPES = frozenset(
    {"sdist", "bdist_wheel", "bdist_egg", "bdist_wininst", "bdist_msi", "bdist_rpm", "bdist_dmg", "bdist_dumb"}
)

REASONS = (
    "empty-line",
    "line-too-long",
    "bad-utf8",
    "unknown-format",
    "bad-syslog-header",
    "too-few-fields",
    "bad-timestamp",
    "null-timestamp",
    "null-url",
    "null-project",
    "null-version",
    "null-package-type",
    "bad-package-type",
    "bad-simple-url",
    # file-level, reported by the readers
    "bad-gzip",
    "truncated-gzip",
    "empty-file",
    "unreadable-file",
    # from the sources and sinks
    "empty-message",
    "bigquery-rejected",
)

_NULLS = frozenset({"(null)", ""})


def event_key(identity: str) -> str:
    """16 hex digits naming a source; computed once per file or message."""
    return hashlib.blake2b(identity.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class Origin:
    """Where lines come from: ``label`` for humans, ``key`` for event ids.

    A file's key derives from its *identity*: its path below the root the
    caller read it from (for ``--input 'logs/*/*.gz'`` the part below
    ``logs/``; for a Cloud Storage notification the object name), defaulting
    to the base name. So the same archive read from the bucket or from a local
    copy of it gives the same event ids, while ``2026-10-01/00.log.gz`` and
    ``2026-10-02/00.log.gz`` stay distinct.
    """

    label: str
    key: str

    @classmethod
    def for_file(cls, path: str, identity: Optional[str] = None) -> "Origin":
        """The origin of a file's lines: labelled by its path, keyed by ``identity`` (its content id; the file name if None)."""
        if identity is None:
            identity = path.rstrip("/").rsplit("/", 1)[-1]
        return cls(path, event_key("file:" + identity))

    @classmethod
    def for_message(cls, subscription: str, message_id: str) -> "Origin":
        """The origin of a Pub/Sub message's lines: ``<subscription>#<message id>``, keyed by that label."""
        label = f"{subscription}#{message_id}"
        return cls(label, event_key("pubsub:" + label))


class Record(NamedTuple):
    """One parsed line: its table, the row as a dict, and its timestamp in epoch seconds (None for dead letters without one)."""

    table: str
    row: dict[str, Any]
    epoch: Optional[int]


def dead_letter(source: str, line: str, reason: str, detail: str, received_at: Optional[str] = None) -> Record:
    """An ``unprocessed`` record; also used by readers for file-level faults."""
    return Record(
        UNPROCESSED,
        {
            "received_at": received_at or _now_iso(),
            "source": source,
            "line": line,
            "error": f"{reason}: {detail}",
        },
        None,
    )


def fault_dead_letter(origin: Origin, fault: FileFault, received_at: Optional[str] = None) -> Record:
    """The dead letter of a damaged region or an empty file.

    ``line`` is the cut line (its first ``MAX_LINE_BYTES``, escaped like any
    line) followed by the region's first ``MAX_FAULT_RAW_BYTES`` raw bytes with
    every byte outside printable ASCII, and the backslash, written ``\\xNN``
    (compressed data is binary); the detail says how many bytes of each.
    """
    partial, raw = fault.partial[:MAX_LINE_BYTES], fault.raw[:MAX_FAULT_RAW_BYTES]
    detail = fault.detail
    if raw:
        detail += f"; line holds the cut line ({len(partial)} bytes) then the region's first {len(raw)} raw bytes"
    return dead_letter(
        f"{origin.label}:{fault.position}", decode_escaped(partial) + escape_binary(raw), fault.reason, detail, received_at
    )


def _now_iso() -> str:
    import time

    return iso_from_epoch(int(time.time()))


_BINARY_ESCAPES = tuple(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else f"\\x{b:02x}" for b in range(256))


def escape_binary(raw: bytes) -> str:
    """Binary bytes as ASCII text: printable ASCII as is, every other byte (and ``\\``) as ``\\xNN``."""
    return "".join(map(_BINARY_ESCAPES.__getitem__, raw))


def decode_escaped(raw: bytes) -> str:
    """Bytes as text with every non-UTF-8 byte kept as a ``\\xNN`` escape."""
    return raw.decode("utf-8", "backslashreplace")


def _download_row(
    country: str, url: str, tls_protocol: Optional[str], tls_cipher: Optional[str], project: str, version: str,
    package_type: str, user_agent: str, iso: str, agent: AgentResult, key: str, position: int,
) -> dict[str, Any]:
    """The file_downloads row, keys in the order of schema.md (what NDJSON output shows)."""
    details = agent.details
    return {
        "timestamp": iso,
        "country_code": None if country in _NULLS else country,
        "url": url,
        "project": project,
        "file": {"filename": url.rpartition("/")[2], "project": project, "version": version, "type": package_type},
        "details": details,
        "tls_protocol": None if tls_protocol in _NULLS else tls_protocol,
        "tls_cipher": None if tls_cipher in _NULLS else tls_cipher,
        "classification": agent.classification,
        "user_agent": agent.user_agent,
        "event_id": f"{key}-{position}",
        "agent_fingerprint": agent.fingerprint,
    }


class LineParser:
    """Parses lines with shared caches; one per worker thread (not thread-safe)."""

    def __init__(self, agent_cache_size: int = DEFAULT_AGENT_CACHE_SIZE) -> None:
        self.agents = AgentCache(agent_cache_size)
        self._timestamps = TimestampCache()
        self._simple_projects: dict[str, Optional[str]] = {}

    @property
    def cache_hits(self) -> int:
        """Agent cache hits so far (for the run summary's hit rate)."""
        return self.agents.hits

    @property
    def cache_misses(self) -> int:
        """Agent cache misses so far: agents parsed."""
        return self.agents.misses

    def parse(
        self, raw: Union[bytes, str], origin: Origin, position: int, received_at: Optional[str] = None
    ) -> Record:
        """One line (bytes, or str) at ``position`` of ``origin`` → a row of its table, or a dead letter.

        The rules, in order: longer than MAX_LINE_BYTES → ``line-too-long``; not valid
        UTF-8 → ``bad-utf8``; empty → ``empty-line``; then the grammar of its log
        format version, the timestamp and the required fields, each failure a dead
        letter whose reason says which rule the line broke. Never raises on input: a
        line becomes exactly one record, so lines read = rows + dead letters.
        """
        if type(raw) is bytes:
            if len(raw) > MAX_LINE_BYTES:
                return self._too_long(raw, origin, position, received_at)
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return self._reject(raw, origin, position, received_at, "bad-utf8", f"invalid UTF-8 at byte {exc.start}")
        else:
            text = raw
            try:
                encoded = text.encode("utf-8")
            except UnicodeEncodeError as exc:  # lone surrogates in a str
                return self._reject(text, origin, position, received_at, "bad-utf8", f"unencodable character at {exc.start}")
            if len(encoded) > MAX_LINE_BYTES:
                return self._too_long(encoded, origin, position, received_at)
        text = text.rstrip("\r\n")
        if not text:
            return self._reject(raw, origin, position, received_at, "empty-line", "line is empty")
        try:
            table, fields = split_line(text)
            return self._row(table, fields, origin, position)
        except Rejected as rejected:
            return self._reject(raw, origin, position, received_at, rejected.reason, rejected.detail)

    def parse_batch(
        self, lines: Iterable[Union[bytes, str]], origin: Origin, first_position: int = 1, received_at: Optional[str] = None
    ) -> list[Record]:
        """Parse consecutive lines of one source, numbered from ``first_position``: :meth:`parse` on each.

        A convenience for callers holding a list of lines (tests, benchmarks);
        the pipeline parses blocks with :class:`~haulage.parsers.columnar.ColumnarParser`.
        """
        parse = self.parse
        return [parse(raw, origin, position, received_at) for position, raw in enumerate(lines, first_position)]

    def _row(self, table: str, fields: tuple, origin: Origin, position: int) -> Record:
        ts, country, url, tls_protocol, tls_cipher, project, version, package_type, user_agent = fields
        try:
            epoch, iso = self._timestamps.get(ts)
        except BadTimestamp:
            if ts == "(null)" or not ts:
                raise Rejected("null-timestamp", "timestamp is missing") from None
            raise Rejected("bad-timestamp", f"{ts[:64]!r} is not an RFC 1123 GMT timestamp") from None
        if url in _NULLS:
            raise Rejected("null-url", "url is missing")
        agent = self.agents.get(user_agent)
        if table == DOWNLOAD:
            if project in _NULLS:
                raise Rejected("null-project", "download has no project")
            if version in _NULLS:
                raise Rejected("null-version", f"download of {project!r} has no version")
            if package_type not in PACKAGE_TYPES:
                if package_type in _NULLS:
                    raise Rejected("null-package-type", f"download of {project!r} has no package type")
                raise Rejected("bad-package-type", f"{package_type[:64]!r} is not a known package type")
            return Record(DOWNLOAD, _download_row(*fields[1:], iso, agent, origin.key, position), epoch)
        row = {
            "timestamp": iso,
            "country_code": None if country in _NULLS else country,
            "url": url,
            "project": self._simple_project(url),
            "tls_protocol": None if tls_protocol in _NULLS else tls_protocol,
            "tls_cipher": None if tls_cipher in _NULLS else tls_cipher,
            "details": agent.details,
            "classification": agent.classification,
            "user_agent": agent.user_agent,
            "event_id": f"{origin.key}-{position}",
            "agent_fingerprint": agent.fingerprint,
        }
        return Record(SIMPLE, row, epoch)

    def _simple_project(self, url: str) -> Optional[str]:
        try:
            return self._simple_projects[url]
        except KeyError:
            pass
        parts = url.split("/", 3)
        if len(parts) < 3 or parts[0] != "" or parts[1] != "simple":
            raise Rejected("bad-simple-url", f"{url[:128]!r} is not /simple/<project>/")
        project = canonicalize_name(parts[2]) if parts[2] else None
        if len(self._simple_projects) > 65536:
            self._simple_projects.clear()
        self._simple_projects[url] = project
        return project

    def _too_long(self, raw: bytes, origin: Origin, position: int, received_at: Optional[str]) -> Record:
        return self._reject(
            raw, origin, position, received_at, "line-too-long",
            f"longer than {MAX_LINE_BYTES} bytes; stored line cut to its first {MAX_LINE_BYTES} bytes",
        )

    @staticmethod
    def _reject(
        raw: Union[bytes, str], origin: Origin, position: int, received_at: Optional[str], reason: str, detail: str
    ) -> Record:
        if len(raw) > MAX_LINE_BYTES:
            raw = raw[:MAX_LINE_BYTES]
        line = decode_escaped(raw) if type(raw) is bytes else raw.encode("utf-8", "backslashreplace").decode("utf-8")
        return dead_letter(f"{origin.label}:{position}", line, reason, detail, received_at)
