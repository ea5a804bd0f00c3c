"""Memory bounded by bytes: a 2-million-line Pub/Sub backlog, read by a haulage process of bounded size.

2,000 gzip messages of 1,000 log lines each (≈ 1 GB of log text) wait in
the emulator before haulage starts; both local graphs read the whole backlog
into Parquet with the default caps (``--chunk-lines`` 20,000,
``--chunk-mib`` 4). The haulage subprocess's peak resident set — the
kernel's high-water mark ``VmHWM`` in ``/proc/PID/status``, read once the
whole backlog is written — must stay under :data:`PEAK_RSS_BOUND`, and every
line must be in the output exactly once (rows + dead letters = 2 million,
event ids unique). (Not ``ru_maxrss`` from ``wait4``: Linux folds the
high-water mark of the memory the child had before ``exec`` — the forking
test process's — into it.) Without the caps a window or batch would hold the
whole backlog: gigabytes of raw lines and parsed rows.

Both local graphs are measured; by default only the windowed pull (the
default local runner) runs, ``make memory-stress`` runs both. The bound and
what was measured are in the README.
"""

from __future__ import annotations

import gzip
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from support import emulators
from support import pipeline_check as pc
from support import streaming as st

pytestmark = [pytest.mark.emulator, pytest.mark.slow]

HAULAGE = str(Path(sys.executable).parent / "haulage")
MESSAGES = 2000
LINES_PER_MESSAGE = 1000
TOTAL = MESSAGES * LINES_PER_MESSAGE
PEAK_RSS_BOUND = 450 << 20  # bytes; measured 282-306 MiB (1,000 lines: ≈ 209 MiB), see the README

_WINDOW = re.compile(r"window: (\d+) messages committed and acknowledged")
_PROGRESS = re.compile(r"([\d,]+) messages read; ([\d,]+) lines parsed; written: ([\d,]+) rows, ([\d,]+) dead letters")


def _number(text: str) -> int:
    return int(text.replace(",", ""))


def _publish_backlog(pubsub_emulator) -> str:
    """2,000 gzip messages of 1,000 lines (10 distinct bodies, each sent 200 times); returns the subscription."""
    lines = pc.lines_of(pc.labelled(10 * LINES_PER_MESSAGE, seed=101, bad_fraction=0.01))
    bodies = [gzip.compress(pc.joined(lines[i:i + LINES_PER_MESSAGE]), compresslevel=1)
              for i in range(0, len(lines), LINES_PER_MESSAGE)]
    with emulators.pubsub_channel(pubsub_emulator, "backlog", ack_deadline_seconds=60) as channel:
        futures = [channel.publisher.publish(channel.topic, bodies[i % len(bodies)]) for i in range(MESSAGES)]
        for future in futures:
            future.result(timeout=120)
    return channel.subscription


def _peak_rss(pid: int) -> int:
    """The process's own peak resident set so far, in bytes."""
    with open(f"/proc/{pid}/status") as status:
        (line,) = [line for line in status if line.startswith("VmHWM:")]
    return int(line.split()[1]) * 1024  # kB


def _done(graph: str, line: str, acknowledged: list[int]) -> bool:
    if graph == st.WINDOWED_PULL:
        m = _WINDOW.search(line)
        if m:
            acknowledged[0] += int(m.group(1))
        return acknowledged[0] >= MESSAGES  # written before acknowledged
    m = _PROGRESS.search(line)
    return bool(m) and _number(m.group(3)) + _number(m.group(4)) >= TOTAL


@pytest.mark.parametrize("graph", [
    st.WINDOWED_PULL,
    # the same on the Dataflow graph takes as long again: 'make memory-stress' runs it
    pytest.param(st.DATAFLOW_GRAPH, marks=pytest.mark.skipif(
        not os.environ.get("HAULAGE_STRESS"), reason="set HAULAGE_STRESS=1 or run 'make memory-stress'")),
])
def test_two_million_line_backlog_in_bounded_memory(graph, pubsub_emulator, tmp_path):
    subscription = _publish_backlog(pubsub_emulator)
    out_dir = tmp_path / "out"
    started = time.monotonic()
    proc = subprocess.Popen(
        [HAULAGE, "run", *st.GRAPHS[graph], "--subscription", subscription, "--output-dir", str(out_dir),
         "--run-for", "900", "--window-seconds", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **pubsub_emulator.env()},
        start_new_session=True)
    finished = threading.Event()
    log: list[str] = []
    acknowledged = [0]

    def watch() -> None:
        for line in proc.stderr:
            log.append(line)
            if not finished.is_set() and _done(graph, line, acknowledged):
                finished.set()

    threading.Thread(target=watch, daemon=True).start()
    try:
        if not finished.wait(600):
            pytest.fail("the backlog was not read within 600 s:\n" + "".join(log[-20:]))
        seconds = time.monotonic() - started
        peak = _peak_rss(proc.pid)
        # windowed pull: everything is written and acknowledged, stop it any way;
        # Dataflow graph: SIGTERM drains (its summary is checked below)
        os.kill(proc.pid, signal.SIGTERM if graph == st.DATAFLOW_GRAPH else signal.SIGKILL)
        stdout, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print(f"\n{graph}: {TOTAL:,} lines in {seconds:.1f}s, peak RSS {peak / 2**20:.0f} MiB")
    assert peak < PEAK_RSS_BOUND, f"peak RSS {peak / 2**20:.0f} MiB over the bound {PEAK_RSS_BOUND / 2**20:.0f} MiB"

    import pyarrow.dataset as ds

    tables = {t: ds.dataset(out_dir / t, format="parquet") for t in pc.TABLES}
    counts = {t: d.count_rows() for t, d in tables.items()}
    assert sum(counts.values()) == TOTAL, counts
    ids = [i for t in pc.ROW_TABLES for i in tables[t].to_table(columns=["event_id"]).column("event_id").to_pylist()]
    assert len(ids) == len(set(ids)) == counts["file_downloads"] + counts["simple_requests"]
    if graph == st.DATAFLOW_GRAPH:
        assert proc.returncode == 0
        summary = pc.parse_summary(stdout)
        assert summary.lines_read == TOTAL and summary.balanced
