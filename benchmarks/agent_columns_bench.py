"""What the columnar parser spends per block on agent-derived columns (``ColumnarParser._agent_columns``).

    python benchmarks/agent_columns_bench.py [--lines 200000] [--fresh-agents 0.05] [--repeat 5]

The agent field of every block's vectorised rows is captured once (as the
parser hands it over), then ``_agent_columns`` alone — copying that field
out of the block included — is timed on them, CPU time, best of
``--repeat`` passes:

* **cold**: a fresh parser (empty agent cache, empty store): parsing the
  agents (``parse_agent``, not this code's cost) plus converting them;
* **store cold**: agent cache filled beforehand, store empty: what
  converting each never-seen result to Arrow costs, parsing excluded;
* **warm**: cache and store filled: the per-block cost (lookups, gathers).

Per never-seen agent = (store cold − warm) / distinct agents of the corpus;
per distinct agent per block = warm / Σ distinct agents of each block. As
every benchmark here, it first measures PyPI's parser (the ``linehaul``
package) on the same lines in the same run, and prints each cost per row
also as a share of what PyPI's parser spends on a line.
"""

from __future__ import annotations

import argparse
import gc
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from anchor import linehaul_rate, linehaul_version  # noqa: E402
from parse_bench import ORIGIN, RECEIVED_AT, blocks_of  # noqa: E402
from stages import add_corpus_arguments, add_run_arguments, clock, collect_like_workers, make_corpus  # noqa: E402

import pyarrow as pa  # noqa: E402

from haulage.parsers.columnar import ColumnarParser  # noqa: E402


def agent_fields_of(blocks) -> list:
    """The fields of each vectorised table of each block, as ``_agent_columns`` receives them (it copies field 9)."""
    captured: list = []
    parser = ColumnarParser()
    original = parser._agent_columns

    def capture(fields):
        captured.append(fields)
        return original(fields)

    parser._agent_columns = capture
    for block in blocks:
        parser.parse_block(block, ORIGIN, RECEIVED_AT)
    return captured


def one_pass(parser: ColumnarParser, fields: list) -> float:
    started = clock()
    for block_fields in fields:
        parser._agent_columns(block_fields)
    return clock() - started


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_corpus_arguments(ap, lines=200_000, seed=7, days=1)
    add_run_arguments(ap, repeat=5)
    args = ap.parse_args(argv)
    corpus = make_corpus(args.lines, args.seed, args.days, args.fresh_agents)
    print(f"corpus: {corpus.describe()}")
    pypi, _, _ = linehaul_rate(corpus.lines, args.anchor_lines)
    pypi_line = 1 / pypi
    print(f"PyPI's parser (linehaul {linehaul_version()}), parse + JSON: {pypi_line * 1e6:.0f} µs per line in this run")
    collect_like_workers()
    fields = agent_fields_of(blocks_of(corpus.lines))
    columns = [block_fields.take(9) for block_fields in fields]  # the agent columns themselves, for the counts
    per_block = sum(len(column.unique()) for column in columns)
    distinct = len(pa.chunked_array(columns).unique())

    def best(fresh_parser) -> float:
        times = []
        for _ in range(args.repeat):
            parser = fresh_parser()
            gc.collect()
            times.append(one_pass(parser, fields))
            del parser
        return min(times)

    def cache_filled() -> ColumnarParser:
        parser = ColumnarParser()
        for column in columns:
            for agent in column.unique().to_pylist():
                parser.agents.get(agent.rstrip("\r\n"))
        return parser

    warm_parser = ColumnarParser()
    one_pass(warm_parser, fields)
    cold = best(ColumnarParser)
    store_cold = best(cache_filled)
    warm = min(one_pass(warm_parser, fields) for _ in range(args.repeat))
    print(f"{len(columns)} agent columns, {sum(map(len, columns)):,} rows, {distinct:,} distinct agents, "
          f"{per_block:,} distinct agents summed over blocks")
    rows = sum(map(len, columns))

    def per_row(seconds: float) -> str:
        return f"{seconds / rows * 1e9:.0f} ns per row = 1/{pypi_line * rows / seconds:,.0f} of PyPI's line"

    print(f"cold       : {cold * 1e3:8.1f} ms  ({cold / distinct * 1e6:.2f} µs per never-seen agent, parsing included; "
          f"{per_row(cold)})")
    print(f"store cold : {store_cold * 1e3:8.1f} ms  ({(store_cold - warm) / distinct * 1e6:.2f} µs per never-seen agent "
          f"beyond warm; {per_row(store_cold)})")
    print(f"warm       : {warm * 1e3:8.1f} ms  ({warm / per_block * 1e6:.2f} µs per distinct agent per block; {per_row(warm)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
