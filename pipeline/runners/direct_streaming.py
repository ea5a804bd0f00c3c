"""The Dataflow streaming graph, run on this machine by Beam's BundleBasedDirectRunner.

``haulage run --runner BundleBasedDirectRunner --streaming --subscription S``
builds exactly the job it would submit to Dataflow
(:func:`haulage.pipeline.jobs.run.build_pipeline`: ReadPubSub →
ParseLogLines → WriteBigQuery / WriteParquet) and hands it to Beam's Python
direct runner, which executes streaming pipelines and reads Pub/Sub (or its
emulator) through its own ``ReadFromPubSub`` evaluator.

What that runner guarantees, read from Beam 2.77's source
(``apache_beam/runners/direct/transform_evaluator.py``,
``_PubSubReadEvaluator._read_from_pubsub``): each read bundle pulls up to 10
messages and **acknowledges them right after the pull, inside the read
evaluator, before its output bundle is even committed** — let alone parsed
or written. So on this runner a message is delivered to the pipeline *at most
once*: a crash (or ``kill -9``) loses every message pulled and not yet
written; nothing is ever read twice because of the runner (the sink's
deterministic ids would absorb a duplicate from Pub/Sub's own redelivery).
On Dataflow the service acknowledges only after the bundle's output is
durably committed, which with the deterministic event ids gives exactly-once.

What haulage adds to the runner is a **drain**, the local counterpart of
``gcloud dataflow jobs drain``: when ``--run-for`` passes, or on Ctrl-C or
SIGTERM, the Pub/Sub read stops pulling; once every line decoded has been
parsed (open batches close by their time limit, ``--window-seconds``), the
read moves its watermark to the end of time, every window closes (the sink's
last load runs) and the run ends. Stopping this way loses nothing —
everything pulled (hence acknowledged) is written. A second Ctrl-C/SIGTERM
stops at once, losing what was pulled and not written. (Two phases because
this runner does not hold a stateful step's output watermark back for its
pending event-time timers, see :class:`_LocalRun`.)

Small changes to the read evaluator make that work, and nothing else about
it changes (the pull, its 10 messages and the ack right after it are Beam's
own code): when draining, it returns no output, no further work and an
infinite watermark; its pull waits at most :data:`PULL_SECONDS` instead of
30 s, because the runner executes one bundle at a time on one thread — a
30 s pull of an idle subscription would hold up the batching step's timers
and the drain for that long; and against the Pub/Sub emulator the pull goes
through a client without gRPC's 4 MiB message limit
(:mod:`haulage.pipeline.sources.pubsub_clients`).

The runner gives flow control for free: it schedules the read only when no
other work is runnable, so at most one pull of unprocessed messages waits in
memory next to the batches held in state (bounded by lines and bytes).

Two more facts of that runner matter for what it guarantees: a bundle whose
processing raises is retried (up to 4 attempts in all, ``TransformExecutor``),
so a sink bundle that failed half-way can write some rows twice (the same
event ids); and a failure that persists fails the whole run.

One Beam bug is worked around here: the runner gives every bundle a fresh
``MetricsContainer`` but its per-thread ``StateSampler`` caches the scoped
states by step name together with the *first* bundle's container, so user
counters of every later bundle are dropped (a pipeline counting 6 elements
in 3 bundles reports 3). :func:`_fresh_sampler_per_bundle` gives each
bundle a new sampler, so the summary's books are right.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
import weakref
from typing import Any, Callable, Iterator, Optional

from apache_beam import pvalue
from apache_beam.runners.direct import executor as _executor
from apache_beam.runners.direct.direct_runner import BundleBasedDirectRunner, _DirectReadFromPubSub
from apache_beam.runners.direct.transform_evaluator import TransformEvaluatorRegistry, _PubSubReadEvaluator
from apache_beam.runners.direct.util import TransformResult
from apache_beam.runners.direct.watermark_manager import WatermarkManager
from apache_beam.utils.timestamp import Timestamp

from ..sources.pubsub_clients import subscriber_client

__all__ = ["PULL_SECONDS", "HaulageDirectRunner", "drain", "in_flight", "release", "run_until_stopped"]

_LOG = logging.getLogger("haulage")

PULL_SECONDS = 2.0
IDLE_SECONDS = 0.1


class _LocalRun:
    """What haulage keeps per running pipeline: the drain's two phases and, for the emulator, a pull client.

    ``draining``: the read stops pulling but keeps the watermark where it is,
    so what is in flight — a batch held in state, whose processing-time limit
    will close it — is parsed and staged first. ``released``: the read's
    watermark goes to the end of time, every window closes and the sink's
    last load runs. Two phases because this runner does not hold a stateful
    step's output watermark back for its pending event-time timers: released
    at once, a batch flushed by the end-of-window timer would reach the sink
    after the sink's own window had closed, and be dropped as late.
    """

    def __init__(self) -> None:
        self.draining = threading.Event()
        self.released = threading.Event()
        self._lock = threading.Lock()
        self._pull_client: Any = None

    def pull_client(self) -> Optional[Any]:
        if not os.environ.get("PUBSUB_EMULATOR_HOST"):
            return None  # Beam's own client: the service's channel has no size limit
        with self._lock:
            if self._pull_client is None:
                self._pull_client = subscriber_client()
            return self._pull_client

    def close(self) -> None:
        with self._lock:
            if self._pull_client is not None:
                self._pull_client.close()
                self._pull_client = None


# evaluation context of a running pipeline -> its _LocalRun
_RUNS: "weakref.WeakKeyDictionary[Any, _LocalRun]" = weakref.WeakKeyDictionary()


class _PromptPull:
    """The evaluator's subscriber client, with pulls that give up after PULL_SECONDS.

    An empty answer when the deadline passes is what Pub/Sub itself returns
    for an idle subscription; messages pulled by a request the client gave
    up on are not acknowledged and come back after their ack deadline.
    Everything else (the ack) goes to Beam's client.
    """

    def __init__(self, client: Any, pull_client: Optional[Any]) -> None:
        self._client = client
        self._pull_client = pull_client or client

    def pull(self, subscription: str, max_messages: int, timeout: float) -> Any:
        from google.api_core import exceptions as gexc
        from google.cloud import pubsub_v1

        try:
            return self._pull_client.pull(
                subscription=subscription, max_messages=max_messages, timeout=min(timeout, PULL_SECONDS)
            )
        except (gexc.DeadlineExceeded, gexc.RetryError):
            return pubsub_v1.types.PullResponse()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


class _DrainablePubSubReadEvaluator(_PubSubReadEvaluator):
    """Beam's Pub/Sub read evaluator that can be drained (see the module docstring)."""

    def _get_subscriber_client(self, transform):  # Beam calls it on the instance: self._get_subscriber_client(...)
        run = _RUNS.get(self._evaluation_context)
        return _PromptPull(super()._get_subscriber_client(transform), run.pull_client() if run else None)

    def finish_bundle(self) -> TransformResult:
        run = _RUNS.get(self._evaluation_context)
        if run is not None and run.released.is_set():
            # no output, no more work for this read, and a watermark at the end of time
            return TransformResult(self, [], [], None, {None: WatermarkManager.WATERMARK_POS_INF})
        if run is not None and run.draining.is_set():
            # no output, but come back: the watermark stays at the clock until released
            time.sleep(IDLE_SECONDS)  # the runner reschedules an idle read at once: do not spin
            transform = self._applied_ptransform
            again = self._evaluation_context.create_bundle(
                transform.inputs[0] if transform.inputs else pvalue.PBegin(transform.transform.pipeline))
            return TransformResult(self, [], [again], None, {None: Timestamp.of(time.time())})
        return super().finish_bundle()


@contextlib.contextmanager
def _drainable_reads() -> Iterator[None]:
    """Have the next direct-runner evaluator registry use the drainable Pub/Sub read."""
    overrides = TransformEvaluatorRegistry._test_evaluators_overrides
    previous = overrides.get(_DirectReadFromPubSub)
    overrides[_DirectReadFromPubSub] = _DrainablePubSubReadEvaluator
    try:
        yield
    finally:
        if previous is None:
            overrides.pop(_DirectReadFromPubSub, None)
        else:
            overrides[_DirectReadFromPubSub] = previous


def _fresh_sampler_per_bundle() -> None:
    """Run every direct-runner bundle under its own StateSampler (see the module docstring).

    Installed once per process; the sampler only routes metric updates to the
    bundle's container (the direct runner never starts its sampling thread).
    """
    call = _executor.TransformExecutor.call
    if getattr(call, "haulage_fresh_sampler", False):
        return
    from apache_beam.runners.worker import statesampler
    from apache_beam.utils.counters import CounterFactory

    def call_with_fresh_sampler(self, state_sampler):
        fresh = statesampler.StateSampler("", CounterFactory())
        previous = statesampler.get_current_tracker()
        statesampler.set_current_tracker(fresh)
        try:
            return call(self, fresh)
        finally:
            statesampler.set_current_tracker(previous)

    call_with_fresh_sampler.haulage_fresh_sampler = True
    _executor.TransformExecutor.call = call_with_fresh_sampler


class HaulageDirectRunner(BundleBasedDirectRunner):
    """Beam's BundleBasedDirectRunner: drainable Pub/Sub reads (:func:`drain`), metrics counted per bundle."""

    def run_pipeline(self, pipeline, options):
        _fresh_sampler_per_bundle()
        with _drainable_reads():  # the registry copies the overrides when it is made, inside run_pipeline
            result = super().run_pipeline(pipeline, options)
        _RUNS[result._evaluation_context] = _LocalRun()
        return result


def drain(result: Any) -> None:
    """Phase one of a drain: the pipeline started by :class:`HaulageDirectRunner` stops pulling."""
    _RUNS[result._evaluation_context].draining.set()


def release(result: Any) -> None:
    """Phase two: the read's watermark goes to the end of time; the pipeline finishes."""
    _RUNS[result._evaluation_context].released.set()


def in_flight(result: Any) -> int:
    """Lines (and file faults) decoded from messages and not yet parsed: what batches hold."""
    from ..summary import counters_from_result

    counters = counters_from_result(result)
    return counters.get("lines_decoded", 0) - counters.get("lines_read", 0) - counters.get("file_faults", 0)


def run_until_stopped(
    result: Any,
    run_for: Optional[float],
    report: Callable[[], None],
    flush_seconds: float,
    report_every: float = 2.0,
) -> None:
    """Wait ``run_for`` seconds (or for Ctrl-C / SIGTERM), drain, and wait for the end.

    The drain stops pulling, waits until nothing decoded is still unparsed
    (batches close by their time limit, ``flush_seconds`` at most), then
    releases the watermark. ``report`` is called about every
    ``report_every`` seconds. A second Ctrl-C or SIGTERM during the drain
    cancels the run.
    """
    deadline = time.monotonic() + run_for if run_for else float("inf")
    finished = threading.Event()
    failure: list[BaseException] = []
    waiter = threading.Thread(target=_wait, args=(result, finished, failure), name="haulage-wait", daemon=True)
    waiter.start()
    with _signals_raise_interrupt():
        try:
            while not finished.is_set() and time.monotonic() < deadline:
                finished.wait(min(report_every, max(0.0, deadline - time.monotonic())))
                report()
            if not finished.is_set():
                _LOG.info("--run-for passed: draining (no more pulls; writing everything pulled)")
        except KeyboardInterrupt:
            _LOG.warning("stopping: draining (no more pulls; writing everything pulled); interrupt again to abort")
        drain(result)
        try:
            flush_by = time.monotonic() + flush_seconds + 30
            while not finished.is_set() and in_flight(result) > 0:
                if time.monotonic() > flush_by:
                    _LOG.warning("batches still held after %gs: closing the windows anyway", flush_seconds + 30)
                    break
                finished.wait(0.2)
                report()
            release(result)
            while not finished.wait(report_every):
                report()
        except KeyboardInterrupt:
            _LOG.warning("aborted: messages pulled and not yet written are lost (this runner acknowledged them)")
            result.cancel()
            raise
    waiter.join()
    _close_pubsub_clients(result)
    report()
    if failure:
        raise failure[0]


def _close_pubsub_clients(result: Any) -> None:
    """Close the run's subscriber clients now, deleting the subscription Beam made for a topic.

    Beam does this when the pipeline's transforms are garbage-collected,
    which may be much later (or never, if they sit in a reference cycle).
    """
    steps = result._evaluation_context._root_transforms
    with _PubSubReadEvaluator._subscriber_client_cache_lock:
        clients = [client for transform, client in list(_PubSubReadEvaluator._subscriber_client_cache.items())
                   if transform in steps]
    for client in clients:
        client.close()  # idempotent; logs a warning if the deletion fails
    run = _RUNS.get(result._evaluation_context)
    if run is not None:
        run.close()


def _wait(result: Any, finished: threading.Event, failure: list[BaseException]) -> None:
    try:
        result.wait_until_finish()
    except BaseException as exc:  # raised again in the caller's thread
        failure.append(exc)
    finally:
        finished.set()


@contextlib.contextmanager
def _signals_raise_interrupt() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C (drain, then abort), when running in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
