"""haulage.cli — the ``haulage`` command: one thin module per subcommand.

Each module (``run``, ``replay``, ``parse``, ``stats``, ``setup``, ``serve``)
exposes ``add_parser(commands)``, which declares its options, and
``main(args, extra) -> int``, which validates them and calls the job that lives
in its own room (``haulage.pipeline.jobs``, ``haulage.parsers.ndjson_files``,
``haulage.stats``, ``haulage.deploy``). :mod:`haulage.cli.main` wires them into one entry point.
"""

__all__: list[str] = []
