"""Beam counters under the ``haulage`` namespace, created on first use.

Names are open-ended (``rows.<table>.<day>``, ``dead_letters.<reason>``), so
counters cannot all be declared up front; this keeps one object per name per
DoFn instance instead of a registry lookup per increment.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Iterator

from apache_beam.metrics import Metrics

__all__ = ["NAMESPACE", "Counters", "StageCpu", "STAGES", "CPU_PREFIX"]


NAMESPACE = "haulage"


class Counters:
    """Beam counters in the ``haulage`` namespace, created on first use by name.

    The run summary sums these counters; one namespace keeps them apart from Beam's own.
    """

    def __init__(self) -> None:
        self._by_name: dict[str, Any] = {}

    def inc(self, name: str, n: int = 1) -> None:
        """Add ``n`` to the counter ``name``."""
        counter = self._by_name.get(name)
        if counter is None:
            counter = self._by_name[name] = Metrics.counter(NAMESPACE, name)
        counter.inc(n)


CPU_PREFIX = "cpu_us."
STAGES = ("read", "parse", "write")
"""The stages whose CPU time a run counts (``cpu_us.<stage>``): reading and framing files, parsing, the sink."""


class StageCpu:
    """Counts the process CPU time spent in one stage's own code, in microseconds, as ``cpu_us.<stage>``.

    Why: Beam fuses the stages of a local run into one loop, so the time of
    the whole run does not say which stage to make faster. Each stage adds
    up only the time its own code runs: a stage that yields hands control to
    the next stage at each yield, so it stops its clock before yielding and
    starts it again after (:meth:`add_since`), and what runs downstream is
    counted by the stage it belongs to; code that does not yield is timed as
    a whole (:meth:`timing`). The run summary prints the shares.
    """

    def __init__(self, counters: Counters, stage: str) -> None:
        self._counters = counters
        self._name = CPU_PREFIX + stage

    @staticmethod
    def now() -> float:
        """The process's CPU time, to pass to :meth:`add_since` later."""
        return time.process_time()

    def add_since(self, started: float) -> None:
        """Count the CPU time since ``started`` (a value of :meth:`now`)."""
        self._counters.inc(self._name, int((time.process_time() - started) * 1_000_000))

    @contextlib.contextmanager
    def timing(self) -> Iterator[None]:
        """Count the CPU time of the ``with`` body (which must not yield to the next stage)."""
        started = time.process_time()
        try:
            yield
        finally:
            self.add_since(started)
