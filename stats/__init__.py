"""haulage.stats — reading the tables: the ``haulage serve`` web page.

The query code it reads through (series, breakdowns, backends) is
``haulage.pipeline.stats_*`` for now, shared with ``haulage stats``.
"""
