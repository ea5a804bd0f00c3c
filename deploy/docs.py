"""Keep the column tables in deploy/README.md generated from the code.

    python -m haulage.deploy.docs          # rewrite the generated sections
    python -m haulage.deploy.docs --check  # exit 1 if they are stale (a test runs this)

A generated section sits between ``<!-- generated: NAME -->`` and
``<!-- end generated: NAME -->``; NAME is a table (its columns, from
:func:`haulage.parsers.schemas.markdown_table`) or ``views`` (the views and
what they count, from :mod:`haulage.deploy.bigquery_views`). The README is
then one more reader of the one schema definition, like the writers and
``haulage setup``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from ..parsers.schemas import CLUSTERING, PARTITION_COLUMN, TABLE_NAMES, markdown_table
from .bigquery_views import DAILY, DAILY_PROJECT, SERIES, TRAFFIC_COUNTS, series_view_name

__all__ = ["README", "section", "regenerate", "main"]


README = Path(__file__).with_name("README.md")
_SECTION = re.compile(r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end generated: (?P=name) -->)", re.S)


def section(name: str) -> str:
    """The generated Markdown of one section (a table's columns, or the views)."""
    if name in TABLE_NAMES:
        layout = f"DAY partitions on `{PARTITION_COLUMN[name]}`"
        if CLUSTERING[name]:
            layout += ", clustered by " + ", ".join(f"`{c}`" for c in CLUSTERING[name])
        return f"`{name}` ({layout}):\n\n{markdown_table(name)}\n"
    if name == "views":
        lines = ["| view | rows / columns |", "|---|---|"]
        for series, (condition, counts) in SERIES.items():
            lines.append(f"| `{series_view_name(series)}` | {counts}: `{condition}` |")
        cols = ", ".join(f"`{c}`" for c in [*SERIES, *TRAFFIC_COUNTS])
        lines.append(f"| `{DAILY_PROJECT}` | `day`, `project`, {cols} |")
        lines.append(f"| `{DAILY}` | `day`, " + ", ".join(f"`{c}`" for c in SERIES) + " |")
        return "\n".join(lines) + "\n"
    raise KeyError(f"unknown generated section {name!r}")


def regenerate(text: str) -> str:
    """``text`` with every ``<!-- generated: NAME -->`` section rewritten from the code."""
    return _SECTION.sub(lambda m: m.group(1) + section(m.group("name")) + m.group(4), text)


def main(argv: list[str] | None = None) -> int:
    """Rewrite the generated sections of the README (``--check``: only say whether they are stale)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if the README is stale")
    parser.add_argument("--readme", type=Path, default=README)
    args = parser.parse_args(argv)
    text = args.readme.read_text()
    fresh = regenerate(text)
    if args.check:
        if fresh != text:
            print(f"{args.readme}: generated sections are stale; run python -m haulage.deploy.docs", file=sys.stderr)
            return 1
        return 0
    if fresh != text:
        args.readme.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
