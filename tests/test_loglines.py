"""Log-line parser tests, written from the documentation only.

Sources: docs/parsers-api.md (the API and the row shapes),
../shared/docs/log-formats.md (the line formats and the real example lines),
../shared/docs/schema.md (the tables). Expected values were derived by hand,
never by running haulage's code.
"""

from __future__ import annotations

import calendar
import hashlib
import struct
import time

import pytest

from haulage.parsers import REASONS, LineParser, Origin, Record

RECEIVED_AT = "2026-10-01T00:00:00Z"
FILE_PATH = "gs://bucket/downloads-2026-10-01.log.gz"

DOWNLOAD_KEYS = [
    "timestamp",
    "country_code",
    "url",
    "project",
    "file",
    "details",
    "tls_protocol",
    "tls_cipher",
    "classification",
    "user_agent",
    "event_id",
    "agent_fingerprint",
]
SIMPLE_KEYS = [
    "timestamp",
    "country_code",
    "url",
    "project",
    "tls_protocol",
    "tls_cipher",
    "details",
    "classification",
    "user_agent",
    "event_id",
    "agent_fingerprint",
]
UNPROCESSED_KEYS = ["received_at", "source", "line", "error"]

LINE_REASONS = {
    "empty-line",
    "line-too-long",
    "bad-utf8",
    "unknown-format",
    "bad-syslog-header",
    "too-few-fields",
    "bad-timestamp",
    "null-timestamp",
    "null-url",
    "null-project",
    "null-version",
    "null-package-type",
    "bad-package-type",
    "bad-simple-url",
}
FILE_REASONS = {"bad-gzip", "truncated-gzip", "empty-file", "unreadable-file"}


def fingerprint_of(agent):
    """The agent_fingerprint rule as documented: BLAKE2b-64 of the UTF-8 agent, first 8 bytes as a
    little-endian signed 64-bit integer; None for a missing agent."""
    if agent in ("", "(null)"):
        return None
    return struct.unpack("<q", hashlib.blake2b(agent.encode("utf-8"), digest_size=8).digest())[0]


def epoch_of(rfc1123):
    return calendar.timegm(time.strptime(rfc1123, "%a, %d %b %Y %H:%M:%S GMT"))


# ----------------------------------------------------------------- real lines (log-formats.md)

TS1 = "Thu, 07 Jan 2021 20:54:54 GMT"
URL1 = (
    "/packages/f7/12/ec3f2e203afa394a149911729357aa48affc59c20e2c1c8297a60f33f133/"
    "threadpoolctl-2.1.0-py3-none-any.whl"
)
UA1 = (
    'pip/20.1.1 {"ci":null,"cpu":"x86_64","distro":{"id":"stretch","libc":{"lib":"glibc",'
    '"version":"2.24"},"name":"Debian GNU/Linux","version":"9"},"implementation":{"name":'
    '"CPython","version":"3.7.9"},"installer":{"name":"pip","version":"20.1.1"},'
    '"openssl_version":"OpenSSL 1.1.0l  10 Sep 2019","python":"3.7.9","setuptools_version":'
    '"47.1.0","system":{"name":"Linux","release":"4.15.0-112-generic"}}'
)
LINE1 = (
    f"download|{TS1}|US|{URL1}|TLSv1.2|ECDHE-RSA-AES128-GCM-SHA256|threadpoolctl|2.1.0|"
    f"bdist_wheel|{UA1}"
)
DETAILS1 = {
    "installer": {"name": "pip", "version": "20.1.1", "subcommand": None},
    "python": "3.7.9",
    "implementation": {"name": "CPython", "version": "3.7.9"},
    "distro": {
        "name": "Debian GNU/Linux",
        "version": "9",
        "id": "stretch",
        "libc": {"lib": "glibc", "version": "2.24"},
    },
    "system": {"name": "Linux", "release": "4.15.0-112-generic"},
    "cpu": "x86_64",
    "openssl_version": "OpenSSL 1.1.0l  10 Sep 2019",
    "setuptools_version": "47.1.0",
    "rustc_version": None,
    "ci": None,
    "user_data": None,
}
HUMAN_INSTALLER = {"kind": "installer", "traffic": "human", "mirror": False, "ci": False, "cloud": None}
BOT = {"kind": "bot", "traffic": "automation", "mirror": False, "ci": False, "cloud": None}
MIRROR = {"kind": "mirror", "traffic": "mirror", "mirror": True, "ci": False, "cloud": None}
UNKNOWN = {"kind": "unknown", "traffic": "unknown", "mirror": False, "ci": False, "cloud": None}
BROWSER_SCRIPT = {"kind": "script", "traffic": "automation", "mirror": False, "ci": False, "cloud": None}

EXPECTED1 = {
    "timestamp": "2021-01-07T20:54:54Z",
    "country_code": "US",
    "url": URL1,
    "project": "threadpoolctl",
    "file": {
        "filename": "threadpoolctl-2.1.0-py3-none-any.whl",
        "project": "threadpoolctl",
        "version": "2.1.0",
        "type": "bdist_wheel",
    },
    "details": DETAILS1,
    "tls_protocol": "TLSv1.2",
    "tls_cipher": "ECDHE-RSA-AES128-GCM-SHA256",
    "classification": HUMAN_INSTALLER,
    "user_agent": None,
    "agent_fingerprint": fingerprint_of(UA1),
}

TS_S = "Thu, 07 Jan 2021 20:54:52 GMT"
SIMPLE1 = f"simple|{TS_S}|US|/simple/numpy/|TLSv1.2|ECDHE-RSA-AES128-GCM-SHA256||||(null)"

# legacy v2 (log-formats.md example; the URL's elided part taken from PyPI's fixtures)
TS2 = "Fri, 20 Jul 2018 02:19:19 GMT"
URL2 = (
    "/packages/ba/c8/a928c55457441c87366eb2423efca9aa0f46380994fd8a476153493c319a/"
    "cfn_flip-1.0.3.tar.gz"
)
BANDERSNATCH = "bandersnatch/2.2.1 (cpython 3.7.0-final0, Darwin x86_64)"
SYSLOG2 = "<134>2018-07-20T02:19:20Z cache-itm18828 linehaul[411617]: "
MSG_V2 = f"2@{TS2}|JP|{URL2}|TLSv1.2|ECDHE-RSA-AES128-GCM-SHA256|cfn-flip|1.0.3|sdist|{BANDERSNATCH}"
LEGACY_V2 = SYSLOG2 + MSG_V2
DETAILS_BANDERSNATCH = {
    "installer": {"name": "bandersnatch", "version": "2.2.1", "subcommand": None},
    "python": None,
    "implementation": None,
    "distro": None,
    "system": None,
    "cpu": None,
    "openssl_version": None,
    "setuptools_version": None,
    "rustc_version": None,
    "ci": None,
    "user_data": None,
}
EXPECTED2 = {
    "timestamp": "2018-07-20T02:19:19Z",
    "country_code": "JP",
    "url": URL2,
    "project": "cfn-flip",
    "file": {"filename": "cfn_flip-1.0.3.tar.gz", "project": "cfn-flip", "version": "1.0.3", "type": "sdist"},
    "details": DETAILS_BANDERSNATCH,
    "tls_protocol": "TLSv1.2",
    "tls_cipher": "ECDHE-RSA-AES128-GCM-SHA256",
    "classification": MIRROR,
    "user_agent": None,
    "agent_fingerprint": fingerprint_of(BANDERSNATCH),
}

# legacy v1 (no TLS fields)
TS_V1 = "Tue, 10 May 2016 14:31:04 GMT"
URL_V1 = "/packages/2.7/r/requests/requests-2.10.0-py2.py3-none-any.whl"
UA_V1 = (
    'pip/8.1.1 {"cpu":"x86_64","distro":{"id":"trusty","libc":{"lib":"glibc","version":"2.19"},'
    '"name":"Ubuntu","version":"14.04"},"implementation":{"name":"CPython","version":"2.7.6"},'
    '"installer":{"name":"pip","version":"8.1.1"},"python":"2.7.6","system":{"name":"Linux",'
    '"release":"3.13.0-85-generic"}}'
)
MSG_V1 = f"{TS_V1}|DE|{URL_V1}|requests|2.10.0|bdist_wheel|{UA_V1}"
SYSLOG1 = "<134>2016-05-10T14:31:05Z cache-fra1234 linehaul[1234]: "
DETAILS_V1 = {
    "installer": {"name": "pip", "version": "8.1.1", "subcommand": None},
    "python": "2.7.6",
    "implementation": {"name": "CPython", "version": "2.7.6"},
    "distro": {"name": "Ubuntu", "version": "14.04", "id": "trusty", "libc": {"lib": "glibc", "version": "2.19"}},
    "system": {"name": "Linux", "release": "3.13.0-85-generic"},
    "cpu": "x86_64",
    "openssl_version": None,
    "setuptools_version": None,
    "rustc_version": None,
    "ci": None,
    "user_data": None,
}
EXPECTED_V1 = {
    "timestamp": "2016-05-10T14:31:04Z",
    "country_code": "DE",
    "url": URL_V1,
    "project": "requests",
    "file": {
        "filename": "requests-2.10.0-py2.py3-none-any.whl",
        "project": "requests",
        "version": "2.10.0",
        "type": "bdist_wheel",
    },
    "details": DETAILS_V1,
    "tls_protocol": None,
    "tls_cipher": None,
    "classification": HUMAN_INSTALLER,
    "user_agent": None,
    "agent_fingerprint": fingerprint_of(UA_V1),
}

# legacy v3 (3@ + a current-format line)
TS_V3 = "Sun, 01 Mar 2020 10:00:00 GMT"
URL_V3 = (
    "/packages/65/eb/1f97cb97bfc2390a276969c6fae16075da282f5058082d4cb10c6c5c1dba/"
    "six-1.14.0-py2.py3-none-any.whl"
)
UA_V3 = "pip/1.5.6 CPython/2.7.6 Linux/3.13.0-24-generic"
DETAILS_V3 = {
    "installer": {"name": "pip", "version": "1.5.6", "subcommand": None},
    "python": "2.7.6",
    "implementation": {"name": "CPython", "version": "2.7.6"},
    "distro": None,
    "system": {"name": "Linux", "release": "3.13.0-24-generic"},
    "cpu": None,
    "openssl_version": None,
    "setuptools_version": None,
    "rustc_version": None,
    "ci": None,
    "user_data": None,
}
SYSLOG3 = "<134>2020-03-01T10:00:01Z cache-fra19150 linehaul[7231]: "
MSG_V3_DOWNLOAD = f"3@download|{TS_V3}|FR|{URL_V3}|TLSv1.3|TLS_AES_128_GCM_SHA256|six|1.14.0|bdist_wheel|{UA_V3}"
MSG_V3_SIMPLE = f"3@simple|{TS_V3}|FR|/simple/Six/|TLSv1.3|TLS_AES_128_GCM_SHA256||||{UA_V3}"
EXPECTED_V3_DOWNLOAD = {
    "timestamp": "2020-03-01T10:00:00Z",
    "country_code": "FR",
    "url": URL_V3,
    "project": "six",
    "file": {"filename": "six-1.14.0-py2.py3-none-any.whl", "project": "six", "version": "1.14.0", "type": "bdist_wheel"},
    "details": DETAILS_V3,
    "tls_protocol": "TLSv1.3",
    "tls_cipher": "TLS_AES_128_GCM_SHA256",
    "classification": HUMAN_INSTALLER,
    "user_agent": None,
    "agent_fingerprint": fingerprint_of(UA_V3),
}
EXPECTED_V3_SIMPLE = {
    "timestamp": "2020-03-01T10:00:00Z",
    "country_code": "FR",
    "url": "/simple/Six/",
    "project": "six",
    "tls_protocol": "TLSv1.3",
    "tls_cipher": "TLS_AES_128_GCM_SHA256",
    "details": DETAILS_V3,
    "classification": HUMAN_INSTALLER,
    "user_agent": None,
    "agent_fingerprint": fingerprint_of(UA_V3),
}


def download_line(
    ts=TS1,
    country="US",
    url=URL1,
    tls="TLSv1.2",
    cipher="ECDHE-RSA-AES128-GCM-SHA256",
    project="threadpoolctl",
    version="2.1.0",
    ptype="bdist_wheel",
    agent=UA1,
):
    return f"download|{ts}|{country}|{url}|{tls}|{cipher}|{project}|{version}|{ptype}|{agent}"


def simple_line(ts=TS_S, country="US", url="/simple/numpy/", tls="TLSv1.2", cipher="ECDHE-RSA-AES128-GCM-SHA256", agent=UA1):
    return f"simple|{ts}|{country}|{url}|{tls}|{cipher}||||{agent}"


@pytest.fixture
def parser():
    return LineParser(agent_cache_size=16384)


@pytest.fixture
def origin():
    return Origin.for_file(FILE_PATH)


def parse(parser, raw, origin=None, position=1):
    rec = parser.parse(raw, origin or Origin.for_file(FILE_PATH), position, received_at=RECEIVED_AT)
    assert isinstance(rec, Record)
    return rec


def without_event_id(row):
    assert isinstance(row["event_id"], str) and row["event_id"]
    return {k: v for k, v in row.items() if k != "event_id"}


def assert_download(rec, expected):
    assert rec.table == "file_downloads", rec.row
    assert list(rec.row) == DOWNLOAD_KEYS
    assert without_event_id(rec.row) == expected


def assert_simple(rec, expected):
    assert rec.table == "simple_requests", rec.row
    assert list(rec.row) == SIMPLE_KEYS
    assert without_event_id(rec.row) == expected


def dead_letter_code(rec):
    assert rec.table == "unprocessed", rec.row
    assert list(rec.row) == UNPROCESSED_KEYS
    assert rec.epoch is None
    error = rec.row["error"]
    assert isinstance(error, str) and ": " in error, error
    return error.split(":")[0]


# ----------------------------------------------------------------- REASONS


def test_reasons_cover_the_documented_codes():
    assert LINE_REASONS | FILE_REASONS <= set(REASONS)


# ----------------------------------------------------------------- current format


def test_real_download_line(parser, origin):
    rec = parse(parser, LINE1, origin, 1)
    assert_download(rec, EXPECTED1)
    assert rec.epoch == epoch_of(TS1) == 1610052894


def test_real_download_line_as_bytes(parser, origin):
    rec = parse(parser, LINE1.encode(), origin, 1)
    assert_download(rec, EXPECTED1)


@pytest.mark.parametrize("ending", ["\n", "\r\n"])
@pytest.mark.parametrize("as_bytes", [False, True])
def test_line_endings_are_stripped(parser, origin, ending, as_bytes):
    raw = LINE1 + ending
    rec = parse(parser, raw.encode() if as_bytes else raw, origin, 3)
    assert_download(rec, EXPECTED1)


def test_crlf_on_unknown_agent_not_kept_in_user_agent(parser):
    rec = parse(parser, download_line(agent="SomeNewTool/1.0") + "\r\n")
    assert rec.table == "file_downloads"
    assert rec.row["user_agent"] == "SomeNewTool/1.0"


def test_real_simple_line(parser, origin):
    rec = parse(parser, SIMPLE1, origin, 2)
    assert rec.table == "simple_requests"
    assert list(rec.row) == SIMPLE_KEYS
    row = without_event_id(rec.row)
    # A (null) agent is the missing agent: a known bot, details None. Its raw value
    # is either kept as "(null)" (details is None) or dropped; both honour the docs.
    assert row.pop("user_agent") in ("(null)", None)
    assert row == {
        "timestamp": "2021-01-07T20:54:52Z",
        "country_code": "US",
        "url": "/simple/numpy/",
        "project": "numpy",
        "tls_protocol": "TLSv1.2",
        "tls_cipher": "ECDHE-RSA-AES128-GCM-SHA256",
        "details": None,
        "classification": BOT,
        "agent_fingerprint": None,  # no agent, no fingerprint
    }
    assert rec.epoch == epoch_of(TS_S) == 1610052892


def test_download_with_null_agent_is_kept_as_bot(parser):
    rec = parse(parser, download_line(agent="(null)"))
    assert rec.table == "file_downloads"
    assert rec.row["agent_fingerprint"] is None
    assert rec.row["details"] is None
    assert rec.row["classification"] == BOT
    assert rec.row["user_agent"] in ("(null)", None)


def test_download_with_known_bot_keeps_raw_agent(parser):
    rec = parse(parser, download_line(agent="Go-http-client/1.1"))
    assert rec.table == "file_downloads"
    assert rec.row["details"] is None
    assert rec.row["classification"] == BOT
    assert rec.row["user_agent"] == "Go-http-client/1.1"


def test_unknown_agent_is_kept_raw(parser):
    agent = "This is a User Agent! However we have no idea what kind it is."
    rec = parse(parser, download_line(agent=agent))
    expected = dict(EXPECTED1, details=None, classification=UNKNOWN, user_agent=agent,
                    agent_fingerprint=fingerprint_of(agent))
    assert_download(rec, expected)


def test_agent_containing_pipes_recognised(parser):
    agent = "Wget/1.20.3 | curl@example.com | thing"
    rec = parse(parser, download_line(agent=agent))
    details = dict.fromkeys(DETAILS1)
    details["installer"] = {"name": "Browser", "version": None, "subcommand": None}
    assert_download(rec, dict(EXPECTED1, details=details, classification=BROWSER_SCRIPT, user_agent=None,
                              agent_fingerprint=fingerprint_of(agent)))


def test_unknown_agent_containing_pipes_kept_whole(parser):
    agent = "my|weird|agent|with|many|pipes"
    rec = parse(parser, download_line(agent=agent))
    assert rec.table == "file_downloads"
    assert rec.row["project"] == "threadpoolctl"
    assert rec.row["file"]["type"] == "bdist_wheel"
    assert rec.row["details"] is None
    assert rec.row["user_agent"] == agent


def test_simple_agent_containing_pipes(parser):
    agent = "Wget/1.20.3 | thing"
    rec = parse(parser, simple_line(url="/simple/cfn-flip/", agent=agent))
    assert rec.table == "simple_requests"
    assert rec.row["project"] == "cfn-flip"
    assert rec.row["details"]["installer"] == {"name": "Browser", "version": None, "subcommand": None}


@pytest.mark.parametrize("country", ["", "(null)"])
def test_country_none_when_empty_or_null(parser, country):
    rec = parse(parser, download_line(country=country))
    assert_download(rec, dict(EXPECTED1, country_code=None))


@pytest.mark.parametrize("country", ["", "(null)"])
def test_simple_country_none_when_empty_or_null(parser, country):
    rec = parse(parser, simple_line(country=country))
    assert rec.table == "simple_requests"
    assert rec.row["country_code"] is None


def test_null_tls_fields_are_none(parser):
    rec = parse(parser, download_line(tls="(null)", cipher="(null)"))
    assert_download(rec, dict(EXPECTED1, tls_protocol=None, tls_cipher=None))


def test_null_tls_fields_simple(parser):
    rec = parse(parser, simple_line(tls="(null)", cipher="(null)"))
    assert rec.table == "simple_requests"
    assert rec.row["tls_protocol"] is None and rec.row["tls_cipher"] is None


@pytest.mark.parametrize(
    "ptype",
    ["sdist", "bdist_wheel", "bdist_egg", "bdist_wininst", "bdist_msi", "bdist_rpm", "bdist_dmg", "bdist_dumb"],
)
def test_every_package_type_accepted(parser, ptype):
    rec = parse(parser, download_line(ptype=ptype))
    assert rec.table == "file_downloads"
    assert rec.row["file"]["type"] == ptype


def test_filename_is_basename_of_url(parser):
    url = "/packages/source/c/cfn-flip/cfn_flip-1.0.3.tar.gz"
    rec = parse(parser, download_line(url=url, project="cfn-flip", version="1.0.3", ptype="sdist"))
    assert rec.row["url"] == url
    assert rec.row["file"] == {"filename": "cfn_flip-1.0.3.tar.gz", "project": "cfn-flip", "version": "1.0.3", "type": "sdist"}
    assert rec.row["project"] == "cfn-flip"


@pytest.mark.parametrize(
    "url, project",
    [
        ("/simple/numpy/", "numpy"),
        ("/simple/cfn-flip/", "cfn-flip"),
        ("/simple/Django/", "django"),
        ("/simple/zope.interface/", "zope-interface"),
        ("/simple/Django_REST.framework/", "django-rest-framework"),
        ("/simple/Foo--__..Bar/", "foo-bar"),
        ("/simple/ruamel.yaml.clib/", "ruamel-yaml-clib"),
        ("/simple/", None),
    ],
)
def test_simple_project_normalized(parser, url, project):
    rec = parse(parser, simple_line(url=url))
    assert rec.table == "simple_requests", rec.row
    assert rec.row["url"] == url
    assert rec.row["project"] == project


def test_full_simple_row_with_recognised_agent(parser, origin):
    rec = parse(parser, simple_line(url="/simple/Threadpoolctl/"), origin, 9)
    assert_simple(
        rec,
        {
            "timestamp": "2021-01-07T20:54:52Z",
            "country_code": "US",
            "url": "/simple/Threadpoolctl/",
            "project": "threadpoolctl",
            "tls_protocol": "TLSv1.2",
            "tls_cipher": "ECDHE-RSA-AES128-GCM-SHA256",
            "details": DETAILS1,
            "classification": HUMAN_INSTALLER,
            "user_agent": None,
            "agent_fingerprint": fingerprint_of(UA1),
        },
    )


def test_timestamp_leap_day(parser):
    rec = parse(parser, download_line(ts="Thu, 29 Feb 2024 23:59:59 GMT"))
    assert rec.row["timestamp"] == "2024-02-29T23:59:59Z"
    assert rec.epoch == epoch_of("Thu, 29 Feb 2024 23:59:59 GMT")


# ----------------------------------------------------------------- legacy formats


def test_legacy_v2_with_syslog_header(parser):
    rec = parse(parser, LEGACY_V2)
    assert_download(rec, EXPECTED2)
    # the event time is the message's, not the syslog header's (one second later)
    assert rec.epoch == epoch_of(TS2) == 1532053159


def test_legacy_v2_bare(parser):
    assert_download(parse(parser, MSG_V2), EXPECTED2)


def test_legacy_v2_bytes_crlf(parser):
    assert_download(parse(parser, (LEGACY_V2 + "\r\n").encode()), EXPECTED2)


def test_legacy_v1_with_prefix_and_header(parser):
    rec = parse(parser, SYSLOG1 + "1@" + MSG_V1)
    assert_download(rec, EXPECTED_V1)
    assert rec.epoch == epoch_of(TS_V1)


def test_legacy_v1_without_prefix_with_header(parser):
    assert_download(parse(parser, SYSLOG1 + MSG_V1), EXPECTED_V1)


def test_legacy_v1_bare_with_prefix(parser):
    assert_download(parse(parser, "1@" + MSG_V1), EXPECTED_V1)


def test_legacy_v1_bare_without_prefix(parser):
    assert_download(parse(parser, MSG_V1), EXPECTED_V1)


def test_legacy_v1_agent_with_pipes(parser):
    agent = "weird|agent"
    rec = parse(parser, SYSLOG1 + f"1@{TS_V1}|DE|{URL_V1}|requests|2.10.0|bdist_wheel|{agent}")
    assert rec.table == "file_downloads"
    assert rec.row["user_agent"] == agent
    assert rec.row["tls_protocol"] is None


def test_legacy_v3_download_with_header(parser):
    assert_download(parse(parser, SYSLOG3 + MSG_V3_DOWNLOAD), EXPECTED_V3_DOWNLOAD)


def test_legacy_v3_download_bare(parser):
    assert_download(parse(parser, MSG_V3_DOWNLOAD), EXPECTED_V3_DOWNLOAD)


def test_legacy_v3_simple_with_header(parser):
    assert_simple(parse(parser, SYSLOG3 + MSG_V3_SIMPLE), EXPECTED_V3_SIMPLE)


def test_legacy_v3_simple_bare(parser):
    assert_simple(parse(parser, MSG_V3_SIMPLE), EXPECTED_V3_SIMPLE)


def test_legacy_null_country(parser):
    msg = MSG_V2.replace("|JP|", "|(null)|")
    rec = parse(parser, SYSLOG2 + msg)
    assert_download(rec, dict(EXPECTED2, country_code=None))


# ----------------------------------------------------------------- dead letters (one per reason code)

DEAD = [
    ("empty-line", ""),
    ("empty-line", b""),
    ("empty-line", "\n"),
    ("empty-line", b"\r\n"),
    ("unknown-format", f"3@upload|{TS1}|US|{URL1}|TLSv1.2|ECDHE-RSA-AES128-GCM-SHA256|threadpoolctl|2.1.0|bdist_wheel|{UA1}"),
    ("bad-syslog-header", "<134>2018-07-20T02:19:20Z cache-itm18828"),
    ("too-few-fields", f"download|{TS1}|US|{URL1}|TLSv1.2"),
    ("too-few-fields", f"simple|{TS1}|US|/simple/numpy/"),
    ("too-few-fields", SYSLOG2 + f"2@{TS2}|JP|{URL2}|TLSv1.2"),
    ("too-few-fields", f"2@{TS2}|JP|{URL2}|TLSv1.2|ECDHE-RSA-AES128-GCM-SHA256|cfn-flip"),
    ("too-few-fields", SYSLOG1 + f"1@{TS_V1}|DE|{URL_V1}|requests"),
    ("too-few-fields", SYSLOG3 + f"3@download|{TS_V3}|FR|{URL_V3}"),
    ("too-few-fields", download_line().rsplit("|", 1)[0]),  # 9 fields: no agent field at all
    ("too-few-fields", simple_line().rsplit("|", 1)[0]),
    ("too-few-fields", MSG_V2.rsplit("|", 1)[0]),
    ("bad-timestamp", download_line(ts="2021-01-07 20:54:54")),
    ("bad-timestamp", download_line(ts="Thu, 32 Jan 2021 20:54:54 GMT")),
    ("bad-timestamp", download_line(ts="Thu, 07 Foo 2021 20:54:54 GMT")),
    ("bad-timestamp", simple_line(ts="yesterday")),
    ("bad-timestamp", SYSLOG2 + MSG_V2.replace(TS2, "Fri, 20 Jul 2018 25:19:19 GMT")),
    ("null-timestamp", download_line(ts="(null)")),
    ("null-timestamp", simple_line(ts="(null)")),
    ("null-url", download_line(url="(null)")),
    ("null-url", simple_line(url="(null)")),
    ("null-project", download_line(project="(null)")),
    ("null-version", download_line(version="(null)")),
    ("null-package-type", download_line(ptype="(null)")),
    ("null-project", SYSLOG2 + MSG_V2.replace("|cfn-flip|", "|(null)|")),
    ("bad-package-type", download_line(ptype="wheelie")),
    ("bad-package-type", download_line(ptype="sdistfoo")),
    ("bad-simple-url", simple_line(url="/pypi/numpy/json")),
    ("bad-simple-url", simple_line(url="/packages/f7/12/x.whl")),
]


@pytest.mark.parametrize(
    "reason, raw",
    DEAD,
    ids=[f"{r}-{i}" for i, (r, _) in enumerate(DEAD)],
)
def test_dead_letter_reason(parser, reason, raw):
    rec = parse(parser, raw, Origin.for_file(FILE_PATH), 5)
    assert dead_letter_code(rec) == reason
    assert reason in REASONS
    assert rec.row["received_at"] == RECEIVED_AT
    assert rec.row["source"] == f"{FILE_PATH}:5"
    text = raw.decode() if isinstance(raw, bytes) else raw
    # "the raw line ... nothing dropped": the terminator may or may not be kept
    assert rec.row["line"] in (text, text.rstrip("\r\n"))


def test_every_line_reason_has_a_case():
    assert {r for r, _ in DEAD} | {"line-too-long", "bad-utf8"} == LINE_REASONS


@pytest.mark.parametrize(
    "raw",
    [
        download_line(project="(null)", version="(null)", ptype="(null)"),
        download_line(version="(null)", ptype="(null)"),
    ],
)
def test_several_null_file_fields_still_null_reason(parser, raw):
    assert dead_letter_code(parse(parser, raw)) in {"null-project", "null-version", "null-package-type"}


@pytest.mark.parametrize(
    "raw",
    [
        "hello world",
        "garbage|with|a|few|pipes",
        "9@" + MSG_V2[2:],
        SYSLOG2 + "9@" + MSG_V2[2:],
        SYSLOG2 + "0a1b2c3d4e5f " + MSG_V2,
        "upload|" + LINE1[len("download|"):],
    ],
)
def test_unrecognisable_lines_dead_lettered(parser, raw):
    code = dead_letter_code(parse(parser, raw))
    assert code in {"unknown-format", "too-few-fields", "bad-timestamp", "bad-syslog-header"}
    assert code in REASONS


def test_dead_letter_keeps_raw_line(parser):
    raw = download_line(ptype="wheelie")
    rec = parse(parser, raw + "\n")
    assert rec.row["line"] in (raw, raw + "\n")
    rec = parse(parser, raw)
    assert rec.row["line"] == raw


def test_dead_letter_source_for_message_origin(parser):
    origin = Origin.for_message("projects/p/subscriptions/s", "1234")
    rec = parser.parse(download_line(ts="(null)"), origin, 1, received_at=RECEIVED_AT)
    assert rec.table == "unprocessed"
    assert rec.row["source"] == "projects/p/subscriptions/s#1234:1"
    assert origin.label == "projects/p/subscriptions/s#1234"


def test_origin_for_file_label_is_path():
    assert Origin.for_file(FILE_PATH).label == FILE_PATH


# ----------------------------------------------------------------- bad UTF-8


def test_invalid_utf8_dead_lettered_and_escaped(parser):
    raw = download_line().encode().replace(b"pip/20.1.1 ", b"pip/20.1.1\xff\xfe ")
    rec = parse(parser, raw, position=12)
    assert dead_letter_code(rec) == "bad-utf8"
    assert rec.row["line"] == raw.decode("utf-8", "backslashreplace")
    assert "\\xff\\xfe" in rec.row["line"]
    assert rec.row["source"] == f"{FILE_PATH}:12"


def test_invalid_utf8_only_bytes(parser):
    rec = parse(parser, b"\xff\xfe\xfd\n")
    assert dead_letter_code(rec) == "bad-utf8"
    assert rec.row["line"] in ("\\xff\\xfe\\xfd", "\\xff\\xfe\\xfd\n")
    rec = parse(parser, b"\xff\xfe\xfd")
    assert rec.row["line"] == "\\xff\\xfe\\xfd"


def test_invalid_utf8_mixed_with_valid_multibyte(parser):
    raw = "download|caf\u00e9|".encode() + b"\xc3\x28|rest"
    rec = parse(parser, raw)
    assert dead_letter_code(rec) == "bad-utf8"
    assert rec.row["line"] == raw.decode("utf-8", "backslashreplace")
    assert "caf\u00e9" in rec.row["line"]


def test_valid_non_ascii_agent_is_fine(parser):
    agent = "Outil-Spécial/1.0 (日本語)"
    rec = parse(parser, download_line(agent=agent).encode("utf-8"))
    assert rec.table == "file_downloads"
    assert rec.row["user_agent"] == agent


# ----------------------------------------------------------------- line too long

LIMIT = 65536


def _padded(total_bytes):
    base = download_line(agent="")
    pad = total_bytes - len(base.encode())
    return (base + "x" * pad).encode()


def test_line_at_limit_is_parsed(parser):
    raw = _padded(LIMIT)
    assert len(raw) == LIMIT
    rec = parse(parser, raw)
    assert rec.table == "file_downloads"
    # an agent over the 8,192-character cap is not parsed, and kept cut to the cap
    assert LIMIT - len(download_line(agent="").encode()) > 8192
    assert rec.row["user_agent"] == "x" * 8192
    assert rec.row["details"] is None
    assert rec.row["classification"]["kind"] == "unknown"


def test_line_over_limit_is_dead_lettered_truncated(parser):
    raw = _padded(LIMIT + 1)
    rec = parse(parser, raw, position=4)
    assert dead_letter_code(rec) == "line-too-long"
    assert rec.row["source"] == f"{FILE_PATH}:4"
    stored = rec.row["line"]
    assert len(stored) < len(raw)
    assert stored[:1000] == raw[:1000].decode()


def test_huge_line_is_dead_lettered_truncated(parser):
    raw = _padded(5 * LIMIT)
    rec = parse(parser, raw.decode())
    assert dead_letter_code(rec) == "line-too-long"
    assert len(rec.row["line"]) <= LIMIT + 100
    assert rec.row["line"][:1000] == raw[:1000].decode()


# ----------------------------------------------------------------- event_id / source / epoch


def test_event_id_deterministic_across_parsers():
    a = LineParser().parse(LINE1, Origin.for_file(FILE_PATH), 7, received_at=RECEIVED_AT)
    b = LineParser(agent_cache_size=1).parse(LINE1, Origin.for_file(FILE_PATH), 7, received_at=RECEIVED_AT)
    assert a.row["event_id"] == b.row["event_id"]
    assert isinstance(a.row["event_id"], str) and a.row["event_id"]


def test_event_id_differs_by_position(parser):
    ids = {parse(parser, LINE1, Origin.for_file(FILE_PATH), p).row["event_id"] for p in range(1, 51)}
    assert len(ids) == 50


def test_event_id_differs_by_file(parser):
    a = parse(parser, LINE1, Origin.for_file("gs://bucket/downloads-a.log.gz"), 1)
    b = parse(parser, LINE1, Origin.for_file("gs://bucket/downloads-b.log.gz"), 1)
    assert a.row["event_id"] != b.row["event_id"]


def test_event_id_key_is_the_basename(parser):
    # parsers-api.md: Origin.for_file -> event-id key = basename, so the same
    # archive read from another location gives the same ids (idempotent replay).
    a = parse(parser, LINE1, Origin.for_file("gs://bucket/2021/downloads-x.log.gz"), 3)
    b = parse(parser, LINE1, Origin.for_file("/mnt/replay/downloads-x.log.gz"), 3)
    assert a.row["event_id"] == b.row["event_id"]


def test_event_id_depends_only_on_origin_and_position(parser):
    origin = Origin.for_file(FILE_PATH)
    a = parse(parser, LINE1, origin, 42)
    b = parse(parser, SIMPLE1, origin, 42)
    assert a.row["event_id"] == b.row["event_id"]


def test_event_id_for_messages(parser):
    m1 = Origin.for_message("projects/p/subscriptions/s", "1")
    m1_again = Origin.for_message("projects/p/subscriptions/s", "1")
    m2 = Origin.for_message("projects/p/subscriptions/s", "2")
    a = parser.parse(LINE1, m1, 1, received_at=RECEIVED_AT)
    b = parser.parse(LINE1, m1_again, 1, received_at=RECEIVED_AT)
    c = parser.parse(LINE1, m2, 1, received_at=RECEIVED_AT)
    assert a.row["event_id"] == b.row["event_id"] != c.row["event_id"]


def test_epoch_matches_timestamp_for_all_formats(parser):
    for raw, ts in [
        (LINE1, TS1),
        (SIMPLE1, TS_S),
        (LEGACY_V2, TS2),
        (SYSLOG1 + "1@" + MSG_V1, TS_V1),
        (SYSLOG3 + MSG_V3_DOWNLOAD, TS_V3),
        (MSG_V3_SIMPLE, TS_V3),
    ]:
        rec = parse(parser, raw)
        assert rec.table in ("file_downloads", "simple_requests"), raw
        assert rec.epoch == epoch_of(ts)
        assert isinstance(rec.epoch, int)
        assert rec.row["timestamp"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(rec.epoch))


# ----------------------------------------------------------------- agent cache


def test_agent_cache_counts_hits():
    parser = LineParser(agent_cache_size=16)
    origin = Origin.for_file(FILE_PATH)
    hits0, misses0 = parser.cache_hits, parser.cache_misses
    for pos in range(1, 6):
        parser.parse(LINE1, origin, pos, received_at=RECEIVED_AT)
    assert parser.cache_misses - misses0 >= 1
    assert parser.cache_hits - hits0 >= 4


# ----------------------------------------------------------------- agent_fingerprint


@pytest.mark.parametrize("agent, expected", [
    # BLAKE2b-64 digests worked out with hashlib alone: 992b29ada87a2db2, a49cc9112d33e72f
    ("pip/23.3", -5607691096128148583),
    ("Résumé/1.0 ☃", 3451783908067744932),
])
def test_agent_fingerprint_known_values(parser, agent, expected):
    for line in (download_line(agent=agent), simple_line(agent=agent)):
        for raw in (line, line.encode()):
            assert parse(parser, raw).row["agent_fingerprint"] == expected == fingerprint_of(agent)


@pytest.mark.parametrize("agent", ["", "(null)"])
def test_missing_agent_has_no_fingerprint(parser, agent):
    assert parse(parser, download_line(agent=agent)).row["agent_fingerprint"] is None
    assert parse(parser, simple_line(agent=agent)).row["agent_fingerprint"] is None


def test_fingerprint_is_of_the_raw_agent_not_of_what_it_says(parser):
    """Two agents with the same details (key order differs) are different environments' strings."""
    a = parse(parser, download_line(agent='pip/24.0 {"python":"3.12.1","cpu":"x86_64"}')).row
    b = parse(parser, download_line(agent='pip/24.0 {"cpu":"x86_64","python":"3.12.1"}')).row
    assert a["details"] == b["details"]
    assert a["agent_fingerprint"] != b["agent_fingerprint"]
    assert a["agent_fingerprint"] == fingerprint_of('pip/24.0 {"python":"3.12.1","cpu":"x86_64"}')


def test_fingerprint_same_through_every_format(parser):
    """Legacy and current lines carrying the same agent give the same fingerprint."""
    v3 = parse(parser, SYSLOG3 + MSG_V3_DOWNLOAD).row
    current = parse(parser, download_line(agent=UA_V3)).row
    v1 = parse(parser, MSG_V1.replace(UA_V1, UA_V3)).row
    assert v3["agent_fingerprint"] == current["agent_fingerprint"] == v1["agent_fingerprint"] == fingerprint_of(UA_V3)


def test_parse_batch_fingerprints_repeated_agents_from_the_cache(parser, origin):
    lines = [download_line(agent=a).encode() for a in ("pip/23.3", "(null)", "uv/0.4.0", "pip/23.3", "(null)")]
    batch = parser.parse_batch(lines, origin, 1, RECEIVED_AT)
    assert [r.row["agent_fingerprint"] for r in batch] == [fingerprint_of(a) for a in
                                                           ("pip/23.3", "(null)", "uv/0.4.0", "pip/23.3", "(null)")]
    assert parser.cache_hits >= 2  # the repeats came from the agent cache
