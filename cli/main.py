"""The ``haulage`` command: one entry point, a subcommand per job.

Each subcommand lives in its own module exposing ``add_parser(commands)`` and
``main(args, extra) -> int``; modules import their heavy dependencies (Beam,
cloud clients) only when they run, so ``haulage parse`` and ``haulage --help``
start instantly. When the command line names a subcommand, only that
subcommand's module is imported (``haulage parse`` is run on every file of a
shell pipeline; the others' option modules would be start-up paid for nothing).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import NoReturn, Optional, Sequence

__all__ = ["COMMANDS", "BLAS_THREADS", "available_commands", "build_parser", "end_without_teardown", "main"]


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


def build_parser(only: Optional[str] = None) -> argparse.ArgumentParser:
    """The ``haulage`` argument parser, with one subcommand per module present (or just ``only``)."""
    parser = argparse.ArgumentParser(
        prog="haulage",
        description="Package-index CDN logs to honest download statistics.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    for name in [only] if only else available_commands():
        _module(name).add_parser(commands)
    return parser


def _named_command(argv: Sequence[str]) -> Optional[str]:
    """The subcommand ``argv`` starts with, when its module is present (else None: the full parser decides)."""
    if not argv or argv[0] not in COMMANDS:
        return None
    try:
        _module(argv[0])
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("haulage"):
            return None
        raise
    return argv[0]


BLAS_THREADS = {"OPENBLAS_NUM_THREADS": "1"}
"""Set (unless already set) before any subcommand is imported: haulage does no linear algebra,
and numpy's OpenBLAS would otherwise start a thread per core when numpy is imported, which
cost ~40 ms of CPU per process here (a fifth of ``haulage parse``'s start-up)."""


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The ``haulage`` entry point: parse the arguments, run the subcommand, return its exit status.

    Only subcommands that pass options on to Beam (run, replay) accept unknown arguments.
    Run as the program (``argv`` None), a subcommand that declares ``ENDS_WITHOUT_TEARDOWN``
    ends the process itself once it has returned (:func:`end_without_teardown`); called with
    ``argv`` (tests, other Python code), every subcommand returns its status.
    """
    for name, value in BLAS_THREADS.items():
        os.environ.setdefault(name, value)
    as_program = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(_named_command(argv))
    args, extra = parser.parse_known_args(argv)
    module = _module(args.command)
    if extra and not getattr(module, "PASSES_EXTRA_ARGS", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    status = module.main(args, extra)
    if as_program and getattr(module, "ENDS_WITHOUT_TEARDOWN", False):
        end_without_teardown(status)
    return status


def end_without_teardown(status: int) -> NoReturn:
    """End the process now, standard output and error flushed, skipping the interpreter's teardown.

    Why: at exit Python frees every object one by one; after ``haulage parse``
    has filled its agent cache that took ~70 ms of CPU for a 200k-line file
    (best of 7, the same run ended with ``os._exit`` and with ``sys.exit``).
    Only for a subcommand with nothing left to do at exit: no atexit handler,
    no file but the standard streams, no child process.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can be written anyway
            pass
    os._exit(status)


if __name__ == "__main__":
    sys.exit(main())
