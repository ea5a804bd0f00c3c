"""haulage.pipeline.jobs — the jobs the CLI starts: ``run`` and ``replay``.

``run`` prepares the output and runs the graph of :mod:`haulage.pipeline.graph`; ``replay`` rebuilds the days a set
of archives covers, with day stores for Parquet (``replay_parquet``) and
BigQuery (``replay_bigquery``).
"""

__all__: list[str] = []
