"""The ``haulage`` command: one entry point, a subcommand per job.

Each subcommand lives in its own module exposing ``add_parser(commands)`` and
``main(args, extra) -> int``; modules import their heavy dependencies (Beam,
cloud clients) only when they run, so ``haulage parse`` and ``haulage --help``
start instantly.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Optional, Sequence

# subcommand → its module in this package (``haulage.cli.<name>``)
COMMANDS: dict[str, str] = {
    "parse": ".parse",
    "run": ".run",
    "replay": ".replay",
    "setup": ".setup",
    "stats": ".stats",
    "serve": ".serve",
}


def _module(name: str):
    target = COMMANDS[name]
    return importlib.import_module(target, package=__package__)


def available_commands() -> list[str]:
    """Subcommands whose module is present in this installation."""
    found = []
    for name in COMMANDS:
        try:
            _module(name)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("haulage"):
                continue
            raise
        found.append(name)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="haulage",
        description="Package-index CDN logs to honest download statistics.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for name in available_commands():
        _module(name).add_parser(commands)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    module = _module(args.command)
    if extra and not getattr(module, "PASSES_EXTRA_ARGS", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    return module.main(args, extra)


if __name__ == "__main__":
    sys.exit(main())
