"""Adversarial user agents against every family parser, without the length cap.

    python benchmarks/agents_stress.py [--lengths 8192 65536] [--limit-ms 10] [--before]

The test suite (tests/test_agent_linear_time.py) checks agents up to the
8,192-character cap that parse_agent enforces. This script calls each family
parser directly, so the cap does not help, on the same generated corpus at
larger lengths (by default up to 64 KiB, haulage's line limit), and prints
how many agents were tried and the slowest CPU times. Exit status 1 if any
call took longer than --limit-ms per 8,192 characters of agent (linear
time: a 64 KiB agent may take 8× the time of an 8 KiB one). With --before it also times the
backtracking patterns haulage used before (and PyPI uses) on the agents of
issue 10, one try each, for comparison.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from support.adversarial_agents import adversarial_agents  # noqa: E402

from haulage.parsers.agents import REGISTRY  # noqa: E402
from haulage.parsers.agents.bots import is_known_bot  # noqa: E402

PARSERS = [(family.name, family.parse) for family in REGISTRY] + [("bots", is_known_bot)]


def cpu_ms(parse, user_agent: str, tries: int = 3) -> float:
    best = float("inf")
    for _ in range(tries):
        started = time.process_time()
        try:
            parse(user_agent)
        except (ValueError, TypeError, IndexError, RecursionError):
            pass
        best = min(best, time.process_time() - started)
    return best * 1000


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[8192, 65536])
    ap.add_argument("--limit-ms", type=float, default=10.0, help="per 8,192 characters of agent")
    ap.add_argument("--before", action="store_true", help="also time the old backtracking patterns on issue 10's agents")
    args = ap.parse_args(argv)

    started = time.perf_counter()
    agents = 0
    calls = 0
    worst: list[tuple[float, str, str]] = []
    over: list[str] = []
    for label, user_agent in adversarial_agents(tuple(args.lengths)):
        agents += 1
        total = 0.0
        slowest_family = ("", 0.0)
        for name, parse in PARSERS:
            ms = cpu_ms(parse, user_agent, tries=1)
            if ms > 1.0:  # only retry what looks slow
                ms = min(ms, cpu_ms(parse, user_agent, tries=2))
            calls += 1
            total += ms
            if ms > slowest_family[1]:
                slowest_family = (name, ms)
        worst.append((slowest_family[1], slowest_family[0], label))
        if slowest_family[1] > args.limit_ms * max(1.0, len(user_agent) / 8192):
            over.append(label)
    worst.sort(reverse=True)
    print(f"{agents:,} adversarial agents × {len(PARSERS)} parsers = {calls:,} calls in {time.perf_counter() - started:.0f}s")
    print("slowest single parser calls (CPU ms, best of 3 when over 1 ms):")
    for ms, name, label in worst[:8]:
        print(f"  {ms:8.3f}  {name:<20} {label}")

    if args.before:
        from support import backtracking_agents as before

        old = {family.name: family.parse for family in before.REGISTRY}
        new = dict(PARSERS)
        samples = [
            ("pip-1.4", "pip/20.3 " + "a/" * 800 + " " + "b/" * 800 + " x"),
            ("poetry", "poetry/1 " + "a/" * 800 + " " + "b/" * 800 + " x"),
            ("pex", "pex/" * 16000 + " x"),
            ("twine", "twine/1 " + "a/" * 16000 + " x"),
            ("devpi", "devpi-server/" * 5000 + " x"),
        ]
        print("issue 10's agents, one family parser, CPU ms: before → now")
        for name, user_agent in samples:
            print(f"  {name:<8} {len(user_agent):>6} chars  {cpu_ms(old[name], user_agent, 1):10.1f} → {cpu_ms(new[name], user_agent):.3f}")
    print(f"over the limit ({args.limit_ms} ms per 8,192 characters): {len(over)}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
