"""Rollups (stats/rollups.py) give the rows' numbers and follow every commit and replay.

A labelled synthetic log of four days, in three files, goes through the real
pipeline into Parquet. The statistics read through the rollups must equal
the statistics counted from the rows (``DuckDBBackend(rollups=False)``, the
path test_stats.py checks against the labels) figure by figure — every
counted series, day, breakdown, look-up count and the 404's suggestions —
with the environments an estimate within its stated error. Then the dataset
changes under a running ``haulage serve``: more files are ingested (new rows
on a day already rolled up, and new days) and one day is replayed from part
of its logs; after each change ``haulage stats --json`` and the page must
show the new numbers, equal to counts made from the labels alone.
"""

from __future__ import annotations

import collections
import gzip
import json
import re
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from support import pipeline_check as pc

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "benchmarks") not in sys.path:
    sys.path.insert(0, str(ROOT / "benchmarks"))

import corpus  # noqa: E402

from haulage.stats.backends import DuckDBBackend  # noqa: E402
from haulage.stats.query import normalize_project  # noqa: E402
from haulage.stats.report import DaySpec, UnknownProject, build_report  # noqa: E402
from haulage.stats.rollups import ROLLUPS  # noqa: E402
from haulage.stats.page_data import BREAKDOWNS, project_page  # noqa: E402

LINES, SEED, START, DAYS = 3000, 20261130, "2026-10-01", 4


@pytest.fixture(scope="module")
def items():
    return corpus.generate_labelled(LINES, seed=SEED, start_date=START, days=DAYS)


@pytest.fixture(scope="module")
def parts(items, tmp_path_factory) -> list[Path]:
    """The log in three gzip files, in time order (so neighbouring files share a day)."""
    folder = tmp_path_factory.mktemp("rollup-logs")
    third = len(items) // 3
    paths = []
    for i in range(3):
        path = folder / f"downloads-{i}.log.gz"
        path.write_bytes(gzip.compress(pc.joined(pc.lines_of(items[i * third:(i + 1) * third if i < 2 else None])),
                                       mtime=0))
        paths.append(path)
    return paths


def part_items(items, i: int) -> list:
    third = len(items) // 3
    return items[i * third:(i + 1) * third if i < 2 else None]


def downloads(items, project: str) -> list:
    return [e for _, e in items if e.table == "file_downloads" and normalize_project(e.project) == project]


def run(argv: list[str]) -> None:
    result = pc.run_cli(argv)
    assert result.code == 0, result.stderr


def stats_json(out: Path, project: str, *argv: str) -> dict[str, Any]:
    result = pc.run_cli(["stats", project, "--output-dir", str(out), "--json", *argv])
    assert result.code == 0, result.stderr
    return json.loads(result.stdout)


def top(items, n: int) -> list[str]:
    counts = collections.Counter(normalize_project(e.project) for _, e in items if e.table == "file_downloads")
    return [p for p, _ in counts.most_common(n)]


def close_environments(estimate: int, exact: int) -> bool:
    """The sketches' stated error: 0.8 % relative standard error; allow three of them (and one)."""
    return abs(estimate - exact) <= max(1, 0.025 * exact)


def same_report(rolled: dict[str, Any], counted: dict[str, Any]) -> None:
    """Every figure equal, except the environments (estimate against exact count) and their change."""
    for key in counted:
        if key in ("environments", "change"):
            continue
        assert rolled[key] == counted[key], (key, rolled[key], counted[key])
    if counted["environments"] is None:
        assert rolled["environments"] is None
    else:
        assert close_environments(rolled["environments"], counted["environments"]), \
            (rolled["environments"], counted["environments"])
    for key in counted["change"]:
        if key != "environments":
            assert rolled["change"][key] == counted["change"][key], key


def test_rollups_give_the_numbers_of_the_rows(items, parts, tmp_path):
    out = tmp_path / "out"
    run(["run", "--input", str(parts[0].parent / "*.log.gz"), "--output-dir", str(out), "--quiet"])
    rolled, counted = DuckDBBackend(str(out)), DuckDBBackend(str(out), rollups=False)
    assert rolled.rollups is not None and counted.rollups is None
    projects = top(items, 3)
    null_details = collections.Counter(normalize_project(e.project) for _, e in items
                                       if e.table == "file_downloads" and e.kind in ("bot", "unknown"))
    projects.append(null_details.most_common(1)[0][0])
    for project in projects:
        for range_key in ("all", "7d"):
            a, b = project_page(rolled, project, range_key), project_page(counted, project, range_key)
            assert a.report.environments_method == "hll-sketches" and b.report.environments_method == "exact"
            same_report(a.report.to_json(), b.report.to_json())
            assert a.report.to_json()["total"] == len(downloads(items, project))
            for name in BREAKDOWNS:
                assert a.breakdowns[name] == b.breakdowns[name], (project, name)
                assert sum(c.total for _, c in a.breakdowns[name]) == a.report.totals.total
        # --by with two fields is not rolled up: counted from the rows, the same either way
        two = build_report(rolled, project, DaySpec(), ("installer", "python"))
        assert two.breakdown == build_report(counted, project, DaySpec(), ("installer", "python")).breakdown
    # a name nobody downloaded: the same suggestions from the rollups as from the rows
    misspelt = projects[0][:-1] + ("x" if projects[0][-1] != "x" else "y")
    suggestions = []
    for backend in (rolled, counted):
        with pytest.raises(UnknownProject) as caught:
            build_report(backend, misspelt, DaySpec())
        suggestions.append(caught.value.suggestions)
    assert suggestions[0] == suggestions[1] and projects[0] in suggestions[0]
    # one rollup per day with download rows and one per month, nothing else in the folder
    days = sorted({e.date for _, e in items if e.table == "file_downloads"})
    found = sorted(p.relative_to(out / ROLLUPS).parts for p in (out / ROLLUPS).rglob("*") if p.is_file())
    assert [folder for folder, _ in found] == [f"date={d}" for d in days] + ["month=2026-10"]
    # the home page's most downloaded projects of the newest day, from the rollup and from the rows
    from haulage.stats.query import top_projects_query
    import datetime as dt

    newest = dt.date.fromisoformat(days[-1])
    assert rolled.rollups.top_projects(newest, 10) == counted.run(top_projects_query(counted.dialect, newest, 10))


def _page_total(url: str) -> int:
    with urllib.request.urlopen(url) as answer:
        body = answer.read().decode()
    found = re.search(r'data-card="downloads" data-series="total"><span class="value">([^<]+)</span>', body)
    assert found, body[:2000]
    return int(found.group(1).replace(",", ""))


def test_rollups_follow_new_commits_and_replays(items, parts, tmp_path):
    from test_serve import Served

    project = top(items, 1)[0]
    out = tmp_path / "out"
    run(["run", "--input", str(parts[0]), "--output-dir", str(out), "--quiet"])
    first = part_items(items, 0)
    answer = stats_json(out, project)
    assert answer["total"] == len(downloads(first, project))
    shared = sorted({e.date for _, e in first} & {e.date for _, e in part_items(items, 1)} - {None})
    assert shared, "neighbouring files should share a day"
    day = shared[-1]
    rolled_before = sorted(p.name for p in (out / ROLLUPS / f"date={day}").iterdir())

    served = Served(out)
    try:
        page = f"{served.url}project/{project}"
        assert _page_total(page) == answer["total"]

        # more files: new rows on a day already rolled up, and new days
        run(["run", "--input", str(parts[0].parent / "*.log.gz"), "--output-dir", str(out), "--quiet"])
        answer = stats_json(out, project)
        assert answer["total"] == len(downloads(items, project))
        daily = {d["day"]: d["total"] for d in answer["daily"]}
        assert daily[day] == sum(e.date == day for e in downloads(items, project))
        assert _page_total(page) == answer["total"]
        rolled_after = sorted(p.name for p in (out / ROLLUPS / f"date={day}").iterdir())
        assert rolled_after != rolled_before, "the day's files changed: its rollup must have been made again"
        assert len(list((out / ROLLUPS / f"month={day[:7]}").iterdir())) == 2, "the month's too (the old one stays a while)"
        counted = build_report(DuckDBBackend(str(out), rollups=False), project, DaySpec()).to_json()
        same_report(stats_json(out, project), {**counted, "source": answer["source"]})

        # replay the shared day from the first file alone: that day's rows of the second file go
        run(["replay", "--input", str(parts[0]), "--from", day, "--to", day, "--output-dir", str(out), "--quiet"])
        kept = [e for _, e in items if e.table == "file_downloads" and e.date != day] + \
            [e for _, e in first if e.table == "file_downloads" and e.date == day]
        mine = [e for e in kept if normalize_project(e.project) == project]
        answer = stats_json(out, project)
        assert answer["total"] == len(mine)
        assert {d["day"]: d["total"] for d in answer["daily"]}[day] == sum(e.date == day for e in mine)
        assert _page_total(page) == answer["total"]
        counted = build_report(DuckDBBackend(str(out), rollups=False), project, DaySpec()).to_json()
        same_report(answer, {**counted, "source": answer["source"]})
    finally:
        served.close()


def test_a_backend_with_rollups_is_freed_at_once(parts, tmp_path):
    """No reference cycle: a cycle would leave DuckDB's connection to the cyclic collector, which may run in
    a process forked by ``haulage run``'s local workers — and freeing it there aborts that process."""
    import gc
    import weakref

    out = tmp_path / "out"
    run(["run", "--input", str(parts[0]), "--output-dir", str(out), "--quiet"])
    gc.disable()
    try:
        backend = DuckDBBackend(str(out))
        assert backend.rollups is not None
        backend.rollups.warm()
        assert backend.rollups.day_rows(), "the rollups were made and read"
        gone = weakref.ref(backend)
        del backend
        assert gone() is None, "the backend is only freed by the cyclic garbage collector"
    finally:
        gc.enable()
