"""PyPI's own user-agent parser (the ``linehaul`` package) as a test oracle.

What PyPI stores for an agent is what its ``linehaul.ua.parser`` returns,
structured into its ``UserAgent`` attrs classes by cattrs, then unstructured
back to a dict by the converter of PyPI's loader (linehaul-cloud-function's
``main.py``, which is not part of the package): plain cattrs, except that
``installer.subcommand`` (a list) is written as ``shlex.join(list)``, so
``[]`` becomes ``""``. :func:`pypi_outcome` reproduces that.

PyPI's parser set is shuffled when it is built ("any order"), so for an
agent two of its parsers accept, what PyPI stores depends on the process.
The oracle therefore asks every parser of the set and returns all answers;
the caller decides what to do with more than one.

PyPI's patterns backtrack (seconds on some crafted 3 KB agents), so the
oracle refuses agents longer than :data:`ORACLE_MAX_CHARS`.
"""

from __future__ import annotations

import datetime
import json
import logging
import shlex
from dataclasses import dataclass, field
from typing import Any, Optional

import cattrs
from cattrs.gen import make_dict_unstructure_fn, override
from linehaul.events.parser import parse as parse_pypi_line
from linehaul.ua import parser as pypi_parser
from linehaul.ua.datastructures import Installer, UserAgent
from linehaul.ua.impl import UnableToParse

__all__ = ["ORACLE_MAX_CHARS", "PyPIOutcome", "pypi_outcome", "pypi_parse", "pypi_store_line"]

ORACLE_MAX_CHARS = 600
"""Longest agent handed to PyPI's parser: its worst patterns are cubic, ~0.1 s at this length."""

# PyPI's parser set logs every exception one of its parsers raises (an
# invalid version, for one); the oracle reports outcomes, not log lines.
logging.getLogger("linehaul").setLevel(logging.CRITICAL)


def _join_subcommand(subcommand: Optional[list[str]]) -> Optional[str]:
    return None if subcommand is None else shlex.join(subcommand)


_CONVERTER = cattrs.Converter()
_CONVERTER.register_unstructure_hook(datetime.datetime, lambda moment: moment.strftime("%Y-%m-%d %H:%M:%S +00:00"))
_CONVERTER.register_unstructure_hook(
    Installer,
    make_dict_unstructure_fn(Installer, _CONVERTER, subcommand=override(unstruct_hook=_join_subcommand)),
)


@dataclass
class PyPIOutcome:
    """What PyPI makes of one agent.

    ``status``: ``parsed`` (``results`` holds each distinct serialised
    answer, one unless PyPI's parsers disagree), ``ignored`` (no parser took
    it and it is on PyPI's ignore list: the line is dropped), ``unknown`` (no
    parser took it: a row without details), or ``structure-error`` (a parser
    took it but cattrs could not structure its answer: PyPI's loader writes the
    whole line to its unprocessed file; ``error`` says why).
    """

    status: str
    results: list[dict[str, Any]] = field(default_factory=list)
    parsers: list[str] = field(default_factory=list)
    error: str = ""


def pypi_parse(user_agent: str) -> Optional[dict[str, Any]]:
    """``linehaul.ua.parser.parse`` as PyPI calls it, serialised as PyPI stores it (None: no details)."""
    if len(user_agent) > ORACLE_MAX_CHARS:
        raise ValueError(f"agent of {len(user_agent)} characters: PyPI's patterns may backtrack for seconds")
    try:
        found = pypi_parser.parse(user_agent)
    except pypi_parser.UnknownUserAgentError:
        return None
    return None if found is None else _CONVERTER.unstructure(found)


def pypi_outcome(user_agent: str) -> PyPIOutcome:
    """Every answer PyPI's parser set can give for ``user_agent``, whatever its order."""
    if len(user_agent) > ORACLE_MAX_CHARS:
        raise ValueError(f"agent of {len(user_agent)} characters: PyPI's patterns may backtrack for seconds")
    results: list[dict[str, Any]] = []
    names: list[str] = []
    errors: list[str] = []
    for parser in pypi_parser._parser._parsers:  # the registered parsers, as ParserSet.__call__ walks them
        try:
            data = parser(user_agent)
        except UnableToParse:
            continue
        except Exception:  # ParserSet logs these and tries the next parser
            continue
        try:
            structured = cattrs.structure(data, UserAgent)
        except Exception as exc:  # noqa: BLE001 - any structuring failure drops PyPI's line
            errors.append(f"{parser.name}: {type(exc).__name__}")
            continue
        serialised = _CONVERTER.unstructure(structured)
        names.append(parser.name)
        if serialised not in results:
            results.append(serialised)
    if results:
        return PyPIOutcome("parsed", results, names)
    if errors:
        return PyPIOutcome("structure-error", error="; ".join(errors))
    if pypi_parser._ignore_re.search(user_agent) is not None:
        return PyPIOutcome("ignored")
    return PyPIOutcome("unknown")


def pypi_store_line(line: str) -> Optional[str]:
    """PyPI's work for one log line: parse it and serialise the row as its loader does (None: not stored)."""
    try:
        result = parse_pypi_line(line)
    except Exception:  # noqa: BLE001 - PyPI's loader sends any failure to its unprocessed file
        return None
    return None if result is None else json.dumps(_CONVERTER.unstructure(result))
