"""One small grammar per log-format version, chosen by the line's own prefix.

Every grammar splits its message into the same nine fields, so one row
builder serves all versions::

    (timestamp, country, url, tls_protocol, tls_cipher, project, version, package_type, user_agent)

Formats (log-formats.md):

* current ``download|TS|CC|URL|TLSP|TLSC|PROJECT|VERSION|TYPE|AGENT`` and
  ``simple|TS|CC|URL|TLSP|TLSC||||AGENT`` — the agent is the rest of the line
  and may itself contain ``|``, hence a bounded split;
* legacy syslog ``<PRI>TS HOST APP[PID]: MESSAGE`` where MESSAGE is
  ``1@`` or unprefixed v1 (7 fields, no TLS), ``2@`` v2 (9 fields), or
  ``3@`` followed by a current line.
"""

from __future__ import annotations

from typing import Optional

__all__ = [
    "DOWNLOAD", "SIMPLE", "Rejected", "split_current", "split_v1", "split_v2", "unwrap_syslog",
    "split_message", "split_line",
]


DOWNLOAD = "file_downloads"
SIMPLE = "simple_requests"

Fields = tuple[str, str, str, Optional[str], Optional[str], str, str, str, str]

_WEEKDAY_PREFIXES = ("Mon, ", "Tue, ", "Wed, ", "Thu, ", "Fri, ", "Sat, ", "Sun, ")


class Rejected(Exception):
    """A line that cannot become a row: a stable reason code and a human detail."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _too_few(version: str, expected: int, got: int) -> Rejected:
    return Rejected("too-few-fields", f"{version} line has {got} of {expected} '|'-separated fields")


def split_current(text: str) -> tuple[str, Fields]:
    """``download|…`` or ``simple|…`` (10 fields, the agent last)."""
    fields = text.split("|", 9)
    if len(fields) != 10:
        raise _too_few("current-format", 10, len(fields))
    event, ts, cc, url, tlsp, tlsc, project, version, ptype, agent = fields
    return (DOWNLOAD if event == "download" else SIMPLE), (ts, cc, url, tlsp, tlsc, project, version, ptype, agent)


def split_v1(message: str) -> Fields:
    """``TS|CC|URL|PROJECT|VERSION|TYPE|AGENT`` — no TLS fields yet."""
    fields = message.split("|", 6)
    if len(fields) != 7:
        raise _too_few("v1", 7, len(fields))
    ts, cc, url, project, version, ptype, agent = fields
    return ts, cc, url, None, None, project, version, ptype, agent


def split_v2(message: str) -> Fields:
    """``TS|CC|URL|TLSP|TLSC|PROJECT|VERSION|TYPE|AGENT``."""
    fields = message.split("|", 8)
    if len(fields) != 9:
        raise _too_few("v2", 9, len(fields))
    ts, cc, url, tlsp, tlsc, project, version, ptype, agent = fields
    return ts, cc, url, tlsp, tlsc, project, version, ptype, agent


def unwrap_syslog(text: str) -> str:
    """The MESSAGE of ``<PRI>TIMESTAMP HOSTNAME APPNAME[PROCID]: MESSAGE``."""
    close = text.find(">", 1, 5)
    if close < 2 or not text[1:close].isdigit():
        raise Rejected("bad-syslog-header", "no <PRI> at the start of a syslog line")
    end = text.find("]: ", close)
    header = text[close + 1 : end + 1] if end > 0 else ""
    if end < 0 or header.count(" ") != 2 or "[" not in header.rsplit(" ", 1)[1]:
        raise Rejected("bad-syslog-header", "expected '<PRI>TIMESTAMP HOST APP[PID]: MESSAGE'")
    return text[end + 3 :]


def split_message(message: str) -> tuple[str, Fields]:
    """Dispatch a (syslog) message on its version prefix."""
    head = message[:2]
    if head == "3@":
        inner = message[2:]
        if inner.startswith(("download|", "simple|")):
            return split_current(inner)
        raise Rejected("unknown-format", "v3 message is neither download| nor simple|")
    if head == "2@":
        return DOWNLOAD, split_v2(message[2:])
    if head == "1@":
        return DOWNLOAD, split_v1(message[2:])
    if message.startswith(("download|", "simple|")):
        return split_current(message)
    if message.startswith(_WEEKDAY_PREFIXES):
        return DOWNLOAD, split_v1(message)
    raise Rejected("unknown-format", "no known format or version prefix (download|, simple|, <PRI>, 1@, 2@, 3@)")


def split_line(text: str) -> tuple[str, Fields]:
    """Any supported line, current or legacy, to ``(table, fields)``."""
    if text.startswith(("download|", "simple|")):
        return split_current(text)
    if text.startswith("<"):
        return split_message(unwrap_syslog(text))
    return split_message(text)
