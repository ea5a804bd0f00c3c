"""haulage.pipeline.jobs — the jobs the CLI starts: ``run`` and ``replay``.

``run`` builds the pipeline graph and runs it; ``replay`` rebuilds the days a set
of archives covers, with day stores for Parquet (``replay_parquet``) and
BigQuery (``replay_bigquery``).
"""

__all__: list[str] = []
