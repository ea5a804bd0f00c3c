"""Property tests (hypothesis) for the parser contract of parsers-api.md:

* ``LineParser.parse`` never raises, for any str or bytes;
* every call returns exactly one Record, whose table is one of the three, whose
  row has exactly the documented keys, and whose dead-letter reason is a
  documented code;
* for any list of lines, records out == lines in (the run invariant of schema.md);
* ``parse_agent`` never raises, including for ``pip/20.0 <any JSON value>``,
  and its ``details`` always has the documented shape.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from haulage.parsers import REASONS, LineParser, Origin, Record
from haulage.parsers.agents import parse_agent

TABLES = {"file_downloads", "simple_requests", "unprocessed"}
DOWNLOAD_KEYS = [
    "timestamp", "country_code", "url", "project", "file", "details", "tls_protocol",
    "tls_cipher", "classification", "user_agent", "event_id", "agent_fingerprint",
]
SIMPLE_KEYS = [
    "timestamp", "country_code", "url", "project", "tls_protocol", "tls_cipher", "details",
    "classification", "user_agent", "event_id", "agent_fingerprint",
]
UNPROCESSED_KEYS = ["received_at", "source", "line", "error"]
DETAIL_KEYS = {
    "installer", "python", "implementation", "distro", "system", "cpu", "openssl_version",
    "setuptools_version", "rustc_version", "ci", "user_data",
}
NESTED = {
    "installer": {"name", "version", "subcommand"},
    "implementation": {"name", "version"},
    "distro": {"name", "version", "id", "libc"},
    "system": {"name", "release"},
}
KINDS = {"installer", "mirror", "browser", "script", "os", "bot", "unknown"}
TRAFFIC = {"mirror", "ci", "automation", "human", "unknown"}

PARSER = LineParser(agent_cache_size=256)
ORIGIN = Origin.for_file("gs://bucket/downloads-prop.log.gz")
RECEIVED_AT = "2026-10-01T00:00:00Z"

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------- shape checks


def check_details(details):
    if details is None:
        return
    assert isinstance(details, dict)
    assert set(details) == DETAIL_KEYS
    for key, keys in NESTED.items():
        value = details[key]
        assert value is None or (isinstance(value, dict) and set(value) == keys), (key, value)
        if isinstance(value, dict):
            for sub, leaf in value.items():
                if key == "distro" and sub == "libc":
                    assert leaf is None or (isinstance(leaf, dict) and set(leaf) == {"lib", "version"})
                    if isinstance(leaf, dict):
                        assert all(v is None or isinstance(v, str) for v in leaf.values())
                else:
                    assert leaf is None or isinstance(leaf, str), (key, sub, leaf)
    for key in ("python", "cpu", "openssl_version", "setuptools_version", "rustc_version", "user_data"):
        assert details[key] is None or isinstance(details[key], str), (key, details[key])
    if details["user_data"] is not None:
        assert len(details["user_data"]) <= 512
    assert details["ci"] is True or details["ci"] is None


def check_classification(c, details):
    assert set(c) == {"kind", "traffic", "mirror", "ci", "cloud"}
    assert c["kind"] in KINDS
    assert c["traffic"] in TRAFFIC
    assert c["mirror"] is (c["traffic"] == "mirror")
    assert c["ci"] is (details is not None and details["ci"] is True)
    assert c["cloud"] is None or isinstance(c["cloud"], str)


def check_record(rec, position):
    assert isinstance(rec, Record)
    assert rec.table in TABLES
    row = rec.row
    assert isinstance(row, dict)
    if rec.table == "unprocessed":
        assert list(row) == UNPROCESSED_KEYS
        assert rec.epoch is None
        assert row["received_at"] == RECEIVED_AT
        assert row["source"] == f"{ORIGIN.label}:{position}"
        assert isinstance(row["line"], str)
        # the stored line must be valid text (bytes that were not UTF-8 are escaped)
        row["line"].encode("utf-8")
        code = row["error"].split(":")[0]
        assert code in REASONS, row["error"]
        assert code not in {"bad-gzip", "truncated-gzip", "empty-file", "unreadable-file"}
    else:
        assert list(row) == (DOWNLOAD_KEYS if rec.table == "file_downloads" else SIMPLE_KEYS)
        assert isinstance(rec.epoch, int)
        assert isinstance(row["timestamp"], str) and row["timestamp"].endswith("Z")
        assert isinstance(row["event_id"], str) and row["event_id"]
        check_details(row["details"])
        check_classification(row["classification"], row["details"])
        if row["details"] is not None:
            assert row["user_agent"] is None
        fingerprint = row["agent_fingerprint"]
        assert fingerprint is None or (isinstance(fingerprint, int) and -2**63 <= fingerprint < 2**63)
        if row["user_agent"] in ("", "(null)"):
            assert fingerprint is None  # a missing agent has no fingerprint
        if rec.table == "file_downloads":
            assert set(row["file"]) == {"filename", "project", "version", "type"}
            for key in ("project", "version", "type"):
                assert isinstance(row["file"][key], str)
            assert row["file"]["type"] in {
                "sdist", "bdist_wheel", "bdist_egg", "bdist_wininst", "bdist_msi",
                "bdist_rpm", "bdist_dmg", "bdist_dumb",
            }
            assert isinstance(row["url"], str)
            assert row["file"]["filename"] == row["url"].rsplit("/", 1)[-1]


def parse_one(raw, position=1):
    rec = PARSER.parse(raw, ORIGIN, position, received_at=RECEIVED_AT)
    check_record(rec, position)
    return rec


# ----------------------------------------------------------------- strategies

TS = "Thu, 07 Jan 2021 20:54:54 GMT"
URL = "/packages/f7/12/ec3f2e203afa394a149911729357aa48affc59c20e2c1c8297a60f33f133/threadpoolctl-2.1.0-py3-none-any.whl"
VALID = [
    f"download|{TS}|US|{URL}|TLSv1.2|ECDHE-RSA-AES128-GCM-SHA256|threadpoolctl|2.1.0|bdist_wheel|pip/20.1.1 {{}}",
    f"simple|{TS}|US|/simple/numpy/|TLSv1.2|ECDHE-RSA-AES128-GCM-SHA256||||(null)",
    f"<134>2018-07-20T02:19:20Z cache-itm18828 linehaul[411617]: 2@{TS}|JP|{URL}|TLSv1.2|ECDHE-RSA-AES128-GCM-SHA256|cfn-flip|1.0.3|sdist|curl/8.5.0",
    f"1@{TS}|DE|{URL}|requests|2.10.0|bdist_wheel|Python-urllib/2.7",
    f"3@simple|{TS}|FR|/simple/Six/|TLSv1.3|TLS_AES_128_GCM_SHA256||||uv",
]

field_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "(null)", " ", "|", "\r", "\n", "@", "\x00", TS, URL, "/simple/", "sdist", "bdist_wheel"]),
)


@st.composite
def mutated_lines(draw):
    """A valid line with some of its |-fields replaced by arbitrary text."""
    base = draw(st.sampled_from(VALID))
    parts = base.split("|")
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, len(parts) - 1))
        parts[i] = draw(field_text)
    if draw(st.booleans()):
        parts = parts[: draw(st.integers(0, len(parts)))]
    line = "|".join(parts)
    line += draw(st.sampled_from(["", "\n", "\r\n", "\r"]))
    return line


@st.composite
def line_prefixes(draw):
    prefix = draw(
        st.sampled_from(
            ["download|", "simple|", "1@", "2@", "3@", "3@download|", "3@simple|", "<134>", "<134>2018-07-20T02:19:20Z h a[1]: ", ""]
        )
    )
    return prefix + draw(st.text(max_size=200))


any_line = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300),
    mutated_lines(),
    mutated_lines().map(lambda s: s.encode("utf-8", "surrogatepass")),
    line_prefixes(),
    st.builds(lambda a, b: a.encode("utf-8", "surrogatepass") + b, mutated_lines(), st.binary(max_size=20)),
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)

AGENT_FIELDS = [
    "installer", "python", "implementation", "distro", "system", "cpu", "openssl_version",
    "setuptools_version", "rustc_version", "ci", "user_data", "subcommand", "name", "version",
    "release", "libc", "lib", "id",
]

json_objects_with_real_keys = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(AGENT_FIELDS), children, max_size=6),
    max_leaves=25,
)


# ----------------------------------------------------------------- properties


@SETTINGS
@given(any_line)
def test_parse_never_raises_and_returns_one_record(raw):
    parse_one(raw)


@SETTINGS
@given(st.text(max_size=500))
def test_parse_arbitrary_text(raw):
    parse_one(raw)


@SETTINGS
@given(st.binary(max_size=500))
def test_parse_arbitrary_bytes(raw):
    rec = parse_one(raw)
    if rec.table == "unprocessed" and raw:
        # nothing is dropped: a line that is valid UTF-8 is kept verbatim modulo
        # its line terminator or the too-long truncation
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        if text is not None and len(raw) <= 65536:
            assert text.startswith(rec.row["line"])


@SETTINGS
@given(st.integers(1, 10**9), any_line)
def test_position_used_in_source(position, raw):
    parse_one(raw, position)


@SETTINGS
@given(st.lists(any_line, max_size=30))
def test_records_out_equal_lines_in(lines):
    parser = LineParser(agent_cache_size=8)
    counts = dict.fromkeys(TABLES, 0)
    for position, raw in enumerate(lines, start=1):
        rec = parser.parse(raw, ORIGIN, position, received_at=RECEIVED_AT)
        assert isinstance(rec, Record)
        counts[rec.table] += 1
    assert sum(counts.values()) == len(lines)


@SETTINGS
@given(st.lists(mutated_lines(), min_size=1, max_size=20))
def test_parse_is_deterministic(lines):
    a = LineParser(agent_cache_size=4)
    b = LineParser(agent_cache_size=1024)
    for position, raw in enumerate(lines, start=1):
        ra = a.parse(raw, ORIGIN, position, received_at=RECEIVED_AT)
        rb = b.parse(raw, ORIGIN, position, received_at=RECEIVED_AT)
        assert ra.table == rb.table
        assert ra.row == rb.row
        assert ra.epoch == rb.epoch


@SETTINGS
@given(st.text(max_size=300))
def test_parse_agent_never_raises(ua):
    r = parse_agent(ua)
    check_details(r.details)
    check_classification(r.classification, r.details)
    assert r.kind == r.classification["kind"]
    assert isinstance(r.family, str) and r.family


@SETTINGS
@given(json_values)
def test_pip_agent_with_any_json_value(value):
    r = parse_agent("pip/20.0 " + json.dumps(value))
    check_details(r.details)
    check_classification(r.classification, r.details)


@SETTINGS
@given(json_objects_with_real_keys)
def test_pip_agent_with_json_using_real_keys(value):
    for prefix in ("pip/20.0 ", "uv/0.5.0 ", "pip/24.1b1 "):
        r = parse_agent(prefix + json.dumps(value))
        check_details(r.details)
        check_classification(r.classification, r.details)
    r = parse_agent("Hatch/1.15.0 " + json.dumps(value) + " HTTPX/0.27.0")
    check_details(r.details)
    check_classification(r.classification, r.details)


@SETTINGS
@given(st.dictionaries(st.sampled_from(AGENT_FIELDS), json_objects_with_real_keys, max_size=8))
def test_pip_agent_with_object_of_arbitrary_fields(obj):
    r = parse_agent("pip/20.0 " + json.dumps(obj))
    check_details(r.details)
    check_classification(r.classification, r.details)


@SETTINGS
@given(json_values)
def test_standardized_agent_with_any_json(value):
    r = parse_agent("pip/25.1 (PEP 777) " + json.dumps(value))
    check_details(r.details)
    check_classification(r.classification, r.details)


@SETTINGS
@given(st.text(max_size=100), st.sampled_from(["pip/", "uv/", "Hatch/", "poetry/", "pdm/", "twine/", "bandersnatch/", "Bazel/", ""]))
def test_agents_with_known_prefixes_never_raise(rest, prefix):
    r = parse_agent(prefix + rest)
    check_details(r.details)
    check_classification(r.classification, r.details)


@SETTINGS
@given(mutated_lines())
def test_line_parse_agrees_with_parse_agent(raw):
    rec = parse_one(raw)
    if rec.table != "unprocessed" and rec.row["user_agent"] is not None:
        agent = parse_agent(rec.row["user_agent"])
        assert agent.details is None
        assert rec.row["classification"] == agent.classification
