#!/usr/bin/env python3
"""How much of reading a gzip log is inflating, and what ISA-L would change.

    .venv/bin/python benchmarks/inflate_bench.py [--lines 200000] [--repeat 5]

Measures, on the same realistic corpus (benchmarks/corpus.py) compressed at
level 6: zlib's inflate alone; ``isal.isal_zlib`` (ISA-L, if the ``isal``
package is installed — it is not a dependency) on the same bytes; and
haulage's framing (``iter_line_batches``: inflate + lines + positions) in
lines/s. Best of ``--repeat`` runs each.

Framing drives zlib by hand and needs ``Decompress.copy()`` to find the exact
point of damage (see parsers/framing.py); ``isal_zlib``'s decompress objects
have no ``copy()``, so ISA-L cannot be dropped in without giving up identical
results on damaged members.
"""

from __future__ import annotations

import argparse
import gzip
import io
import sys
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import corpus  # noqa: E402


def _inflate_all(module, data: bytes) -> int:
    inflater = module.decompressobj(31)
    total = 0
    for start in range(0, len(data), 1 << 20):
        chunk = data[start : start + (1 << 20)]
        while chunk:
            total += len(inflater.decompress(chunk, 1 << 20))
            chunk = inflater.unconsumed_tail
    return total


def _best(repeat: int, run) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    from haulage.parsers.framing import iter_line_batches

    text = b"".join(line + b"\n" for line in corpus.generate_lines(args.lines, seed=1))
    data = gzip.compress(text, 6, mtime=0)
    print(f"{args.lines:,} lines, {len(text) / 1e6:.1f} MB of text, {len(data) / 1e6:.1f} MB gzip (level 6)")
    modules = [("zlib", zlib)]
    try:
        from isal import isal_zlib

        modules.append(("isal_zlib (ISA-L)", isal_zlib))
    except ImportError:
        print("isal not installed: pip install isal to compare ISA-L")
    for name, module in modules:
        assert _inflate_all(module, data) == len(text)
        seconds = _best(args.repeat, lambda: _inflate_all(module, data))
        print(f"inflate only, {name}: {len(text) / seconds / 1e6:,.0f} MB/s = {args.lines / seconds / 1e3:,.0f}k lines/s")

    def frame() -> None:
        for _ in iter_line_batches(io.BytesIO(data), "bench.log.gz"):
            pass

    seconds = _best(args.repeat, frame)
    print(f"framing (zlib + lines + positions): {args.lines / seconds / 1e3:,.0f}k lines/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
