"""Crafted user agents that make backtracking agent patterns slow, for every family.

Each agent is a *head* that gets a family's parser past its fixed prefix
(``pip/1.5 ``, ``devpi-server/1 (``, ``FDM ``…) followed by a *shape*: a
long run of what a pattern loops on (separators ``/`` and spaces, nested
``a/a/…`` tokens, repeated prefixes such as ``pex/pex/…``, parentheses,
braces, digits, Unicode whitespace, newlines) and an ending that makes the
match fail as late as possible (`` x``, ``\\n``, ``)``…). PyPI's patterns need
seconds on several of them; the linear-time parsers need microseconds.

Used by tests/test_agent_linear_time.py and by ``make agents-stress``.
"""

from __future__ import annotations

from typing import Callable, Iterator

__all__ = ["HEADS", "CHUNKS", "SHAPES", "ENDINGS", "adversarial_agents", "fill"]

HEADS: dict[str, tuple[str, ...]] = {
    "pep-standard": ("pip/25.1 (PEP 777) ", "a/1 (PEP 1) {", "x/"),
    "pip-json": ("pip/24.0 ", "pip/24.0 {\"installer\":"),
    "pip-1.4": ("pip/1.5 ", "pip/1.5 CPython/2.7 "),
    "uv-json": ("uv/0.5.0 ", "uv/0.5.0 {\"installer\":{\"subcommand\":"),
    "uv-bare": ("uv/", "uv"),
    "hatch": ("Hatch/1.0 ", "Hatch/1.0 {"),
    "distribute": ("Python-urllib/2.7 distribute/", "Python-urllib/2."),
    "setuptools": ("Python-urllib/3.11 setuptools/", "setuptools/1 Python-urllib/", "setuptools/"),
    "pex": ("pex/", "x pex/"),
    "conda": ("conda/1 ", "conda/"),
    "bazel": ("Bazel/release ", "Bazel/"),
    "bandersnatch": ("bandersnatch/1 (", "bandersnatch/"),
    "bandersnatch-xmlrpc": ("bandersnatch 1 ", "bandersnatch "),
    "devpi": ("devpi-server/1 (", "devpi-server/", "x devpi-server/"),
    "z3c.pypimirror": ("z3c.pypimirror/",),
    "artifactory": ("Artifactory/",),
    "nexus": ("Nexus/",),
    "pep381client": ("pep381client-proxy/", "pep381client/"),
    "maturin": ("maturin/",),
    "pdm": ("pdm/1 ", "pdm/"),
    "pdm-system": ("pdm/1 CPython/3.12 ",),
    "poetry": ("poetry/1 ", "poetry/1 CPython/3.12 "),
    "twine": ("twine/1 ", "twine/1 requests/2 "),
    "urllib": ("Python-urllib/3.", "Python-urllib/"),
    "requests": ("python-requests/1 ", "python-requests/"),
    "homebrew": ("Homebrew/1 (Macintosh; Intel Mac OS X ", "Homebrew/1 (Macintosh; Intel macOS 14) "),
    "httpx": ("python-httpx/",),
    "urllib3": ("python-urllib3/",),
    "aiohttp": ("Python/3.11 aiohttp/", "Python/"),
    "httpie": ("HTTPie/",),
    "os": ("fetch libfetch/", "libfetch/", "MacPorts/"),
    "browser": ("FDM ", "fdm a", "Mozilla", "com.apple.WebKit.Networking/"),
    "downloader": ("curl", "Apache-HttpClient"),
    "bots": ("Pingdom.com_bot_version_1", "Go 1.1 package http", "ltx71 - (", "Nutch"),
    "none": ("",),
}
"""Per family (and the bot list), agent beginnings that reach its pattern's loops."""

CHUNKS: tuple[str, ...] = (
    "a/", "/", "a", "1", "1.", ".", " ", "\t", "\n", "\u00a0", "\u2003", "\x1c", "(", ")", " (", "(a) ",
    "{", "}", "[", "\"", "\":", "{\"a\":", "a b/", "pex/", "devpi-server/", "release", "XML-RPC",
    "Mac OS X ", "CPython/", "\\u0000", "\u0663", "FDM ", "unknown/",
)
"""Pieces the generated agents are made of: what the family patterns loop on or look for."""


def fill(piece: str, length: int) -> str:
    """``piece`` repeated to exactly ``length`` characters (the last repetition cut)."""
    if length <= 0 or not piece:
        return ""
    return (piece * (length // len(piece) + 1))[:length]


def _halves(first: str, second: str) -> Callable[[int], str]:
    return lambda n: fill(first, n // 2) + " " + fill(second, n - n // 2 - 1)


SHAPES: dict[str, Callable[[int], str]] = {
    # nested separators: every split of NAME/VERSION tokens is a backtracking choice
    "a/ × n, space, b/ × n": _halves("a/", "b/"),
    "a/ run": lambda n: fill("a/", n),
    "/a run": lambda n: fill("/a", n),
    "slashes": lambda n: fill("/", n),
    "a/b words": lambda n: fill("a/b ", n),
    "space-slash mix": lambda n: fill("a/ ", n),
    # runs of whitespace of every kind
    "spaces": lambda n: fill(" ", n),
    "tabs": lambda n: fill("\t", n),
    "no-break spaces": lambda n: fill("\u00a0", n),
    "newlines": lambda n: fill("a\n", n),
    "words": lambda n: fill("a ", n),
    # repeated prefixes: every occurrence is a new start for a searched pattern
    "pex/ repeated": lambda n: fill("pex/", n),
    "devpi-server/ repeated": lambda n: fill("devpi-server/", n),
    "devpi comments repeated": lambda n: fill("devpi-server/a (", n),
    "release spaces": lambda n: "release" + fill(" ", n - 7),
    "Mac OS X repeated": lambda n: fill("Mac OS X ", n),
    # nesting and closing characters
    "open parentheses": lambda n: fill("(", n),
    "close parentheses": lambda n: fill(")", n),
    "comments": lambda n: fill("(a) ", n),
    "open braces": lambda n: fill("{", n),
    "close braces": lambda n: fill("}", n),
    "nested JSON objects": lambda n: fill("{\"a\":", n),
    "open brackets": lambda n: fill("[", n),
    "JSON string": lambda n: "{\"installer\":{\"name\":\"" + fill("a", n - 30) + "\"}}",
    "JSON escapes": lambda n: "{\"user_data\":\"" + fill("\\u0000", n - 20) + "\"}",
    # digits and versions
    "digits": lambda n: fill("1", n),
    "dotted digits": lambda n: fill("1.", n),
    "other digits": lambda n: fill("\u0663", n),
    "pep digits": lambda n: fill("9", n),
}
"""Shapes of the agent's remainder, each given its length."""

ENDINGS: tuple[str, ...] = ("", " x", "\n", ")", "/")
"""Endings that make a pattern fail (or succeed) only at the very last character."""


def adversarial_agents(lengths: tuple[int, ...]) -> Iterator[tuple[str, str]]:
    """``(label, agent)`` for every head × shape × ending × length (total agent length)."""
    for family, heads in HEADS.items():
        for head in heads:
            for shape_name, shape in SHAPES.items():
                for ending in ENDINGS:
                    for length in lengths:
                        body = shape(length - len(head) - len(ending))
                        yield f"{family} {head!r} + {shape_name} + {ending!r} ({length})", head + body + ending
