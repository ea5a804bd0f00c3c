"""haulage.stats — reading the tables, without Beam.

``query`` (the SQL of every series and breakdown, for DuckDB and BigQuery),
``backends`` (where the tables are read from), ``report`` (queries to numbers),
``render`` and ``plot`` (text, CSV, JSON, PNG for ``haulage stats``) and the
``haulage serve`` web page (``server``, ``page_data``, ``page``, ``svg``).
"""

__all__: list[str] = []
