"""Self-checks of the synthetic log generator (benchmarks/corpus.py) and of the
bundled fixtures (fixtures/generate.py, fixtures/manifest.json).

These test the generator and its oracle only; they never import haulage's parser.
"""
from __future__ import annotations

import collections
import datetime as dt
import gzip
import hashlib
import json
import re
import sys
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "fixtures"))

import corpus  # noqa: E402
import generate  # noqa: E402

# parsers-api.md, line-level and file-level reason codes
LINE_REASONS = {"empty-line", "line-too-long", "bad-utf8", "unknown-format", "bad-syslog-header",
                "too-few-fields", "bad-timestamp", "null-timestamp", "null-url", "null-project",
                "null-version", "null-package-type", "bad-package-type", "bad-simple-url"}
FILE_REASONS = {"bad-gzip", "truncated-gzip", "empty-file", "unreadable-file"}
KINDS = {"installer", "mirror", "browser", "script", "os", "bot", "unknown"}
TRAFFIC = {"mirror", "ci", "automation", "human", "unknown"}
RFC1123 = "%a, %d %b %Y %H:%M:%S GMT"
SYSLOG_RE = re.compile(rb"^<(\d{1,3})>(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (\S+) (\S+?)\[(\d+)\]: ")
URL_RE = re.compile(r"^/packages/[0-9a-f]{2}/[0-9a-f]{2}/[0-9a-f]{60}/([^/]+)$")


@pytest.fixture(scope="module")
def sample20k():
    return corpus.generate_labelled(20_000, seed=5, start_date="2026-10-01", days=2)


@pytest.fixture(scope="module")
def legacy5k():
    return corpus.generate_labelled(5_000, seed=9, start_date="2018-07-20", days=1,
                                    bad_fraction=0.05, legacy_fraction=1.0, simple_fraction=0.2)


def _message(raw: bytes) -> bytes:
    """Strip the syslog header and the N@ prefix of a legacy line."""
    m = SYSLOG_RE.match(raw)
    if m:
        raw = raw[m.end():]
    if raw[:2] in (b"1@", b"2@", b"3@"):
        raw = raw[2:]
    return raw


# --------------------------------------------------------------------------
# generator
# --------------------------------------------------------------------------

def test_deterministic_for_a_seed():
    a = corpus.generate_labelled(3000, seed=11, days=1)
    b = corpus.generate_labelled(3000, seed=11, days=1)
    assert a == b
    assert corpus.generate_lines(3000, seed=11, days=1) == [line for line, _ in a]
    c = corpus.generate_lines(3000, seed=12, days=1)
    assert sum(x != y for x, (y, _) in zip(c, a)) > 2900


def test_lines_have_no_newline_and_count(sample20k):
    assert len(sample20k) == 20_000
    assert all(b"\n" not in line and b"\r" not in line for line, _ in sample20k)


def test_mix_matches_the_targets(sample20k):
    n = len(sample20k)
    fam = collections.Counter(e.family for _, e in sample20k if e.is_row)
    tables = collections.Counter(e.table for _, e in sample20k)
    good = sum(fam.values())
    share = {k: v / good for k, v in fam.items()}
    assert 0.575 <= share["pip-json"] <= 0.625, share["pip-json"]
    assert 0.18 <= share["uv-json"] <= 0.22, share["uv-json"]
    assert 0.03 <= tables["simple_requests"] / n <= 0.05
    assert 0.006 <= tables["unprocessed"] / n <= 0.014
    mirrors = sum(share.get(f, 0) for f in corpus.MIRROR_FAMILIES)
    assert 0.035 <= mirrors <= 0.06, mirrors
    # every family shows up, each near its configured share
    expected = corpus.family_shares()
    assert set(fam) == set(corpus.FAMILIES)
    for f, p in expected.items():
        sigma = (p * (1 - p) / good) ** 0.5
        assert abs(share[f] - p) <= 5 * sigma + 0.1 * p, (f, share[f], p)


def test_agent_pool_repeats_like_real_traffic():
    lines = corpus.generate_lines(100_000, seed=1, days=1, bad_fraction=0, fresh_agents=0)
    agents = collections.Counter(line.split(b"|", 9)[9] for line in lines)
    assert 2000 <= len(agents) <= 6000, len(agents)
    top = agents.most_common(1)[0][1] / len(lines)
    assert 0.01 <= top <= 0.12, top  # Zipf head, not one agent dominating
    singletons = sum(1 for c in agents.values() if c == 1)
    assert singletons < len(agents) * 0.3


def test_fresh_agents_knob_gives_distinct_agents_and_keeps_the_oracle():
    pooled = corpus.generate_labelled(40_000, seed=3, fresh_agents=0)
    fresh = corpus.generate_labelled(40_000, seed=3)  # the default
    assert corpus.FRESH_AGENTS >= 0.05
    distinct = len({line.split(b"|", 9)[-1] for line, _ in fresh})
    assert distinct >= 0.05 * len(fresh), distinct
    assert distinct >= len({line.split(b"|", 9)[-1] for line, _ in pooled}) + 0.04 * len(fresh)
    # only agents change: same oracle line by line, the same lines apart from the kernel build
    assert [e for _, e in fresh] == [e for _, e in pooled]
    changed = [(a, b) for (a, e), (b, _) in zip(pooled, fresh) if a != b and e.is_row]
    assert 0.04 * len(fresh) <= len(changed) <= 0.06 * len(fresh)
    for a, b in changed[:200]:
        assert re.sub(rb'"release":"[0-9.]+-[0-9]+', b"", a) == re.sub(rb'"release":"[0-9.]+-[0-9]+', b"", b)


def test_every_bad_kind_appears(sample20k, legacy5k):
    kinds = collections.Counter(e.bad for _, e in sample20k if not e.is_row)
    assert set(kinds) == set(corpus.CURRENT_BAD_KINDS)
    lkinds = collections.Counter(e.bad for _, e in legacy5k if not e.is_row)
    assert set(lkinds) == set(corpus.LEGACY_BAD_KINDS)
    huge, exp = corpus.Corpus(3).bad("huge", 1_790_000_000)
    assert len(huge) > 70_000 and exp.reason == "line-too-long"
    for _, e in sample20k + legacy5k:
        if not e.is_row:
            assert e.reason in LINE_REASONS, e
            assert set(e.also_ok) <= LINE_REASONS
            assert e.date is None and e.kind is None


def test_bad_lines_are_bad_the_way_they_say(sample20k, legacy5k):
    for raw, e in sample20k + legacy5k:
        if e.is_row:
            raw.decode("utf-8")
            continue
        if e.reason == "bad-utf8":
            with pytest.raises(UnicodeDecodeError):
                raw.decode("utf-8")
            continue
        text = raw.decode("utf-8")
        if e.reason == "empty-line":
            assert raw == b""
        elif e.reason == "bad-syslog-header":
            assert raw.startswith(b"<") and not SYSLOG_RE.match(raw)
        elif e.bad == "garbage":
            assert not re.match(r"^(download\||simple\||<|\d@|[A-Z][a-z]{2}, )", text)
        elif e.reason == "unknown-format":
            msg = _message(raw) if SYSLOG_RE.match(raw) else raw
            assert not re.match(rb"^(download\||simple\||[123]@|[A-Z][a-z]{2}, )", msg), raw[:80]
        elif e.reason == "too-few-fields":
            msg = _message(raw)
            need = 10 if msg.startswith((b"download|", b"simple|")) else 9 if e.fmt == "v2" else 7
            assert len(msg.split(b"|", need - 1)) < need, (e, raw[:120])
        else:
            msg = _message(raw)
            f = msg.decode().split("|")
            if msg.startswith((b"download|", b"simple|")):
                ts, url, proj, ver, typ = f[1], f[3], f[6], f[7], f[8]
            elif e.fmt == "v2":
                ts, url, proj, ver, typ = f[0], f[2], f[5], f[6], f[7]
            else:
                ts, url, proj, ver, typ = f[0], f[2], f[3], f[4], f[5]
            check = {"null-timestamp": ts == "(null)", "null-url": url == "(null)",
                     "null-project": proj == "(null)", "null-version": ver == "(null)",
                     "null-package-type": typ == "(null)",
                     "bad-package-type": typ not in corpus.PACKAGE_TYPES and typ != "(null)",
                     "bad-simple-url": not url.startswith("/simple/")}
            if e.reason == "bad-timestamp":
                with pytest.raises(ValueError):
                    dt.datetime.strptime(ts, RFC1123)
            else:
                assert check[e.reason], (e, raw[:200])


def test_timestamps_weekdays_dates_and_order(sample20k, legacy5k):
    start = dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)
    end = start + dt.timedelta(days=2)
    prev = None
    for raw, e in sample20k:
        if not e.is_row:
            continue
        ts = raw.split(b"|", 2)[1].decode()
        t = dt.datetime.strptime(ts, RFC1123).replace(tzinfo=dt.timezone.utc)
        assert ts[:3] == t.strftime("%a"), ts  # strptime does not check the weekday
        assert start <= t < end
        assert e.date == t.date().isoformat()
        assert e.timestamp == t.strftime("%Y-%m-%dT%H:%M:%SZ")
        if prev is not None:
            assert t >= prev - dt.timedelta(seconds=10)  # roughly in time order
        prev = t
    for raw, e in legacy5k:
        if not e.is_row:
            continue
        msg = _message(raw)
        ts = (msg.split(b"|", 2)[1] if msg.startswith((b"download|", b"simple|")) else msg.split(b"|", 1)[0]).decode()
        t = dt.datetime.strptime(ts, RFC1123)
        assert ts[:3] == t.strftime("%a") and e.date == t.date().isoformat()
        m = SYSLOG_RE.match(raw)
        if m:  # the syslog header is written at or just after the event
            hdr = dt.datetime.strptime(m.group(2).decode(), "%Y-%m-%dT%H:%M:%SZ")
            assert dt.timedelta(0) <= hdr - t <= dt.timedelta(seconds=2)


def test_rows_match_their_lines(sample20k):
    types = collections.Counter()
    for raw, e in sample20k:
        if not e.is_row:
            continue
        assert e.kind in KINDS and e.traffic in TRAFFIC
        f = raw.decode().split("|", 9)
        assert len(f) == 10
        agent = f[9]
        if e.table == "file_downloads":
            assert f[0] == "download" and e.fmt == "download"
            m = URL_RE.match(f[3])
            assert m, f[3]
            assert (f[6], f[7], f[8]) == (e.project, e.version, e.package_type)
            assert f[6] == corpus.normalize(f[6])
            assert e.version in m.group(1)
            types[f[8]] += 1
        else:
            assert f[0] == "simple" and f[6:9] == ["", "", ""]
            assert f[3].startswith("/simple/") and f[3].endswith("/")
            seg = f[3][len("/simple/"):-1]
            assert e.project == (corpus.normalize(seg) if seg else None)
        # the oracle follows schema.md's precedence
        if e.kind == "mirror":
            assert e.traffic == "mirror"
        elif e.ci:
            assert e.traffic == "ci"
        else:
            assert e.traffic == {"script": "automation", "os": "automation", "bot": "automation",
                                 "installer": "human", "browser": "human", "unknown": "unknown"}[e.kind]
        if e.family == "pip-json":
            v = tuple(int(x) for x in agent.split(" ", 1)[0][4:].split(".")[:2])
            d = json.loads(agent.split(" ", 1)[1])
            assert list(d) == sorted(d)
            assert ("ci" in d) == (v >= (19, 0))
            assert d.get("ci") in (True, None) and e.ci == (d.get("ci") is True)
            assert d["installer"]["name"] == "pip"
            if d.get("distro", {}).get("name") == "macOS":
                assert set(d["distro"]) == {"name", "version"}
        elif e.family == "uv-json":
            d = json.loads(agent.split(" ", 1)[1])
            assert list(d) == ["installer", "python", "implementation", "distro", "system", "cpu",
                               "openssl_version", "setuptools_version", "rustc_version", "ci"]
            assert d["openssl_version"] is d["setuptools_version"] is d["rustc_version"] is None
            assert e.ci == (d["ci"] is True) and d["ci"] in (True, None)
        elif e.family == "null":
            assert agent == "(null)" and (e.kind, e.traffic) == ("bot", "automation")
    assert types["bdist_wheel"] > types["sdist"] > 0
    assert types["bdist_wheel"] / sum(types.values()) > 0.8


def test_agent_forms_present(sample20k):
    agents = {raw.split(b"|", 9)[9].decode() for raw, e in sample20k if e.is_row}
    must = [r"^bandersnatch/\S+ \(cpython .*\) \(aiohttp ", r"^bandersnatch/\S+ \(cpython [^)]*\)$",
            r"^bandersnatch \S+ aiohttp XML-RPC client", r"^devpi-server/", r"^Artifactory/",
            r"^Nexus/", r"^z3c\.pypimirror/", r"^pep381client", r"^poetry/", r"^pdm/\S+ \S+$",
            r"^pdm/\S+ \S+ \S+$", r"^Hatch/\S+ \{.*\} HTTPX2/", r"^twine/", r"^conda/", r"^Bazel/",
            r"^Homebrew/", r"^pex/", r"^maturin/", r"^setuptools/\S+ Python-urllib/2\.7$",
            r"^Python-urllib/3\.1\d setuptools/", r"^Python-urllib/2\.\d distribute/",
            r"^Python-urllib/\d\.\d+$", r"^uv$", r"^uv/0\.1\.10$", r"^python-requests/",
            r"^python-httpx/", r"^python-urllib3/", r"^Python/\S+ aiohttp/", r"^curl/", r"^Wget/",
            r"^HTTPie/", r"^Mozilla/5\.0 ", r"^pip/1\.[45]", r"^\w+/\S+ \(PEP \d+\) \{",
            r"^\(null\)$", r"\|", r'"subcommand":\["tool","run"\]', r'"subcommand":\["sync"\]',
            r'"user_data":', r'"rustc_version":"', r'"implementation":\{"name":"PyPy"',
            r'^pip/\S+ \{.*"installer":\{"name":"uv"']
    for pat in must:
        assert any(re.search(pat, a) for a in agents), pat


def test_legacy_lines(legacy5k):
    fmts = collections.Counter(e.fmt for _, e in legacy5k if e.is_row)
    assert {"v1", "v1-bare", "v2", "v3-download", "v3-simple"} <= set(fmts)
    for raw, e in legacy5k:
        if not e.is_row:
            continue
        m = SYSLOG_RE.match(raw)
        assert bool(m) == (e.fmt != "v1-bare")
        msg = raw[m.end():] if m else raw
        if e.fmt == "v2":
            assert msg.startswith(b"2@") and len(msg.split(b"|", 8)) == 9
        elif e.fmt.startswith("v3"):
            assert msg.startswith(b"3@download|" if e.fmt == "v3-download" else b"3@simple|")
        else:
            assert not msg.startswith((b"2@", b"3@"))
            assert e.tls is False and len(msg.split(b"|", 6)) == 7


def test_cli_writes_gzip_files(tmp_path, capsys):
    assert corpus.main(["--lines", "1000", "--files", "3", "--out", str(tmp_path), "--seed", "4",
                        "--labels"]) == 0
    files = sorted(tmp_path.glob("downloads-*.log.gz"))
    assert [p.name for p in files] == ["downloads-0.log.gz", "downloads-1.log.gz", "downloads-2.log.gz"]
    total = 0
    for p in files:
        with gzip.open(p) as fh:
            data = fh.read()
        assert data.endswith(b"\n")
        total += data.count(b"\n")
    assert total == 1000
    labels = sum(1 for p in tmp_path.glob("*.labels.jsonl.gz") for _ in gzip.open(p))
    assert labels == 1000
    assert "downloads-2.log.gz" in capsys.readouterr().out
    # the CLI streams the same lines as the library
    lines = b"".join(gzip.open(p).read() for p in files).split(b"\n")[:-1]
    assert lines == corpus.generate_lines(1000, seed=4)


# --------------------------------------------------------------------------
# fixtures
# --------------------------------------------------------------------------

MANIFEST = json.loads((ROOT / "fixtures" / "manifest.json").read_text())


def _read_from_disk(path: Path) -> tuple[list[bytes], str | None]:
    """Independent reader: gzip by magic, zlib fed 4 KiB at a time, members in sequence."""
    data = path.read_bytes()
    if not data:
        return [], "empty-file"
    fault = None
    if data[:2] == b"\x1f\x8b":
        out = bytearray()
        rest = data
        while rest:
            d = zlib.decompressobj(wbits=31)
            try:
                for i in range(0, len(rest), 4096):
                    out += d.decompress(rest[i:i + 4096])
                    if d.eof:
                        rest = d.unused_data + rest[i + 4096:]
                        break
                else:
                    rest = b""
                    fault = None if d.eof else "truncated-gzip"
            except zlib.error:
                fault, rest = "bad-gzip", b""
        text = bytes(out)
    else:
        text = data
    parts = text.split(b"\n")
    tail = parts.pop()
    lines = [p.removesuffix(b"\r") for p in parts]
    if tail and fault is None:
        lines.append(tail)
    return lines, fault


@pytest.mark.parametrize("name", sorted(MANIFEST["files"]))
def test_manifest_matches_files_on_disk(name):
    m = MANIFEST["files"][name]
    path = ROOT / "fixtures" / name
    assert path.stat().st_size == m["bytes"]
    lines, fault = _read_from_disk(path)
    assert len(lines) == m["lines"]
    assert (fault or None) == (m["fault"] or {}).get("reason")
    assert hashlib.sha256(b"\n".join(lines)).hexdigest() == m["sha256_lines"]
    assert m["rows_total"] + m["unprocessed_total"] == m["lines"]
    assert sum(sum(per.values()) for per in m["rows"].values()) == m["rows_total"]
    assert set(m["unprocessed"]) <= LINE_REASONS
    if m["fault"]:
        assert m["fault"]["reason"] in FILE_REASONS
    if name.endswith(".gz") and m["fault"] is None:
        with gzip.open(path) as fh:  # the stdlib agrees
            assert fh.read().count(b"\n") == m["lines"]


def test_fixture_set_is_complete_and_small():
    files = MANIFEST["files"]
    tot = MANIFEST["totals"]
    assert set(tot["unprocessed"]) == LINE_REASONS  # every line-level reason code
    assert all(n >= 2 for n in tot["unprocessed"].values())
    assert tot["faults"] == {"bad-gzip": 1, "empty-file": 1, "truncated-gzip": 1}
    current = {k: v for k, v in files.items() if k.startswith("downloads-")}
    assert 1800 <= sum(v["lines"] for v in current.values()) <= 2400
    dates = {d for v in current.values() for per in v["rows"].values() for d in per}
    assert dates == {"2026-10-01", "2026-10-02", "2026-10-03"}
    assert {d for per in files["legacy-2018-07-20.log.gz"]["rows"].values() for d in per} == {"2018-07-20", "2018-07-21"}
    assert any(v["line_ending"] == "crlf" for v in files.values())
    assert any(v["container"] == "plain" for v in files.values())
    assert any(v["gzip_members"] > 1 and v["fault"] is None for v in files.values())
    assert files["empty.log.gz"]["bytes"] == 0
    size = sum(p.stat().st_size for p in (ROOT / "fixtures").iterdir() if p.is_file())
    assert size < 1_000_000


def test_fixtures_regenerate_identically():
    built = {fx.name: fx for fx in generate.build()}
    assert set(built) == set(MANIFEST["files"])
    for name, fx in built.items():
        lines, fault = _read_from_disk(ROOT / "fixtures" / name)
        expected = generate.expected_lines(fx)
        assert [raw for _, raw, _ in expected] == lines
        assert generate.file_manifest(fx) == MANIFEST["files"][name]
        if fx.name == "legacy-2018-07-20.log.gz":
            midnight = [e for _, raw, e in expected if raw.startswith(b"<134>2018-07-21T00:00:01Z")
                        and b"23:59:59 GMT" in raw]
            assert midnight and midnight[0].date == "2018-07-20"
