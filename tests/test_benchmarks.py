"""The benchmarks' own pieces work: PyPI's parser as the anchor, the stage report.

Speed is never asserted (the machine is shared); what is checked is that the
benchmarks measure what they say on real lines, so they do not rot.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import anchor  # noqa: E402
import corpus  # noqa: E402
import agent_columns_bench  # noqa: E402
import messages_bench  # noqa: E402
import parse_bench  # noqa: E402


def test_anchor_runs_pypis_parser_on_every_line():
    labelled = corpus.generate_labelled(400, seed=2, bad_fraction=0.05)
    rate, rows, unprocessed = anchor.linehaul_rate([line for line, _ in labelled])
    assert rate > 0
    assert rows + unprocessed == 400
    # linehaul turns the good current-format lines into rows (it drops only agents it ignores)
    good = sum(1 for _, e in labelled if e.is_row)
    assert good * 0.9 <= rows <= good


def test_parse_bench_prints_ratios_and_stage_shares(capsys):
    assert parse_bench.main(["--lines", "3000", "--repeat", "1", "--anchor-lines", "300"]) == 0
    out = capsys.readouterr().out
    assert "distinct agents" in out
    assert "× PyPI" in out
    for stage in ("start-up", "inflate", "split", "agents", "write"):
        assert f"  {stage}" in out
    assert "isal" in out


def test_agent_columns_bench_reports_each_cost(capsys):
    assert agent_columns_bench.main(["--lines", "3000", "--repeat", "1", "--anchor-lines", "300"]) == 0
    out = capsys.readouterr().out
    assert "PyPI's parser" in out
    for label in ("cold", "store cold", "warm"):
        assert f"\n{label} " in out
    assert "per never-seen agent" in out and "per distinct agent per block" in out


def test_messages_bench_reports_each_message_size_and_its_parser(capsys):
    assert messages_bench.main(["--lines", "2000", "--repeat", "1", "--anchor-lines", "300", "--sizes", "1", "500"]) == 0
    out = capsys.readouterr().out
    assert "messages of     1 lines (columnar, messages gathered" in out
    assert "messages of   500 lines (columnar, messages gathered" in out
    assert out.count("decoded too:") == 2 and out.count("× PyPI") == 4  # parse alone, and decoding with it
    assert messages_bench.main(["--lines", "200", "--repeat", "1", "--anchor-lines", "100", "--sizes", "10"]) == 0
    assert "messages of    10 lines (row parser" in capsys.readouterr().out  # 200 lines in all: too few to gather


def test_pull_bench_runs_haulage_on_the_pubsub_emulator_and_checks_its_books(capsys):
    """A few hundred one-line messages through the emulator: every line read, CPU reported next to PyPI's parser."""
    import pytest

    import pull_bench
    from support import emulators

    try:
        assert pull_bench.main(["--lines", "300", "--anchor-lines", "100", "--run-for", "4", "--window-seconds", "2"]) == 0
    except emulators.EmulatorUnavailable as missing:
        pytest.skip(str(missing))
    out = capsys.readouterr().out
    assert "messages of 1 line(s): 300" in out
    assert "haulage run --subscription, 4 s, whole process" in out and "× PyPI" in out
    assert "the same run with nothing to read" in out
