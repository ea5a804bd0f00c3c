"""One parser per client family and version range, in a fixed order.

Each :class:`Family` answers one question — "is this agent mine, and what
does it say?" — and returns a details dict or None. Families are tried in
registry order (cheap prefix test first), so overlaps are resolved the same
way every time, unlike PyPI's randomised parser set. The values produced for
agents PyPI recognises follow PyPI's parser field by field; the families PyPI
misses (marked "extension") follow the formats in user-agents.md.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable, Optional

import orjson
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from . import details as d
from .details import Details
from .linear import anchored, closes_parenthesis, dollar_end, final_token, name_optional_version, name_version, token_end

__all__ = [
    "Family", "pip_json", "uv_json", "hatch_json", "pep_standard", "pip_1_4", "pdm", "pdm_system",
    "poetry", "twine", "pex", "bazel", "bandersnatch", "bandersnatch_xmlrpc", "devpi", "REGISTRY",
]


Parse = Callable[[str], Optional[Details]]


@dataclass(frozen=True, slots=True)
class Family:
    """A client family: its name, what kind of sender it is, and its parser."""

    name: str
    kind: str
    prefixes: Optional[tuple[str, ...]]  # None: the pattern may match anywhere
    parse: Parse


_VERSION_ANSWERS: dict[tuple[int, str], bool] = {}
"""Answers of :func:`_version_in` already given. Distinct agents far outnumber the installer
versions in them (a fresh pip agent differs in its kernel build, not its pip version), and
``packaging`` spends microseconds per question; emptied past :data:`_VERSION_ANSWERS_LIMIT`
entries, and versions longer than :data:`_VERSION_MEMO_CHARS` are not kept, so it stays small."""
_VERSION_ANSWERS_LIMIT = 4096
_VERSION_MEMO_CHARS = 64


def _version_in(version: str, spec: SpecifierSet) -> bool:
    """Is ``version`` a PEP 440 version inside ``spec``? (False when it is no version at all.)"""
    key = (id(spec), version)  # the specifier sets are module constants
    answer = _VERSION_ANSWERS.get(key)
    if answer is not None:
        return answer
    try:
        answer = Version(version) in spec
    except InvalidVersion:
        answer = False
    if len(version) <= _VERSION_MEMO_CHARS:
        if len(_VERSION_ANSWERS) >= _VERSION_ANSWERS_LIMIT:
            _VERSION_ANSWERS.clear()
        _VERSION_ANSWERS[key] = answer
    return answer


def _holds_float(value: object) -> bool:
    """Is there a float anywhere in a decoded JSON value? One pass, no recursion."""
    if type(value) is not dict:
        return _holds_float_in([value])
    # a linehaul agent: a flat object of strings and small objects of strings
    for item in value.values():  # type: ignore[attr-defined]
        kind = type(item)
        if kind is str or item is None:
            continue
        if kind is dict:
            for inner in item.values():
                if type(inner) is not str and inner is not None and _holds_float_in([inner]):
                    return True
        elif _holds_float_in([item]):
            return True
    return False


def _holds_float_in(stack: list) -> bool:
    """The general walk behind :func:`_holds_float` (``stack`` is consumed)."""
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is float:
            return True
        if kind is dict:
            stack.extend(item.values())  # type: ignore[attr-defined]
        elif kind is list:
            stack.extend(item)  # type: ignore[arg-type]
    return False


def _loads(payload: str) -> object:
    """Decode a JSON agent exactly as PyPI's stdlib ``json.loads`` would.

    orjson is several times faster and agrees with the stdlib on everything
    pip and uv send, except two things: it refuses what the stdlib accepts
    (NaN, lone surrogates), and it turns an integer beyond 64 bits into a
    float (``1e+20`` where PyPI keeps ``100000000000000000000``). So the
    stdlib decodes whatever orjson refuses or returns with a float in it; a
    float decoded from a literal like ``3.8`` comes out the same either way.
    """
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return _stdlib_loads(payload)
    return _as_stdlib(value, payload)


def _as_stdlib(value: object, payload: str) -> object:
    """orjson's decoding ``value`` of ``payload``, or the stdlib's where the two may differ (a float in it)."""
    return value if not _holds_float(value) else _stdlib_loads(payload)


def _stdlib_loads(payload: str) -> object:
    """``json.loads``, None for what it refuses."""
    try:
        return json.loads(payload)
    except (ValueError, RecursionError):
        return None


def _details_from_json(payload: str) -> Optional[Details]:
    """The ``details`` of a linehaul JSON payload, as :func:`details.from_linehaul_json` of PyPI's decoding.

    The objects clients send take the short way
    (:func:`details.from_plain_linehaul_json` of orjson's decoding, which
    reads only values whose decoding the stdlib agrees on); anything else
    is decoded as :func:`_loads` does, without decoding it twice, and
    converted in full.
    """
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return d.from_linehaul_json(_stdlib_loads(payload))
    details = d.from_plain_linehaul_json(value)
    if details is not None:
        return details
    return d.from_linehaul_json(_as_stdlib(value, payload))


# --- JSON "linehaul" agents -------------------------------------------------

_PIP6 = SpecifierSet(">=6", prereleases=True)
_PIP14_SPEC = SpecifierSet(">=1.4,<6", prereleases=True)
_UV_JSON = SpecifierSet(">=0.1.22", prereleases=True)
_ANY_VERSION = SpecifierSet(">=0", prereleases=True)


def _head_and_json(user_agent: str, spec: SpecifierSet) -> Optional[Details]:
    """``NAME/VERSION {json}`` whose VERSION is in ``spec``: the JSON's details, else None.

    VERSION is what follows the first ``/`` of the first whitespace-free
    token, the JSON what ``split(maxsplit=1)`` leaves after that token
    (leading whitespace dropped, trailing kept), as PyPI splits it: one
    C-level pass, linear in the agent's length. A token without ``/``
    raises IndexError, as splitting it at ``/`` would (parse_agent reads
    that as "not mine"; the family's prefix rules it out anyway).
    """
    parts = user_agent.split(None, 1)
    if not parts:
        return None  # no token, so no version
    token = parts[0]
    slash = token.find("/")
    if slash < 0:
        raise IndexError("no NAME/VERSION token")  # what splitting the token at "/" would raise
    if not _version_in(token[slash + 1 :], spec):
        return None
    return _details_from_json(parts[1]) if len(parts) == 2 else None


def pip_json(user_agent: str) -> Optional[Details]:
    """pip ≥ 6: ``pip/<version> {json}``; the JSON is linehaul's details object.

    None when the version is outside the range that sends JSON, so the next family
    in the registry gets the agent.
    """
    return _head_and_json(user_agent, _PIP6)


def uv_json(user_agent: str) -> Optional[Details]:
    """uv's JSON agent: ``uv/<version> {json}``, the same details object as pip's.

    None for uv versions that do not send JSON (the bare ``uv/<version>`` family takes those).
    """
    return _head_and_json(user_agent, _UV_JSON)


def hatch_json(user_agent: str) -> Optional[Details]:
    """Hatch: ``Hatch/<version> {json} HTTPX/<version>``, details taken from the JSON.

    The JSON is cut at the outermost braces, not at whitespace: its strings may hold spaces.
    """
    start, end = user_agent.find("{"), user_agent.rfind("}")
    if start < 0 or end < start:
        return None
    return _details_from_json(user_agent[start : end + 1])


_PEP_HEAD = anchored("pep-standard", r"(?P<client>[^\s/]++)/(?P<version>\S++) \(PEP (?P<pep>\d++)\) ")


def _pep_json(user_agent: str) -> Optional[tuple[re.Match[str], str]]:
    r"""``CLIENT/VERSION (PEP NNN) {json}`` then only whitespace: the head and the JSON text.

    ``\{.*\}\s*$`` (DOTALL) takes the longest text ending in ``}`` that is
    followed by whitespace only: the rest with trailing whitespace removed.
    """
    m = _PEP_HEAD.match(user_agent)
    if m is None:
        return None
    payload = user_agent[m.end() :].rstrip()
    if len(payload) < 2 or payload[0] != "{" or payload[-1] != "}":
        return None
    return m, payload


def pep_standard(user_agent: str) -> Optional[Details]:
    """Extension: the proposed ``CLIENT/VERSION (PEP NNN) {json}`` agent."""
    found = _pep_json(user_agent)
    if found is None:
        return None
    m, payload = found
    data = _loads(payload)
    if not isinstance(data, dict):
        return None
    env = data.get("python_environment")
    env = env if isinstance(env, dict) else {}
    versions = data.get("versions")
    versions = versions if isinstance(versions, dict) else {}

    def version_of(key: str) -> Optional[dict]:
        value = versions.get(key)
        return value if isinstance(value, dict) else None

    libc, tls = version_of("libc"), version_of("tls")
    setuptools, rustc = version_of("setuptools"), version_of("rustc")
    impl_name = d.text(env.get("platform_python_implementation")) or d.text(env.get("implementation_name"))
    system_name, system_release = d.text(env.get("platform_system")), d.text(env.get("platform_release"))
    tls_text = " ".join(p for p in (d.text(tls.get("name")), d.text(tls.get("version"))) if p) if tls else ""
    return d.make_details(
        installer=d.installer(m["client"], m["version"]),
        python=d.text(env.get("python_full_version")),
        implementation=(
            {"name": impl_name, "version": d.text(env.get("implementation_version"))}
            if impl_name or env.get("implementation_version") is not None
            else None
        ),
        distro=(
            {"name": None, "version": None, "id": None,
             "libc": {"lib": d.text(libc.get("name")), "version": d.text(libc.get("version"))}}
            if libc
            else None
        ),
        system={"name": system_name, "release": system_release} if system_name or system_release else None,
        cpu=d.text(env.get("platform_machine")),
        openssl_version=tls_text or None,
        setuptools_version=d.text(setuptools.get("version")) if setuptools else None,
        rustc_version=d.text(rustc.get("version")) if rustc else None,
        ci=d.ci_flag(data.get("ci")),
        user_data=d.user_data(data.get("user_data")),
    )


# --- plain agents -------------------------------------------------------------
# Each pattern follows the PyPI pattern named in the comment, rewritten by the
# rules of linear.py: anchored, possessive runs, and the splits PyPI's
# patterns leave to backtracking done with one string search. A possessive
# run stands for PyPI's greedy one wherever the character after it cannot
# belong to the run (``\S+`` before a space, ``\d+`` before ``.``, ``[^)]+``
# before ``)``): giving characters back could never let the pattern match.

def _regex(name: str, pattern: str, build: Callable[[re.Match[str]], Optional[Details]], flags: int = 0) -> Parse:
    match = anchored(name, pattern, flags).match

    def parse(user_agent: str) -> Optional[Details]:
        m = match(user_agent)
        return build(m) if m is not None else None

    return parse


def _known(part: str) -> Optional[str]:
    return None if part.lower() == "unknown" else part


_PIP14 = anchored("pip-1.4", r"pip/(\S++) (\S++) (\S++)$")


def pip_1_4(user_agent: str) -> Optional[Details]:
    r"""PyPI: ``^pip/(\S+) (\S+)/(\S+) (\S+)/(\S+)$`` for pip 1.4 to 5."""
    m = _PIP14.match(user_agent)
    if m is None:
        return None
    version = m[1]
    impl, system = name_version(m[2]), name_version(m[3])
    if impl is None or system is None or not _version_in(version, _PIP14_SPEC):
        return None
    impl_name, impl_version = impl
    system_name, system_release = system
    impl_record = {"name": _known(impl_name), "version": _known(impl_version)}
    system_record = {"name": _known(system_name), "release": _known(system_release)}
    return d.make_details(
        installer=d.installer("pip", version),
        implementation=impl_record if any(impl_record.values()) else None,
        system=system_record if any(system_record.values()) else None,
        python=impl_version if impl_name.lower() == "cpython" else None,
    )


def _just_installer(name: str) -> Callable[[re.Match[str]], Details]:
    return lambda m: d.make_details(installer=d.installer(name, m["version"]))


def _installer_and_python(name: str) -> Callable[[re.Match[str]], Details]:
    return lambda m: d.make_details(installer=d.installer(name, m["version"]), python=m["python"])


def _with_impl(name: str, version: str, impl: tuple[str, str], system: Optional[tuple[str, Optional[str]]] = None) -> Details:
    return d.make_details(
        installer=d.installer(name, version),
        implementation={"name": impl[0], "version": impl[1]},
        system={"name": system[0], "release": system[1]} if system is not None else None,
    )


_PDM = anchored("pdm", r"pdm/(\S++) (\S++)$")
_PDM_SYSTEM = anchored("pdm-system", r"pdm/(\S++) (\S++) (\S++)$")
_POETRY = anchored("poetry", r"poetry/(\S++) (\S++) (\S++)$")


def pdm(user_agent: str) -> Optional[Details]:
    r"""PyPI: ``^pdm/(\S+) (\S+)/(\S+)$``."""
    m = _PDM.match(user_agent)
    impl = name_version(m[2]) if m is not None else None
    return _with_impl("pdm", m[1], impl) if m is not None and impl is not None else None


def pdm_system(user_agent: str) -> Optional[Details]:
    """Extension: current pdm appends ``SYSTEM/RELEASE`` to PyPI's pdm pattern."""
    m = _PDM_SYSTEM.match(user_agent)
    if m is None:
        return None
    impl, system = name_version(m[2]), name_version(m[3])
    return _with_impl("pdm", m[1], impl, system) if impl is not None and system is not None else None


def poetry(user_agent: str) -> Optional[Details]:
    r"""PyPI: ``^poetry/(\S+) (\S+)/(\S+) (\S+)/(\S+)?$`` (the release may be empty)."""
    m = _POETRY.match(user_agent)
    if m is None:
        return None
    impl, system = name_version(m[2]), name_optional_version(m[3])
    return _with_impl("poetry", m[1], impl, system) if impl is not None and system is not None else None


_TWINE = anchored("twine", r"twine/(\S++) ")


def twine(user_agent: str) -> Optional[Details]:
    r"""PyPI: ``^twine/(\S+)(?: .+)? (\S+)/(\S+)$`` (DOTALL).

    ``IMPL/VERSION`` is whitespace-free and ends the agent, so it is the final
    token, and the character before it must be a plain space: either the one
    after twine's version (no middle part) or a later one with at least one
    character of middle part in between.
    """
    m = _TWINE.match(user_agent)
    last = final_token(user_agent) if m is not None else None
    if m is None or last is None:
        return None
    before, token = last
    gap = m.end() - 1
    if user_agent[before] != " " or not (before == gap or before >= gap + 2):
        return None
    impl = name_version(token)
    return _with_impl("twine", m[1], impl) if impl is not None else None


def pex(user_agent: str) -> Optional[Details]:
    r"""PyPI: ``pex/(\S+)$`` searched anywhere.

    The leftmost ``pex/`` whose whitespace-free remainder reaches the end:
    the first ``pex/`` inside the final token, if anything follows it.
    """
    last = final_token(user_agent)
    if last is None:
        return None
    token = last[1]
    at = token.find("pex/")
    if at < 0 or at + 4 == len(token):
        return None
    return d.make_details(installer=d.installer("pex", token[at + 4 :]))


def bazel(user_agent: str) -> Optional[Details]:
    r"""PyPI: ``^Bazel/(?:release\s+)?(.+)$`` (DOTALL).

    The greedy ``release\s+`` gives back its last whitespace when nothing
    else is left for the version, and is skipped when it would leave nothing.
    """
    if not user_agent.startswith("Bazel/"):
        return None
    rest = user_agent[6:]
    version = rest
    if rest.startswith("release"):
        after = rest[7:]
        spaces = len(after) - len(after.lstrip())
        if spaces and len(after) > spaces:
            version = after[spaces:]
        elif spaces >= 2:
            version = after[-1]
    return d.make_details(installer=d.installer("Bazel", version)) if version else None


_BANDERSNATCH = anchored("bandersnatch", r"bandersnatch/(\S++) \(")


def bandersnatch(user_agent: str) -> Optional[Details]:
    r"""PyPI: ``^bandersnatch/(\S+) \(.+\)$`` (DOTALL)."""
    m = _BANDERSNATCH.match(user_agent)
    if m is None or not closes_parenthesis(user_agent, m.end()):
        return None
    return d.make_details(installer=d.installer("bandersnatch", m[1]))


_BANDERSNATCH_XMLRPC = anchored("bandersnatch-xmlrpc", r"bandersnatch (\S++) ")


def bandersnatch_xmlrpc(user_agent: str) -> Optional[Details]:
    """Extension: ``bandersnatch VERSION …XML-RPC…``, bandersnatch's XML-RPC client."""
    m = _BANDERSNATCH_XMLRPC.match(user_agent)
    if m is None or user_agent.find("XML-RPC", m.end()) < 0:
        return None
    return d.make_details(installer=d.installer("bandersnatch", m[1]))


_DEVPI = "devpi-server/"


def devpi(user_agent: str) -> Optional[Details]:
    r"""PyPI: ``devpi-server/(\S+) \(.+\)$`` (DOTALL) searched anywhere.

    Every ``devpi-server/`` inside one whitespace-free token shares that
    token's end, so after a failed try the search resumes past the token:
    each character is looked at a bounded number of times.
    """
    at = user_agent.find(_DEVPI)
    while at >= 0:
        start = at + len(_DEVPI)
        end = token_end(user_agent, start)
        if end > start and user_agent.startswith(" (", end) and closes_parenthesis(user_agent, end + 2):
            return d.make_details(installer=d.installer("devpi", user_agent[start:end]))
        at = user_agent.find(_DEVPI, max(end, start))
    return None


def _uv_bare(m: re.Match[str]) -> Optional[Details]:
    version = m["version"]
    if version is not None and not _version_in(version, _ANY_VERSION):
        return None  # `uv/latest` is not uv: PyPI treats unparseable versions as unknown agents
    return d.make_details(installer=d.installer("uv", version))


def _homebrew(m: re.Match[str]) -> Details:
    return d.make_details(
        installer=d.installer("Homebrew", m["version"]),
        distro={"name": "OS X", "version": m["osx_version"], "id": None, "libc": None},
    )


def _aiohttp(m: re.Match[str]) -> Details:
    return d.make_details(installer=d.installer("aiohttp", m["version"]), python=m["python"])


_OS_TOOLS = (
    r"(?:fetch\ libfetch/\S++$|libfetch/\S++$|OpenBSD\ ftp$|MacPorts/?|NetBSD-ftp/|slapt-get"
    r"|pypi-install/|slackrepo$|PTXdist|GARstow/|xbps/)"
)
# PyPI files all of these under installer name "Browser"; we keep that name in
# details but tell real browsers (human) from command-line downloaders (scripts).
# PyPI's ``FDM\ \S+(?:/|$)`` holds when the token after "FDM " reaches the end or
# has a "/" after its first character: the two FDM branches below say exactly that.
_BROWSERS = (
    r"(?:(?:Mozilla|Safari|Opera|AndroidDownloadManager|com\.apple\.WebKit\.Networking/|URL/Emacs|Firefox/|UCWEB|Links)(?:/|$)"
    r"|FDM\ (?:\S[^\s/]*+/|\S++$))"
)
_DOWNLOADERS = r"(?:wget|curl|aria2|okhttp|Apache-HttpClient)(?:/|$)"

_V = r"(?P<version>\S++)"
_PY = r"(?P<python>\d\.\d++)"

REGISTRY: tuple[Family, ...] = (
    Family("pep-standard", "installer", None, pep_standard),
    Family("pip-json", "installer", ("pip/",), pip_json),
    Family("pip-1.4", "installer", ("pip/",), pip_1_4),
    Family("uv-json", "installer", ("uv/",), uv_json),
    # extension: uv < 0.1.22 and `uv publish` send a bare uv[/VERSION]
    Family("uv-bare", "installer", ("uv",), _regex("uv-bare", r"uv(?:/(?P<version>\S++))?$", _uv_bare)),
    Family("hatch", "installer", ("Hatch/",), hatch_json),
    Family("distribute", "installer", ("Python-urllib/",),
           _regex("distribute", rf"Python-urllib/{_PY} distribute/{_V}$", _installer_and_python("distribute"))),
    Family("setuptools", "installer", ("Python-urllib/", "setuptools/"),
           lambda ua: _SETUPTOOLS_A(ua) or _SETUPTOOLS_B(ua)),
    Family("pex", "installer", None, pex),
    Family("conda", "installer", ("conda/",), _regex("conda", rf"conda/{_V}(?: .++)?$", _just_installer("conda"), re.S)),
    Family("bazel", "installer", ("Bazel/",), bazel),
    Family("bandersnatch", "mirror", ("bandersnatch/",), bandersnatch),
    # extension: bandersnatch's XML-RPC client
    Family("bandersnatch-xmlrpc", "mirror", ("bandersnatch ",), bandersnatch_xmlrpc),
    Family("devpi", "mirror", None, devpi),
    Family("z3c.pypimirror", "mirror", ("z3c.pypimirror/",),
           _regex("z3c.pypimirror", rf"z3c\.pypimirror/{_V}$", _just_installer("z3c.pypimirror"))),
    Family("artifactory", "mirror", ("Artifactory/",), _regex("artifactory", rf"Artifactory/{_V}$", _just_installer("Artifactory"))),
    Family("nexus", "mirror", ("Nexus/",), _regex("nexus", rf"Nexus/{_V}", _just_installer("Nexus"))),
    Family("pep381client", "mirror", ("pep381client",),
           _regex("pep381client", rf"pep381client(?:-proxy)?/{_V}$", _just_installer("pep381client"))),
    Family("maturin", "installer", ("maturin/",), _regex("maturin", rf"maturin/{_V}$", _just_installer("maturin"))),
    Family("pdm", "installer", ("pdm/",), pdm),
    # extension: current pdm appends SYSTEM/RELEASE
    Family("pdm-system", "installer", ("pdm/",), pdm_system),
    Family("poetry", "installer", ("poetry/",), poetry),
    Family("twine", "installer", ("twine/",), twine),
    Family("urllib", "script", ("Python-urllib/",),
           _regex("urllib", rf"Python-urllib/{_PY}$", lambda m: d.make_details(python=m["python"]))),
    Family("requests", "script", ("python-requests/",),
           _regex("requests", rf"python-requests/{_V}(?: .++)?$", _just_installer("requests"), re.S)),
    Family("homebrew", "installer", ("Homebrew/",),
           _regex("homebrew", rf"Homebrew/{_V} \(Macintosh; Intel (?:Mac OS X|macOS) (?P<osx_version>[^)]++)\)(?: .++)?$",
                  _homebrew, re.S)),
    # extensions: HTTP libraries PyPI does not know
    Family("httpx", "script", ("python-httpx/",), _regex("httpx", rf"python-httpx/{_V}", _just_installer("httpx"))),
    Family("urllib3", "script", ("python-urllib3/",), _regex("urllib3", rf"python-urllib3/{_V}", _just_installer("urllib3"))),
    Family("aiohttp", "script", ("Python/",), _regex("aiohttp", rf"Python/(?P<python>\S++) aiohttp/{_V}", _aiohttp)),
    Family("httpie", "script", ("HTTPie/",), _regex("httpie", rf"HTTPie/{_V}", _just_installer("HTTPie"))),
    Family("os", "os", None, _regex("os", _OS_TOOLS, lambda m: d.make_details(installer=d.installer("OS")), re.X)),
    Family("browser", "browser", None,
           _regex("browser", _BROWSERS, lambda m: d.make_details(installer=d.installer("Browser")), re.I | re.X)),
    Family("downloader", "script", None,
           _regex("downloader", _DOWNLOADERS, lambda m: d.make_details(installer=d.installer("Browser")), re.I)),
)

_SETUPTOOLS_A = _regex("setuptools-a", rf"Python-urllib/{_PY} setuptools/{_V}$", _installer_and_python("setuptools"))
_SETUPTOOLS_B = _regex("setuptools-b", rf"setuptools/{_V} Python-urllib/{_PY}$", _installer_and_python("setuptools"))
