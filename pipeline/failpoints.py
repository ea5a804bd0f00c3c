"""Named points in the commit protocols where tests crash or stall the process.

A commit is a sequence of steps, each named (``parquet:marker-written``,
``bigquery:table-loaded``…) and listed in its module's ``STEPS``. The
fault-injection tests set ``HAULAGE_FAILPOINT=<step>=<action>[,<step>=<action>…]``
in the environment of a ``haulage`` process to test what a crash right after
that step leaves behind:

* ``kill`` — ``SIGKILL`` to the process itself (nothing runs after it:
  no ``finally``, no flush, no atexit — like a power cut for the process);
* ``kill@N`` — the same at the N-th time the step is reached (1-based);
* ``sleep:S`` — pause S seconds (to let another process run meanwhile).

Unset (always, outside tests), :func:`reached` costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Optional

__all__ = ["ENV", "reached"]

ENV = "HAULAGE_FAILPOINT"
_counts: dict[str, int] = {}


def _plan() -> dict[str, str]:
    spec = os.environ.get(ENV, "")
    plan = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        step, _, action = item.partition("=")
        plan[step] = action or "kill"
    return plan


def reached(step: str) -> None:
    """Mark that ``step`` has just completed; act if a test asked for it."""
    if ENV not in os.environ:
        return
    action: Optional[str] = _plan().get(step)
    if action is None:
        return
    _counts[step] = _counts.get(step, 0) + 1
    if action.startswith("kill"):
        nth = int(action.split("@", 1)[1]) if "@" in action else 1
        if _counts[step] == nth:
            os.kill(os.getpid(), signal.SIGKILL)
    elif action.startswith("sleep:"):
        time.sleep(float(action.split(":", 1)[1]))
