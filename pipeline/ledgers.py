"""Which units an output already holds, asked from wherever a source runs.

A :class:`LedgerRef` names an output's ledger (a Parquet dataset's
``_ledger/`` folder, or a BigQuery dataset's ``_haulage_ledger`` table) in a
form that pickles into a DoFn; :meth:`LedgerRef.open` gives the object that
answers :meth:`OpenLedger.committed`. Sources use it to skip units already
ingested before reading them; the sinks' commits check again, under their
lock, so a unit is never committed twice whatever a source decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Optional

from .datasets import DatasetRef

__all__ = ["LedgerRef", "OpenLedger"]


class OpenLedger:
    """Answers which of some unit ids an output's ledger lists."""

    def __init__(self, ref: "LedgerRef") -> None:
        self._ref = ref
        self._dataset: Any = None
        self._bigquery: Any = None

    def committed(self, unit_ids: Iterable[str]) -> set[str]:
        """Which of ``unit_ids`` the output already holds (so they are not read again)."""
        wanted = set(unit_ids)
        if not wanted:
            return set()
        if self._ref.output_dir is not None:
            if self._dataset is None:
                from .sinks.parquet_commit import ParquetDataset

                self._dataset = ParquetDataset(self._ref.output_dir)
            committed = self._dataset.committed_unit_ids()  # kept up to date, not rebuilt per call
            return {unit for unit in wanted if unit in committed}
        if self._bigquery is None:
            from .sinks.bigquery_ledger import BigQueryLedger
            from .datasets import bigquery_client

            assert self._ref.dataset is not None
            self._bigquery = BigQueryLedger(bigquery_client(self._ref.dataset.project), self._ref.dataset)
        return set(self._bigquery.committed(wanted))


@dataclass(frozen=True)
class LedgerRef:
    """An output's ledger: a Parquet folder or a BigQuery dataset."""

    output_dir: Optional[str] = None
    dataset: Optional[DatasetRef] = None

    def open(self) -> OpenLedger:
        """Open the ledger this refers to (on the worker, where clients can be made)."""
        return OpenLedger(self)
