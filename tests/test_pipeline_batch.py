"""``haulage run`` on local files: good and damaged input, and option errors.

Expected rows come from the generator's oracle (benchmarks/corpus.py), not
from haulage's parser; see tests/support/pipeline_check.py for the checks.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from support import pipeline_check as pc

GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
# a deflate block with the reserved block type 11: zlib fails on its first byte
BAD_DEFLATE = b"\x07" + bytes(range(200, 256)) * 4


def write_good_and_damaged(folder: Path, items: list) -> list[pc.Source]:
    """Two gzip files and a plain one that are fine, plus four damaged ones."""
    folder.mkdir(parents=True, exist_ok=True)
    parts = [items[0:150], items[150:300], items[300:380], items[380:460], items[460:560]]
    sources = []

    def put(name: str, data: bytes, part: list, **kw) -> None:
        path = folder / name
        path.write_bytes(data)
        sources.append(pc.Source(str(path), part, **kw))

    put("good-0.log.gz", pc.gzipped(pc.lines_of(parts[0])), parts[0])
    put("good-1.log.gz", pc.gzipped(pc.lines_of(parts[1])), parts[1])
    put("plain.log", pc.joined(pc.lines_of(parts[2])), parts[2])
    # corrupt: a whole good member, then a member whose deflate data is invalid
    put("corrupt.log.gz", pc.gzipped(pc.lines_of(parts[3])) + GZIP_HEADER + BAD_DEFLATE, parts[3],
        fault="bad-gzip", readable=len(parts[3]))
    # truncated: the second half of the file is missing (readable lines: a prefix)
    whole = pc.gzipped(pc.lines_of(parts[4]))
    put("truncated.log.gz", whole[: len(whole) // 2], parts[4], fault="truncated-gzip")
    put("empty.log.gz", b"", [], fault="empty-file", readable=0)
    # text named .gz: not read as text
    put("not-gzip.log.gz", pc.joined(pc.lines_of(items[560:570])), items[560:570], fault="bad-gzip", readable=0)
    return sources


def test_run_local_files_good_and_damaged(tmp_path):
    items = pc.labelled(570, seed=11)
    assert len({e.reason for _, e in items if not e.is_row}) >= 5
    sources = write_good_and_damaged(tmp_path / "in", items)
    out_dir = tmp_path / "out"

    result = pc.run_cli(["run", "--input", str(tmp_path / "in" / "*.gz"), str(tmp_path / "in" / "*.log"),
                         "--output-dir", str(out_dir), "--quiet", "--chunk-lines", "64"])  # several chunks a file
    assert result.code == 0, result.stderr

    out = pc.read_parquet_output(out_dir)
    acc = pc.check_output(out, sources)
    pc.check_summary(result.summary(), out, acc, files=len(sources))

    # all lines of the good files are rows or dead letters; the damaged ones
    # gave what precedes the damage plus one dead letter naming the file
    faults = {d["source"].rpartition(":")[0]: d for d in out.rows["unprocessed"]
              if pc.reason_of(d) in pc.FILE_REASONS}
    by_name = {Path(label).name: pc.reason_of(d) for label, d in faults.items()}
    assert by_name == {"corrupt.log.gz": "bad-gzip", "truncated.log.gz": "truncated-gzip",
                       "empty.log.gz": "empty-file", "not-gzip.log.gz": "bad-gzip"}
    truncated = next(s for s in sources if s.fault == "truncated-gzip")
    fault = faults[truncated.label]
    recovered = int(fault["source"].rpartition(":")[2]) - 1
    assert 0 < recovered < len(truncated.items), "truncating half the file should keep some lines and lose some"
    # the cut line is kept as far as it could be read, then the member's raw bytes
    cut = int(re.search(r"the cut line \((\d+) bytes\)", fault["error"]).group(1))
    assert fault["line"].startswith(truncated.items[recovered][0][:cut].decode("utf-8", "backslashreplace"))
    assert "\\x1f\\x8b\\x08" in fault["line"]
    assert acc.lines == 150 + 150 + 80 + 80 + recovered
    assert acc.faults == 4


# --------------------------------------------------------------------------
# option errors: exit code 2 and a message naming the option


def _error_cases(tmp_path: Path) -> dict[str, tuple[list[str], tuple[str, ...]]]:
    """argv, and the options the message must name."""
    existing = tmp_path / "x.log"
    existing.write_text("")
    out = ["--output-dir", str(tmp_path / "o")]
    return {
        "no-input": (["run", *out], ("--input",)),
        "two-sources": (["run", "--input", str(existing), "--subscription", "projects/p/subscriptions/s", *out],
                        ("--input", "--subscription")),
        "bad-subscription": (["run", "--subscription", "my-subscription", "--run-for", "1", *out], ("--subscription",)),
        "subscription-named-like-a-topic": (["run", "--subscription", "projects/p/topics/t", *out], ("--subscription",)),
        "input-matches-nothing": (["run", "--input", str(tmp_path / "nothing-here-*.gz"), *out], ("--input",)),
        "run-for-in-batch": (["run", "--input", str(existing), "--run-for", "5", *out], ("--run-for",)),
        "two-sinks": (["run", "--input", str(existing), "--bigquery-dataset", "p:d", *out],
                      ("--output-dir", "--bigquery-dataset")),
        "bad-dataset": (["run", "--input", str(existing), "--bigquery-dataset", "just-a-name"], ("--bigquery-dataset",)),
        "zero-window": (["run", "--subscription", "projects/p/subscriptions/s", "--window-seconds", "0", *out],
                        ("--window-seconds",)),
    }


ERROR_CASES = ["no-input", "two-sources", "bad-subscription", "subscription-named-like-a-topic",
               "input-matches-nothing", "run-for-in-batch", "two-sinks", "bad-dataset", "zero-window"]


@pytest.mark.parametrize("case", ERROR_CASES)
def test_run_option_errors(tmp_path, case):
    argv, options = _error_cases(tmp_path)[case]
    result = pc.run_cli(argv)
    assert result.code == 2, (result.code, result.stdout, result.stderr)
    for option in options:
        assert option in result.stderr, result.stderr
    if case != "zero-window":  # argparse's own errors start with the usage line
        assert result.stderr.startswith("haulage run: "), result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "o").exists()


def test_run_option_error_from_the_installed_command(tmp_path):
    """The console script exits 2 with the message on stderr, nothing on stdout."""
    exe = Path(sys.executable).parent / "haulage"
    argv, (option,) = _error_cases(tmp_path)["input-matches-nothing"]
    proc = subprocess.run([str(exe), *argv], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 2, proc
    assert option in proc.stderr and "matches no files" in proc.stderr, proc.stderr
    assert proc.stdout == ""


def test_event_ids_unique_when_files_share_a_name(tmp_path):
    items = pc.labelled(200, seed=71, bad_fraction=0.0)
    sources = []
    for day, part in (("2026-10-01", items[:100]), ("2026-10-02", items[100:])):
        path = tmp_path / "in" / day / "00.log.gz"
        path.parent.mkdir(parents=True)
        path.write_bytes(pc.gzipped(pc.lines_of(part)))
        sources.append(pc.Source(str(path), part))
    result = pc.run_cli(["run", "--input", str(tmp_path / "in" / "*" / "*.gz"),
                         "--output-dir", str(tmp_path / "out"), "--quiet"])
    assert result.code == 0, result.stderr
    out = pc.read_parquet_output(tmp_path / "out")
    pc.check_output(out, sources)  # event ids unique: identities are 2026-10-01/00.log.gz and 2026-10-02/00.log.gz


def test_identical_files_under_two_names_are_read_once(tmp_path):
    """Event ids come from a file's content, not its name: a byte-for-byte copy
    is the same file, read once (the summary says it skipped the other)."""
    items = pc.labelled(50, seed=3, bad_fraction=0.0)
    for day in ("2026-10-01", "2026-10-02"):
        path = tmp_path / "in" / day / "00.log.gz"
        path.parent.mkdir(parents=True)
        path.write_bytes(pc.gzipped(pc.lines_of(items)))
    result = pc.run_cli(["run", "--input", str(tmp_path / "in" / "2026-10-01" / "*.gz"),
                         str(tmp_path / "in" / "2026-10-02" / "*.gz"), "--output-dir", str(tmp_path / "out"), "--quiet"])
    assert result.code == 0, result.stderr
    assert "1 file already ingested, skipped" in result.stdout, result.stdout
    out = pc.read_parquet_output(tmp_path / "out")
    pc.check_output(out, [pc.Source(str(tmp_path / "in" / "2026-10-01" / "00.log.gz"), items)])


def test_the_summary_says_where_the_cpu_went(tmp_path):
    """Each stage counts the CPU time of its own code; the summary shows the shares of the run's CPU."""
    sources = write_good_and_damaged(tmp_path / "in", pc.labelled(570, seed=12))
    result = pc.run_cli(["run", "--input", str(tmp_path / "in" / "*.gz"), "--output-dir", str(tmp_path / "out"),
                         "--quiet", "--workers", "2"])
    assert result.code == 0 and sources, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("CPU "))
    found = re.fullmatch(r"CPU ([\d.]+) s: read ([\d.]+) s \(\d+ %\), parse ([\d.]+) s \(\d+ %\), "
                         r"write ([\d.]+) s \(\d+ %\), the rest \(start-up, Beam\) ([\d.]+) s \(\d+ %\)", line)
    assert found, line
    total, read, parse, write, rest = map(float, found.groups())
    assert total > 0 and abs(read + parse + write + rest - total) <= 0.25  # each figure is rounded to 0.1 s


def test_stage_cpu_shares_in_the_summary():
    from haulage.pipeline.summary import RunSummary

    counters = {"lines_read": 10, "cpu_us.read": 1_000_000, "cpu_us.parse": 3_000_000, "cpu_us.write": 2_000_000}
    assert RunSummary(counters, 1.0, cpu_seconds=8.0)._cpu_line() == (
        "CPU 8.0 s: read 1.0 s (12 %), parse 3.0 s (38 %), write 2.0 s (25 %), the rest (start-up, Beam) 2.0 s (25 %)")
    assert RunSummary(counters, 1.0).stage_cpu == {"read": 1.0, "parse": 3.0, "write": 2.0}
    assert RunSummary(counters, 1.0)._cpu_line() == "CPU by stage: read 1.0 s (17 %), parse 3.0 s (50 %), write 2.0 s (33 %)"
    assert RunSummary({"lines_read": 10}, 1.0, cpu_seconds=2.0)._cpu_line() is None
