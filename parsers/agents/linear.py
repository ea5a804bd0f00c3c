"""Building blocks that keep agent parsing linear in the agent's length.

Anyone on the internet chooses the User-Agent, so no input may make a family
parser do more than a constant number of passes over it. Python's ``re`` is a
backtracking engine: ``(\\S+)/(\\S+) (\\S+)/(\\S+)$`` costs O(n³) on
``a/a/…a/ b/b/…b/ x``, and ``search`` of ``pex/(\\S+)$`` costs O(n²) on
``pex/pex/…``. The rule implemented here (and checked on every pattern by
tests/test_agent_linear_time.py, which walks the compiled pattern's syntax tree):

1. a pattern is only ever applied with ``match``/``fullmatch`` at one given
   position, never ``search``, so each call has one start position;
2. every unbounded repetition is possessive (``++``, ``*+``) over a single
   character class, so once it has consumed its run it never gives any back;
3. the only other choice points are alternations and ``?`` (at most one
   repetition), a fixed number per pattern.

So the matcher follows at most a constant number of paths through the
pattern (the product of its alternatives), each consuming the input left to
right once: O(n) per pattern. Where PyPI's patterns rely on backtracking to
pick a split (the last ``/`` of ``NAME/VERSION``, the last space before
twine's ``IMPL/VERSION``, the ``)`` that closes bandersnatch's comment), the
split is computed with one ``rfind``/``rsplit``/``endswith`` instead; those
helpers below state which greedy choice they reproduce.

Whitespace means what ``\\s`` means in ``re`` for ``str`` patterns:
``str.isspace``, ``str.split()`` and ``str.rstrip()`` use the same
definition (``Py_UNICODE_ISSPACE``), so the helpers agree with the patterns.
"""

from __future__ import annotations

import re
from typing import Optional

__all__ = [
    "PATTERNS",
    "anchored",
    "dollar_end",
    "name_version",
    "name_optional_version",
    "final_token",
    "closes_parenthesis",
    "token_end",
]

PATTERNS: dict[str, re.Pattern[str]] = {}
"""Every pattern the agent parsers use, by name, for the structural test."""


def anchored(name: str, pattern: str, flags: int = 0) -> re.Pattern[str]:
    """Compile a pattern that will only be applied with ``match`` (rule 1) and register it."""
    compiled = re.compile(pattern, flags)
    if name in PATTERNS:
        raise ValueError(f"agent pattern {name!r} registered twice")
    PATTERNS[name] = compiled
    return compiled


_RUN = anchored("whitespace-free run", r"\S*+")


def dollar_end(text: str) -> int:
    """Where ``$`` can match last: before a final newline, else at the end (``re`` semantics)."""
    return len(text) - 1 if text.endswith("\n") else len(text)


def name_version(token: str) -> Optional[tuple[str, str]]:
    """``(\\S+)/(\\S+)`` over a whole whitespace-free token, as greedy backtracking splits it.

    The greedy name takes the longest prefix that still leaves ``/`` and a
    non-empty version: the last ``/`` that is neither the first nor the last
    character. None when there is none (the pattern would not match).
    """
    cut = token.rfind("/", 1, len(token) - 1)
    if cut < 0:
        return None
    return token[:cut], token[cut + 1 :]


def name_optional_version(token: str) -> Optional[tuple[str, Optional[str]]]:
    """``(\\S+)/(\\S+)?`` over a whole token: the last ``/`` after the first character.

    The version group is None when nothing follows that ``/`` (an unmatched
    optional group), as in poetry's ``SYSTEM/`` with an empty release.
    """
    cut = token.rfind("/", 1)
    if cut < 0:
        return None
    return token[:cut], token[cut + 1 :] or None


def final_token(text: str) -> Optional[tuple[int, str]]:
    """The whitespace-free run that ``\\S+$`` can match, and the index just before it.

    Returns ``(before, token)`` where ``token`` ends where ``$`` matches and
    ``text[before]`` is the whitespace character in front of it (``before``
    is -1 when the token starts the text). None when ``$`` is preceded by
    whitespace or nothing. One scan from the right.
    """
    end = dollar_end(text)
    body = text[:end]
    if not body or body[-1].isspace():
        return None
    token = body.rsplit(None, 1)[-1]
    return end - len(token) - 1, token


def closes_parenthesis(text: str, start: int) -> bool:
    """Does ``text[start:]`` match ``.+\\)$`` (DOTALL)? Only the last one or two characters decide.

    ``$`` matches at the end or before a final newline, so the ``)`` is the
    last character (with at least one before it) or the one before a final
    ``\\n`` (with at least one before it). Nothing is copied, so a caller
    may ask at many positions.
    """
    length = len(text) - start
    if text.endswith(")"):
        return length >= 2
    return text.endswith(")\n") and length >= 3


def token_end(text: str, start: int) -> int:
    """Index of the first whitespace character at or after ``start`` (or the length)."""
    match = _RUN.match(text, start)
    assert match is not None  # \\S*+ matches the empty string
    return match.end()
