"""The agent fingerprint: a compact, stable stand-in for the raw user agent.

Why: the raw agent is kept only for rows whose agent was not recognised, yet
"how many different client environments downloaded this" needs to tell
agents apart on every row. Eight bytes of an unkeyed BLAKE2b hash do that
(a collision among even five million distinct agents is under one in a
million likely) and fit an INT64 column in BigQuery and Parquet alike.

The rule (the ``agent_fingerprint`` column, docs/schema-extensions.md): the
signed 64-bit little-endian integer of ``blake2b(agent, digest_size=8)``
where ``agent`` is the user-agent field exactly as it appears in the log
line, encoded as UTF-8; NULL when the agent is missing (empty or ``(null)``).
No IP address exists in the logs and none is ever hashed or stored.
"""

from __future__ import annotations

import hashlib
from typing import Optional

__all__ = ["agent_fingerprint", "MISSING_AGENTS"]

MISSING_AGENTS = frozenset({"", "(null)"})
"""Agent fields that mean "no agent": their fingerprint is NULL."""


def agent_fingerprint(user_agent: str) -> Optional[int]:
    """The signed INT64 fingerprint of one raw agent, or None when the agent is missing."""
    if user_agent in MISSING_AGENTS:
        return None
    digest = hashlib.blake2b(user_agent.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)
