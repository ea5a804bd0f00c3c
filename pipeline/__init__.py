"""haulage.pipeline — the Beam pipeline: sources, the parse transform, sinks, jobs.

At this level: ``graph`` (the one graph builder of every job), ``options``
(what a run is asked to do), ``elements`` (what flows between stages),
``parse_transform`` (lines to rows), ``summary``, ``metrics``, ``progress``,
``datasets``, ``ledgers``, ``failpoints`` and ``malloc_tuning`` (workers keep
freed memory for reuse). Sources, sinks, the
local runners and the run/replay jobs each have their own subpackage.
"""

__all__: list[str] = []
