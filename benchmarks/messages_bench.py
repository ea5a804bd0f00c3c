"""The parse step on chunks of Pub/Sub messages of a few lines each, as ratios to PyPI's parser.

    python benchmarks/messages_bench.py [--lines 10000] [--sizes 1 10 100 1000] [--repeat 3]

A CDN that publishes log lines to Pub/Sub may send one line per message. Each
message is a source of its own (its lines' event ids are named by it), so a
chunk of messages is many short blocks, which the parse step gathers into
blocks of many sources for the columnar parser (``GATHERED_BELOW_LINES``).
This times ``ParseChunkFn`` (what the streaming graphs run) on one chunk of
messages of each size, warm agent cache, in lines per CPU-second next to
PyPI's parser on the same lines; and, before it, decoding the messages'
bytes into line batches (``MessageDecoder``, what the Pub/Sub sources do
with each message), then both together. Pulling, acknowledging and Beam's
own work per element are not in these figures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from anchor import linehaul_rate, linehaul_version  # noqa: E402
from stages import add_corpus_arguments, add_run_arguments, best_of, collect_like_workers, make_corpus  # noqa: E402

from haulage.parsers import Origin  # noqa: E402
from haulage.pipeline.elements import Chunk, LineBatch  # noqa: E402
from haulage.pipeline.sources.messages import MessageDecoder  # noqa: E402
from haulage.pipeline.parse_transform import GATHERED_BELOW_LINES, SMALL_BLOCK_LINES, ParseChunkFn  # noqa: E402

RECEIVED_AT = "2026-10-01T00:00:00Z"
SUBSCRIPTION = "projects/bench/subscriptions/logs"


def chunk_of_messages(lines: list[bytes], per_message: int) -> Chunk:
    """``lines`` as messages of ``per_message`` lines, each its own source."""
    return Chunk([
        LineBatch(Origin.for_message(SUBSCRIPTION, f"m{start}"), 1, lines[start : start + per_message], RECEIVED_AT)
        for start in range(0, len(lines), per_message)
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_corpus_arguments(ap, lines=10_000, seed=7, days=1)
    add_run_arguments(ap, repeat=3)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1, 10, 100, 1000], help="lines per message")
    args = ap.parse_args(argv)
    corpus = make_corpus(args.lines, args.seed, args.days, args.fresh_agents)
    print(f"corpus: {corpus.describe()}")
    pypi, _, _ = linehaul_rate(corpus.lines, args.anchor_lines)
    print(f"PyPI's parser (linehaul {linehaul_version()}), parse + JSON per line: {pypi:,.0f} lines/s (= 1×)")
    collect_like_workers()
    parse = ParseChunkFn(agent_cache_size=16384)
    parse.setup()
    decoder = MessageDecoder(SUBSCRIPTION, "lines")
    n = len(corpus.lines)
    for size in args.sizes:
        chunk = chunk_of_messages(corpus.lines, size)
        if size >= GATHERED_BELOW_LINES:
            path = "columnar, a block per message"
        elif n >= SMALL_BLOCK_LINES:
            path = "columnar, messages gathered"
        else:
            path = "row parser"
        seconds = best_of(args.repeat, lambda: list(parse.process(chunk)))  # the first pass warms the agent cache
        raw = [b"\n".join(batch.lines) + b"\n" for batch in chunk]
        decoding = best_of(args.repeat, lambda: [list(decoder.chunks(data, {}, f"m{i}", RECEIVED_AT)) for i, data in enumerate(raw)])
        rate, both = n / seconds, n / (seconds + decoding)
        print(f"messages of {size:>5} lines ({path:<29}): {rate:>10,.0f} lines per CPU-second  {rate / pypi:>6.1f}× PyPI"
              f"   decoded too: {both:>9,.0f}  {both / pypi:>6.1f}× PyPI  (decoding alone {n / decoding:,.0f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
