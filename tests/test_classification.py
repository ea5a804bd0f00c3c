"""Classification tests (schema.md "classification", parsers-api.md).

traffic precedence: mirror > ci > automation (script, os, bot, missing agent)
> human (installer, browser) > unknown; ``ci`` = details.ci IS TRUE, never
None; ``mirror`` = traffic == "mirror"; ``cloud`` inferred from
details.system.release / distro. Expected values derived from the docs only.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from haulage.parsers import LineParser, Origin
from haulage.parsers.agents import parse_agent

DATA = Path(__file__).parent / "data" / "agents"


def pip_agent(release=None, system_name="Linux", ci=None, distro=None, version="24.0"):
    obj = {
        "ci": ci,
        "cpu": "x86_64",
        "implementation": {"name": "CPython", "version": "3.12.2"},
        "installer": {"name": "pip", "version": version},
        "python": "3.12.2",
    }
    if release is not None or system_name is not None:
        obj["system"] = {"name": system_name, "release": release}
    if distro is not None:
        obj["distro"] = distro
    return f"pip/{version} {json.dumps(obj, separators=(',', ':'), sort_keys=True)}"


def uv_agent(release, ci=None):
    obj = {
        "installer": {"name": "uv", "version": "0.5.11", "subcommand": ["pip", "install"]},
        "python": "3.12.8",
        "implementation": {"name": "CPython", "version": "3.12.8"},
        "distro": {"name": "Ubuntu", "version": "24.04", "id": "noble", "libc": {"lib": "glibc", "version": "2.39"}},
        "system": {"name": "Linux", "release": release},
        "cpu": "x86_64",
        "openssl_version": None,
        "setuptools_version": None,
        "rustc_version": None,
        "ci": ci,
    }
    return f"uv/0.5.11 {json.dumps(obj, separators=(',', ':'))}"


# ----------------------------------------------------------------- precedence table

PRECEDENCE = [
    # (agent, kind, traffic)
    ("bandersnatch/6.5.0 (cpython 3.11.7-final0, Linux x86_64)", "mirror", "mirror"),
    ("devpi-server/6.10.0 (py3.11.7; linux)", "mirror", "mirror"),
    ("Artifactory/7.77.5", "mirror", "mirror"),
    ("Nexus/3.61.0-02 (OSS; Linux; 5.15.0-91-generic; amd64; 17.0.9)", "mirror", "mirror"),
    ("pep381client-proxy/1.5", "mirror", "mirror"),
    ("z3c.pypimirror/1.0.16", "mirror", "mirror"),
    (pip_agent("6.5.0-1016-azure", ci=True), "installer", "ci"),
    (uv_agent("6.8.0-1021-azure", ci=True), "installer", "ci"),
    (pip_agent("6.5.0-44-generic", ci=None), "installer", "human"),
    (uv_agent("6.5.0-44-generic", ci=None), "installer", "human"),
    ("poetry/1.8.2 CPython/3.12.2 Darwin/23.4.0", "installer", "human"),
    ("pdm/2.12.4 CPython/3.12.2 Linux/6.5.0-1016-azure", "installer", "human"),
    ("twine/4.0.2 CPython/3.9.16", "installer", "human"),
    ("conda/4.10.3 requests/2.26.0 CPython/3.9.5 Linux/5.4.0-81-generic ubuntu/20.04.2 glibc/2.31", "installer", "human"),
    ("Homebrew/4.3.5 (Macintosh; Intel Mac OS X 14.5) curl/8.6.0", "installer", "human"),
    ("Bazel/release 7.1.0", "installer", "human"),
    ("uv", "installer", "human"),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", "browser", "human"),
    ("python-requests/2.31.0", "script", "automation"),
    ("Python-urllib/3.11", "script", "automation"),
    ("curl/8.5.0", "script", "automation"),
    ("Wget/1.21.4", "script", "automation"),
    ("okhttp/4.12.0", "script", "automation"),
    ("libfetch/2.0", "os", "automation"),
    ("xbps/0.59.2", "os", "automation"),
    ("Go-http-client/1.1", "bot", "automation"),
    ("(null)", "bot", "automation"),
    ("Java/17.0.9", "bot", "automation"),
    ("SomethingNobodyKnows/0.1", "unknown", "unknown"),
    ("pip/experiment-package-gateway", "unknown", "unknown"),
]


@pytest.mark.parametrize("ua, kind, traffic", PRECEDENCE)
def test_traffic_precedence(ua, kind, traffic):
    c = parse_agent(ua).classification
    assert c["kind"] == kind
    assert c["traffic"] == traffic
    assert c["mirror"] is (traffic == "mirror")
    assert c["ci"] is (traffic == "ci")


def test_ci_beats_human_for_every_json_installer():
    for ua in [
        pip_agent("6.5.0-1016-azure", ci=True),
        uv_agent("6.5.0-1016-azure", ci=True),
        'Hatch/1.15.0 {"ci":true,"installer":{"name":"hatch","version":"1.15.0"},"python":"3.12.0"} HTTPX/0.27.0',
        'pip/24.0 {"ci":true,"installer":{"name":"uv","version":"0.4.0"}}',
    ]:
        c = parse_agent(ua).classification
        assert c["traffic"] == "ci", ua
        assert c["ci"] is True
        assert c["mirror"] is False


def test_ci_null_or_false_is_not_ci():
    for ci in (None, False):
        c = parse_agent(pip_agent("6.5.0-1016-azure", ci=ci)).classification
        assert c["ci"] is False
        assert c["traffic"] == "human"


def test_missing_ci_key_is_not_ci():
    # pip 6 to 18 send no "ci" key at all
    ua = 'pip/9.0.1 {"cpu":"x86_64","implementation":{"name":"CPython","version":"2.7.12"},"installer":{"name":"pip","version":"9.0.1"},"python":"2.7.12","system":{"name":"Linux","release":"4.4.0-1049-aws"}}'
    c = parse_agent(ua).classification
    assert c["ci"] is False
    assert c["traffic"] == "human"
    assert c["cloud"] == "aws"


def test_kind_independent_of_installer_name():
    # curl keeps PyPI's installer name "Browser" in details but is a script
    r = parse_agent("curl/8.5.0")
    assert r.details["installer"]["name"] == "Browser"
    assert r.kind == "script"
    r = parse_agent("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36")
    assert r.details["installer"]["name"] == "Browser"
    assert r.kind == "browser"


# ----------------------------------------------------------------- ci never None, over the whole corpus


def _corpus():
    for path in sorted(DATA.glob("*.json")):
        for case in json.loads(path.read_text(encoding="utf-8")):
            yield case["ua"]


@pytest.mark.parametrize("ua", list(_corpus()))
def test_classification_fields_never_null(ua):
    c = parse_agent(ua).classification
    assert set(c) == {"kind", "traffic", "mirror", "ci", "cloud"}
    for key in ("kind", "traffic", "mirror", "ci"):
        assert c[key] is not None, key
    assert isinstance(c["ci"], bool)
    assert isinstance(c["mirror"], bool)


# ----------------------------------------------------------------- cloud inference

CLOUD = [
    ("6.5.0-1016-azure", "azure"),
    ("5.15.0-1057-azure", "azure"),
    ("6.2.0-1019-azure", "azure"),
    ("5.10.210-201.852.amzn2.x86_64", "aws"),
    ("4.14.336-253.554.amzn2.x86_64", "aws"),
    ("6.1.66-91.160.amzn2023.x86_64", "aws"),
    ("6.5.0-1014-aws", "aws"),
    ("5.15.0-1051-gcp", "gcp"),
    ("6.8.0-1015-gcp", "gcp"),
    ("5.15.0-1048-gke", "gcp"),
    ("5.15.0-1049-oracle", "oracle"),
    ("5.15.0-91-generic", None),
    ("6.1.0-13-amd64", None),
    ("6.1.0-18-cloud-amd64", None),
    ("5.15.133.1-microsoft-standard-WSL2", None),
    ("4.15.0-112-generic", None),
    ("6.6.32-linuxkit", None),
]


@pytest.mark.parametrize("release, cloud", CLOUD)
def test_cloud_from_pip_system_release(release, cloud):
    assert parse_agent(pip_agent(release)).classification["cloud"] == cloud


@pytest.mark.parametrize("release, cloud", CLOUD)
def test_cloud_from_uv_system_release(release, cloud):
    assert parse_agent(uv_agent(release)).classification["cloud"] == cloud


@pytest.mark.parametrize(
    "ua, cloud",
    [
        ("poetry/1.8.3 CPython/3.12.3 Linux/6.5.0-1016-azure", "azure"),
        ("poetry/1.8.3 PyPy/7.3.16 Linux/6.5.0-1022-aws", "aws"),
        ("pdm/2.12.4 CPython/3.12.2 Linux/5.15.0-1048-gke", "gcp"),
        ("pip/1.5.6 CPython/2.7.6 Linux/3.13.0-44-generic", None),
        ("poetry/1.1.11 CPython/3.9.2 Linux/5.10.16.3-microsoft-standard-WSL2", None),
    ],
)
def test_cloud_from_plain_agents(ua, cloud):
    assert parse_agent(ua).classification["cloud"] == cloud


@pytest.mark.parametrize(
    "ua",
    [
        pip_agent("23.4.0", system_name="Darwin"),
        pip_agent("10", system_name="Windows"),
        pip_agent(None, system_name=None),
        "Nexus/3.29.2-02 (PRO; Linux; 5.4.0-1036-azure; amd64; 1.8.0_282)",  # no system in details
        "curl/8.5.0",
        "Python-urllib/3.11",
        "(null)",
        "SomethingNobodyKnows/0.1 (Linux 6.5.0-1016-azure)",
    ],
)
def test_no_cloud_without_evidence(ua):
    assert parse_agent(ua).classification["cloud"] is None


def test_cloud_from_distro():
    # parsers-api.md: cloud from system.release / distro (amzn -> aws)
    ua = pip_agent(
        None,
        system_name=None,
        distro={"id": "amzn", "name": "Amazon Linux", "version": "2"},
    )
    assert parse_agent(ua).classification["cloud"] == "aws"


def test_cloud_does_not_change_traffic():
    c = parse_agent(pip_agent("6.5.0-1016-azure")).classification
    assert c == {"kind": "installer", "traffic": "human", "mirror": False, "ci": False, "cloud": "azure"}
    c = parse_agent(pip_agent("6.5.0-1016-azure", ci=True)).classification
    assert c == {"kind": "installer", "traffic": "ci", "mirror": False, "ci": True, "cloud": "azure"}


# ----------------------------------------------------------------- rows carry the agent's classification


@pytest.mark.parametrize("ua, kind, traffic", PRECEDENCE)
def test_row_classification_matches_agent(ua, kind, traffic):
    line = (
        "download|Thu, 07 Jan 2021 20:54:54 GMT|US|/packages/f7/12/ec3f2e203afa394a149911729357aa48affc59c20e2c1c8297a60f33f133/"
        "threadpoolctl-2.1.0-py3-none-any.whl|TLSv1.2|ECDHE-RSA-AES128-GCM-SHA256|threadpoolctl|2.1.0|bdist_wheel|" + ua
    )
    rec = LineParser().parse(line, Origin.for_file("x.log"), 1, received_at="2026-10-01T00:00:00Z")
    assert rec.table == "file_downloads"
    agent = parse_agent(ua)
    assert rec.row["classification"] == agent.classification
    assert rec.row["classification"]["kind"] == kind
    assert rec.row["classification"]["traffic"] == traffic
    assert rec.row["details"] == agent.details
    if agent.details is None:
        if ua != "(null)":
            assert rec.row["user_agent"] == ua
    else:
        assert rec.row["user_agent"] is None
