"""Agents PyPI's pipeline drops as noise (user-agents.md, "Known bots").

Consulted only after every family parser declined, as PyPI does, so an
over-broad entry here can never hide a real client.
"""

from __future__ import annotations

import re

from .linear import anchored

__all__ = ["MISSING_AGENTS", "is_known_bot"]


# Every entry is anchored at the start except PyPI's ``Nutch`` (anywhere),
# which is a plain substring test: no search over the agent, no backtracking
# (linear.py's rules).
_KNOWN_BOTS = anchored(
    "bots",
    r"""
    (?: Datadog\ Agent/ | \(null\)$ | WordPress/ | Chef\ (?:Client|Knife)/ | Ruby$
    | Slackbot-LinkExpanding | TextualInlineMedia/ | WeeChat/ | Download\ Master$
    | Java/ | Go\ \d\.\d\ package\ http$ | Go-http-client/ | GNU\ Guile$ | github-olee$
    | YisouSpider$ | Apache\ Ant/ | Salt/ | ansible-httpget$ | ltx71\ -\ \(http://ltx71\.com/\)
    | Scrapy/ | spectool/ | AWSBrewLinkChecker/ | Y!J-ASR/ | NSIS_Inetc\ \(Mozilla\)$
    | Debian\ uscan | Pingdom\.com_bot_version_\d++\.\d++_\(https?://www\.pingdom\.com/\)$
    | MauiBot\ \(crawler\.feedback\+dc@gmail\.com\)$ | inspector\.pypi\.io$ )
    """,
    re.VERBOSE,
)

MISSING_AGENTS = frozenset({"(null)", ""})
"""No agent at all: the CDN writes ``(null)``; an empty field means the same."""


def is_known_bot(user_agent: str) -> bool:
    """Whether a user agent is a known bot: the crawlers listed here, Nutch, or no agent at all.

    These rows still count in Total; the classification marks them ``kind = 'bot'`` so
    the series and PyPI-compatible counts can leave them out.
    """
    return user_agent in MISSING_AGENTS or "Nutch" in user_agent or _KNOWN_BOTS.match(user_agent) is not None
