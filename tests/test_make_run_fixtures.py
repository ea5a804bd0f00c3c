"""The bundled sample logs through the real pipeline (what ``make run`` does),
checked against the counts the fixture generator wrote from its own oracle."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.dataset as ds
import pytest

from haulage.cli.main import main

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((FIXTURES / "manifest.json").read_text())


@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory, capsys_module=None):
    out = tmp_path_factory.mktemp("make-run") / "haulage-out"
    code = main(["run", "--input", str(FIXTURES / "*.log*"), "--output-dir", str(out), "--quiet"])
    assert code == 0
    return out


def _table(out: Path, name: str):
    return ds.dataset(out / name, format="parquet", partitioning="hive").to_table()


def test_rows_per_table_and_day_match_the_manifest(fixture_run, manifest):
    expected: Counter = Counter()
    for entry in manifest["files"].values():
        for table, days in entry["rows"].items():
            for day, count in days.items():
                expected[(table, day)] += count
    actual: Counter = Counter()
    for table in ("file_downloads", "simple_requests"):
        data = _table(fixture_run, table)
        for stamp, folder in zip(data.column("timestamp").to_pylist(), data.column("date").to_pylist()):
            day = stamp.strftime("%Y-%m-%d")
            assert str(folder) == day, "row stored outside its day's folder"
            actual[(table, day)] += 1
    assert actual == expected


def test_dead_letters_per_reason_match_the_manifest(fixture_run, manifest):
    expected: Counter = Counter()
    for entry in manifest["files"].values():
        expected.update(entry["unprocessed"])
        if entry["fault"]:
            expected[entry["fault"]["reason"] if isinstance(entry["fault"], dict) else entry["fault"]] += 1
    data = _table(fixture_run, "unprocessed")
    actual = Counter(error.split(":", 1)[0] for error in data.column("error").to_pylist())
    # ambiguous lines may carry one of the alternative codes the generator allows
    for entry in manifest["files"].values():
        for item in entry.get("ambiguous", []):
            if actual[item["reason"]] < expected[item["reason"]]:
                for alternative in item["also_ok"]:
                    if actual[alternative] > expected[alternative]:
                        actual[alternative] -= 1
                        actual[item["reason"]] += 1
                        break
    assert actual == expected


def test_books_balance_and_event_ids_are_unique(fixture_run, manifest):
    lines = sum(entry["lines"] for entry in manifest["files"].values())
    faults = sum(1 for entry in manifest["files"].values() if entry["fault"])
    tables = {name: _table(fixture_run, name) for name in ("file_downloads", "simple_requests", "unprocessed")}
    assert lines + faults == sum(t.num_rows for t in tables.values())
    ids = tables["file_downloads"].column("event_id").to_pylist() + tables["simple_requests"].column("event_id").to_pylist()
    assert len(ids) == len(set(ids))


def test_bad_files_are_named_in_the_dead_letter(fixture_run):
    data = _table(fixture_run, "unprocessed").to_pylist()
    by_reason = {row["error"].split(":", 1)[0]: row for row in data}
    assert "corrupt.log.gz" in by_reason["bad-gzip"]["source"]
    assert "truncated.log.gz" in by_reason["truncated-gzip"]["source"]
    assert "empty.log.gz" in by_reason["empty-file"]["source"]
