"""The Dataflow streaming graph run on this machine (``--runner BundleBasedDirectRunner``).

* the graph that runs here is the job submitted to Dataflow, transform by
  transform: the same names and the same edges, except inside two of Beam's
  own primitives, which each runner expands its own way: ``ReadFromPubSub``
  (Dataflow: a Read, a decode and a metrics step; the direct runner: one
  native read) and the sink's ``GroupByKey`` (Dataflow: one step; the
  direct runner: reify, group, group by window);
* what Beam's direct runner guarantees (pipeline/runners/direct_streaming.py): it
  acknowledges a message when it pulls it. Stopping the process with SIGTERM
  drains — every message it read is written, nothing is left or lost; a
  ``kill -9`` loses exactly the messages it had read and not yet written:
  they are neither in the output nor redeliverable. Both are shown on a
  haulage subprocess whose batches are held for 30 s, so that at the moment
  of the signal everything read is still unwritten;
* batches are bounded by lines and bytes: 1,000-line messages, with a byte
  cap of two and a half messages, reach the parser two messages at a time
  at most, on both local graphs.
"""

from __future__ import annotations

import collections
import os
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

pytestmark = pytest.mark.emulator

HAULAGE = str(Path(sys.executable).parent / "haulage")


@pytest.fixture
def pubsub(pubsub_emulator):
    with emulators.pubsub_channel(pubsub_emulator) as channel:
        yield channel.publisher, channel.subscriber, channel.topic, channel.subscription


# --------------------------------------------------------------------------
# the same graph


def _direct_graph(pipeline) -> tuple[dict[str, list[str]], dict[str, object]]:
    """Every transform of a pipeline after it ran: full name -> names of the transforms feeding it; and the nodes."""
    from apache_beam.pipeline import PipelineVisitor

    graph: dict[str, list[str]] = {}
    nodes: dict[str, object] = {}

    class Visitor(PipelineVisitor):
        def _add(self, node):
            if node.full_label and not node.full_label.startswith("ref_"):  # ref_…: the runner API's unnamed root
                graph[node.full_label] = sorted(p.producer.full_label for p in node.inputs if p.producer is not None)
                nodes[node.full_label] = node

        def enter_composite_transform(self, node):
            self._add(node)

        def visit_transform(self, node):
            self._add(node)

    pipeline.visit(Visitor())
    return graph, nodes


def _dataflow_graph(result) -> dict[str, list[str]]:
    components = result.job.proto_pipeline.components
    producer = {}
    for t in components.transforms.values():
        for pcoll in t.outputs.values():
            if not t.subtransforms:  # the leaf that makes it
                producer[pcoll] = t.unique_name
    graph = {}
    for t in components.transforms.values():
        if t.unique_name.startswith("ref_"):
            continue
        inputs = sorted(producer[p] for p in t.inputs.values() if p in producer)
        graph[t.unique_name] = inputs
    return graph


READ = "ReadPubSub/ReadFromPubSub"


def _leaves(graph: dict[str, list[str]]) -> set[str]:
    return {name for name in graph if not any(other.startswith(name + "/") for other in graph)}


def _as_seen_by(graph: dict[str, list[str]], other: dict[str, list[str]]) -> tuple[dict[str, list[str]], set[str]]:
    """``graph`` with every step the other runner runs as one primitive collapsed into it.

    Beam's primitives are expanded by each runner its own way: Dataflow
    expands ReadFromPubSub (Read, decode, metrics) where the direct runner has
    one native read, and the direct runner expands GroupByKey (reify, group,
    group by window) where Dataflow has one. Returns the collapsed graph and
    the names that were collapsed.
    """
    primitives = _leaves(other)

    def node(name: str) -> str:
        parts = name.split("/")
        for i in range(1, len(parts)):
            ancestor = "/".join(parts[:i])
            if ancestor in primitives:
                return ancestor
        return name

    collapsed = {node(n) for n in graph if node(n) != n}
    view = {name: sorted({node(i) for i in inputs} - {name}) for name, inputs in graph.items() if node(name) == name}
    return view, {c for c in collapsed}


@pytest.mark.parametrize("message_format", ["lines", "gcs-notification"])
def test_the_graph_that_runs_here_is_the_dataflow_job(pubsub, pubsub_emulator, monkeypatch, message_format):
    from apache_beam.runners.direct.direct_runner import _DirectReadFromPubSub, _GroupByKey

    from haulage.pipeline.runners.direct_streaming import HaulageDirectRunner
    from test_deploy_dataflow_graph import PROJECT, streaming_job

    _, _, _, subscription = pubsub
    ran = []  # the pipeline the runner was given (Beam hands it a copy made through the runner API)
    real_run = HaulageDirectRunner.run_pipeline
    monkeypatch.setattr(HaulageDirectRunner, "run_pipeline", lambda self, p, o: ran.append(p) or real_run(self, p, o))
    fmt = ["--message-format", "gcs-notification", "--notification-allow", "gs://cdn-logs/logs/"] \
        if message_format == "gcs-notification" else []
    with emulators.patched_env(pubsub_emulator.env()):
        result = st.run(st.DATAFLOW_GRAPH, "--subscription", subscription, "--bigquery-dataset", f"{PROJECT}:pypi",
                        "--run-for", "1", "--window-seconds", "30", "--chunk-lines", "50000", *fmt)
    assert result.code == 0, result.stdout + result.stderr
    here, nodes = _direct_graph(ran[0])
    # the read that ran here is Beam's direct-runner read of that subscription, with attributes
    read = nodes[READ].transform
    assert isinstance(read, _DirectReadFromPubSub)
    assert read._source.full_subscription == subscription and read._source.with_attributes

    job = streaming_job(message_format)  # what the template launcher submits to Dataflow (dry run)
    on_dataflow = _dataflow_graph(job)
    assert any(name.startswith(READ + "/") for name in on_dataflow)  # Dataflow expands Beam's read
    assert not any(name.startswith(READ + "/") for name in here)  # the direct runner reads natively
    here_view, expanded_here = _as_seen_by(here, on_dataflow)
    dataflow_view, expanded_on_dataflow = _as_seen_by(on_dataflow, here)
    assert here_view == dataflow_view  # the same steps, fed by the same steps
    # and the only differences are Beam's own primitives: its Pub/Sub read, its GroupByKey
    assert expanded_on_dataflow == {READ}
    assert expanded_here == {"WriteBigQuery/CollectStaged"}
    assert isinstance(nodes["WriteBigQuery/CollectStaged"].transform, _GroupByKey)  # the direct runner's own GBK
    assert {"ReadPubSub/DecodeMessages", "ParseLogLines/ParseChunks", "WriteBigQuery/LoadBatches"} <= set(here)
    assert ("ReadPubSub/BatchMessages/Batch" in here) == (message_format == "lines")


# --------------------------------------------------------------------------
# what the direct runner guarantees: SIGTERM drains, kill -9 loses what was read


def _start(subscription: str, out_dir: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [HAULAGE, "run", *st.GRAPHS[st.DATAFLOW_GRAPH], "--subscription", subscription, "--output-dir", str(out_dir),
         "--run-for", "120", "--window-seconds", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True)


def _wait_for_line(proc: subprocess.Popen, needle: str, timeout: float) -> list[str]:
    """stderr lines up to the first that contains ``needle``; stderr keeps being drained afterwards."""
    seen: list[str] = []
    found = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            seen.append(line)
            if needle in line:
                found.set()

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(timeout):
        proc.kill()
        pytest.fail(f"haulage did not print {needle!r} within {timeout:g}s:\n{''.join(seen)}")
    return seen


@pytest.mark.parametrize("stop", ["SIGTERM", "SIGKILL"])
def test_what_the_direct_runner_guarantees_when_stopped(stop, pubsub, pubsub_emulator, tmp_path):
    publisher, subscriber, topic, subscription = pubsub
    items = pc.labelled(600, seed=81)
    sources = []
    for start in range(0, 600, 30):  # 20 messages of 30 lines
        part = items[start:start + 30]
        message_id = st.publish(publisher, topic, pc.joined(pc.lines_of(part)))
        sources.append(pc.Source(f"{subscription}#{message_id}", part))
    out_dir = tmp_path / "out"
    proc = _start(subscription, out_dir, {**os.environ, **pubsub_emulator.env()})
    try:
        _wait_for_line(proc, "20 messages read; 0 lines parsed; written: 0 rows, 0 dead letters", timeout=60)
        os.kill(proc.pid, getattr(signal, stop))
        stdout, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if stop == "SIGTERM":  # a drain: everything read is written
        out = pc.read_parquet_output(out_dir)
        assert proc.returncode == 0
        summary = pc.parse_summary(stdout)
        acc = pc.check_output(out, sources)
        pc.check_summary(summary, out, acc)
        assert st.event_ids(out) == st.expected_event_ids(subscription, sources)
    else:  # read, hence acknowledged, and not written: lost
        from haulage.pipeline.sinks.parquet_commit import ParquetDataset

        assert proc.returncode == -signal.SIGKILL
        dataset = ParquetDataset(str(out_dir))  # (its staging, if any, is recovered by the next run into it)
        assert dataset.committed_units() == {}
        assert all(dataset.committed_files(t) == [] for t in pc.TABLES)
    # either way nothing is left to redeliver: all 20 were acknowledged when pulled
    assert st.pull_now(subscriber, subscription) == []

    # a new run reads what is published next, and only that
    later = items[:30]
    message_id = st.publish(publisher, topic, pc.joined(pc.lines_of(later)))
    again = tmp_path / "again"
    with emulators.patched_env(pubsub_emulator.env()):
        result = st.run(st.DATAFLOW_GRAPH, "--subscription", subscription, "--output-dir", str(again),
                        "--run-for", "2", "--window-seconds", "1")
    assert result.code == 0, result.stdout + result.stderr
    after = pc.read_parquet_output(again)
    pc.check_output(after, [pc.Source(f"{subscription}#{message_id}", later)])


# --------------------------------------------------------------------------
# batches bounded by lines and bytes


def test_batches_of_1000_line_messages_are_bounded_by_bytes(pubsub, pubsub_emulator, tmp_path, monkeypatch):
    from haulage.pipeline import parse_transform

    publisher, _, topic, subscription = pubsub
    block = pc.labelled(1000, seed=91)
    body = pc.joined(pc.lines_of(block))
    message_bytes = len(body) - len(block)  # the lines without their newlines
    cap = int(message_bytes * 2.5)
    seen: dict[str, list[tuple[int, int]]] = collections.defaultdict(list)
    graph_now = [""]
    real_process = parse_transform.ParseChunkFn.process

    def process(self, chunk):
        seen[graph_now[0]].append((sum(len(b.lines) for b in chunk), sum(len(line) for b in chunk for line in b.lines)))
        return real_process(self, chunk)

    monkeypatch.setattr(parse_transform.ParseChunkFn, "process", process)
    with emulators.patched_env(pubsub_emulator.env()):
        for graph in sorted(st.GRAPHS):
            graph_now[0] = graph
            sources = [pc.Source(f"{subscription}#{st.publish(publisher, topic, body)}", block) for _ in range(12)]
            result = st.run(graph, "--subscription", subscription, "--output-dir", str(tmp_path / graph),
                            "--run-for", "4", "--window-seconds", "2", "--chunk-lines", "100000",
                            "--chunk-mib", str(cap / (1 << 20)))
            assert result.code == 0, result.stdout + result.stderr
            out = pc.read_parquet_output(tmp_path / graph)
            pc.check_output(out, sources)
            batches = seen[graph]
            assert sum(lines for lines, _ in batches) == 12_000
            assert all(nbytes <= cap for _, nbytes in batches), (graph, batches, cap)
            assert max(lines for lines, _ in batches) == 2000, (graph, batches)  # messages were batched, 2 at most
