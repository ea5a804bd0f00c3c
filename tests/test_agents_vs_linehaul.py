"""haulage's ``details`` against PyPI's own parser (the ``linehaul`` package), agent by agent.

Issue 10, item 3. For every agent of the fixtures (tests/data/agents, the
sample logs in fixtures/, the benchmark corpus) and for hypothesis-generated
pip, uv, poetry, pdm, setuptools, twine… agents, ``parse_agent(ua).details``
must equal what PyPI stores (tests/support/pypi_oracle.py: linehaul's answer,
structured and serialised as PyPI's loader does, ``subcommand`` joined with
``shlex.join``). Where haulage deliberately differs, the difference must be
explained by one of the named rules below, each documented in README /
docs/parsers-api.md / user-agents.md; anything else is a mismatch and fails.
The test prints how many agents were compared, how often each rule was used
and the mismatches left (none).

The rules:

- ``json-not-an-object``: a pip/uv agent whose JSON is a list or a string:
  cattrs makes an all-null record of it, haulage does not take it for pip or
  uv and the agent is ``unknown`` (details null).
- ``user_data``: pip's ``user_data`` is a haulage extension column; PyPI's
  ``UserAgent`` has no such field. Compared without it (test_agents.py checks it).
- ``extension-family``: families PyPI does not know (user-agents.md, "Known
  gaps"): pdm with its OS part, bare uv, Hatch, httpx, urllib3, aiohttp,
  HTTPie, bandersnatch's XML-RPC client, the ``(PEP NNN)`` agent. PyPI gives
  no details; haulage does.
- ``python-two-digit-minor``: ``Python-urllib/3.10`` and later (and the
  setuptools/distribute forms with it); PyPI's pattern takes one digit.
- ``pypi-ambiguous``: two of PyPI's parsers accept the agent with different
  answers (``devpi-server/1 (pex/2)``), so PyPI's answer depends on the
  process's shuffled parser order; haulage's fixed order must give one of them.
- ``pypi-drops-line``: a parser accepted the agent but cattrs could not
  structure the answer (``"system": 5``, a JSON list): PyPI writes the whole line
  to its unprocessed file; haulage keeps the row and sets the bad field to null.
- ``ci-false-is-null``: ``ci`` is TRUE or NULL in haulage (schema.md); PyPI
  stores ``false`` when a client sends a falsy value.
- ``container-in-text-field``: a JSON object or list where text belongs; PyPI
  stores its Python repr (``"{'a': 1}"``), haulage null.
- ``nested-not-an-object``: ``installer``, ``implementation``, ``distro``,
  ``system`` or ``libc`` that is not an object; PyPI makes an all-null record
  out of a string, haulage a null.
- ``subcommand-not-a-list``: PyPI splits a string into characters (``"pip
  install"`` → ``"p i p ' ' …"``) and keeps a dict's keys; haulage keeps a
  string as it is and a dict as null.
- ``subcommand-odd-elements``: in the list, PyPI writes ``None`` and the repr
  of containers; haulage writes ``''`` for null and drops containers.
- ``lone-surrogate``: text with a lone surrogate (from a JSON ``\\ud800``
  escape) is not valid UTF-8, which Parquet and BigQuery require; haulage
  keeps it as a ``\\udXXX`` escape.
"""

from __future__ import annotations

import collections
import json
import shlex
import sys
from pathlib import Path
from typing import Any, Optional

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from haulage.parsers.agents import parse_agent
from haulage.parsers.framing import FileFault, iter_lines
from haulage.parsers.grammar import Rejected, split_line
from support.pypi_oracle import ORACLE_MAX_CHARS, pypi_outcome, pypi_parse

ROOT = Path(__file__).resolve().parent.parent

EXTENSION_FAMILIES = frozenset(
    {"pdm-system", "uv-bare", "hatch", "httpx", "urllib3", "aiohttp", "httpie", "bandersnatch-xmlrpc", "pep-standard"}
)
TEXT_FIELDS = ("python", "cpu", "openssl_version", "setuptools_version", "rustc_version")
RECORDS = {"installer": ("name", "version"), "implementation": ("name", "version"), "system": ("name", "release")}

COMPARED: collections.Counter[str] = collections.Counter()
RULES: collections.Counter[str] = collections.Counter()
MISMATCHES: list[str] = []


# ----------------------------------------------------------------- the rules


def _json_of(user_agent: str, family: str) -> Optional[dict]:
    """The JSON object of a pip/uv agent as PyPI reads it (``json.loads`` of the rest)."""
    if family not in ("pip-json", "uv-json"):
        return None
    try:
        data = json.loads(user_agent.split(maxsplit=1)[1])
    except (ValueError, IndexError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _json_is_not_an_object(user_agent: str) -> bool:
    if not user_agent.startswith(("pip/", "uv/")):
        return False
    try:
        return not isinstance(json.loads(user_agent.split(maxsplit=1)[1]), dict)
    except (ValueError, IndexError, RecursionError):
        return False


def _is_container(value: Any) -> bool:
    return isinstance(value, (dict, list))


def _utf8(value: Any, used: set[str]) -> Any:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            used.add("lone-surrogate")
            return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {key: _utf8(item, used) for key, item in value.items()}
    return value


def _subcommand_rule(raw: Any, used: set[str]) -> Optional[str]:
    if raw is None:
        return None
    if not isinstance(raw, list):
        used.add("subcommand-not-a-list")
        return None if _is_container(raw) else str(raw)
    if any(not isinstance(part, str) for part in raw):
        used.add("subcommand-odd-elements")
    parts = ["" if part is None else part if isinstance(part, str) else str(part) for part in raw if not _is_container(part)]
    return shlex.join(parts)


def _expected(pypi: dict[str, Any], raw: Optional[dict], used: set[str]) -> dict[str, Any]:
    """PyPI's stored details with haulage's documented value rules applied where their conditions hold."""
    expected = {**pypi}
    if expected.get("ci") is False:
        used.add("ci-false-is-null")
        expected["ci"] = None
    if raw is not None:
        for key in TEXT_FIELDS:
            if _is_container(raw.get(key)):
                used.add("container-in-text-field")
                expected[key] = None
        for key, leaves in RECORDS.items():
            value = raw.get(key)
            if value is not None and not isinstance(value, dict):
                used.add("nested-not-an-object")
                expected[key] = None
            elif isinstance(value, dict) and expected.get(key) is not None:
                record = dict(expected[key])
                for leaf in leaves:
                    if _is_container(value.get(leaf)):
                        used.add("container-in-text-field")
                        record[leaf] = None
                if key == "installer":
                    record["subcommand"] = _subcommand_rule(value.get("subcommand"), used)
                expected[key] = record
        distro = raw.get("distro")
        if distro is not None and not isinstance(distro, dict):
            used.add("nested-not-an-object")
            expected["distro"] = None
        elif isinstance(distro, dict) and expected.get("distro") is not None:
            record = dict(expected["distro"])
            for leaf in ("name", "version", "id"):
                if _is_container(distro.get(leaf)):
                    used.add("container-in-text-field")
                    record[leaf] = None
            libc = distro.get("libc")
            if libc is not None and not isinstance(libc, dict):
                used.add("nested-not-an-object")
                record["libc"] = None
            elif isinstance(libc, dict) and record.get("libc") is not None:
                record["libc"] = {
                    leaf: None if _is_container(libc.get(leaf)) else record["libc"][leaf] for leaf in ("lib", "version")
                }
                if any(_is_container(libc.get(leaf)) for leaf in ("lib", "version")):
                    used.add("container-in-text-field")
            expected["distro"] = record
    return _utf8(expected, used)


def compare(user_agent: str, source: str) -> set[str]:
    """Compare one agent; record (and return) the rules it needed, or a mismatch."""
    mine = parse_agent(user_agent)
    ours = None
    used: set[str] = set()
    if mine.details is not None:
        ours = {key: value for key, value in mine.details.items() if key != "user_data"}
        if mine.details["user_data"] is not None:
            used.add("user_data")
    pypi = pypi_outcome(user_agent)
    COMPARED[source] += 1
    explained = False
    if pypi.status == "parsed":
        raw = _json_of(user_agent, mine.family)
        candidates = [_expected(result, raw, used) for result in pypi.results]
        explained = ours in candidates
        if not explained and ours is None and _json_is_not_an_object(user_agent) and not any(
            value is not None for result in pypi.results for value in result.values()
        ):
            explained = True
            used.add("json-not-an-object")
        if explained and (len(pypi.results) > 1 or pypi.error):
            used.add("pypi-ambiguous")
    elif pypi.status == "structure-error":
        explained = True
        used.add("pypi-drops-line")
    elif ours is None:
        explained = True
    elif mine.family in EXTENSION_FAMILIES:
        explained = True
        used.add("extension-family")
    elif mine.family in ("urllib", "setuptools", "distribute") and ours.get("python") and len(ours["python"]) > 3:
        explained = True
        used.add("python-two-digit-minor")
    if explained:
        RULES.update(used)
    else:
        MISMATCHES.append(f"{source}: {user_agent!r}\n  haulage ({mine.family}): {ours}\n  PyPI ({pypi.status}): {pypi.results}")
    assert explained, MISMATCHES[-1]
    return used


# ----------------------------------------------------------------- the agents of the fixtures


def _fixture_agents() -> list[str]:
    agents = []
    for path in sorted((ROOT / "tests" / "data" / "agents").glob("*.json")):
        agents.extend(case["ua"] for case in json.loads(path.read_text(encoding="utf-8")))
    return agents


def _log_agents() -> list[str]:
    agents = set()
    for path in sorted((ROOT / "fixtures").glob("*.log*")):
        with open(path, "rb") as handle:
            for item in iter_lines(handle, name=str(path)):
                if isinstance(item, FileFault):
                    continue
                try:
                    agents.add(split_line(item[1].decode("utf-8").rstrip("\r\n"))[1][-1])
                except (Rejected, UnicodeDecodeError, IndexError):
                    continue
    return sorted(agents)


def _corpus_agents() -> list[str]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from corpus import generate_lines

    agents = set()
    for line in generate_lines(30_000, seed=10, days=1):
        try:
            agents.add(split_line(line.decode("utf-8"))[1][-1])
        except (Rejected, UnicodeDecodeError, IndexError):
            continue
    return sorted(agents)


@pytest.mark.parametrize("source,agents", [("tests/data/agents", _fixture_agents), ("fixtures/*.log*", _log_agents),
                                           ("benchmarks/corpus.py", _corpus_agents)])
def test_fixture_agents_match_pypi(source, agents):
    found = [agent for agent in agents() if len(agent) <= ORACLE_MAX_CHARS]
    assert len(found) >= 50, source
    for user_agent in found:
        compare(user_agent, source)


def test_oracle_is_pypi_parser_and_serialisation():
    """The oracle's serialisation is PyPI's: subcommand shell-joined, ``[]`` → ``""``."""
    uv = 'uv/0.9.11 {"installer":{"name":"uv","version":"0.9.11","subcommand":%s}}'
    assert pypi_parse(uv % '["pip","install","a b"]')["installer"]["subcommand"] == "pip install 'a b'"
    assert pypi_parse(uv % "[]")["installer"]["subcommand"] == ""
    assert pypi_parse(uv % "null")["installer"]["subcommand"] is None
    assert pypi_parse("Python-urllib/3.11") is None
    assert pypi_outcome("Go-http-client/1.1").status == "ignored"
    with pytest.raises(ValueError):
        pypi_parse("x" * (ORACLE_MAX_CHARS + 1))


def test_empty_subcommand_is_empty_string_like_pypi():
    """Issue 10's fidelity point: ``"subcommand": []`` is ``""`` (``shlex.join([])``), not null."""
    uv = 'uv/0.9.11 {"installer":{"name":"uv","version":"0.9.11","subcommand":[]}}'
    assert parse_agent(uv).details["installer"]["subcommand"] == "" == pypi_parse(uv)["installer"]["subcommand"]
    compare(uv, "explicit")


# ----------------------------------------------------------------- generated agents

versions = st.sampled_from(["6.0", "9.0.1", "18.1", "20.3.4", "23.3.1", "24.0", "25.1", "26.0b1", "1.5.6", "5.1", "0.1.22",
                            "0.1.21", "0.5.11", "0.9.11", "1.0", "x", "latest", ""])
scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 10**20), st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=12), st.sampled_from(["3.12.1", "CPython", "Linux", "glibc", "2.35", "\ud800x", "a b"]))
odd = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.sampled_from(["a", "name"]), scalars, max_size=2))
realistic_text = st.sampled_from(["3.12.1", "3.8.10", "CPython", "PyPy", "7.3.11", "Linux", "Darwin", "Windows", "6.8.0-45-generic",
                                  "5.15.0-1051-azure", "x86_64", "arm64", "OpenSSL 3.0.2 15 Mar 2022", "68.0.0", "1.75.0", "glibc",
                                  "2.35", "Ubuntu", "22.04", "jammy", "macOS", "14.5"])
text_value = st.one_of(realistic_text, realistic_text, realistic_text, realistic_text, realistic_text, odd)


def _record(*keys: str):
    record = st.fixed_dictionaries({}, optional={key: text_value for key in keys})
    return st.one_of(st.none(), record, record, record, record, record, record, odd)


subcommands = st.one_of(st.none(), st.lists(st.sampled_from(["pip", "install", "sync", "tool", "run", "a b", "it's", ""]), max_size=4),
                        st.lists(st.one_of(st.sampled_from(["pip", "install"]), scalars, odd), max_size=3), odd)
_full_installer = st.fixed_dictionaries({"name": st.sampled_from(["pip", "uv", "hatch", "poetry", "x"]), "version": versions,
                                         "subcommand": subcommands})
_plain_installer = st.fixed_dictionaries({"name": st.sampled_from(["pip", "uv"]), "version": versions})
installers = st.one_of(_full_installer, _full_installer, _full_installer, _plain_installer, _plain_installer, odd)
_FIELDS = {
    "python": text_value,
    "implementation": _record("name", "version"),
    "distro": st.one_of(st.none(), odd, *[st.fixed_dictionaries({}, optional={
        "name": text_value, "version": text_value, "id": text_value, "libc": _record("lib", "version")})] * 6),
    "system": _record("name", "release"),
    "cpu": text_value,
    "openssl_version": text_value,
    "setuptools_version": text_value,
    "rustc_version": text_value,
    "ci": st.one_of(st.none(), st.just(True), odd),
    "user_data": st.one_of(st.none(), odd),
}
environments = st.one_of(
    st.fixed_dictionaries({"installer": installers}, optional=_FIELDS),
    st.fixed_dictionaries({"installer": installers}, optional=_FIELDS),
    st.fixed_dictionaries({}, optional={"installer": installers, **_FIELDS}),
)
json_versions = {
    "pip": st.one_of(st.sampled_from(["6.0", "9.0.1", "18.1", "20.3.4", "23.3.1", "24.0", "25.1", "26.0b1"]), versions),
    "uv": st.one_of(st.sampled_from(["0.1.22", "0.4.30", "0.5.11", "0.9.11", "1.0.0rc1"]), versions),
}


@st.composite
def json_agents(draw) -> str:
    """pip and uv agents: ``NAME/VERSION {json}`` as pip (sorted, compact) or uv (serde order) writes it."""
    name = draw(st.sampled_from(["pip", "uv"]))
    payload = draw(st.one_of(environments, environments, environments, environments, environments, odd))
    text = json.dumps(payload, sort_keys=name == "pip", separators=(",", ":"), ensure_ascii=draw(st.booleans()))
    return f"{name}/{draw(json_versions[name])} {text}"


token = st.one_of(realistic_text, versions, st.sampled_from(["unknown", "Unknown", "CPython", "a/b", "/", "", "3.11", "2.7", "3.1"]),
                  st.text(alphabet="ab1./ -()", max_size=6))


def _pair(a, b):
    return st.builds(lambda x, y: f"{x}/{y}", a, b)


impl = _pair(st.sampled_from(["CPython", "PyPy", "unknown", "a/b", ""]), token)
system = _pair(st.sampled_from(["Linux", "Darwin", "Windows", "unknown", ""]), token)
plain_agents = st.one_of(
    st.builds("pip/{} {} {}".format, versions, impl, system),
    st.builds("poetry/{} {} {}".format, versions, impl, st.one_of(system, st.builds("{}/".format, token))),
    st.builds("pdm/{} {}".format, versions, impl),
    st.builds("pdm/{} {} {}".format, versions, impl, system),
    st.builds("twine/{}{} {}".format, versions, st.sampled_from(["", " requests/2.31", " pkginfo/1.9 requests/2 x"]), impl),
    st.builds("Python-urllib/{} setuptools/{}".format, token, versions),
    st.builds("setuptools/{} Python-urllib/{}".format, versions, token),
    st.builds("Python-urllib/{} distribute/{}".format, token, versions),
    st.builds("Python-urllib/{}".format, token),
    st.builds("{}pex/{}".format, st.sampled_from(["", "x ", "a/"]), token),
    st.builds("conda/{}{}".format, versions, st.sampled_from(["", " requests/2.31 CPython/3.11 Linux/6 ubuntu/22.04 glibc/2.35"])),
    st.builds("Bazel/{}{}".format, st.sampled_from(["", "release ", "release  "]), token),
    st.builds("bandersnatch/{} ({}){}".format, versions, token, st.sampled_from(["", " (aiohttp 3.9)"])),
    st.builds("bandersnatch {} aiohttp XML-RPC client (Python: {})".format, versions, token),
    st.builds("{}devpi-server/{} ({})".format, st.sampled_from(["", "x "]), versions, token),
    st.builds("{}/{}".format, st.sampled_from(["z3c.pypimirror", "Artifactory", "Nexus", "pep381client", "pep381client-proxy",
                                              "maturin", "python-requests", "python-httpx", "python-urllib3", "HTTPie", "uv",
                                              "Hatch", "curl", "Wget", "Mozilla", "libfetch", "xbps", "Java", "Go-http-client"]),
              token),
    st.builds("Homebrew/{} (Macintosh; Intel {} {}){}".format, versions, st.sampled_from(["Mac OS X", "macOS"]), token,
              st.sampled_from(["", " curl/8.6.0"])),
    st.builds("Python/{} aiohttp/{}".format, token, versions),
    st.builds("{}/{} (PEP {}) {}".format, st.sampled_from(["pip", "uv", "devpi"]), versions, st.sampled_from(["777", "1"]),
              st.builds(json.dumps, st.dictionaries(st.sampled_from(["python_environment", "versions", "ci"]), odd, max_size=2))),
    st.builds("{} {}".format, st.sampled_from(["FDM", "fetch libfetch/1", "OpenBSD", "MacPorts", "Debian uscan"]), token),
    st.sampled_from(["uv", "(null)", "", "Ruby", "OpenBSD ftp", "slackrepo"]),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_agents())
# integers beyond 64 bits: orjson decodes them as floats, PyPI's stdlib json keeps them exact
@example('pip/6.0 {"ci":null,"installer":{"name":"pip","version":"6.0"},"python":null,"rustc_version":18446744073709551616,"user_data":null}')
@example('uv/18.1 {"rustc_version":100000000000000000000,"python":"3.12","installer":{"version":"0.1.21","name":"uv"},'
         '"setuptools_version":["2.35","a b",null],"distro":"Linux"}')
@example('pip/24.0 {"installer":{"name":"pip","version":"24.0"},"python":3.8,"cpu":-92233720368547758080}')
def test_generated_json_agents_match_pypi(user_agent):
    if len(user_agent) <= ORACLE_MAX_CHARS:
        compare(user_agent, "generated pip/uv JSON")


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plain_agents)
def test_generated_plain_agents_match_pypi(user_agent):
    if len(user_agent) <= ORACLE_MAX_CHARS:
        compare(user_agent, "generated plain")


UV = 'uv/0.9.11 {"installer":{"name":"uv","version":"0.9.11","subcommand":%s},"python":"3.12.1"}'
PIP = 'pip/24.0 {"installer":{"name":"pip","version":"24.0"},%s}'
RULE_EXAMPLES = {
    "ci-false-is-null": PIP % '"ci":false',
    "container-in-text-field": PIP % '"python":["3","12"],"system":{"name":"Linux","release":{"r":1}}',
    "nested-not-an-object": PIP % '"implementation":"CPython"',
    "subcommand-not-a-list": UV % '"pip install"',
    "subcommand-odd-elements": UV % '["run",1,null,{"a":1}]',
    "lone-surrogate": PIP % '"cpu":"x86\\ud800"',
    "json-not-an-object": "uv/0.5.0 [1, 2]",
    "pypi-drops-line": PIP % '"system":5',
    "pypi-ambiguous": "devpi-server/6.0 (pex/2.1)",
    "extension-family": "pdm/2.20.1 CPython/3.12.7 Linux/6.8.0",
    "python-two-digit-minor": "Python-urllib/3.12",
    "user_data": PIP % '"user_data":"team=ml"',
}


@pytest.mark.parametrize("rule", sorted(RULE_EXAMPLES))
def test_each_rule_is_needed_by_its_example(rule):
    """Every rule explains a real difference: its example agent needs it (and differs without it)."""
    assert rule in compare(RULE_EXAMPLES[rule], "rule examples")


def test_every_rule_has_an_example():
    documented = {line.split("``")[1] for line in __doc__.splitlines() if line.startswith("- ``")}
    assert documented == set(RULE_EXAMPLES)


def test_report():
    """Runs last in this module: what was compared and which rules were needed."""
    total = sum(COMPARED.values())
    print(f"\ndifferential test against linehaul {__import__('importlib.metadata').metadata.version('linehaul')}: "
          f"{total} agents compared ({dict(COMPARED)}); mismatches left: {len(MISMATCHES)}")
    for rule, count in sorted(RULES.items()):
        print(f"  rule {rule}: {count}")
    assert not MISMATCHES, "\n".join(MISMATCHES)
