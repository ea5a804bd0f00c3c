"""The fuzz target (tests/fuzz/fuzz_framing.py) stays working: replay its seeds and past findings.

``make fuzz`` runs the target under atheris for minutes; this replays, in a
few seconds, the seed corpus it starts from (built from fixtures/) and every
input kept in tests/fuzz/regressions/ (inputs the fuzzer once failed on, each
named after what it found), so the invariants inside the target are checked
on every ``make test``.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

FUZZ = Path(__file__).resolve().parent / "fuzz"
_spec = importlib.util.spec_from_file_location("fuzz_framing", FUZZ / "fuzz_framing.py")
fuzz_framing = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fuzz_framing)

SEEDS = dict(fuzz_framing.seed_inputs())
REGRESSIONS = sorted((FUZZ / "regressions").glob("*.bin"))


def test_seed_corpus_covers_both_modes_and_every_fixture():
    assert any(data[0] % 2 == 0 for data in SEEDS.values()) and any(data[0] % 2 for data in SEEDS.values())
    assert sum(name.startswith("raw-") for name in SEEDS) >= 2 * 8


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_seed(name):
    fuzz_framing.test_one_input(SEEDS[name])


def test_regressions():
    for path in REGRESSIONS:
        fuzz_framing.test_one_input(path.read_bytes())


def test_the_target_catches_a_broken_invariant(monkeypatch):
    """A check that cannot fail is no check: break framing's positions and the target must raise."""
    from haulage.parsers import framing

    real = framing.iter_line_batches

    def shifted(*args, **kwargs):
        for item in real(*args, **kwargs):
            yield (item[0] + 1, item[1]) if isinstance(item, tuple) else item

    monkeypatch.setattr(framing, "iter_line_batches", shifted)
    with pytest.raises(AssertionError):
        fuzz_framing.test_one_input(SEEDS["raw-small-downloads-2026-10-01T00.log.gz"])
