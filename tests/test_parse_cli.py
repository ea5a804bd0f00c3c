"""``haulage parse``: one NDJSON object per input line, in input order; exit codes."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from support.logfiles import corpus, write_gzip

HAULAGE = str(Path(sys.executable).with_name("haulage"))


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([HAULAGE, "parse", *args], input=stdin, capture_output=True, timeout=120)


def test_one_object_per_line_in_order_with_expected_tables(tmp_path):
    labelled = corpus.generate_labelled(3000, seed=4, bad_fraction=0.05, legacy_fraction=0.1)
    path = write_gzip(tmp_path / "a.log.gz", [line for line, _ in labelled])
    done = run(str(path))
    assert done.returncode == 0, done.stderr
    objects = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert len(objects) == len(labelled)
    for position, (obj, (line, expect)) in enumerate(zip(objects, labelled), start=1):
        assert obj["table"] == expect.table, line
        if expect.table == "unprocessed":
            assert obj["row"]["source"] == f"{path}:{position}"
            assert obj["row"]["error"].split(":", 1)[0] in (expect.reason, *expect.also_ok)
        else:
            assert obj["row"]["timestamp"] == expect.timestamp
            assert obj["row"]["event_id"].endswith(f"-{position}")
            assert obj["row"]["classification"]["traffic"] == expect.traffic


def test_stdin_plain_text_and_crlf():
    lines = [line for line, _ in corpus.generate_labelled(50, seed=9, bad_fraction=0.0)]
    done = run("-", stdin=b"\r\n".join(lines) + b"\r\n")
    assert done.returncode == 0
    objects = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert len(objects) == 50
    assert all(o["table"] != "unprocessed" for o in objects)
    assert all("\r" not in (o["row"]["user_agent"] or "") for o in objects)


def test_several_files_keep_their_own_positions(tmp_path):
    a = write_gzip(tmp_path / "a.log.gz", [b"garbage one", b"garbage two"])
    b = tmp_path / "b.log"
    b.write_bytes(b"garbage three\n")
    done = run(str(a), str(b))
    sources = [orjson.loads(line)["row"]["source"] for line in done.stdout.splitlines()]
    assert sources == [f"{a}:1", f"{a}:2", f"{b}:1"]
    assert done.returncode == 0


def test_missing_file_is_an_error_but_the_others_are_parsed(tmp_path):
    good = write_gzip(tmp_path / "good.log.gz", [b"garbage"])
    done = run(str(tmp_path / "missing.log.gz"), str(good))
    assert done.returncode == 1
    assert b"cannot read" in done.stderr and b"missing.log.gz" in done.stderr
    assert len(done.stdout.splitlines()) == 1


def test_truncated_gzip_keeps_the_lines_before_the_damage(tmp_path):
    lines = [line for line, _ in corpus.generate_labelled(2000, seed=2, bad_fraction=0.0)]
    whole = gzip.compress(b"\n".join(lines) + b"\n")
    cut = tmp_path / "cut.log.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    done = run(str(cut))
    assert done.returncode == 1
    assert b"truncated-gzip" in done.stderr
    objects = [orjson.loads(line) for line in done.stdout.splitlines()]
    complete = [o for o in objects if o["table"] != "unprocessed"]
    assert 0 < len(complete) < 2000
    # every complete line before the cut is a row, in order
    assert [o["row"]["event_id"].rsplit("-", 1)[1] for o in complete] == [str(i) for i in range(1, len(complete) + 1)]
    # the cut line itself is kept in the dead letter, not dropped
    assert objects[-1]["table"] == "unprocessed" and objects[-1]["row"]["error"].startswith("truncated-gzip")


def test_not_gzip_and_empty_files(tmp_path):
    fake = tmp_path / "fake.log.gz"
    fake.write_bytes(b"this is not gzip\n")
    empty = tmp_path / "empty.log.gz"
    empty.write_bytes(b"")
    done = run(str(fake))
    assert done.returncode == 1 and b"bad-gzip" in done.stderr
    (dead,) = [orjson.loads(line) for line in done.stdout.splitlines()]  # one dead letter, keeping the bytes
    assert dead["table"] == "unprocessed" and dead["row"]["error"].startswith("bad-gzip")
    assert dead["row"]["line"] == "this is not gzip\\x0a" and dead["row"]["source"] == f"{fake}:1"
    done = run(str(empty))
    assert done.returncode == 0 and done.stdout == b""


def test_parse_imports_neither_beam_nor_the_other_commands(tmp_path):
    """``haulage parse`` is start-up bound on small files: it loads only what parsing needs.

    A fresh interpreter runs the command and then lists what it imported.
    """
    path = write_gzip(tmp_path / "a.log.gz", [line for line, _ in corpus.generate_labelled(20, seed=5)])
    code = (
        "import sys\n"
        "from haulage.cli.main import main\n"
        f"status = main(['parse', {str(path)!r}])\n"
        "sys.stdout.flush()\n"
        "sys.stderr.write(repr(sorted(sys.modules)))\n"
        "sys.exit(status)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(done.stdout.splitlines()) == 20
    loaded = eval(done.stderr.decode())  # noqa: S307 (our own repr of a list of names)
    assert "haulage.parsers.ndjson_files" in loaded  # the list is the one after parsing
    assert not [m for m in loaded if m.split(".")[0] == "apache_beam"]
    others = [f"haulage.cli.{name}" for name in ("run", "replay", "setup", "stats", "serve")]
    assert not [m for m in loaded if m in others or m.startswith("haulage.stats")]


def test_a_job_is_imported_with_the_collector_off_and_left_on():
    """cli.imports: the modules are imported, what exists is frozen, and the collector is on again afterwards."""
    import gc
    import subprocess
    import sys

    code = (
        "import gc, sys\n"
        "from haulage.cli.imports import import_quietly\n"
        "before = gc.get_freeze_count()\n"
        "import_quietly('haulage.pipeline.options', 'json')\n"
        "assert 'haulage.pipeline.options' in sys.modules and gc.isenabled()\n"
        "assert gc.get_freeze_count() > before\n"
        "gc.disable()\n"
        "import_quietly('csv')\n"
        "assert not gc.isenabled()  # left as it was found\n"
        "print('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr
    assert gc.isenabled()


@pytest.fixture(scope="module")
def big_file(tmp_path_factory):
    from haulage.parsers.line_block import BLOCK_LINES

    lines = [line for line, _ in corpus.generate_labelled(BLOCK_LINES + 4_500, seed=8, bad_fraction=0.03)]
    return lines, write_gzip(tmp_path_factory.mktemp("big") / "big.log.gz", lines)


@pytest.mark.parametrize("workers", ["1", "3"])
def test_output_is_the_row_parsers_dicts_through_orjson_across_blocks_and_chunks(big_file, workers):
    """Byte for byte, what the row parser's records give through orjson — over more lines than a
    block holds (65,536), so block and chunk bounds fall inside the file; in one process, and on
    three workers taking turns to write. Dead letters carry the
    time the command started (``received_at``); it is compared as such, the rest byte for byte."""
    from haulage.parsers import LineParser, Origin

    lines, path = big_file
    done = run("--workers", workers, str(path))
    assert done.returncode == 0, done.stderr
    got = done.stdout.split(b"\n")
    assert got.pop() == b""
    received = {orjson.loads(line)["row"]["received_at"] for line in got if line.startswith(b'{"table":"unprocessed"')}
    assert len(received) == 1  # one time for the whole run, in the schema's form
    (received_at,) = received
    assert len(received_at) == 20 and received_at.endswith("Z")
    records = LineParser().parse_batch(lines, Origin.for_file(str(path)), 1, received_at)
    want = [orjson.dumps({"table": r.table, "row": r.row}) for r in records]
    assert len(got) == len(want) == len(lines)
    assert sum(r.table == "unprocessed" for r in records) > 1_000
    mismatches = [i for i, (a, b) in enumerate(zip(got, want)) if a != b]
    assert mismatches == [], (mismatches[:5], got[mismatches[0]][:400] if mismatches else b"")


def test_a_reader_that_goes_away_stops_parsing_quietly_and_a_full_disk_is_an_output_error(tmp_path):
    """``haulage parse f | head``: no traceback and no "cannot read f" (the input was fine); status 1.
    Writing to a full device is reported as an output error, not as the input's."""
    lines = [line for line, _ in corpus.generate_labelled(6000, seed=6)]
    path = write_gzip(tmp_path / "a.log.gz", lines)
    with subprocess.Popen([HAULAGE, "parse", str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        first = proc.stdout.read(1000)
        proc.stdout.close()  # the reader goes away with megabytes still to come
        stderr = proc.stderr.read()
        status = proc.wait(timeout=120)
    assert first.startswith(b'{"table":')
    assert (status, stderr) == (1, b"")
    if Path("/dev/full").exists():
        with open("/dev/full", "wb") as full:
            done = subprocess.run([HAULAGE, "parse", str(path)], stdout=full, stderr=subprocess.PIPE, timeout=120)
        assert done.returncode == 1
        assert b"cannot write the output" in done.stderr and b"cannot read" not in done.stderr


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_workers_end_with_a_killed_reader(big_file):
    """``kill -9`` of ``haulage parse`` leaves no worker behind (an idle one would wait on its queue forever)."""
    import os
    import signal
    import time

    _, path = big_file
    with subprocess.Popen([HAULAGE, "parse", "--workers", "2", str(path)], stdout=subprocess.PIPE) as proc:
        proc.stdout.read(1)  # the first worker has written: the workers exist
        workers = _children(proc.pid)
        assert len(workers) == 2
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while (alive := {w for w in workers if Path(f"/proc/{w}").exists()
                         and "Z" not in (Path(f"/proc/{w}/stat").read_text().rsplit(")", 1)[1].split()[:1])}) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert alive == set()
