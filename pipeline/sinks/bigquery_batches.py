"""BigQuery loads on a remote runner (Dataflow): bundles staged in the runner, loaded in batches.

On Dataflow a bundle may be a single notified file, and writing every bundle
to Cloud Storage as staging files would cost several storage operations per
log file. Instead each bundle becomes one :class:`StagedBundle` — its units
and, per table, its rows as zstd-compressed Parquet (≈ 38 bytes a row) —
which Dataflow keeps, exactly once, until the load step takes the bundles of
one ``--load-interval`` together (a ``GroupByKey``). The load step
(:class:`BatchLoader`), in order:

1. drops units that two bundles of the batch both carry (a notification
   delivered twice) and units the ledger already lists;
2. writes one Parquet file per table under ``<staging>/batches/<batch>/``,
   ``batch`` a hash of the run and of the bundles (Dataflow retries a failed
   step with the same bundles, so with the same names and job ids);
3. runs one load job per table (:meth:`BigQueryCommitter.load_files`: job
   ids from ``batch``, looked up before inserting, transient errors retried,
   refused rows to ``unprocessed``), then the ledger's load job, then
   deletes the batch's files.

Rows stay in Dataflow until their load is done; a retry of the load step
finds its jobs done. The price is Streaming Engine data processed for the
staged bytes, ≈ 38 bytes a row (deploy/README.md, *Sizing and cost*).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ...parsers.schemas import PARTITION_COLUMN, UNPROCESSED, arrow_schema
from ..elements import SourceUnit, TableDay
from .bigquery_commit import LOAD_ORDER, BigQueryCommitter, LoadOutcome
from .bigquery_jobs import job_id
from .parquet_commit import _delete, _write_durable, commit_id_for, without_units
from .parquet_ledger import _join

__all__ = ["BatchLoader", "StagedBundle", "stage_bundle"]


@dataclass
class StagedBundle:
    """A bundle's rows, ready to load: per table one Parquet payload (all days)."""

    units: list[SourceUnit]
    tables: dict[str, bytes] = field(default_factory=dict)

    @property
    def group_id(self) -> str:
        """The bundle's id, derived from its units: the same units make the same id on a retry."""
        return commit_id_for([u.unit_id for u in self.units], salt="bundle")

    def table(self, name: str) -> Optional[pa.Table]:
        """The bundle's rows of ``name`` as an Arrow table (None if it has none)."""
        data = self.tables.get(name)
        return pq.read_table(pa.BufferReader(data)) if data else None


def stage_bundle(parts: dict[str, list[pa.Table]], units: Sequence[SourceUnit]) -> StagedBundle:
    """Tables of one bundle (as the parser makes them) → a :class:`StagedBundle`."""
    bundle = StagedBundle(sorted(units, key=lambda u: u.unit_id))
    for name, tables in parts.items():
        if not tables:
            continue
        data = pa.concat_tables([t.cast(arrow_schema(name)) for t in tables])
        if data.num_rows:
            bundle.tables[name] = _parquet(data)
    return bundle


def _parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def _rows_by_day(name: str, table: pa.Table) -> dict[TableDay, int]:
    days = pc.strftime(table.column(PARTITION_COLUMN[name]), format="%Y-%m-%d")
    counts = pc.value_counts(days)
    return {(name, str(item["values"])): int(item["counts"]) for item in counts.to_pylist()}


class BatchLoader:
    """Loads the bundles of one pane as one batch (see the module docstring)."""

    def __init__(self, committer: BigQueryCommitter) -> None:
        self.committer = committer

    def load(self, bundles: Iterable[StagedBundle]) -> LoadOutcome:
        """Load staged bundles into the tables, each bundle once however often Beam delivered it."""
        committer = self.committer
        unique: dict[str, StagedBundle] = {}
        for bundle in bundles:
            unique.setdefault(bundle.group_id, bundle)  # a bundle output twice is the same bundle
        ordered = [unique[g] for g in sorted(unique)]
        outcome = LoadOutcome()
        if not ordered:
            return outcome
        seen: dict[str, SourceUnit] = {}
        drops: list[list[SourceUnit]] = []
        for bundle in ordered:
            again = [u for u in bundle.units if u.unit_id in seen]
            drops.append(again)
            outcome.skipped_units.extend(again)
            seen.update((u.unit_id, u) for u in bundle.units if u.unit_id not in seen)
        listed = set(committer.ledger.committed(u for u, unit in seen.items() if committer._listed(unit)))
        already = [seen[u] for u in sorted(listed)]
        outcome.skipped_units.extend(already)
        fresh = [seen[u] for u in sorted(set(seen) - listed)]
        batch = commit_id_for(sorted(unique), salt=f"batch:{committer.run_id}")
        root = committer.staging.path("batches", batch)
        files: dict[str, list[str]] = {}
        rows: dict[TableDay, int] = {}
        for name in LOAD_ORDER:
            parts = []
            for bundle, again in zip(ordered, drops):
                table = bundle.table(name)
                if table is None:
                    continue
                table = without_units(name, table, again + already)
                if table.num_rows:
                    parts.append(table)
            if not parts:
                continue
            data = pa.concat_tables(parts)
            path = _join(root, f"{name}.parquet")
            _write_durable(path, _parquet(data))  # the same bundles give the same file: a retry overwrites it
            files[name] = [path]
            for key, n in _rows_by_day(name, data).items():
                rows[key] = rows.get(key, 0) + n
        if fresh:
            outcome.merge(committer.load_files(batch, files, rows))
            listed_now = [u for u in fresh if committer._listed(u)]
            if listed_now:
                committer.ledger.append(job_id("haulage", committer.dataset.dataset, "ledger", batch), listed_now,
                                        batch, committer.run_id)
        for paths in files.values():
            for path in paths:
                _delete(path)
        return outcome
