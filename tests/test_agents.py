"""User-agent parser tests, written from the documentation only.

Expected values come from docs/parsers-api.md, ../shared/docs/user-agents.md,
../shared/docs/schema.md and the per-family output of PyPI's own linehaul
parser (converted to haulage's shape: every key present, missing ones None,
nested records None or full dicts, plus ``installer.subcommand`` and
``user_data``). They were never obtained by running haulage's code.

The agent corpus lives in tests/data/agents/<family>.json as a list of
``{"ua", "details", "kind", "traffic"}`` objects (an optional "note" says why
the case is there).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from haulage.parsers.agents import AgentResult, parse_agent

DATA = Path(__file__).parent / "data" / "agents"

KINDS = {"installer", "mirror", "browser", "script", "os", "bot", "unknown"}
TRAFFIC = {"mirror", "ci", "automation", "human", "unknown"}

DETAIL_KEYS = [
    "installer",
    "python",
    "implementation",
    "distro",
    "system",
    "cpu",
    "openssl_version",
    "setuptools_version",
    "rustc_version",
    "ci",
    "user_data",
]
NESTED_KEYS = {
    "installer": {"name", "version", "subcommand"},
    "implementation": {"name", "version"},
    "distro": {"name", "version", "id", "libc"},
    "system": {"name", "release"},
}
STRING_LEAVES = ["python", "cpu", "openssl_version", "setuptools_version", "rustc_version", "user_data"]


def _load_cases():
    files = sorted(DATA.glob("*.json"))
    assert files, f"no agent fixtures in {DATA}"
    for path in files:
        for i, case in enumerate(json.loads(path.read_text(encoding="utf-8"))):
            yield pytest.param(case, id=f"{path.stem}-{i}")


CASES = list(_load_cases())


def empty_details(**overrides):
    """A details dict with every key None, then the given overrides."""
    details = dict.fromkeys(DETAIL_KEYS)
    details.update(overrides)
    return details


def installer(name, version=None, subcommand=None):
    return {"name": name, "version": version, "subcommand": subcommand}


def assert_shape(details):
    """Structural contract of ``details`` (parsers-api.md)."""
    if details is None:
        return
    assert isinstance(details, dict)
    assert set(details) == set(DETAIL_KEYS)
    for key, keys in NESTED_KEYS.items():
        value = details[key]
        assert value is None or (isinstance(value, dict) and set(value) == keys), (key, value)
        if isinstance(value, dict):
            for sub, leaf in value.items():
                if key == "distro" and sub == "libc":
                    assert leaf is None or (
                        isinstance(leaf, dict) and set(leaf) == {"lib", "version"}
                    ), leaf
                    if isinstance(leaf, dict):
                        assert all(v is None or isinstance(v, str) for v in leaf.values()), leaf
                else:
                    assert leaf is None or isinstance(leaf, str), (key, sub, leaf)
    for key in STRING_LEAVES:
        assert details[key] is None or isinstance(details[key], str), (key, details[key])
    assert details["ci"] in (True, None)
    assert details["ci"] is not False


def assert_classification(result: AgentResult):
    c = result.classification
    assert list(c) == ["kind", "traffic", "mirror", "ci", "cloud"] or set(c) == {
        "kind",
        "traffic",
        "mirror",
        "ci",
        "cloud",
    }
    assert c["kind"] == result.kind
    assert c["kind"] in KINDS
    assert c["traffic"] in TRAFFIC
    assert c["mirror"] is (c["traffic"] == "mirror")
    assert c["ci"] is (result.details is not None and result.details.get("ci") is True)
    assert c["cloud"] is None or isinstance(c["cloud"], str)


# ----------------------------------------------------------------- corpus


def test_corpus_is_well_formed():
    families = {p.stem for p in DATA.glob("*.json")}
    assert len(CASES) >= 100
    for family in families:
        cases = json.loads((DATA / f"{family}.json").read_text(encoding="utf-8"))
        assert len(cases) >= 2, family
        for case in cases:
            assert set(case) <= {"ua", "details", "kind", "traffic", "note"}
            assert case["kind"] in KINDS and case["traffic"] in TRAFFIC
            assert_shape(case["details"])


@pytest.mark.parametrize("case", CASES)
def test_agent_details(case):
    result = parse_agent(case["ua"])
    assert result.details == case["details"]


@pytest.mark.parametrize("case", CASES)
def test_agent_kind_and_traffic(case):
    result = parse_agent(case["ua"])
    assert result.kind == case["kind"]
    assert result.classification["kind"] == case["kind"]
    assert result.classification["traffic"] == case["traffic"]
    assert_shape(result.details)
    assert_classification(result)


# ----------------------------------------------------------------- family names
# parsers-api.md names these families explicitly.


@pytest.mark.parametrize(
    "ua, family",
    [
        ('pip/24.0 {"installer":{"name":"pip","version":"24.0"},"python":"3.12.2"}', "pip-json"),
        ("uv", "uv-bare"),
        ("uv/0.1.10", "uv-bare"),
        ("Go-http-client/1.1", "bot"),
        ("(null)", "bot"),
        ("This is a User Agent! However we have no idea what kind it is.", "unknown"),
        ("pip/experiment-package-gateway", "unknown"),
    ],
)
def test_documented_family_names(ua, family):
    assert parse_agent(ua).family == family


# ----------------------------------------------------------------- pip JSON specifics


def _pip(obj, prefix="pip/24.0"):
    return f"{prefix} {json.dumps(obj, separators=(',', ':'), sort_keys=True)}"


def test_json_installer_name_wins_over_prefix():
    r = parse_agent(
        _pip({"installer": {"name": "uv", "version": "0.4.0"}, "python": "3.12.2", "ci": None})
    )
    assert r.details["installer"] == installer("uv", "0.4.0")
    assert r.kind == "installer"
    assert r.classification["traffic"] == "human"


def test_pip_json_ci_false_is_stored_as_none():
    # details.ci is TRUE or NULL (schema.md), so a client's false is not kept as False.
    r = parse_agent(_pip({"installer": {"name": "pip", "version": "24.0"}, "ci": False}))
    assert r.details["ci"] is None
    assert r.classification["ci"] is False
    assert r.classification["traffic"] == "human"


def test_pip_json_minimal_object():
    r = parse_agent(_pip({"installer": {"name": "pip", "version": "24.0"}}))
    assert r.details == empty_details(installer=installer("pip", "24.0"))


def test_pip_json_null_nested_records_stay_none():
    r = parse_agent(
        _pip(
            {
                "installer": {"name": "pip", "version": "24.0"},
                "distro": None,
                "implementation": None,
                "system": None,
            }
        )
    )
    assert r.details == empty_details(installer=installer("pip", "24.0"))


def test_pip_json_partial_nested_records_are_completed():
    r = parse_agent(
        _pip(
            {
                "installer": {"name": "pip"},
                "distro": {"name": "Ubuntu", "libc": {"lib": "glibc"}},
                "implementation": {"name": "CPython"},
                "system": {"release": "6.5.0-1016-azure"},
            }
        )
    )
    assert r.details == empty_details(
        installer=installer("pip"),
        distro={"name": "Ubuntu", "version": None, "id": None, "libc": {"lib": "glibc", "version": None}},
        implementation={"name": "CPython", "version": None},
        system={"name": None, "release": "6.5.0-1016-azure"},
    )
    assert r.classification["cloud"] == "azure"


# ----------------------------------------------------------------- user_data


def test_user_data_string_kept():
    r = parse_agent(_pip({"installer": {"name": "pip", "version": "24.0"}, "user_data": "team=ml"}))
    assert r.details["user_data"] == "team=ml"


def test_user_data_null_is_none():
    r = parse_agent(_pip({"installer": {"name": "pip", "version": "24.0"}, "user_data": None}))
    assert r.details["user_data"] is None


@pytest.mark.parametrize("value", [42, True, 1.5, [1, "a"], {"team": "ml", "n": 2}])
def test_user_data_non_string_is_json_encoded(value):
    r = parse_agent(_pip({"installer": {"name": "pip", "version": "24.0"}, "user_data": value}))
    encoded = r.details["user_data"]
    assert isinstance(encoded, str)
    assert json.loads(encoded) == value


def test_user_data_truncated_to_512_chars():
    r = parse_agent(_pip({"installer": {"name": "pip", "version": "24.0"}, "user_data": "x" * 2000}))
    assert r.details["user_data"] == "x" * 512


def test_user_data_exactly_512_chars_kept_whole():
    value = "ab" * 256
    r = parse_agent(_pip({"installer": {"name": "pip", "version": "24.0"}, "user_data": value}))
    assert r.details["user_data"] == value


def test_long_non_string_user_data_truncated():
    r = parse_agent(_pip({"installer": {"name": "pip", "version": "24.0"}, "user_data": list(range(1000))}))
    assert isinstance(r.details["user_data"], str)
    assert len(r.details["user_data"]) == 512


# ----------------------------------------------------------------- uv subcommand


def _uv(subcommand, version="0.5.11"):
    obj = {
        "installer": {"name": "uv", "version": version, "subcommand": subcommand},
        "python": "3.12.8",
        "implementation": {"name": "CPython", "version": "3.12.8"},
        "distro": None,
        "system": {"name": "Linux", "release": "6.8.0-45-generic"},
        "cpu": "x86_64",
        "openssl_version": None,
        "setuptools_version": None,
        "rustc_version": None,
        "ci": None,
    }
    return f"uv/{version} {json.dumps(obj, separators=(',', ':'))}"


@pytest.mark.parametrize(
    "subcommand",
    [["pip", "install"], ["sync"], ["tool", "run"], ["pip", "install", "my package"], ["run", "--with", "it's"]],
)
def test_uv_subcommand_is_shell_joined(subcommand):
    r = parse_agent(_uv(subcommand))
    assert r.details["installer"] == installer("uv", "0.5.11", shlex.join(subcommand))


def test_uv_without_subcommand_key():
    r = parse_agent(_uv(None))
    assert r.details["installer"] == installer("uv", "0.5.11", None)


def test_uv_prerelease_counts():
    r = parse_agent(_uv(["sync"], version="0.2.0rc1"))
    assert r.details["installer"]["version"] == "0.2.0rc1"
    assert r.kind == "installer"


def test_uv_ignores_pip_user_data_absent():
    r = parse_agent(_uv(["sync"]))
    assert r.details["user_data"] is None


# ----------------------------------------------------------------- malformed agents never crash


@pytest.mark.parametrize(
    "ua",
    [
        "pip/experiment-package-gateway",
        "pip/experiment",
        "pip/",
        "pip",
        "uv/not-a-version",
        "uv/",
        "pip/20.0 {not json",
        "pip/20.0 []",
        "pip/20.0 [1, 2, 3]",
        'pip/20.0 "a string"',
        "pip/20.0 42",
        "pip/20.0 null",
        "pip/20.0 true",
        "uv/0.4.0 [1, 2]",
        "uv/0.4.0 {broken",
        "pip/experiment {\"installer\":{\"name\":\"pip\",\"version\":\"x\"}}",
        "Hatch/1.15.0 no json here HTTPX/0.27.0",
        "Hatch/1.15.0 {broken} HTTPX/0.27.0",
        "Hatch/1.15.0 [1] HTTPX/0.27.0",
    ],
)
def test_invalid_version_or_json_is_unknown(ua):
    r = parse_agent(ua)
    assert r.details is None
    assert r.kind == "unknown"
    assert r.family == "unknown"
    assert r.classification == {
        "kind": "unknown",
        "traffic": "unknown",
        "mirror": False,
        "ci": False,
        "cloud": None,
    }


WRONG_TYPES = [
    {"installer": "pip"},
    {"installer": ["pip", "24.0"]},
    {"installer": {"name": 7, "version": 24.0}},
    {"installer": {"name": "uv", "version": "0.5.0", "subcommand": "pip install"}},
    {"installer": {"name": "uv", "version": "0.5.0", "subcommand": [1, None, {"a": 1}]}},
    {"installer": {"name": "uv", "version": "0.5.0", "subcommand": {"pip": "install"}}},
    {"implementation": [1, 2]},
    {"implementation": {"name": {"x": 1}, "version": [3, 12]}},
    {"distro": "Ubuntu"},
    {"distro": {"name": "Ubuntu", "libc": "glibc"}},
    {"distro": {"name": "Ubuntu", "libc": [1]}},
    {"distro": {"libc": {"lib": 5, "version": None}}},
    {"system": 5},
    {"system": {"name": None, "release": 6.5}},
    {"python": 3.8},
    {"python": ["3", "8"]},
    {"cpu": {"arch": "x86_64"}},
    {"openssl_version": False},
    {"ci": "yes"},
    {"ci": 1},
    {"ci": False},
    {"ci": []},
    {"user_data": {"nested": [1, 2, {"x": None}]}},
    {"installer": None, "python": None},
    {},
]


@pytest.mark.parametrize("obj", WRONG_TYPES, ids=[json.dumps(o)[:60] for o in WRONG_TYPES])
@pytest.mark.parametrize("prefix", ["pip/24.0", "uv/0.5.0"])
def test_nested_fields_of_wrong_type_do_not_crash(obj, prefix):
    r = parse_agent(f"{prefix} {json.dumps(obj)}")
    assert_shape(r.details)
    assert_classification(r)
    assert r.kind in KINDS


# ----------------------------------------------------------------- HTTP libraries (extension)
# user-agents.md / schema.md: httpx, urllib3, aiohttp and HTTPie are recognised
# scripts. Their details content is not specified by the docs, only the kind.


@pytest.mark.parametrize(
    "ua",
    [
        "python-httpx/0.27.0",
        "python-httpx/0.25.2",
        "python-urllib3/2.2.1",
        "python-urllib3/1.26.18",
        "Python/3.11 aiohttp/3.9.3",
        "Python/3.12 aiohttp/3.9.5",
        "HTTPie/3.2.2",
        "HTTPie/2.6.0",
    ],
)
def test_http_libraries_are_scripts(ua):
    r = parse_agent(ua)
    assert r.kind == "script"
    assert r.family != "unknown"
    assert r.classification["traffic"] == "automation"
    assert_shape(r.details)


# ----------------------------------------------------------------- standardized (PEP) agent


def _pep_agent(client="pip", version="25.1", pep="777", ci=True, user_data="team=ml"):
    payload = {
        "python_environment": {
            "implementation_name": "cpython",
            "implementation_version": "3.12.2",
            "os_name": "posix",
            "platform_machine": "x86_64",
            "platform_python_implementation": "CPython",
            "platform_release": "6.5.0-1016-azure",
            "platform_system": "Linux",
            "platform_version": "#16~22.04.1-Ubuntu SMP Fri Feb 16 15:42:02 UTC 2024",
            "python_full_version": "3.12.2",
            "python_version": "3.12",
            "sys_platform": "linux",
        },
        "versions": {
            "libc": {"name": "glibc", "version": "2.35"},
            "tls": {"name": "OpenSSL", "version": "3.0.2"},
            "setuptools": {"version": "69.1.0"},
            "rustc": {"version": "1.76.0"},
        },
        "ci": ci,
        "user_data": user_data,
    }
    return f"{client}/{version} (PEP {pep}) {json.dumps(payload, separators=(',', ':'))}"


@pytest.mark.parametrize("pep", ["777", "9999"])
def test_standardized_agent_recognised(pep):
    r = parse_agent(_pep_agent(pep=pep))
    assert r.details is not None
    assert_shape(r.details)
    assert r.details["installer"]["name"] == "pip"
    assert r.details["installer"]["version"] == "25.1"
    assert r.details["ci"] is True
    assert r.details["user_data"] == "team=ml"
    assert r.kind == "installer"
    assert r.classification["traffic"] == "ci"


def test_standardized_agent_ci_false_is_none():
    r = parse_agent(_pep_agent(client="uv", version="0.9.0", ci=False, user_data=None))
    assert r.details is not None
    assert r.details["installer"]["name"] == "uv"
    assert r.details["installer"]["version"] == "0.9.0"
    assert r.details["ci"] is None
    assert r.details["user_data"] is None
    assert r.classification["traffic"] == "human"


# ----------------------------------------------------------------- unknown / bots keep nothing


def test_unknown_agent_result():
    r = parse_agent("SomeNewTool/1.0 (+https://example.org)")
    assert r.details is None
    assert r.kind == "unknown"
    assert r.classification["traffic"] == "unknown"


def test_null_agent_is_bot():
    r = parse_agent("(null)")
    assert r.details is None
    assert r.kind == "bot"
    assert r.classification["traffic"] == "automation"


def test_parse_agent_is_pure():
    ua = 'pip/24.0 {"ci":true,"installer":{"name":"pip","version":"24.0"}}'
    first = parse_agent(ua)
    first_details = json.loads(json.dumps(first.details))
    second = parse_agent(ua)
    assert second.details == first_details
    assert second.classification == first.classification
