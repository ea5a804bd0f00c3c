"""The agent families as they were before the linear-time rewrite (commit 3ae4f36), kept as a test oracle.

These are PyPI's backtracking patterns (plus haulage's extensions in the
same style). They can take seconds on crafted agents, so tests only run them
on short generated agents, to show that the linear-time parsers in
parsers/agents/ give the same answer on every input. Not used by haulage.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable, Optional

import orjson
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from haulage.parsers.agents import details as d
from haulage.parsers.agents.details import Details

Parse = Callable[[str], Optional[Details]]


@dataclass(frozen=True, slots=True)
class Family:
    """A client family: its name, what kind of sender it is, and its parser."""

    name: str
    kind: str
    prefixes: Optional[tuple[str, ...]]  # None: the pattern may match anywhere
    parse: Parse


def _version_in(version: str, spec: SpecifierSet) -> bool:
    try:
        return Version(version) in spec
    except InvalidVersion:
        return False


def _loads(payload: str) -> object:
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError:
        pass
    try:  # the stdlib accepts a few things orjson refuses (NaN, lone surrogates), as PyPI does
        return json.loads(payload)
    except (ValueError, RecursionError):
        return None


def _json_after_first_space(user_agent: str) -> object:
    parts = user_agent.split(maxsplit=1)
    return _loads(parts[1]) if len(parts) == 2 else None


# --- JSON "linehaul" agents -------------------------------------------------

_PIP6 = SpecifierSet(">=6", prereleases=True)
_PIP14 = SpecifierSet(">=1.4,<6", prereleases=True)
_UV_JSON = SpecifierSet(">=0.1.22", prereleases=True)
_ANY_VERSION = SpecifierSet(">=0", prereleases=True)


def _prefix_version(user_agent: str) -> str:
    return user_agent.split(maxsplit=1)[0].split("/", 1)[1] if user_agent.strip() else ""


def pip_json(user_agent: str) -> Optional[Details]:
    if not _version_in(_prefix_version(user_agent), _PIP6):
        return None
    return d.from_linehaul_json(_json_after_first_space(user_agent))


def uv_json(user_agent: str) -> Optional[Details]:
    if not _version_in(_prefix_version(user_agent), _UV_JSON):
        return None
    return d.from_linehaul_json(_json_after_first_space(user_agent))


def hatch_json(user_agent: str) -> Optional[Details]:
    # Hatch/V {json} HTTPX/V: JSON strings may hold spaces, so take the
    # outermost braces rather than splitting on whitespace.
    start, end = user_agent.find("{"), user_agent.rfind("}")
    if start < 0 or end < start:
        return None
    return d.from_linehaul_json(_loads(user_agent[start : end + 1]))


_PEP_AGENT = re.compile(r"^(?P<client>[^\s/]+)/(?P<version>\S+) \(PEP (?P<pep>\d+)\) (?P<json>\{.*\})\s*$", re.S)


def pep_standard(user_agent: str) -> Optional[Details]:
    """Extension: the proposed ``CLIENT/VERSION (PEP NNN) {json}`` agent."""
    m = _PEP_AGENT.match(user_agent)
    if m is None:
        return None
    data = _loads(m["json"])
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

def _regex(pattern: str, build: Callable[[re.Match[str]], Optional[Details]], *, search: bool = False, flags: int = 0) -> Parse:
    compiled = re.compile(pattern, flags)
    finder = compiled.search if search else compiled.match

    def parse(user_agent: str) -> Optional[Details]:
        m = finder(user_agent)
        return build(m) if m is not None else None

    return parse


def _known(part: str) -> Optional[str]:
    return None if part.lower() == "unknown" else part


def _pip_1_4(m: re.Match[str]) -> Optional[Details]:
    version, impl_name, impl_version, system_name, system_release = m.groups()
    if not _version_in(version, _PIP14):
        return None
    impl = {"name": _known(impl_name), "version": _known(impl_version)}
    system = {"name": _known(system_name), "release": _known(system_release)}
    return d.make_details(
        installer=d.installer("pip", version),
        implementation=impl if any(impl.values()) else None,
        system=system if any(system.values()) else None,
        python=impl_version if impl_name.lower() == "cpython" else None,
    )


def _just_installer(name: str) -> Callable[[re.Match[str]], Details]:
    return lambda m: d.make_details(installer=d.installer(name, m["version"]))


def _installer_and_python(name: str) -> Callable[[re.Match[str]], Details]:
    return lambda m: d.make_details(installer=d.installer(name, m["version"]), python=m["python"])


def _installer_and_impl(name: str, with_system: bool = False) -> Callable[[re.Match[str]], Details]:
    def build(m: re.Match[str]) -> Details:
        return d.make_details(
            installer=d.installer(name, m["version"]),
            implementation={"name": m["impl_name"], "version": m["impl_version"]},
            system={"name": m["system_name"], "release": m["system_release"]} if with_system else None,
        )

    return build


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
    r"^(?:fetch\ libfetch/\S+$|libfetch/\S+$|OpenBSD\ ftp$|MacPorts/?|NetBSD-ftp/|slapt-get"
    r"|pypi-install/|slackrepo$|PTXdist|GARstow/|xbps/)"
)
# PyPI files all of these under installer name "Browser"; we keep that name in
# details but tell real browsers (human) from command-line downloaders (scripts).
_BROWSERS = r"^(?:Mozilla|Safari|Opera|AndroidDownloadManager|com\.apple\.WebKit\.Networking/|FDM\ \S+|URL/Emacs|Firefox/|UCWEB|Links)(?:/|$)"
_DOWNLOADERS = r"^(?:wget|curl|aria2|okhttp|Apache-HttpClient)(?:/|$)"

_V = r"(?P<version>\S+)"
_PY = r"(?P<python>\d\.\d+)"
_IMPL = r"(?P<impl_name>\S+)/(?P<impl_version>\S+)"

REGISTRY: tuple[Family, ...] = (
    Family("pep-standard", "installer", None, pep_standard),
    Family("pip-json", "installer", ("pip/",), pip_json),
    Family("pip-1.4", "installer", ("pip/",), _regex(r"^pip/(\S+) (\S+)/(\S+) (\S+)/(\S+)$", _pip_1_4)),
    Family("uv-json", "installer", ("uv/",), uv_json),
    # extension: uv < 0.1.22 and `uv publish` send a bare uv[/VERSION]
    Family("uv-bare", "installer", ("uv",), _regex(r"^uv(?:/(?P<version>\S+))?$", _uv_bare)),
    Family("hatch", "installer", ("Hatch/",), hatch_json),
    Family("distribute", "installer", ("Python-urllib/",),
           _regex(rf"^Python-urllib/{_PY} distribute/{_V}$", _installer_and_python("distribute"))),
    Family("setuptools", "installer", ("Python-urllib/", "setuptools/"),
           lambda ua: _SETUPTOOLS_A(ua) or _SETUPTOOLS_B(ua)),
    Family("pex", "installer", None, _regex(rf"pex/{_V}$", _just_installer("pex"), search=True)),
    Family("conda", "installer", ("conda/",), _regex(rf"^conda/{_V}(?: .+)?$", _just_installer("conda"), flags=re.S)),
    Family("bazel", "installer", ("Bazel/",), _regex(r"^Bazel/(?:release\s+)?(?P<version>.+)$", _just_installer("Bazel"), flags=re.S)),
    Family("bandersnatch", "mirror", ("bandersnatch/",),
           _regex(rf"^bandersnatch/{_V} \(.+\)$", _just_installer("bandersnatch"), flags=re.S)),
    # extension: bandersnatch's XML-RPC client
    Family("bandersnatch-xmlrpc", "mirror", ("bandersnatch ",),
           _regex(rf"^bandersnatch {_V} .*XML-RPC", _just_installer("bandersnatch"), flags=re.S)),
    Family("devpi", "mirror", None, _regex(rf"devpi-server/{_V} \(.+\)$", _just_installer("devpi"), search=True, flags=re.S)),
    Family("z3c.pypimirror", "mirror", ("z3c.pypimirror/",), _regex(rf"^z3c\.pypimirror/{_V}$", _just_installer("z3c.pypimirror"))),
    Family("artifactory", "mirror", ("Artifactory/",), _regex(rf"^Artifactory/{_V}$", _just_installer("Artifactory"))),
    Family("nexus", "mirror", ("Nexus/",), _regex(rf"^Nexus/{_V}", _just_installer("Nexus"))),
    Family("pep381client", "mirror", ("pep381client",),
           _regex(rf"^pep381client(?:-proxy)?/{_V}$", _just_installer("pep381client"))),
    Family("maturin", "installer", ("maturin/",), _regex(rf"^maturin/{_V}$", _just_installer("maturin"))),
    Family("pdm", "installer", ("pdm/",), _regex(rf"^pdm/{_V} {_IMPL}$", _installer_and_impl("pdm"))),
    # extension: current pdm appends SYSTEM/RELEASE
    Family("pdm-system", "installer", ("pdm/",),
           _regex(rf"^pdm/{_V} {_IMPL} (?P<system_name>\S+)/(?P<system_release>\S+)$", _installer_and_impl("pdm", True))),
    Family("poetry", "installer", ("poetry/",),
           _regex(rf"^poetry/{_V} {_IMPL} (?P<system_name>\S+)/(?P<system_release>\S+)?$", _installer_and_impl("poetry", True))),
    Family("twine", "installer", ("twine/",), _regex(rf"^twine/{_V}(?: .+)? {_IMPL}$", _installer_and_impl("twine"), flags=re.S)),
    Family("urllib", "script", ("Python-urllib/",), _regex(rf"^Python-urllib/{_PY}$", lambda m: d.make_details(python=m["python"]))),
    Family("requests", "script", ("python-requests/",),
           _regex(rf"^python-requests/{_V}(?: .+)?$", _just_installer("requests"), flags=re.S)),
    Family("homebrew", "installer", ("Homebrew/",),
           _regex(rf"^Homebrew/{_V} \(Macintosh; Intel (?:Mac OS X|macOS) (?P<osx_version>[^)]+)\)(?: .+)?$", _homebrew, flags=re.S)),
    # extensions: HTTP libraries PyPI does not know
    Family("httpx", "script", ("python-httpx/",), _regex(rf"^python-httpx/{_V}", _just_installer("httpx"))),
    Family("urllib3", "script", ("python-urllib3/",), _regex(rf"^python-urllib3/{_V}", _just_installer("urllib3"))),
    Family("aiohttp", "script", ("Python/",), _regex(rf"^Python/(?P<python>\S+) aiohttp/{_V}", _aiohttp)),
    Family("httpie", "script", ("HTTPie/",), _regex(rf"^HTTPie/{_V}", _just_installer("HTTPie"))),
    Family("os", "os", None, _regex(_OS_TOOLS, lambda m: d.make_details(installer=d.installer("OS")), flags=re.X)),
    Family("browser", "browser", None,
           _regex(_BROWSERS, lambda m: d.make_details(installer=d.installer("Browser")), flags=re.I | re.X)),
    Family("downloader", "script", None,
           _regex(_DOWNLOADERS, lambda m: d.make_details(installer=d.installer("Browser")), flags=re.I)),
)

_SETUPTOOLS_A = _regex(rf"^Python-urllib/{_PY} setuptools/{_V}$", _installer_and_python("setuptools"))
_SETUPTOOLS_B = _regex(rf"^setuptools/{_V} Python-urllib/{_PY}$", _installer_and_python("setuptools"))


KNOWN_BOTS = re.compile(
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


def is_known_bot(user_agent: str) -> bool:
    return user_agent in ("(null)", "") or KNOWN_BOTS.search(user_agent) is not None
