"""The end-of-run report: rows per table and day, dead letters per reason, and
the books — every line read is a row or a dead letter."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Optional

from apache_beam.metrics.metric import MetricsFilter

from ..parsers.schemas import TABLE_NAMES, UNPROCESSED
from .metrics import CPU_PREFIX, STAGES


__all__ = ["RunSummary", "counters_from_result", "summary_from_result"]


@dataclass
class RunSummary:
    """What a run did, from its counters: lines read, rows per table and day, dead letters by reason.

    ``balanced`` holds when lines read + file faults = rows + dead letters, the
    project's rule that nothing is lost.
    """

    counters: dict[str, int]
    seconds: float
    files: Optional[int] = None
    rows: dict[str, dict[str, int]] = field(default_factory=dict)
    cpu_seconds: Optional[float] = None
    """CPU time of the whole run (this process and its workers), when it ran here: what the stages' shares are of."""

    def __post_init__(self) -> None:
        rows: dict[str, dict[str, int]] = defaultdict(dict)
        for name, value in self.counters.items():
            if name.startswith("rows."):
                _, table, day = name.split(".", 2)
                rows[table][day] = value
        self.rows = {t: dict(sorted(rows[t].items())) for t in TABLE_NAMES if t in rows}

    def get(self, name: str) -> int:
        """A counter's value (0 if the run never counted it)."""
        return self.counters.get(name, 0)

    @property
    def lines_read(self) -> int:
        """Lines read from every source."""
        return self.get("lines_read")

    @property
    def file_faults(self) -> int:
        """File-level faults (damaged gzip, empty or unreadable file): one dead letter each."""
        return self.get("file_faults")

    def table_total(self, table: str) -> int:
        """Rows written to ``table``, all days."""
        return sum(self.rows.get(table, {}).values())

    @property
    def rows_written(self) -> int:
        """Rows written to the data tables (dead letters not counted)."""
        return sum(self.table_total(t) for t in TABLE_NAMES if t != UNPROCESSED)

    @property
    def dead_letters(self) -> int:
        """Rows written to ``unprocessed``."""
        return self.table_total(UNPROCESSED)

    @property
    def skipped(self) -> int:
        """Rows left out on purpose (replay outside --from/--to)."""
        return sum(v for n, v in self.counters.items() if n.startswith("skipped."))

    @property
    def already_ingested(self) -> dict[str, int]:
        """Units not written because the output already held them, by kind (file, message)."""
        return {n.split(".", 1)[1]: v for n, v in sorted(self.counters.items()) if n.startswith("units_skipped.") and v}

    @property
    def already_ingested_lines(self) -> int:
        """Lines that were read but dropped at commit because their unit was already ingested."""
        return self.get("already_ingested_lines")

    @property
    def balanced(self) -> bool:
        """Nothing lost: lines read + file faults = rows + dead letters + lines skipped as already ingested."""
        return self.lines_read + self.file_faults == (
            self.rows_written + self.dead_letters + self.skipped + self.already_ingested_lines
        )

    @property
    def stage_cpu(self) -> dict[str, float]:
        """CPU seconds spent in each stage's own code (``cpu_us.<stage>``), in pipeline order."""
        return {stage: self.get(CPU_PREFIX + stage) / 1e6 for stage in STAGES if CPU_PREFIX + stage in self.counters}

    def _cpu_line(self) -> Optional[str]:
        stages = self.stage_cpu
        if not stages:
            return None
        total = self.cpu_seconds if self.cpu_seconds is not None else sum(stages.values())
        parts = [f"{stage} {seconds:.1f} s ({100 * seconds / total:.0f} %)" for stage, seconds in stages.items()] if total else []
        if self.cpu_seconds is not None:
            rest = max(0.0, self.cpu_seconds - sum(stages.values()))
            parts.append(f"the rest (start-up, Beam) {rest:.1f} s ({100 * rest / total:.0f} %)" if total else "")
            return f"CPU {self.cpu_seconds:.1f} s: " + ", ".join(parts)
        return "CPU by stage: " + ", ".join(parts)

    @property
    def dead_letter_reasons(self) -> dict[str, int]:
        """Dead letters by reason, sorted by reason."""
        return {n.split(".", 1)[1]: v for n, v in sorted(self.counters.items()) if n.startswith("dead_letters.")}

    def render(self) -> str:
        """The summary as ``haulage run`` prints it: rates, rows per table and day, dead letters, balance."""
        lines = []
        rate = self.lines_read / self.seconds if self.seconds > 0 else 0.0
        source = f" from {self.files:,} files" if self.files is not None else ""
        lines.append(f"{self.lines_read:,} lines read{source} in {self.seconds:.1f}s ({rate:,.0f} lines/s)")
        lines.append("")
        lines.append(f"{'table':<17} {'day':<10} {'rows':>12}")
        for table, days in self.rows.items():
            for day, count in days.items():
                lines.append(f"{table:<17} {day:<10} {count:>12,}")
            lines.append(f"{table:<17} {'total':<10} {sum(days.values()):>12,}")
        reasons = self.dead_letter_reasons
        if reasons:
            lines.append("")
            lines.append("dead letters by reason:")
            for reason, count in reasons.items():
                lines.append(f"  {reason:<22} {count:>8,}")
        hits, misses = self.get("agent_cache_hits"), self.get("agent_cache_misses")
        if hits + misses:
            lines.append(f"agent cache: {hits:,} hits, {misses:,} misses ({100.0 * hits / (hits + misses):.1f}% hit rate)")
        for kind, count in self.already_ingested.items():
            lines.append(f"{count:,} {kind}{'' if count == 1 else 's'} already ingested, skipped")
        cpu = self._cpu_line()
        if cpu:
            lines.append(cpu)
        lines.append("")
        check = "balanced" if self.balanced else "NOT BALANCED — please report this"
        skipped = f" + outside --from/--to {self.skipped:,}" if self.skipped else ""
        if self.already_ingested_lines:
            skipped += f" + already ingested {self.already_ingested_lines:,}"
        lines.append(
            f"lines read {self.lines_read:,} + file faults {self.file_faults:,} = rows {self.rows_written:,}"
            f" + dead letters {self.dead_letters:,}{skipped}: {check}"
        )
        return "\n".join(lines)


def counters_from_result(result: Any) -> dict[str, int]:
    """The ``haulage`` counters of a finished Beam run, summed over steps (committed values when the runner has them)."""
    query = result.metrics().query(MetricsFilter().with_namespace("haulage"))
    totals: dict[str, int] = defaultdict(int)
    for counter in query["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        totals[counter.key.metric.name] += int(value or 0)
    return dict(totals)


def summary_from_result(result: Any, seconds: float, files: Optional[int]) -> RunSummary:
    """The summary of a finished Beam run from its counters."""
    return RunSummary(counters_from_result(result), seconds, files)
