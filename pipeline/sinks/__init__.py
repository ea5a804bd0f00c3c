"""haulage.pipeline.sinks — Beam sinks: Parquet files and BigQuery tables.

``parquet`` and ``bigquery`` are the composite transforms; ``parquet_commit``,
``bigquery_commit`` and their helpers make each source's rows land exactly once
(ledgers, locks, load jobs, day swaps).
"""

__all__: list[str] = []
