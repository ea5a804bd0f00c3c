"""haulage.pipeline.sinks — Beam sinks: Parquet files and BigQuery tables.

``parquet`` and ``bigquery`` are the composite transforms; ``parquet_commit``,
``bigquery_commit`` and their helpers make each source's rows land exactly once
(ledgers, locks, load jobs, day swaps). ``parquet_ledger`` is the reading half
of the Parquet ledger (which files are committed), light enough for readers
that do not run Beam (``haulage stats``).
"""

__all__: list[str] = []
