"""``haulage stats``: the same numbers from Parquet and BigQuery, equal to the oracle.

The input is a labelled synthetic log (benchmarks/corpus.py): every line
comes with an ``Expect`` saying which table, day, project, kind, traffic and
CI flag its row must have, derived from how the line was built. The expected
numbers below are counted from those labels alone, never from haulage's
parser or SQL. The logs go through the real pipeline twice, into Parquet and
into the BigQuery emulator, and ``haulage stats`` must answer exactly the
oracle from both.
"""

from __future__ import annotations

import collections
import csv
import datetime as dt
import gzip
import hashlib
import html.parser
import io
import json
import sys
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Iterable, Optional

import pytest

from support import emulators
from support import pipeline_check as pc

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "benchmarks") not in sys.path:
    sys.path.insert(0, str(ROOT / "benchmarks"))

import corpus  # noqa: E402


from haulage.stats import query as sq  # noqa: E402

LINES, SEED, START, DAYS = 3000, 20261003, "2026-10-01", 3
SERIES = ("total", "without_mirrors", "human", "ci", "automation", "mirror", "unknown", "bots")


# --------------------------------------------------------------------------
# the oracle: counts from the Expect labels only


def oracle_counts(labels: Iterable[Any]) -> dict[str, int]:
    labels = list(labels)
    return {
        "total": len(labels),
        "without_mirrors": sum(e.traffic != "mirror" for e in labels),
        "human": sum(e.traffic == "human" for e in labels),
        "ci": sum(e.ci is True for e in labels),
        "automation": sum(e.traffic == "automation" for e in labels),
        "mirror": sum(e.traffic == "mirror" for e in labels),
        "unknown": sum(e.traffic == "unknown" for e in labels),
        "bots": sum(e.kind == "bot" for e in labels),
    }


def downloads(items) -> list[Any]:
    return [e for _, e in items if e.table == "file_downloads"]


def fingerprint_of(agent: str) -> Optional[int]:
    """docs/schema-extensions.md's rule, written out here (not haulage's code)."""
    if agent in ("", "(null)"):
        return None
    return int.from_bytes(hashlib.blake2b(agent.encode("utf-8"), digest_size=8).digest(), "little", signed=True)


def environment_of(line: bytes) -> Optional[tuple]:
    """(fingerprint, country, TLS protocol, TLS cipher) from a current-format line's own fields."""
    _, _, country, _, tls_protocol, tls_cipher, *_, agent = line.decode().split("|", 9)
    fingerprint = fingerprint_of(agent)
    if fingerprint is None:
        return None
    absent = ("", "(null)")
    return (fingerprint, *(None if v in absent else v for v in (country, tls_protocol, tls_cipher)))


def change(now: float, before: Optional[float]) -> Optional[float]:
    return None if not before else round((now - before) / before, 4)


def oracle_report(items, project: str, start: Optional[str] = None, end: Optional[str] = None) -> dict[str, Any]:
    """What ``haulage stats PROJECT --json`` must print (less ``source``)."""
    rows = downloads(items)
    all_days = sorted({e.date for e in rows})
    start, end = start or all_days[0], end or all_days[-1]
    days = [d for d in all_days if start <= d <= end]
    mine = [e for e in rows if e.project == project and start <= e.date <= end]
    totals = oracle_counts(mine)
    per_day = {k: v / len(days) for k, v in totals.items()}
    # the previous period: as many calendar days, just before start
    length = dt.date.fromisoformat(end) - dt.date.fromisoformat(start) + dt.timedelta(days=1)
    before_from = (dt.date.fromisoformat(start) - length).isoformat()
    before_to = (dt.date.fromisoformat(start) - dt.timedelta(days=1)).isoformat()
    before_days = [d for d in all_days if before_from <= d <= before_to]
    earlier = oracle_counts(e for e in rows if e.project == project and before_from <= e.date <= before_to)
    before_per_day = {k: v / len(before_days) if before_days else None for k, v in earlier.items()}
    lines = [(line, e) for line, e in items if e.table == "file_downloads" and e.project == project]
    environments = {environment_of(line) for line, e in lines if start <= e.date <= end} - {None}
    environments_before = {environment_of(line) for line, e in lines if before_from <= e.date <= before_to} - {None}
    simple = [e for _, e in items if e.table == "simple_requests" and e.project == project and start <= e.date <= end]
    today = dt.datetime.now(dt.timezone.utc).date()
    age = (today - dt.date.fromisoformat(all_days[-1])).days
    rates = {"daily_average": 1, "avg_week": 7, "avg_month": 30}
    return {
        "project": project,
        "from": start,
        "to": end,
        "days": len(days),
        **totals,
        "bot_share": round(totals["bots"] / totals["total"], 4),
        "bot_pct": round(100 * (1 - totals["human"] / totals["total"]), 2),
        "traffic": {t: sum(e.traffic == t for e in mine) for t in ("mirror", "ci", "automation", "human", "unknown")},
        **{key: {k: round(v * factor, 2) for k, v in per_day.items()} for key, factor in rates.items()},
        "environments": len(environments),
        "environments_unknown_days": 0,
        "simple_requests": len(simple),
        "downloads_per_lookup": round(len(mine) / len(simple), 2) if simple else None,
        "newest_day": all_days[-1],
        "freshness_days": age,
        "freshness": "normal" if age <= 1 else "minor lag" if age <= 3 else "delayed",
        "previous": {"from": before_from, "to": before_to, "days": len(before_days)},
        "change": {
            "downloads": {k: change(v, earlier[k] if before_days else None) for k, v in totals.items()},
            **{key: {k: change(v * factor, None if before_per_day[k] is None else before_per_day[k] * factor)
                     for k, v in per_day.items()} for key, factor in rates.items()},
            "bot_pct": round(100 * (1 - totals["human"] / totals["total"]) - 100 * (1 - earlier["human"] / earlier["total"]), 2)
            if earlier["total"] else None,
            "environments": change(len(environments), len(environments_before) if before_days else None),
        },
        "daily": [{"day": d, **oracle_counts(e for e in mine if e.date == d),
                   "simple_requests": sum(e.date == d for e in simple)} for d in days],
    }


def oracle_groups(items, project: str, key) -> dict[Any, dict[str, int]]:
    groups = collections.defaultdict(list)
    for e in downloads(items):
        if e.project == project:
            groups[key(e)].append(e)
    return {k: oracle_counts(v) for k, v in groups.items()}


# --------------------------------------------------------------------------
# fixtures: one labelled corpus, run through the pipeline into both sinks


@pytest.fixture(scope="module")
def items():
    return corpus.generate_labelled(LINES, seed=SEED, start_date=START, days=DAYS)


@pytest.fixture(scope="module")
def logs(items, tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("stats-logs")
    third = len(items) // 3
    for i in range(3):
        part = items[i * third: (i + 1) * third if i < 2 else None]
        (folder / f"downloads-{i}.log.gz").write_bytes(gzip.compress(pc.joined(pc.lines_of(part)), mtime=0))
    return str(folder / "*.log.gz")


@pytest.fixture(scope="module")
def parquet_dir(logs, tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("stats-parquet") / "out"
    result = pc.run_cli(["run", "--input", logs, "--output-dir", str(out), "--quiet"])
    assert result.code == 0, result.stderr
    return str(out)


def create_tables(client, dataset_id: str) -> None:
    """The three tables (and views) as 'haulage setup' makes them, with its own code."""
    from haulage.deploy.bigquery_setup import BigQueryRequest, ensure_bigquery

    ensure_bigquery(client, BigQueryRequest(client.project, dataset_id))


@pytest.fixture(scope="module")
def bq_dataset(logs, parquet_dir, bigquery_emulator, google_credentials) -> str:
    """The same logs written by the pipeline into the BigQuery emulator."""
    client = bigquery_emulator.client()
    dataset_id = f"stats_{uuid.uuid4().hex[:8]}"
    create_tables(client, dataset_id)
    spec = f"{bigquery_emulator.project}:{dataset_id}"
    with emulators.patched_env({**bigquery_emulator.env(), **google_credentials}):
        emulators.reset_beam_credentials_cache()
        result = pc.run_cli(["run", "--input", logs, "--bigquery-dataset", spec, "--quiet"])
    assert result.code == 0, result.stderr
    # the same rows as in Parquet, none rejected
    parquet_rows = len(pc.read_parquet_output(parquet_dir).rows["file_downloads"])
    (row,) = client.query(f"SELECT COUNT(*) AS n FROM `{dataset_id}.file_downloads`").result()
    assert row["n"] == parquet_rows
    (row,) = client.query(f"SELECT COUNT(*) AS n FROM `{dataset_id}.unprocessed` "
                          "WHERE STARTS_WITH(error, 'bigquery-rejected')").result()
    assert row["n"] == 0
    yield spec
    client.delete_dataset(dataset_id, delete_contents=True)


def stats(*argv: str, env: Optional[dict[str, str]] = None) -> pc.CliResult:
    with emulators.patched_env(env or {}):
        return pc.run_cli(["stats", *argv])


def stats_json(*argv: str, env: Optional[dict[str, str]] = None) -> dict[str, Any]:
    result = stats(*argv, "--json", env=env)
    assert result.code == 0, result.stderr
    answer = json.loads(result.stdout)
    answer.pop("source")
    return answer


class Both:
    """Run the same stats options against the Parquet dataset and BigQuery."""

    def __init__(self, parquet_dir: str, bq_dataset: str, emulator) -> None:
        self.parquet = ["--output-dir", parquet_dir]
        self.bigquery = ["--bigquery-dataset", bq_dataset]
        self.env = emulator.env()

    def json(self, *argv: str) -> dict[str, Any]:
        local = stats_json(*argv, *self.parquet)
        remote = stats_json(*argv, *self.bigquery, env=self.env)
        assert local == remote, f"Parquet and BigQuery differ for {argv}:\n{local}\n{remote}"
        return local

    def result(self, *argv: str) -> tuple[pc.CliResult, pc.CliResult]:
        return stats(*argv, *self.parquet), stats(*argv, *self.bigquery, env=self.env)


@pytest.fixture(scope="module")
def both(parquet_dir, bq_dataset, bigquery_emulator) -> Both:
    return Both(parquet_dir, bq_dataset, bigquery_emulator)


def top_projects(items, n: int) -> list[str]:
    return [p for p, _ in collections.Counter(e.project for e in downloads(items)).most_common(n)]


def project_with_null_details(items) -> str:
    """The busiest project that has rows from bots or unrecognised agents (details NULL)."""
    counts = collections.Counter(e.project for e in downloads(items) if e.kind in ("bot", "unknown"))
    assert counts, "the corpus should contain bot and unknown agents"
    return counts.most_common(1)[0][0]


# --------------------------------------------------------------------------
# the numbers: both backends, equal to the oracle


@pytest.mark.emulator
def test_summary_equals_oracle_from_parquet_and_bigquery(items, both):
    days = sorted({e.date for e in downloads(items)})
    assert days == ["2026-10-01", "2026-10-02", "2026-10-03"]
    projects = [*top_projects(items, 2), project_with_null_details(items)]
    for project in projects:
        assert both.json(project) == oracle_report(items, project)
        assert both.json(project, "--from", days[1], "--to", days[2]) == oracle_report(items, project, days[1], days[2])
        assert both.json(project, "--days", "1") == oracle_report(items, project, days[2], days[2])
        assert both.json(project, "--to", days[0], "--days", "1") == oracle_report(items, project, days[0], days[0])
    # a range wider than the data: the days with data count, the range is as asked
    wide = both.json(projects[0], "--from", "2026-09-30", "--to", "2026-10-04")
    assert wide == oracle_report(items, projects[0], "2026-09-30", "2026-10-04")
    assert {k: v for k, v in wide.items() if k not in ("from", "to", "previous")} == \
        {k: v for k, v in oracle_report(items, projects[0]).items() if k not in ("from", "to", "previous")}
    # PEP 503: the project is matched in normalized form
    spelled = projects[0].upper().replace("-", "_")
    assert both.json(spelled) == oracle_report(items, projects[0])


@pytest.mark.emulator
def test_breakdowns_equal_oracle_from_parquet_and_bigquery(items, both):
    project = project_with_null_details(items)

    def groups(answer: dict[str, Any]) -> dict[Any, dict[str, int]]:
        by = answer["by"]
        return {tuple(g[f] for f in by) if len(by) > 1 else g[by[0]]: {k: g[k] for k in SERIES}
                for g in answer["breakdown"]}

    by_traffic = both.json(project, "--by", "traffic")
    assert groups(by_traffic) == oracle_groups(items, project, lambda e: e.traffic)
    totals = [g["total"] for g in by_traffic["breakdown"]]
    assert totals == sorted(totals, reverse=True), "biggest groups first"

    by_day = both.json(project, "--by", "day")
    assert groups(by_day) == oracle_groups(items, project, lambda e: e.date)
    assert [g["day"] for g in by_day["breakdown"]] == sorted(g["day"] for g in by_day["breakdown"])

    assert groups(both.json(project, "--by", "kind")) == oracle_groups(items, project, lambda e: e.kind)
    assert groups(both.json(project, "--by", "date", "traffic")) == oracle_groups(
        items, project, lambda e: (e.date, e.traffic))
    assert groups(both.json(project, "--by", "version", "type")) == oracle_groups(
        items, project, lambda e: (e.version, e.package_type))
    assert groups(both.json(project, "--by", "month")) == {"2026-10": oracle_counts(
        e for e in downloads(items) if e.project == project)}

    # NULL keys are a group, not dropped: rows without details (bots, unknown
    # agents) and Python-urllib (PyPI's parser records only the Python version)
    by_installer = both.json(project, "--by", "installer")
    null_bucket = next(g for g in by_installer["breakdown"] if g["installer"] is None)
    mine = [e for e in downloads(items) if e.project == project]
    assert null_bucket["total"] == sum(e.kind in ("bot", "unknown") or e.family == "python-urllib" for e in mine)
    assert null_bucket["bots"] == sum(e.kind == "bot" for e in mine)
    assert sum(g["total"] for g in by_installer["breakdown"]) == len(mine)

    # every field of the whitelist runs on both engines and keeps every row
    for name in sq.FIELDS:
        answer = both.json(project, "--by", name)
        assert sum(g["total"] for g in answer["breakdown"]) == len(mine), name
    python = both.json(project, "--by", "python")
    assert all(g["python"] is None or g["python"].count(".") == 1 for g in python["breakdown"]), python


@pytest.mark.emulator
def test_text_csv_and_errors_agree_between_backends(items, both):
    project = top_projects(items, 1)[0]
    for argv in ([project], [project, "--by", "installer", "python", "--limit", "5"]):
        local, remote = both.result(*argv)
        assert local.code == remote.code == 0
        assert local.stdout.replace(both.parquet[1], "X").replace("parquet:", "") == \
            remote.stdout.replace(both.bigquery[1], "X").replace("bigquery:", "")
    local, remote = both.result(project, "--by", "installer", "--csv")
    assert local.stdout == remote.stdout
    for argv in (["bot0-3"], [project, "--from", "2026-11-01", "--to", "2026-11-02"]):
        local, remote = both.result(*argv)
        assert local.code == remote.code == 1
        assert local.stderr.replace(both.parquet[1], "X").replace("parquet:", "") == \
            remote.stderr.replace(both.bigquery[1], "X").replace("bigquery:", "")


@pytest.mark.emulator
def test_bigquery_queries_scan_only_the_days_asked_for(items, both, monkeypatch):
    from haulage.stats.backends import BigQueryBackend

    seen: list[sq.Query] = []
    original = BigQueryBackend.run

    def spy(self, query):
        seen.append(query)
        return original(self, query)

    monkeypatch.setattr(BigQueryBackend, "run", spy)
    project = top_projects(items, 1)[0]
    stats_json(project, "--from", "2026-10-02", "--to", "2026-10-02", "--by", "installer", *both.bigquery,
               env=both.env)
    # days with data, the daily series, environments, simple requests, the breakdown
    # (each over the day asked for and the previous period of the same length,
    # for the changes), and the newest day from partition metadata (no scan)
    scans = [q for q in seen if "INFORMATION_SCHEMA.PARTITIONS" not in q.sql]
    assert len(scans) == 5 and len(seen) == 6, [q.sql for q in seen]
    for query in scans:
        assert "timestamp >= @start_ts AND timestamp < @end_ts" in query.sql
        assert query.params["start_ts"] in (dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc),
                                            dt.datetime(2026, 10, 2, tzinfo=dt.timezone.utc))
        assert query.params["end_ts"] == dt.datetime(2026, 10, 3, tzinfo=dt.timezone.utc)
        assert project not in query.sql
    (metadata,) = [q for q in seen if q not in scans]
    assert "FROM `test-project." in metadata.sql and "timestamp" not in metadata.sql


@pytest.mark.emulator
def test_bigquery_unknown_dataset_is_an_option_error(bigquery_emulator):
    result = stats("requests", "--bigquery-dataset", "test-project:no_such_dataset", env=bigquery_emulator.env())
    assert result.code == 2, result
    assert "no_such_dataset" in result.stderr and result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr  # one line, no job ids


# --------------------------------------------------------------------------
# NULLs: rows with NULL details, CI flag or even traffic are counted right


def write_rows(folder: Path, rows: list[dict[str, Any]]) -> None:
    """Rows into <folder>/file_downloads/date=…/part-0.parquet, with every column nullable."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from haulage.parsers.schemas import arrow_schema

    def loosen(t: pa.DataType) -> pa.DataType:
        if pa.types.is_struct(t):
            return pa.struct([pa.field(f.name, loosen(f.type), nullable=True) for f in t])
        return t

    schema = pa.schema([pa.field(f.name, loosen(f.type), nullable=True) for f in arrow_schema("file_downloads")])
    by_day = collections.defaultdict(list)
    for row in rows:
        by_day[row["timestamp"].date().isoformat()].append(row)
    for day, day_rows in by_day.items():
        path = folder / "file_downloads" / f"date={day}"
        path.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(day_rows, schema=schema), path / "part-0.parquet")


def null_rows() -> list[dict[str, Any]]:
    ts = dt.datetime(2026, 10, 1, 12, tzinfo=dt.timezone.utc)

    def row(i: int, traffic: Optional[str], kind: Optional[str], ci: Optional[bool], details: Optional[dict],
            project: str = "null-demo") -> dict[str, Any]:
        return {"timestamp": ts + dt.timedelta(minutes=i), "project": project, "country_code": None,
                "url": f"/packages/x/{project}-1.0.tar.gz",
                "file": {"filename": f"{project}-1.0.tar.gz", "project": project, "version": "1.0", "type": "sdist"},
                "details": details,
                "classification": {"kind": kind, "traffic": traffic, "mirror": traffic == "mirror", "ci": ci,
                                   "cloud": None},
                "user_agent": None if details else "(null)", "event_id": f"e{i}"}

    pip = {"installer": {"name": "pip", "version": "25.2", "subcommand": None}, "python": "3.12.7", "ci": None}
    return [
        row(0, "human", "installer", False, pip),
        row(1, "ci", "installer", True, {**pip, "ci": True}),
        row(2, "automation", "bot", False, None),  # a known bot: details NULL
        row(3, "unknown", "unknown", False, None),  # unrecognised agent: details NULL
        row(4, "mirror", "mirror", False, {"installer": {"name": "bandersnatch", "version": "6.5", "subcommand": None}}),
        row(5, None, None, None, None),  # no classification at all: counted in total and without mirrors only
        row(6, "human", "installer", None, {**pip, "installer": None}),  # details without an installer
        row(7, "human", "installer", False, pip, project="Null_Demo"),  # a project spelled unnormalized
    ]


NULL_EXPECTED = {"total": 8, "without_mirrors": 7, "human": 3, "ci": 1, "automation": 1, "mirror": 1,
                 "unknown": 1, "bots": 1}


def check_null_answers(argv: list[str], env: Optional[dict[str, str]] = None) -> None:
    answer = stats_json("null-demo", *argv, env=env)
    assert {k: answer[k] for k in SERIES} == NULL_EXPECTED
    installers = {g["installer"]: g["total"] for g in stats_json("null-demo", "--by", "installer", *argv,
                                                                 env=env)["breakdown"]}
    assert installers == {"pip": 3, None: 4, "bandersnatch": 1}
    python = {g["python"]: g["total"] for g in stats_json("null-demo", "--by", "python", *argv, env=env)["breakdown"]}
    assert python == {"3.12": 4, None: 4}
    ci = {g["ci-flag"]: g["total"] for g in stats_json("null-demo", "--by", "ci", *argv, env=env)["breakdown"]}
    assert ci == {True: 1, False: 5, None: 2}
    text = stats("null-demo", "--by", "installer", *argv, env=env)
    assert text.code == 0 and "(none)" in text.stdout


def test_null_columns_are_counted_not_dropped_parquet(tmp_path):
    write_rows(tmp_path, null_rows())
    check_null_answers(["--output-dir", str(tmp_path)])


@pytest.mark.emulator
def test_null_columns_are_counted_not_dropped_bigquery(bigquery_emulator):
    client = bigquery_emulator.client()
    dataset_id = f"stats_nulls_{uuid.uuid4().hex[:8]}"
    create_tables(client, dataset_id)
    try:
        rows = [{**r, "timestamp": r["timestamp"].isoformat()} for r in null_rows()]
        assert client.insert_rows_json(f"{dataset_id}.file_downloads", rows) == []
        check_null_answers(["--bigquery-dataset", f"{bigquery_emulator.project}:{dataset_id}"],
                           env=bigquery_emulator.env())
    finally:
        client.delete_dataset(dataset_id, delete_contents=True)


# --------------------------------------------------------------------------
# Parquet-only checks: output formats, plots, messages, options


def test_parquet_alone_equals_oracle(items, parquet_dir):
    """The oracle check without the emulator (runs where bqemulator is missing)."""
    project = project_with_null_details(items)
    assert stats_json(project, "--output-dir", parquet_dir) == oracle_report(items, project)


def test_text_output_is_readable(items, parquet_dir):
    project = top_projects(items, 1)[0]
    want = oracle_report(items, project)
    result = stats(project, "--output-dir", parquet_dir, "--by", "installer")
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{project}: downloads 2026-10-01..2026-10-03 (3 days)")
    table = {line[:16].strip(): line[16:].split() for line in lines[2:11]}
    for name, label in (("total", "total"), ("without_mirrors", "without mirrors"), ("human", "human"),
                        ("ci", "ci"), ("automation", "automation"), ("mirror", "mirror")):
        count, per_day, share = table[label]
        assert int(count.replace(",", "")) == want[name], (label, table[label])
        assert float(per_day.replace(",", "")) == round(want[name] / 3, 1)
    assert "by installer (" in result.stdout and "bot share" in result.stdout


def test_csv_breakdown_and_daily_series(items, parquet_dir):
    project = top_projects(items, 1)[0]
    result = stats(project, "--output-dir", parquet_dir, "--by", "traffic", "--csv")
    assert result.code == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert {r["traffic"]: {k: int(r[k]) for k in SERIES} for r in rows} == oracle_groups(
        items, project, lambda e: e.traffic)
    daily = list(csv.DictReader(io.StringIO(stats(project, "--output-dir", parquet_dir, "--csv").stdout)))
    assert [{"day": r["day"], **{k: int(r[k]) for k in (*SERIES, "simple_requests")}} for r in daily] == \
        oracle_report(items, project)["daily"]
    # NULL keys: empty cells; --limit cuts the groups
    limited = stats(project_with_null_details(items), "--output-dir", parquet_dir, "--by", "installer", "--csv")
    assert "\n," in limited.stdout  # the NULL installer row starts with an empty cell
    two = list(csv.DictReader(io.StringIO(stats(project, "--output-dir", parquet_dir, "--by", "version",
                                                "--csv", "--limit", "2").stdout)))
    assert len(two) == 2


class _Html(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: collections.Counter = collections.Counter()
        self.text: list[str] = []
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags[tag] += 1
        for name, value in attrs:
            if name in ("src", "href") and value and not value.startswith("#"):
                self.external.append(value)

    def handle_data(self, data):
        self.text.append(data)


def test_plots_are_written_and_valid(items, parquet_dir, tmp_path):
    project = top_projects(items, 1)[0]
    want = oracle_report(items, project)
    for ext in ("png", "svg", "html"):
        path = tmp_path / f"{project}.{ext}"
        result = stats(project, "--output-dir", parquet_dir, "--plot", str(path), "--by", "installer")
        assert result.code == 0, result.stderr
        assert path.stat().st_size > 5000, path
        assert f"wrote {path}" in result.stderr
    png = (tmp_path / f"{project}.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    import struct

    width, height = struct.unpack(">II", png[16:24])
    assert width >= 800 and height >= 400, (width, height)
    root = ET.parse(tmp_path / f"{project}.svg").getroot()
    assert root.tag.endswith("svg")
    page = (tmp_path / f"{project}.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    parsed = _Html()
    parsed.feed(page)
    assert parsed.tags["svg"] == 1 and parsed.tags["table"] == 3  # summary, breakdown, per day
    assert not [u for u in parsed.external if not u.startswith("http://www.w3.org/")], parsed.external
    text = " ".join(parsed.text)
    assert f"{want['human']:,} human downloads of {want['total']:,}" in text
    # the inline SVG parses as XML too
    svg = page[page.index("<svg"): page.index("</svg>") + len("</svg>")]
    assert ET.fromstring(svg).tag.endswith("svg")


def test_plot_of_many_days_and_gaps(tmp_path):
    """Over 120 days the chart switches to areas; a gap in the data is said."""
    from haulage.stats.plot import write_plot
    from haulage.stats.report import Counts, Report

    start = dt.date(2026, 1, 1)
    days = [(start + dt.timedelta(days=i)).isoformat() for i in range(200) if not 50 <= i < 60]
    daily = tuple((d, Counts(total=10 + i, without_mirrors=9 + i, human=5 + i, ci=2, automation=2, mirror=1,
                             traffic_ci=2, bots=1)) for i, d in enumerate(days))
    totals = sum((c for _, c in daily), Counts())
    report = Report("many", "test", start, start + dt.timedelta(days=199), tuple(days), daily, totals)
    assert report.has_gaps
    write_plot(report, str(tmp_path / "many.png"))
    assert (tmp_path / "many.png").read_bytes()[:4] == b"\x89PNG"


def test_unknown_project_suggests_close_names(items, parquet_dir):
    project = top_projects(items, 1)[0]
    typo = project[:-1] + ("x" if project[-1] != "x" else "y")
    result = stats(typo, "--output-dir", parquet_dir)
    assert result.code == 1 and result.stdout == ""
    assert f"project {typo!r} not found" in result.stderr
    assert f"did you mean {project!r}" in result.stderr
    assert "days 2026-10-01..2026-10-03" in result.stderr


def test_empty_range_says_which_days_exist(items, parquet_dir):
    project = top_projects(items, 1)[0]
    result = stats(project, "--output-dir", parquet_dir, "--from", "2026-10-05", "--to", "2026-10-07")
    assert result.code == 1
    assert result.stderr.strip() == ("haulage stats: no downloads at all between 2026-10-05 and 2026-10-07; "
                                     "the dataset has days 2026-10-01..2026-10-03")
    # a project that exists, but not on the days asked for
    days_of = collections.defaultdict(set)
    for e in downloads(items):
        days_of[e.project].add(e.date)
    rare = next(p for p, d in sorted(days_of.items()) if d == {"2026-10-01"})
    result = stats(rare, "--output-dir", parquet_dir, "--from", "2026-10-02", "--to", "2026-10-03")
    assert result.code == 1
    assert result.stderr.strip() == (
        f"haulage stats: no downloads of {rare!r} between 2026-10-02 and 2026-10-03; "
        f"{rare!r} has downloads on 2026-10-01; the dataset has days 2026-10-01..2026-10-03")


def test_project_name_is_a_parameter_not_sql(parquet_dir):
    evil = "x' OR 1=1 --"
    query = sq.counts_query(sq.DuckDBDialect("g"), evil, (), None)
    assert "OR 1=1" not in query.sql.upper() and query.params["project"] == "x' or 1=1 -"
    result = stats(evil, "--output-dir", parquet_dir)
    assert result.code == 1 and "not found" in result.stderr


@pytest.mark.parametrize("argv, says", [
    (["--by", "colour"], "--by 'colour': unknown field"),
    (["--by", "pyverison"], "did you mean pyversion"),
    (["--from", "2026-10-03", "--to", "2026-10-01"], "--from 2026-10-03 is after --to 2026-10-01"),
    (["--from", "2026-10-01", "--days", "2"], "--days"),
    (["--plot", "chart.gif"], "--plot chart.gif: use a file name ending in .png, .svg, .html"),
    (["--bigquery-dataset", "p:d"], "one source"),
    (["--from", "2026-02-30"], "expected a date as YYYY-MM-DD"),
    (["--days", "0"], "must be at least 1"),
    (["--json", "--csv"], "not allowed with"),
])
def test_bad_options_exit_2_with_what_to_fix(parquet_dir, argv, says):
    result = stats("requests", "--output-dir", parquet_dir, *argv)
    assert result.code == 2, result
    assert says in result.stderr, result.stderr
    assert result.stdout == ""


def test_missing_dataset_folder(tmp_path):
    result = stats("requests", "--output-dir", str(tmp_path / "nothing"))
    assert result.code == 2
    assert "no Parquet files under" in result.stderr and "haulage run" in result.stderr


# --------------------------------------------------------------------------
# the query builder


def test_bigquery_sql_filters_the_partition_column():
    dialect = sq.BigQueryDialect("p.d.file_downloads")
    query = sq.counts_query(dialect, "Foo_Bar", (sq.FIELDS["installer"], sq.FIELDS["python"]),
                            (dt.date(2026, 10, 1), dt.date(2026, 10, 3)))
    assert "FROM `p.d.file_downloads`" in query.sql
    assert "WHERE timestamp >= @start_ts AND timestamp < @end_ts AND" in query.sql
    assert query.params == {
        "start_ts": dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc),
        "end_ts": dt.datetime(2026, 10, 4, tzinfo=dt.timezone.utc),
        "project": "foo-bar",
    }
    assert "IS NOT TRUE" in query.sql and "!=" not in query.sql and "<>" not in query.sql
    assert query.keys == ("installer", "python")
    duck = sq.counts_query(sq.DuckDBDialect("/x/file_downloads/*/*.parquet"), "foo", (), (dt.date(2026, 10, 1),) * 2)
    assert "date BETWEEN $start_day AND $end_day" in duck.sql
    assert duck.params["parquet_glob"] == "/x/file_downloads/*/*.parquet"
    with pytest.raises(ValueError):
        sq.BigQueryDialect("p.d.t` WHERE 1=1 --")


def test_field_names_are_whitelisted():
    assert [f.name for f in sq.resolve_fields(["PyVersion", "impl", "installer_version", "type", "date",
                                               "python"])] == ["python", "implementation", "installer-version",
                                                               "package-type", "day"]
    # a group key never shadows a count in a JSON object or CSV row
    assert not set(sq.FIELDS) & set(SERIES) and not set(sq.FIELDS) & set(sq.COUNT_NAMES)
    assert sq.resolve_fields(["ci"])[0].name == "ci-flag"
    with pytest.raises(sq.UnknownField, match="choose from"):
        sq.resolve_fields(["details.python"])
    assert sq.normalize_project("Foo__Bar.baz-QUX") == "foo-bar-baz-qux"


@pytest.mark.emulator
def test_serve_from_bigquery_shows_the_bigquery_numbers(items, both, bigquery_emulator):
    """haulage serve over BigQuery: the page's figures are those of haulage stats --bigquery-dataset."""
    import re
    import threading
    import urllib.request

    from haulage.pipeline.datasets import DatasetRef
    from haulage.stats.backends import BigQueryBackend
    from haulage.stats.server import make_server

    project = top_projects(items, 1)[0]
    with emulators.patched_env(both.env):
        server = make_server(BigQueryBackend(DatasetRef.parse(both.bigquery[1])), port=0, log=False)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            host, port = server.server_address[:2]
            with urllib.request.urlopen(f"http://{host}:{port}/project/{project}?range=all") as answer:
                assert answer.status == 200
                page = answer.read().decode()
        finally:
            server.shutdown()
            server.server_close()
    want = both.json(project)
    cells = dict(((card, series), value) for card, series, value in re.findall(
        r'<td data-card="(\w+)" data-series="(\w+)"><span class="value">([^<]+)</span>', page))
    for series in ("total", "without_mirrors", "human", "ci"):
        assert int(cells[("downloads", series)].replace(",", "")) == want[series]
    environments = re.search(r'id="card-environments">.*?<span class="value">([^<]+)</span>', page).group(1)
    assert int(environments.replace(",", "")) == want["environments"]
    assert "HyperLogLog++ estimate" in page  # BigQuery's count is labelled as the estimate it is
