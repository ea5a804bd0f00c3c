"""What ``haulage setup`` did to each resource, and how it is reported.

Every setup step returns :class:`Outcome` records instead of printing, so the
command can print one aligned report, count what changed (a second run must
say "nothing to change") and pick the exit status, and tests can assert on
the records rather than on the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Iterable, Sequence


__all__ = ["Status", "Outcome", "SetupRefused", "render", "verdict", "changed"]


class Status(str, Enum):
    """What ``haulage setup`` did with one resource; ``changed`` says whether it touched it."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "exists, unchanged"
    SKIPPED = "skipped"
    REFUSED = "refused"

    @property
    def changed(self) -> bool:
        """Whether setup created or updated the resource."""
        return self in (Status.CREATED, Status.UPDATED)


@dataclass(frozen=True)
class Outcome:
    """One resource: its kind (``table``, ``topic``…), name, status and why."""

    kind: str
    name: str
    status: Status
    detail: str = ""

    def line(self, kind_width: int = 12, name_width: int = 48) -> str:
        """The outcome as one aligned line of setup's report."""
        detail = f": {self.detail}" if self.detail else ""
        return f"  {self.kind:<{kind_width}} {self.name:<{name_width}} {self.status.value}{detail}"


class SetupRefused(RuntimeError):
    """An existing resource differs in a way setup will not change (it would lose data or break readers)."""


def render(outcomes: Sequence[Outcome]) -> str:
    """The report: one line per resource, then a verdict line."""
    if not outcomes:
        return "nothing to set up"
    kind_width = max(len(o.kind) for o in outcomes)
    name_width = min(64, max(len(o.name) for o in outcomes))
    lines = [o.line(kind_width, name_width) for o in outcomes]
    lines.append(verdict(outcomes))
    return "\n".join(lines)


def verdict(outcomes: Iterable[Outcome]) -> str:
    """The last line of ``haulage setup``: refused, nothing to change, or what was created and updated."""
    outcomes = list(outcomes)
    refused = [o for o in outcomes if o.status is Status.REFUSED]
    created = sum(o.status is Status.CREATED for o in outcomes)
    updated = sum(o.status is Status.UPDATED for o in outcomes)
    skipped = sum(o.status is Status.SKIPPED for o in outcomes)
    if refused:
        return (f"refused: {len(refused)} resource(s) differ incompatibly and were left as they are "
                f"(created {created}, updated {updated}); see above")
    if not created and not updated:
        tail = f" ({skipped} skipped, see above)" if skipped else ""
        return f"nothing to change: everything already set up as requested{tail}"
    tail = f", {skipped} skipped" if skipped else ""
    return f"done: created {created}, updated {updated}, unchanged {len(outcomes) - created - updated - skipped}{tail}"


def changed(outcomes: Iterable[Outcome]) -> bool:
    """Whether any resource was created or updated."""
    return any(o.status.changed for o in outcomes)
