#!/usr/bin/env python3
"""Coverage-guided fuzz target (atheris) for framing and the line parser.

    make fuzz                      # FUZZ_SECONDS=300 by default
    .venv/bin/python tests/fuzz/fuzz_framing.py -max_total_time=60 .fuzz/corpus .fuzz/seeds

The first byte of an input picks a mode:

* even — **raw**: four option bytes (line limit, file name, read size,
  inflate step), then the bytes of a file. Seeds are the fixtures, so the
  fuzzer mutates real gzip and plain logs. Checked: no exception; positions
  contiguous from 1 over lines and faults; lines without ``\\n`` and at most
  the limit + 1 bytes; fault fields bounded; the same result for another read
  size and inflate step; a plain file gives exactly its lines; a gzip file
  that zlib reads as intact members (plus NUL padding) gives exactly their
  lines and no fault; and the line parser gives one record per line, with
  lines + faults = rows + dead letters.
* odd — **structured**: the rest drives a generated layout (text, member
  cuts, levels, header fields, changed bytes, garbage, truncation, padding),
  checked against the independent oracle of tests/support/framing_oracle.py
  exactly as the property tests do.

An input whose plaintext exceeds ``PLAINTEXT_BUDGET`` is checked on its
first items only (a 64 KiB input can inflate to 64 MiB). Any failed check
raises, which atheris reports as a crash and saves as ``crash-*``; put the
file in tests/fuzz/regressions/ and it is replayed by ``make test``
(tests/test_fuzz_replay.py).
"""

from __future__ import annotations

import io
import sys
import zlib
from pathlib import Path
from typing import Callable, Iterator

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))  # tests/, for support.framing_oracle

PLAINTEXT_BUDGET = 2 << 20
FAULT_REASONS = {"bad-gzip", "truncated-gzip", "empty-file"}
TOKENS = [b"a", b"bc", b" ", b"|", b"\r", b"\xc3\xa9", b"\xff", b"download|", b"0", b"\t", b"\n"]


def _modules():
    """haulage imports, late so that main() can instrument them first."""
    from haulage.parsers import LineParser, Origin, framing
    from support import framing_oracle

    return framing, LineParser, Origin, framing_oracle


def _collect(framing, oracle, data: bytes, name: str, **options) -> list:
    """Items of ``iter_line_batches``, stopping after ``PLAINTEXT_BUDGET`` bytes of lines."""
    out: list = []
    size = 0
    for entry in framing.iter_line_batches(io.BytesIO(data), name, **options):
        out.append(entry)
        if not hasattr(entry, "reason"):
            size += sum(map(len, entry[1]))
            if size > PLAINTEXT_BUDGET:
                break
    return out


def _intact_plaintext(data: bytes) -> bytes | None:
    """The text of ``data`` if zlib reads it as whole members (then NUL padding); else None."""
    text = []
    rest = data
    while rest and rest.strip(b"\x00"):
        inflater = zlib.decompressobj(wbits=31)
        try:
            text.append(inflater.decompress(rest, PLAINTEXT_BUDGET))
        except zlib.error:
            return None
        if inflater.unconsumed_tail or not inflater.eof:
            return None
        rest = inflater.unused_data
    return b"".join(text)


def _expected_lines(text: bytes, max_line: int) -> list[bytes]:
    lines = text.split(b"\n")
    if not lines[-1]:
        lines.pop()
    return [line[: max_line + 1] for line in lines]


def check_raw(data: bytes) -> None:
    framing, LineParser, Origin, oracle = _modules()
    if len(data) < 4:
        return
    max_line = (16, 64, 300, framing.MAX_LINE_BYTES)[data[0] % 4]
    name = ("f.log", "f.log.gz")[data[1] % 2]
    read_size = 1 + data[2] * 7
    step = 1 + data[3] * 13
    body = data[4:]
    entries = _collect(framing, oracle, body, name, max_line=max_line)
    items = oracle.items_of(entries)
    # positions, shapes and bounds
    assert [item[1] for item in items] == list(range(1, len(items) + 1)), "positions not contiguous"
    for item in items:
        if item[0] == "line":
            assert b"\n" not in item[2] and len(item[2]) <= max_line + 1
        else:
            assert item[2] in FAULT_REASONS, item[2]
            assert len(item[3]) <= max_line + 1 and len(item[4]) <= framing.MAX_FAULT_RAW_BYTES
    if any(item[0] == "fault" and item[2] == "empty-file" for item in items):
        assert len(items) == 1
    # independent of how the bytes arrive
    chopped = oracle.items_of(_collect(framing, oracle, body, name, max_line=max_line, read_size=read_size, inflate_step=step))
    budget_hit = sum(len(item[2]) for item in items if item[0] == "line") > PLAINTEXT_BUDGET
    if budget_hit:
        n = min(len(items), len(chopped)) - 1
        assert chopped[:n] == items[:n], "read size / inflate step changed the result"
    else:
        assert chopped == items, "read size / inflate step changed the result"
        # exact lines where the input is known good
        gzip_mode = body[:2] == b"\x1f\x8b" or name.endswith(".gz")
        text = body if not gzip_mode else _intact_plaintext(body)
        if text is not None and len(text) < PLAINTEXT_BUDGET and (gzip_mode or text):
            want = _expected_lines(text, max_line)
            got = [item[2] for item in items if item[0] == "line"]
            assert got == want, f"intact input: {len(got)} lines, expected {len(want)}"
            faults = [item[2] for item in items if item[0] == "fault"]
            assert faults == ([] if want else ["empty-file"]), faults
    # the line parser: one record per line, books balance
    parser = LineParser()
    origin = Origin.for_file(name)
    lines = faults = rows = dead = 0
    for entry in entries:
        if hasattr(entry, "reason"):
            faults += 1
            dead += 1
            continue
        records = parser.parse_batch(entry[1], origin, entry[0], "2026-10-01T00:00:00Z")
        assert len(records) == len(entry[1]), "records in != lines out"
        lines += len(entry[1])
        for record in records:
            dead += record.table == "unprocessed"
            rows += record.table != "unprocessed"
    assert lines + faults == rows + dead


def check_structured(data: bytes) -> None:
    import atheris

    framing, _, _, oracle = _modules()
    fdp = atheris.FuzzedDataProvider(data)
    max_line = 48
    lines = []
    for _ in range(fdp.ConsumeIntInRange(0, 30)):
        if fdp.ConsumeBool():
            lines.append(TOKENS[fdp.ConsumeIntInRange(0, len(TOKENS) - 2)] * fdp.ConsumeIntInRange(max_line - 2, 4 * max_line))
        else:
            lines.append(b"".join(TOKENS[fdp.ConsumeIntInRange(0, len(TOKENS) - 2)] for _ in range(fdp.ConsumeIntInRange(0, 12))))
    text = b"\n".join(lines) + (b"\n" if lines and fdp.ConsumeBool() else b"")
    cuts = sorted(fdp.ConsumeIntInRange(0, len(text)) for _ in range(fdp.ConsumeIntInRange(0, 5)))
    bounds = [0, *cuts, len(text)]
    parts, damaged = [], []

    def garbage() -> bytes:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(1, 40)).replace(b"\x1f\x8b", b"\x1f\x00") or b"?"

    def small() -> bytes | None:
        return fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 12)) if fdp.ConsumeBool() else None

    for a, b in zip(bounds, bounds[1:]):
        plain = text[a:b]
        member = oracle.gzip_member(
            plain, fdp.ConsumeIntInRange(0, 9), name=small(), comment=small(), extra=small(),
            header_crc=fdp.ConsumeBool(), mtime=fdp.ConsumeIntInRange(0, 2**32 - 1), text_flag=fdp.ConsumeBool(),
        )
        damage = 0 if damaged and damaged[-1] else fdp.ConsumeIntInRange(0, 3)
        if damage == 3:
            parts.append(oracle.Part(garbage()))
            damaged.append(True)
        if damage == 2:
            at = fdp.ConsumeIntInRange(0, len(member) - 1)
            member = member[:at] + bytes([member[at] ^ fdp.ConsumeIntInRange(1, 255)]) + member[at + 1 :]
        parts.append(oracle.Part(member, plain))
        damaged.append(damage == 2)
    tail = fdp.ConsumeIntInRange(0, 3)
    if damaged[-1] or (tail == 1 and len(damaged) > 1 and damaged[-2]):
        tail = 0
    padding = 0
    if tail == 1:
        member = parts[-1].raw
        parts[-1] = oracle.Part(member[: fdp.ConsumeIntInRange(1, len(member) - 1)], parts[-1].plain, truncated=True)
    elif tail == 2:
        parts.append(oracle.Part(garbage()))
    elif tail == 3:
        padding = fdp.ConsumeIntInRange(1, 600)
    layout = oracle.Layout(parts, padding)
    if layout.ambiguous():
        return  # by gzip's own rules a damaged member swallowed the parts after it (see framing_oracle)
    body = layout.data()
    items = oracle.items_of(framing.iter_line_batches(io.BytesIO(body), "f.log.gz", max_line=max_line))
    oracle.check_items(items, layout, max_line, framing.MAX_FAULT_RAW_BYTES)
    step = fdp.ConsumeIntInRange(1, 300)
    chopped = oracle.items_of(
        framing.iter_line_batches(io.BytesIO(body), "f.log.gz", max_line=max_line, read_size=step + 3, inflate_step=step)
    )
    assert chopped == items, "read size / inflate step changed the result"


def test_one_input(data: bytes) -> None:
    """The target: any bytes in, every check above holds."""
    if not data:
        return
    if data[0] % 2 == 0:
        check_raw(data[1:])
    else:
        check_structured(data[1:])


def seed_inputs(limit: int = 16 << 10) -> Iterator[tuple[str, bytes]]:
    """Seeds from fixtures/ (each file's first ``limit`` bytes, as gzip and as plain) and a few structured ones."""
    for path in sorted((ROOT / "fixtures").iterdir()):
        if path.suffix in (".gz", ".log"):
            body = path.read_bytes()[:limit]
            yield f"raw-{path.name}", b"\x00" + bytes([0, 1, 40, 10]) + body
            yield f"raw-small-{path.name}", b"\x00" + bytes([1, 0, 3, 1]) + body[:2048]
    for i in range(8):
        yield f"structured-{i}", bytes([1]) + bytes((i * 37 + j * 11) % 256 for j in range(200))


def write_seeds(folder: Path) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for name, data in seed_inputs():
        (folder / name).write_bytes(data)
        count += 1
    return count


def main(argv: list[str]) -> None:
    import atheris

    if len(argv) > 2 and argv[1] == "--write-seeds":
        print(f"{write_seeds(Path(argv[2]))} seeds in {argv[2]}")
        return
    with atheris.instrument_imports(include=["haulage", "support"]):
        _modules()
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
