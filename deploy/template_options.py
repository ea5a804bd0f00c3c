"""The Flex Template's parameters are ``haulage run``'s options, renamed.

Dataflow hands template parameters to the launcher as ``--name=value``; the
names in ``metadata.json`` are the ``haulage run`` long options with
underscores (``--bigquery-dataset`` -> ``bigquery_dataset``), the spelling
of Dataflow's own parameters. This module is the one place that knows the
mapping, reading the options from the same argparse definitions ``haulage
run`` uses, so flex_main.py and the tests cannot drift from the CLI. The
few ``haulage run`` options that are not template parameters are listed,
each with the reason, in :data:`NOT_TEMPLATE_PARAMETERS`.
"""

from __future__ import annotations

import argparse
from typing import Sequence

# --option -> why it is not a template parameter
NOT_TEMPLATE_PARAMETERS: dict[str, str] = {
    "--run-for": "stops a local streaming run after N seconds; a Dataflow job runs until drained",
    "--workers": "local worker processes; on Dataflow use --num-workers / --max-workers",
    "--quiet": "silences progress lines of a local batch run; the launcher's log is Dataflow's",
}

# parameters whose value may hold several items, separated by commas
LIST_PARAMETERS = {"input", "notification_allow"}


def run_parser() -> argparse.ArgumentParser:
    """A parser with exactly the options of ``haulage run`` (built by its own module)."""
    from ..cli import run as run_cli

    root = argparse.ArgumentParser(prog="haulage")
    commands = root.add_subparsers(dest="command")
    return run_cli.add_parser(commands)


def run_options(parser: argparse.ArgumentParser | None = None) -> list[str]:
    """Every long option of ``haulage run`` (``--input``, ``--bigquery-dataset``…), help excluded."""
    parser = parser or run_parser()
    flags: list[str] = []
    for action in parser._actions:  # argparse keeps no public list of actions
        if isinstance(action, argparse._HelpAction):
            continue
        flags += [s for s in action.option_strings if s.startswith("--")]
    return flags


def parameter_name(flag: str) -> str:
    return flag[2:].replace("-", "_")


def template_parameters(parser: argparse.ArgumentParser | None = None) -> dict[str, str]:
    """Template parameter name -> ``haulage run`` option, for every option an operator may set."""
    return {parameter_name(f): f for f in run_options(parser) if f not in NOT_TEMPLATE_PARAMETERS}


def to_cli_argv(argv: Sequence[str], parameters: dict[str, str] | None = None) -> tuple[list[str], list[str]]:
    """Template-style argv -> (``haulage run`` argv, rejected parameter names).

    ``--bigquery_dataset=x`` becomes ``--bigquery-dataset x``; ``--input=a,b``
    becomes ``--input a b``; anything that is not a haulage parameter (Beam and
    Dataflow options the launcher adds: ``--runner``, ``--project``,
    ``--sdk_container_image``…) passes through unchanged. Options that exist
    on the CLI but are not template parameters come back as rejected.
    """
    parameters = parameters if parameters is not None else template_parameters()
    excluded = {parameter_name(f): f for f in NOT_TEMPLATE_PARAMETERS}
    out: list[str] = []
    rejected: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        arg = items[i]
        i += 1
        if not arg.startswith("--"):
            out.append(arg)
            continue
        name, has_value, value = arg[2:].partition("=")
        key = name.replace("-", "_")
        if key in excluded:
            rejected.append(key)
            continue
        if key not in parameters:
            out.append(arg)
            continue
        if not has_value:  # "--name value" (Dataflow uses --name=value, people may not)
            if i < len(items) and not items[i].startswith("--"):
                value = items[i]
                i += 1
            else:
                out.append(parameters[key])
                continue
        values = [v.strip() for v in value.split(",") if v.strip()] if key in LIST_PARAMETERS else [value]
        out += [parameters[key], *values]
    return out, rejected
