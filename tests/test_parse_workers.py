"""``haulage parse`` on several workers writes exactly what one process writes, and fails as cleanly.

The rule (:mod:`haulage.parsers.ndjson_sinks`): blocks parsed by forked
workers come out byte for byte as the one-process sink writes them, in input
order, faults' dead letters in place; a write that fails, a parse that raises
or a worker that dies stops the run with that error — never a hang, never a
piece written after the failure.
"""

from __future__ import annotations

import errno
import gzip
import io
import mmap
import os
import signal
import tempfile
import time
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from haulage.parsers.columnar import ColumnarParser
from haulage.parsers.framing import FileFault
from haulage.parsers.ndjson_files import parse_stream
from haulage.parsers.ndjson_sinks import OutputFailed, SequentialSink, WorkerSink
from support.logfiles import corpus

RECEIVED_AT = "2026-10-01T00:00:00Z"
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@contextmanager
def at_most(seconds: int):
    """Fail the test instead of hanging it (a turn that never comes would wait forever)."""

    def expired(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def one_process(files: list[tuple[str, bytes]]) -> tuple[bytes, list[list[FileFault]]]:
    out = io.BytesIO()
    sink = SequentialSink(ColumnarParser(agent_columns=False), out)
    faults = [parse_stream(io.BytesIO(data), name, sink, RECEIVED_AT) for name, data in files]
    sink.finish()
    return out.getvalue(), faults


def on_workers(
    files: list[tuple[str, bytes]], workers: int, block_bytes: int, parser: ColumnarParser | None = None,
    out_path: str | None = None,
) -> tuple[bytes, list[list[FileFault]], bool]:
    """What the worker sink writes to a file, the faults, and whether workers were forked at all."""
    with (open(out_path, "w+b") if out_path else tempfile.TemporaryFile()) as out:
        sink = WorkerSink(parser or ColumnarParser(agent_columns=False), out, out.fileno(), workers, block_bytes)
        try:
            faults = [parse_stream(io.BytesIO(data), name, sink, RECEIVED_AT) for name, data in files]
            sink.finish()
        except BaseException:
            sink.abandon()
            raise
        out.seek(0)
        return out.read(), faults, sink.forked


@st.composite
def log_files(draw) -> list[tuple[str, bytes]]:
    """1–3 files of generated lines (bad and legacy ones included): gzip of 1–3 members, some damaged, or plain."""
    lines = [line for line, _ in corpus.generate_labelled(
        draw(st.integers(0, 2_500)), seed=draw(st.integers(0, 10_000)),
        bad_fraction=draw(st.sampled_from([0.0, 0.05, 0.3])), legacy_fraction=draw(st.sampled_from([0.0, 0.1])),
    )]
    count = draw(st.integers(1, 3))
    cuts = sorted(draw(st.lists(st.integers(0, len(lines)), min_size=count - 1, max_size=count - 1)))
    files = []
    for index, (a, b) in enumerate(zip([0, *cuts], [*cuts, len(lines)])):
        text = b"".join(line + b"\n" for line in lines[a:b])
        kind = draw(st.sampled_from(["gzip", "gzip", "plain", "damaged"]))
        if kind == "plain":
            data = text
        else:
            inner = sorted(draw(st.lists(st.integers(0, len(text)), max_size=2)))
            members = [gzip.compress(text[x:y], 1) for x, y in zip([0, *inner], [*inner, len(text)])]
            if kind == "damaged":
                at = draw(st.integers(0, len(members) - 1))
                how = draw(st.sampled_from(["garbage-before", "cut"]))
                if how == "garbage-before":
                    members.insert(at, b"this is not gzip")
                else:
                    members[at] = members[at][: max(1, len(members[at]) // 2)]
            data = b"".join(members)
        files.append((f"f{index}.log.gz", data))
    return files


@SETTINGS
@given(files=log_files(), workers=st.integers(2, 4), block_kib=st.integers(4, 96))
def test_workers_write_byte_for_byte_what_one_process_writes(files, workers, block_kib):
    want, want_faults = one_process(files)
    with at_most(120):
        got, faults, forked = on_workers(files, workers, block_kib << 10)
    assert faults == want_faults
    assert got == want


def big_files(lines: int = 12_000, seed: int = 3) -> list[tuple[str, bytes]]:
    labelled = corpus.generate_labelled(lines, seed=seed, bad_fraction=0.05)
    return [("big.log.gz", gzip.compress(b"".join(line + b"\n" for line, _ in labelled), 1))]


@pytest.mark.parametrize("slots", ["shared memory", "too small: the pipe"])
def test_a_file_of_many_blocks_is_parsed_by_the_workers(slots, monkeypatch):
    import haulage.parsers.ndjson_sinks as sinks

    if slots != "shared memory":
        monkeypatch.setattr(sinks, "_slot_bytes", lambda block_bytes: mmap.PAGESIZE)
    sent = []
    deal = sinks.WorkerSink._deal
    monkeypatch.setattr(sinks.WorkerSink, "_deal", lambda self, piece: (deal(self, piece), sent.append(
        self._in_flight[-1][1]))[0])
    files = big_files()
    want, _ = one_process(files)
    with at_most(120):
        got, _, forked = on_workers(files, 3, 64 << 10)
    assert sent and all((slot is not None) == (slots == "shared memory") for slot in sent)
    # blocks of ~1 MB (one run of the reader each; a run is never split), ~6 of them
    assert len(block_starts(files, 64 << 10)) >= 5
    assert forked
    assert got == want and got.count(b"\n") == 12_000


def test_a_file_of_one_block_starts_no_worker():
    files = big_files(300)
    want, _ = one_process(files)
    got, _, forked = on_workers(files, 4, 8 << 20)
    assert not forked
    assert got == want


class FailsOnBlock(ColumnarParser):
    """A parser that raises (or dies) on the block starting at line ``position``: a bug, or a worker killed."""

    def __init__(self, position: int, die: bool = False) -> None:
        super().__init__(agent_columns=False)
        self.position = position
        self.die = die

    def parse_block(self, block, origin, received_at):
        if block.first_position == self.position:
            if self.die:
                os._exit(9)
            time.sleep(0.5)  # the next blocks are parsed meanwhile and wait for their turn
            raise RuntimeError(f"parser bug at line {self.position}")
        return super().parse_block(block, origin, received_at)


def block_starts(files, block_bytes: int) -> list[int]:
    from haulage.parsers.framing import iter_line_runs
    from haulage.parsers.line_block import gather_blocks

    (name, data), = files
    return [item.first_position for item in gather_blocks(iter_line_runs(io.BytesIO(data), name), max_bytes=block_bytes)
            if not isinstance(item, FileFault)]


def test_a_parse_error_in_a_worker_is_raised_and_nothing_after_it_is_written(tmp_path):
    files = big_files()
    want, _ = one_process(files)
    starts = block_starts(files, 64 << 10)
    failing = starts[len(starts) // 2]
    out = tmp_path / "out.ndjson"
    with at_most(120), pytest.raises(RuntimeError, match=f"parser bug at line {failing}"):
        on_workers(files, 3, 64 << 10, FailsOnBlock(failing), str(out))
    written = out.read_bytes()
    # exactly the lines before the failing block, as one process writes them
    assert written == b"".join(want.splitlines(keepends=True)[: failing - 1])


def test_a_worker_that_dies_breaks_the_run_instead_of_hanging_it(tmp_path):
    files = big_files()
    starts = block_starts(files, 64 << 10)
    with at_most(120), pytest.raises(BrokenProcessPool):
        on_workers(files, 2, 64 << 10, FailsOnBlock(starts[2], die=True), str(tmp_path / "out.ndjson"))


def test_a_reader_that_goes_away_is_a_broken_pipe_and_a_full_device_is_no_space():
    files = big_files()
    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody reads: the first worker's write fails with EPIPE (SIGPIPE is ignored by Python)
    with at_most(120), open(write_end, "wb") as out:
        sink = WorkerSink(ColumnarParser(agent_columns=False), out, write_end, 2, 64 << 10)
        with pytest.raises(OutputFailed) as failed:
            try:
                parse_stream(io.BytesIO(files[0][1]), files[0][0], sink, RECEIVED_AT)
                sink.finish()
            except BaseException:
                sink.abandon()
                raise
    assert isinstance(failed.value.__cause__, BrokenPipeError)
    assert sink.forked
    if os.path.exists("/dev/full"):
        with at_most(120), pytest.raises(OutputFailed) as full:
            on_workers(files, 2, 64 << 10, out_path="/dev/full")
        assert full.value.__cause__.errno == errno.ENOSPC
