"""Broken multi-member gzip through ``haulage parse`` and ``haulage run``: the books hold.

The file is the shape issue 10 measured: a very compressible member (one log
line repeated 30,000 times, which inflates in many capped steps), then small
and larger members, a corrupt member, garbage between members, and a last
member cut short. The old reader repeated lines here while the summary said
"balanced". Expected lines and positions are computed from the members'
plaintext (every member ends with a newline, and the corrupt member fails on
its first deflate byte, so nothing of it is salvaged); rows are read back and
compared by event id position.
"""

from __future__ import annotations

import subprocess
import sys
import zlib
from pathlib import Path

import orjson
import pytest

from haulage.parsers import Origin
from support import pipeline_check as pc
from support.framing_oracle import gzip_member

HAULAGE = str(Path(sys.executable).with_name("haulage"))
BAD_MEMBER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + b"\x07" + bytes(range(200, 256)) * 4
GARBAGE = b"this is not gzip at all " * 20


@pytest.fixture(scope="module")
def damaged_file(tmp_path_factory):
    """(path, expected {position: line}, expected fault positions → reason)."""
    lines = [line for line, _ in pc.labelled(1700, seed=21, bad_fraction=0.0, legacy_fraction=0.0)]
    repeated, small, middle, after, cut = lines[0], lines[1:4], lines[4:504], lines[504:704], lines[704:1700]
    truncated_member = gzip_member(pc.joined(cut), 6)
    truncated_member = truncated_member[: len(truncated_member) // 2]
    # how many complete lines the cut member still gives, computed with zlib directly
    salvaged = zlib.decompressobj(31).decompress(truncated_member).count(b"\n")
    assert 0 < salvaged < len(cut)
    data = b"".join([
        gzip_member(pc.joined([repeated] * 30_000), 9),
        gzip_member(pc.joined(small)),
        BAD_MEMBER,
        gzip_member(pc.joined(middle), 1),
        GARBAGE,
        gzip_member(pc.joined(after), 0),
        truncated_member,
    ])
    expected: dict[int, bytes] = {}
    faults: dict[int, str] = {}
    position = 0
    for group, fault in (([repeated] * 30_000 + small, "bad-gzip"), (middle, "bad-gzip"), (after, None), (cut[:salvaged], "truncated-gzip")):
        for line in group:
            position += 1
            expected[position] = line
        if fault:
            position += 1
            faults[position] = fault
    path = tmp_path_factory.mktemp("damaged") / "broken.log.gz"
    path.write_bytes(data)
    return path, expected, faults


def test_haulage_parse_gives_every_line_once_and_one_dead_letter_per_damage(damaged_file):
    path, expected, faults = damaged_file
    done = subprocess.run([HAULAGE, "parse", str(path)], capture_output=True, timeout=300)
    assert done.returncode == 1  # the file could not be read completely
    objects = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert len(objects) == len(expected) + len(faults)  # lines read + faults = objects written
    key = Origin.for_file(str(path)).key
    rows = {int(o["row"]["event_id"].rsplit("-", 1)[1]) for o in objects if o["table"] != "unprocessed"}
    assert rows == set(expected)  # every line once, at its position (all generated lines are good rows)
    assert all(o["row"]["event_id"].startswith(key) for o in objects if o["table"] != "unprocessed")
    dead = {int(o["row"]["source"].rpartition(":")[2]): o["row"]["error"].split(":", 1)[0] for o in objects if o["table"] == "unprocessed"}
    assert dead == faults
    assert done.stderr.count(b"haulage parse: ") == len(faults)


def test_haulage_run_books_balance_and_rows_are_not_repeated(damaged_file, tmp_path):
    path, expected, faults = damaged_file
    result = pc.run_cli(["run", "--input", str(path), "--output-dir", str(tmp_path / "out"), "--quiet", "--chunk-mib", "0.5"])
    assert result.code == 0, result.stderr
    out = pc.read_parquet_output(tmp_path / "out")
    positions = [int(r["event_id"].rsplit("-", 1)[1]) for t in pc.ROW_TABLES for r in out.rows[t]]
    assert len(positions) == len(set(positions)) == len(expected)
    assert set(positions) == set(expected)
    dead = {int(d["source"].rpartition(":")[2]): pc.reason_of(d) for d in out.rows["unprocessed"]}
    assert dead == faults
    summary = result.summary()
    assert summary.lines_read == len(expected) and summary.file_faults == len(faults)
    assert summary.rows == len(expected) and summary.dead_letters == len(faults)
    assert summary.balanced
