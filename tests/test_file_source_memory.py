"""Reading a file holds a bounded number of bytes, whatever the file holds.

A child process reads a generated gzip stream of more than 2 GB of text from
a pipe (nothing is written to disk) through the file source's
``read_chunks`` — framing plus chunking, what every batch worker runs — and
reports its peak resident memory (VmHWM) before and after. The stream mixes
the hard cases: many members of realistic log lines, one line of 256 MiB
inside a tiny member, a corrupt member, and garbage between members.

The bound checked (and documented in the README): reading adds at most
``GROWTH_BOUND_MIB`` to the peak RSS of the process, and no chunk holds more
than ``chunk_bytes`` + one line.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from support import pipeline_check as pc
from support.framing_oracle import gzip_member

GROWTH_BOUND_MIB = 64
CHUNK_BYTES = 4 << 20
MEMBER_TEXT_MIB = 16
REPEATS = 128  # 128 x 16 MiB = 2 GiB of log lines, plus one 256 MiB line

CHILD = r"""
import json, sys
from haulage.parsers import Origin
from haulage.pipeline.sources.files import read_chunks

def peak_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])

before = peak_kib()
lines = faults = chunks = 0
largest_bytes = largest_lines = 0
origin = Origin.for_file("generated.log.gz")
for chunk in read_chunks("/dev/stdin", "2026-10-01T00:00:00Z", 20000, origin, 0, chunk_bytes=int(sys.argv[1])):
    chunks += 1
    size = sum(len(line) for batch in chunk for line in batch.lines)
    count = sum(len(batch.lines) for batch in chunk)
    largest_bytes, largest_lines = max(largest_bytes, size), max(largest_lines, count)
    lines += count
    faults += sum(batch.fault is not None for batch in chunk)
print(json.dumps({"before_kib": before, "after_kib": peak_kib(), "lines": lines, "faults": faults, "chunks": chunks,
                  "largest_chunk_bytes": largest_bytes, "largest_chunk_lines": largest_lines}))
"""


def _stream_parts():
    """(the members to write, in order, lazily), lines expected, faults expected."""
    log_lines = [line for line, _ in pc.labelled(5000, seed=5, bad_fraction=0.0)]
    text = bytearray()
    while len(text) < MEMBER_TEXT_MIB << 20:
        text += pc.joined(log_lines)
    text = bytes(text[: text.rindex(b"\n", 0, MEMBER_TEXT_MIB << 20) + 1])
    member = gzip_member(text, 1)
    lines_per_member = text.count(b"\n")
    deflater = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"x" * (1 << 20)
    long_line = b"".join(deflater.compress(block) for _ in range(256)) + deflater.compress(b"\n") + deflater.flush()
    corrupt = member[: len(member) // 2] + b"\xff" * 64 + member[len(member) // 2 + 64 :]
    parts = [member] * (REPEATS // 2) + [long_line, b"garbage between members" * 100, member, corrupt]
    parts += [member] * (REPEATS // 2 - 1)
    return parts, REPEATS * lines_per_member + 1, 2, lines_per_member


@pytest.mark.slow
def test_reading_two_gigabytes_stays_within_the_memory_bound():
    parts, lines, faults, lines_per_member = _stream_parts()
    plaintext = REPEATS * (MEMBER_TEXT_MIB << 20) + (256 << 20)  # about: members are cut at a line end
    assert plaintext > 2_000_000_000
    started = time.monotonic()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(CHUNK_BYTES)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        for part in parts:
            child.stdin.write(part)
        child.stdin.close()
        report = json.loads(child.stdout.read())
    finally:
        child.kill() if child.poll() is None else None
        child.wait()
    seconds = time.monotonic() - started
    growth_mib = (report["after_kib"] - report["before_kib"]) / 1024
    print(f"\n{plaintext / 1e9:.2f} GB of text in {seconds:.1f} s; peak RSS {report['before_kib'] / 1024:.0f} MiB after "
          f"imports, {report['after_kib'] / 1024:.0f} MiB after reading (+{growth_mib:.1f} MiB); {report}")
    # every line of the intact members and the long line, plus what the corrupt member gave before its damage
    assert lines <= report["lines"] < lines + lines_per_member
    assert report["faults"] == faults
    assert report["largest_chunk_bytes"] <= CHUNK_BYTES + 65537
    assert report["largest_chunk_lines"] <= 20000
    assert growth_mib < GROWTH_BOUND_MIB
