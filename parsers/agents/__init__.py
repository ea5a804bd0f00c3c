"""User-agent parsing: family registry, bot list, and an LRU cache in front.

``parse_agent`` is pure and uncached; :class:`AgentCache` is what the line
parser uses, because real traffic repeats the same few thousand agents and a
cache hit costs a dictionary lookup instead of a regex walk and a JSON parse.
"""

from __future__ import annotations

from typing import Any, Optional

from cachetools import LRUCache

from ..classify import classify
from ..fingerprint import agent_fingerprint
from .bots import is_known_bot
from .families import REGISTRY, Family

__all__ = ["AgentResult", "AgentCache", "DEFAULT_AGENT_CACHE_SIZE", "parse_agent", "REGISTRY", "Family"]

DEFAULT_AGENT_CACHE_SIZE = 16384
"""Distinct agents kept parsed: real traffic repeats a few thousand."""

_MIRROR_CLIENTS = frozenset({"bandersnatch", "devpi", "devpi-server", "z3c.pypimirror", "artifactory", "nexus", "pep381client"})


class AgentResult:
    """What one agent string says. Shared between rows: treat as read-only."""

    __slots__ = ("details", "kind", "family", "classification", "fingerprint")

    def __init__(self, details: Optional[dict[str, Any]], kind: str, family: str,
                 fingerprint: Optional[int] = None) -> None:
        self.details = details
        self.kind = kind
        self.family = family
        self.classification = classify(details, kind)
        # the agent_fingerprint column: computed once per distinct agent, here
        self.fingerprint = fingerprint

    def __repr__(self) -> str:
        return f"AgentResult(family={self.family!r}, kind={self.kind!r}, details={self.details!r})"


def _applies(family: Family, user_agent: str) -> bool:
    return family.prefixes is None or user_agent.startswith(family.prefixes)


def parse_agent(user_agent: str) -> AgentResult:
    """Classify one raw agent. Never raises: an agent no family takes is 'unknown'."""
    fingerprint = agent_fingerprint(user_agent)
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
        return AgentResult(None, "bot", "bot", fingerprint)
    return AgentResult(None, "unknown", "unknown", fingerprint)


class AgentCache:
    """LRU cache of :func:`parse_agent` keyed on the raw agent, with hit/miss counts.

    The LRU (cachetools) is the bounded store that decides what to evict. A
    plain dict of recently used agents sits in front of it because an LRU
    lookup costs ~1 µs of recency bookkeeping while a dict lookup costs
    ~50 ns, and at 200k lines/s that difference is a fifth of the budget. The
    front dict is emptied every ``front_size`` distinct agents, after which
    hot agents touch the LRU again, so eviction order stays close to true LRU.
    """

    __slots__ = ("_lru", "front", "front_size", "hits", "misses")

    def __init__(self, maxsize: int = DEFAULT_AGENT_CACHE_SIZE, front_size: int = 4096) -> None:
        if maxsize < 1:
            raise ValueError("agent cache size must be at least 1")
        self._lru: LRUCache[str, AgentResult] = LRUCache(maxsize=maxsize)
        self.front: dict[str, AgentResult] = {}
        self.front_size = min(front_size, maxsize)
        self.hits = 0
        self.misses = 0

    @property
    def maxsize(self) -> int:
        return int(self._lru.maxsize)

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
        try:
            result = self._lru[user_agent]
            self.hits += 1
        except KeyError:
            self.misses += 1
            result = parse_agent(user_agent)
            self._lru[user_agent] = result
        if len(self.front) >= self.front_size:
            self.front.clear()
        self.front[user_agent] = result
        return result
