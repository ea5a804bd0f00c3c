"""User-agent parsing: family registry, bot list, and an LRU cache in front.

``parse_agent`` is pure and uncached; :class:`AgentCache` is what the line
parser uses, because real traffic repeats the same few thousand agents and a
cache hit costs a dictionary lookup instead of a regex walk and a JSON parse.

Parsing takes time linear in the agent's length whatever the agent (see
linear.py), and agents longer than :data:`MAX_AGENT_CHARS` are not parsed at
all: no client sends one, so they are ``unknown`` with the raw agent kept
truncated to that length.
"""

from __future__ import annotations

from typing import Any, Optional

from collections import OrderedDict

from ..classify import classify
from ..fingerprint import agent_fingerprint
from .bots import is_known_bot
from .families import REGISTRY, Family

__all__ = [
    "AgentResult",
    "AgentCache",
    "CACHED_AGENT_CHARS",
    "DEFAULT_AGENT_CACHE_SIZE",
    "MAX_AGENT_CHARS",
    "parse_agent",
    "REGISTRY",
    "Family",
]

DEFAULT_AGENT_CACHE_SIZE = 16384
"""Distinct agents kept parsed: real traffic repeats a few thousand."""

MAX_AGENT_CHARS = 8192
"""Longest agent handed to the family parsers, and longest raw agent kept in a row.

8 KiB is the per-header limit of a stock Varnish (``http_req_hdr_len``
defaults to 8k), the cache Fastly grew from, and the default header-value
limit of Fastly's Compute platform. Fastly's VCL platform, which writes
PyPI's logs, accepts up to 69 KB of request headers in total, so a longer
agent can reach a log line (haulage's line limit is 64 KiB), but no package
client sends one: real agents are under 2 KB even with pip's ``user_data``.
An agent over the limit is ``unknown`` (family ``too-long``) and its first
8,192 characters are kept in the row's ``user_agent``.
"""

CACHED_AGENT_CHARS = 2048
"""Longest agent the cache keeps; longer ones are parsed on every sight.

The cache is bounded by entries, so what bounds its memory is the longest
key it may hold: 16,384 agents of up to 64 KiB each would be a gigabyte,
and a client choosing a new long agent per request could fill it. Real
agents, pip's ``user_data`` included, are under 2 KB, so an agent longer
than this is either hostile or broken; parsing it again costs linear time
(see linear.py) and at most :data:`MAX_AGENT_CHARS` characters of work.
With this bound the cache holds at most ``maxsize`` × 2,048 characters of
keys (32 MiB of ASCII at the default size).
"""

_MIRROR_CLIENTS = frozenset({"bandersnatch", "devpi", "devpi-server", "z3c.pypimirror", "artifactory", "nexus", "pep381client"})


class AgentResult:
    """What one agent string says. Shared between rows: treat as read-only.

    ``user_agent`` is what a row's ``user_agent`` column holds: None when
    ``details`` is known, else the raw agent cut to :data:`MAX_AGENT_CHARS`.
    """

    __slots__ = ("details", "kind", "family", "classification", "fingerprint", "user_agent")

    def __init__(self, details: Optional[dict[str, Any]], kind: str, family: str,
                 fingerprint: Optional[int] = None, user_agent: Optional[str] = None) -> None:
        self.details = details
        self.kind = kind
        self.family = family
        self.classification = classify(details, kind)
        # the agent_fingerprint column: computed once per distinct agent, here
        self.fingerprint = fingerprint
        self.user_agent = user_agent[:MAX_AGENT_CHARS] if details is None and user_agent is not None else None

    def __repr__(self) -> str:
        return f"AgentResult(family={self.family!r}, kind={self.kind!r}, details={self.details!r})"


def _applies(family: Family, user_agent: str) -> bool:
    return family.prefixes is None or user_agent.startswith(family.prefixes)


def parse_agent(user_agent: str) -> AgentResult:
    """Classify one raw agent. Never raises: an agent no family takes is 'unknown'.

    Time is linear in ``len(user_agent)``, and bounded by the work for
    :data:`MAX_AGENT_CHARS` characters, since a longer agent is not parsed
    (its fingerprint still covers the whole agent).
    """
    fingerprint = agent_fingerprint(user_agent)
    if len(user_agent) > MAX_AGENT_CHARS:
        return AgentResult(None, "unknown", "too-long", fingerprint, user_agent)
    for family in REGISTRY:
        if not _applies(family, user_agent):
            continue
        try:
            found = family.parse(user_agent)
        except (ValueError, TypeError, IndexError, RecursionError):
            found = None
        if found is not None:
            kind = family.kind
            if family.name == "pep-standard" and (found["installer"]["name"] or "").lower() in _MIRROR_CLIENTS:
                kind = "mirror"
            return AgentResult(found, kind, family.name, fingerprint)
    if is_known_bot(user_agent):
        return AgentResult(None, "bot", "bot", fingerprint, user_agent)
    return AgentResult(None, "unknown", "unknown", fingerprint, user_agent)


class AgentCache:
    """LRU cache of :func:`parse_agent` keyed on the raw agent, with hit/miss counts.

    The LRU (an ``OrderedDict`` kept in recency order: a hit moves its agent
    to the end, an insertion past ``maxsize`` evicts the first) is the
    bounded store that decides what to evict. A plain dict of recently used
    agents sits in front of it because even that recency bookkeeping costs
    several times a dict lookup, and at hundreds of thousands of lines per
    second that difference is a large share of the budget. The front dict is
    emptied every ``front_size`` distinct agents, after which hot agents
    touch the LRU again, so eviction order stays close to true LRU.

    Agents longer than :data:`CACHED_AGENT_CHARS` never enter either store
    (each sight is parsed and counted as a miss), so the memory the cache
    holds is bounded by bytes, not only by entries.
    """

    __slots__ = ("_lru", "_maxsize", "front", "front_size", "hits", "misses")

    def __init__(self, maxsize: int = DEFAULT_AGENT_CACHE_SIZE, front_size: int = 4096) -> None:
        if maxsize < 1:
            raise ValueError("agent cache size must be at least 1")
        self._lru: OrderedDict[str, AgentResult] = OrderedDict()
        self._maxsize = maxsize
        self.front: dict[str, AgentResult] = {}
        self.front_size = min(front_size, maxsize)
        self.hits = 0
        self.misses = 0

    @property
    def maxsize(self) -> int:
        return self._maxsize

    def __len__(self) -> int:
        return len(self._lru)

    def get(self, user_agent: str) -> AgentResult:
        result = self.front.get(user_agent)
        if result is not None:
            self.hits += 1
            return result
        return self.lookup(user_agent)

    def lookup(self, user_agent: str) -> AgentResult:
        """The LRU path: for agents not in the front dict."""
        lru = self._lru
        result = lru.get(user_agent)
        if result is not None:
            self.hits += 1
            lru.move_to_end(user_agent)
        else:
            self.misses += 1
            result = parse_agent(user_agent)
            if len(user_agent) > CACHED_AGENT_CHARS:
                return result
            lru[user_agent] = result
            if len(lru) > self._maxsize:
                lru.popitem(last=False)
        if len(self.front) >= self.front_size:
            self.front.clear()
        self.front[user_agent] = result
        return result
