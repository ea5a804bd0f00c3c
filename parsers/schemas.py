"""The three output tables, defined once.

This module is the single definition that feeds the pipeline's Parquet and
BigQuery writers, ``haulage setup`` (table creation and column additions),
the checked-in JSON schemas under ``deploy/schemas/`` and the column tables in
the docs. Column order and names follow ../shared/docs/schema.md: the first
columns of ``file_downloads`` match PyPI's public table so existing queries
run unchanged; the extensions come after.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

DOWNLOADS = "file_downloads"
SIMPLE = "simple_requests"
UNPROCESSED = "unprocessed"
TABLE_NAMES = (DOWNLOADS, SIMPLE, UNPROCESSED)


@dataclass(frozen=True)
class Column:
    """One (possibly nested) column: BigQuery standard-SQL type names."""

    name: str
    type: str  # STRING | TIMESTAMP | BOOLEAN | INTEGER (INT64) | RECORD
    mode: str = "NULLABLE"  # NULLABLE | REQUIRED
    description: str = ""
    fields: tuple["Column", ...] = ()

    def to_bigquery(self) -> dict[str, Any]:
        """The column as a BigQuery REST ``TableFieldSchema`` dict."""
        out: dict[str, Any] = {"name": self.name, "type": self.type, "mode": self.mode}
        if self.description:
            out["description"] = self.description
        if self.fields:
            out["fields"] = [f.to_bigquery() for f in self.fields]
        return out


def _s(name: str, description: str = "", mode: str = "NULLABLE") -> Column:
    return Column(name, "STRING", mode, description)


def _record(name: str, description: str, *fields: Column, mode: str = "NULLABLE") -> Column:
    return Column(name, "RECORD", mode, description, tuple(fields))


DETAILS = _record(
    "details",
    "What the user agent says; null when the agent was not recognised or is a known bot.",
    _record("installer", "Installing client.", _s("name"), _s("version"),
            _s("subcommand", "Extension: the client's subcommand joined like a command line, e.g. 'pip install'.")),
    _s("python", "Python language version."),
    _record("implementation", "Python implementation.", _s("name"), _s("version")),
    _record("distro", "Operating-system distribution.", _s("name"), _s("version"), _s("id"),
            _record("libc", "C library.", _s("lib"), _s("version"))),
    _record("system", "Operating system.", _s("name"), _s("release")),
    _s("cpu"),
    _s("openssl_version"),
    _s("setuptools_version"),
    _s("rustc_version"),
    Column("ci", "BOOLEAN", description="As the client sent it: TRUE or NULL."),
    _s("user_data", "Extension: pip's PIP_USER_AGENT_USER_DATA, truncated to 512 characters."),
)

CLASSIFICATION = _record(
    "classification",
    "Extension: who sent the request and what kind of traffic it is.",
    _s("kind", "installer | mirror | browser | script | os | bot | unknown", mode="REQUIRED"),
    _s("traffic", "mirror | ci | automation | human | unknown (in that precedence).", mode="REQUIRED"),
    Column("mirror", "BOOLEAN", "REQUIRED", "traffic = 'mirror'."),
    Column("ci", "BOOLEAN", "REQUIRED", "details.ci IS TRUE; never null."),
    _s("cloud", "aws | azure | gcp | oracle | ibm, inferred from the kernel release or distro; null when unknown."),
    mode="REQUIRED",
)

_COMMON_HEAD = (
    Column("timestamp", "TIMESTAMP", "REQUIRED", "When the CDN served the request (UTC); partition column."),
    _s("country_code", "ISO 3166-1 alpha-2 from the CDN's geo lookup; null when unknown."),
    _s("url", "Request path."),
)
_USER_AGENT = _s("user_agent", "Extension: the raw user agent, kept only when details is null, cut to its first 8,192 characters.")
_EVENT_ID = _s("event_id", "Extension: deterministic id of the source line (same input, same id).", mode="REQUIRED")
_TLS = (_s("tls_protocol"), _s("tls_cipher"))
# Last, so that a table migrated by haulage setup (new columns are appended)
# has the same column order as one created from scratch.
_AGENT_FINGERPRINT = Column(
    "agent_fingerprint", "INTEGER", description=(
        "Extension: signed INT64 of the first 8 bytes (little-endian) of BLAKE2b-64 of the raw user agent "
        "(UTF-8); null when the agent is missing. Tells client environments apart without keeping the agent."))

TABLES: dict[str, tuple[Column, ...]] = {
    DOWNLOADS: (
        *_COMMON_HEAD,
        _s("project", "Project name from the file's metadata; clustering column."),
        _record("file", "The downloaded file.", _s("filename"), _s("project"), _s("version"), _s("type")),
        DETAILS,
        *_TLS,
        CLASSIFICATION,
        _USER_AGENT,
        _EVENT_ID,
        _AGENT_FINGERPRINT,
    ),
    SIMPLE: (
        *_COMMON_HEAD,
        _s("project", "Project from /simple/<project>/, PEP 503-normalized; clustering column."),
        *_TLS,
        DETAILS,
        CLASSIFICATION,
        _USER_AGENT,
        _EVENT_ID,
        _AGENT_FINGERPRINT,
    ),
    UNPROCESSED: (
        Column("received_at", "TIMESTAMP", "REQUIRED", "When the pipeline read the line; partition column."),
        _s("source", "File path and line number, or subscription#message id and line number."),
        _s("line", "The raw line; bytes that are not UTF-8 kept as \\xNN escapes."),
        _s("error", "Stable reason code, a colon, then detail."),
    ),
}

PARTITION_COLUMN: dict[str, str] = {DOWNLOADS: "timestamp", SIMPLE: "timestamp", UNPROCESSED: "received_at"}
CLUSTERING: dict[str, tuple[str, ...]] = {DOWNLOADS: ("project",), SIMPLE: ("project",), UNPROCESSED: ()}
DESCRIPTIONS: dict[str, str] = {
    DOWNLOADS: "One row per download line. Compatible with bigquery-public-data.pypi.file_downloads.",
    SIMPLE: "One row per simple-API page request.",
    UNPROCESSED: "Dead letter: every input line that could not become a row, with why.",
}


def bigquery_schema(table: str) -> list[dict[str, Any]]:
    """REST-style schema (list of TableFieldSchema dicts) for ``table``."""
    return [c.to_bigquery() for c in TABLES[table]]


def column_names(table: str) -> tuple[str, ...]:
    return tuple(c.name for c in TABLES[table])


def arrow_schema(table: str) -> "Any":
    """The pyarrow schema of the Parquet files (timestamps in µs, UTC)."""
    import pyarrow as pa

    def arrow_type(column: Column) -> Any:
        if column.type == "RECORD":
            return pa.struct([arrow_field(f) for f in column.fields])
        return {"STRING": pa.string(), "BOOLEAN": pa.bool_(), "INTEGER": pa.int64(),
                "TIMESTAMP": pa.timestamp("us", tz="UTC")}[column.type]

    def arrow_field(column: Column) -> Any:
        return pa.field(column.name, arrow_type(column), nullable=column.mode != "REQUIRED")

    return pa.schema([arrow_field(c) for c in TABLES[table]])


def markdown_table(table: str) -> str:
    """The column list as a Markdown table, for docs generated from the code."""
    lines = ["| column | type | mode | description |", "|---|---|---|---|"]

    def walk(columns: tuple[Column, ...], prefix: str) -> None:
        for c in columns:
            description = c.description.replace("|", "\\|")  # a bare | would end the cell
            lines.append(f"| {prefix}{c.name} | {c.type} | {c.mode} | {description} |")
            walk(c.fields, f"{prefix}{c.name}.")

    walk(TABLES[table], "")
    return "\n".join(lines)


def find_column(table: str, dotted: str) -> Optional[Column]:
    columns: tuple[Column, ...] = TABLES[table]
    found: Optional[Column] = None
    for part in dotted.split("."):
        found = next((c for c in columns if c.name == part), None)
        if found is None:
            return None
        columns = found.fields
    return found


# --------------------------------------------------------------------------
# haulage's own bookkeeping tables (not data: no views, no docs section)

LEDGER = "_haulage_ledger"
LEDGER_COLUMNS: tuple[Column, ...] = (
    _s("unit_id", "16 hex digits naming the unit: the event-id key of its lines.", "REQUIRED"),
    _s("kind", "file | message", "REQUIRED"),
    _s("source", "Where it was read: a path, an object, or subscription#message id."),
    Column("size", "INTEGER", "NULLABLE", "Bytes of the file or message as stored."),
    Column("lines", "INTEGER", "NULLABLE", "Lines it held."),
    Column("faults", "INTEGER", "NULLABLE", "File-level faults (0 or 1)."),
    _s("commit_id", "The load batch (or replay) that committed it."),
    _s("run_id", "The haulage run that committed it."),
    Column("committed_at", "TIMESTAMP", "REQUIRED", "When it was committed; partition column."),
)
LEDGER_DESCRIPTION = (
    "haulage's ledger: one row per ingested unit (log file or Pub/Sub message). A unit listed here is "
    "skipped when read again; written in the same load batch as the unit's rows."
)

LOCKS = "_haulage_locks"
LOCK_COLUMNS: tuple[Column, ...] = (
    _s("name", "What is locked, e.g. 'replay'.", "REQUIRED"),
    _s("holder", "Who holds it (a random id per replay).", "REQUIRED"),
    Column("expires", "TIMESTAMP", "REQUIRED", "The lock is free after this time unless renewed."),
)
LOCKS_DESCRIPTION = "haulage's locks: one replay at a time per dataset."


def bookkeeping_schema(table: str) -> list[dict[str, Any]]:
    columns = {LEDGER: LEDGER_COLUMNS, LOCKS: LOCK_COLUMNS}[table]
    return [c.to_bigquery() for c in columns]
