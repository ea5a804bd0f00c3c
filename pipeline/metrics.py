"""Beam counters under the ``haulage`` namespace, created on first use.

Names are open-ended (``rows.<table>.<day>``, ``dead_letters.<reason>``), so
counters cannot all be declared up front; this keeps one object per name per
DoFn instance instead of a registry lookup per increment.
"""

from __future__ import annotations

from typing import Any

from apache_beam.metrics import Metrics

__all__ = ["NAMESPACE", "Counters"]


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
