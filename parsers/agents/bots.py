"""Agents PyPI's pipeline drops as noise (user-agents.md, "Known bots").

Consulted only after every family parser declined, as PyPI does, so an
over-broad entry here can never hide a real client.
"""

from __future__ import annotations

import re

_KNOWN_BOTS = re.compile(
    r"""
    ^Datadog\ Agent/ | ^\(null\)$ | ^WordPress/ | ^Chef\ (?:Client|Knife)/ | ^Ruby$
    | ^Slackbot-LinkExpanding | ^TextualInlineMedia/ | ^WeeChat/ | ^Download\ Master$
    | ^Java/ | ^Go\ \d\.\d\ package\ http$ | ^Go-http-client/ | ^GNU\ Guile$ | ^github-olee$
    | ^YisouSpider$ | ^Apache\ Ant/ | ^Salt/ | ^ansible-httpget$ | ^ltx71\ -\ \(http://ltx71\.com/\)
    | ^Scrapy/ | ^spectool/ | Nutch | ^AWSBrewLinkChecker/ | ^Y!J-ASR/ | ^NSIS_Inetc\ \(Mozilla\)$
    | ^Debian\ uscan | ^Pingdom\.com_bot_version_\d+\.\d+_\(https?://www\.pingdom\.com/\)$
    | ^MauiBot\ \(crawler\.feedback\+dc@gmail\.com\)$ | ^inspector\.pypi\.io$
    """,
    re.VERBOSE,
)

MISSING_AGENTS = frozenset({"(null)", ""})
"""No agent at all: the CDN writes ``(null)``; an empty field means the same."""


def is_known_bot(user_agent: str) -> bool:
    return user_agent in MISSING_AGENTS or _KNOWN_BOTS.search(user_agent) is not None
