"""Helpers for the ``haulage run`` integration tests (tests/test_pipeline_*.py).

Expected values come from the synthetic-log generator's oracle
(benchmarks/corpus.py: every line comes with an ``Expect`` derived from how
it was built), never from haulage's own parser.  What the pipeline wrote is
read back from the Parquet files (or from BigQuery) and checked line by line:

* every input line is accounted for exactly once — as a row whose values
  match its ``Expect`` (compared as multisets, so the check does not depend
  on how event ids are spelled) or as a dead letter whose ``source`` names
  its file/message and line number and whose reason is the expected one;
* every file fault is one dead letter naming the file, with its reason;
* rows sit in the folder of their own UTC day (dead letters: of received_at);
* event ids are unique;
* the summary ``haulage run`` prints agrees with all of the above.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import gzip
import io
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT / "benchmarks") not in sys.path:
    sys.path.insert(0, str(ROOT / "benchmarks"))

import corpus  # noqa: E402  (benchmarks/corpus.py: generator + oracle)

TABLES = ("file_downloads", "simple_requests", "unprocessed")
ROW_TABLES = ("file_downloads", "simple_requests")
# file-level faults (parsers-api.md), and the Pub/Sub source's faults: a message without data, a
# notification outside --notification-allow or without an object
FILE_REASONS = {"bad-gzip", "truncated-gzip", "empty-file", "unreadable-file", "empty-message",
                "notification-not-allowed", "bad-notification"}


# --------------------------------------------------------------------------
# input


def labelled(n: int, seed: int, *, start: str = "2026-10-01T12:00:00Z", days: float = 1.0,
             bad_fraction: float = 0.1, legacy_fraction: float = 0.15,
             simple_fraction: float = 0.1) -> list[tuple[bytes, "corpus.Expect"]]:
    """``n`` (line, Expect) pairs; by default spanning two UTC days."""
    return corpus.generate_labelled(n, seed=seed, start_date=start, days=days, bad_fraction=bad_fraction,
                                    legacy_fraction=legacy_fraction, simple_fraction=simple_fraction)


def joined(lines: Sequence[bytes]) -> bytes:
    """Lines as a file or message body: newline after every line (so an empty
    last line is still a line)."""
    return b"".join(line + b"\n" for line in lines)


def gzipped(lines: Sequence[bytes]) -> bytes:
    return gzip.compress(joined(lines), mtime=0)


@dataclass
class Source:
    """One file or message as the pipeline sees it.

    ``label`` is what dead letters name as their source (``path`` or
    ``subscription#message_id``), followed by ``:line``.  ``fault`` is the
    file-level reason expected for it (damaged files); then ``readable`` is
    how many leading lines can still be recovered (None: not known exactly,
    the rows must then be a prefix of the lines).
    """

    label: str
    items: list[tuple[bytes, Any]]
    fault: Optional[str] = None
    readable: Optional[int] = None

    @property
    def lines(self) -> list[bytes]:
        return [line for line, _ in self.items]


# --------------------------------------------------------------------------
# output


def iso(value: Any) -> Any:
    """A TIMESTAMP value (datetime or ISO text) as ``YYYY-MM-DDTHH:MM:SSZ``."""
    if isinstance(value, dt.datetime):
        value = value.astimezone(dt.timezone.utc)
        assert value.microsecond == 0, value
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    return value


@dataclass
class Output:
    """Rows per table, each row a dict with timestamps as ISO text; ``folder``
    maps (table, index) to the ``date=`` folder the row was read from."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {t: [] for t in TABLES})
    folders: dict[str, list[str]] = field(default_factory=lambda: {t: [] for t in TABLES})
    files: list[Path] = field(default_factory=list)

    def count(self) -> int:
        return sum(len(v) for v in self.rows.values())

    def per_day(self, table: str) -> collections.Counter:
        key = "received_at" if table == "unprocessed" else "timestamp"
        return collections.Counter(r[key][:10] for r in self.rows[table])


def _normalized(table: str, row: dict[str, Any]) -> dict[str, Any]:
    row = dict(row)
    key = "received_at" if table == "unprocessed" else "timestamp"
    row[key] = iso(row[key])
    return row


_FOLDER = re.compile(r"^date=(\d{4}-\d\d-\d\d)$")


def read_parquet_output(out_dir: str | os.PathLike) -> Output:
    """Every Parquet file under ``out_dir/<table>/date=YYYY-MM-DD/``.

    Asserts the layout: nothing but ``part-*.parquet`` files in ``date=``
    folders of the three tables, and no in-progress (hidden) files left.
    """
    import pyarrow.parquet as pq

    from haulage.pipeline.sinks.parquet_ledger import committed_files

    out = Output()
    root = Path(out_dir)
    committed = {Path(f) for t in TABLES for f in committed_files(str(root), t)}
    for path in sorted(root.rglob("*")):
        if path.is_dir():
            continue
        rel = path.relative_to(root).parts
        if rel[0] == "_ledger":  # commit markers, and the commit lock; no commit left half done
            assert (len(rel) == 2 and (rel[1].endswith(".json") or rel[1] == ".lock")), f"unexpected ledger file: {path}"
            continue
        if rel[0] == "_rollups":  # the statistics' derived cache (stats/rollups.py), not output
            continue
        assert rel[0] != "_staging", f"staging left behind by a finished run: {path}"
        assert len(rel) == 3, f"unexpected file in the output: {path}"
        assert path in committed, f"a part file no commit marker covers: {path}"
        table, folder, name = rel
        assert table in TABLES, f"unexpected table folder: {path}"
        m = _FOLDER.match(folder)
        assert m, f"unexpected folder name: {path}"
        assert name.startswith("part-") and name.endswith(".parquet"), f"unexpected file name (left over?): {path}"
        out.files.append(path)
        for row in pq.read_table(path).to_pylist():
            out.rows[table].append(_normalized(table, row))
            out.folders[table].append(m.group(1))
    return out


def output_from_rows(rows: dict[str, Iterable[dict[str, Any]]]) -> Output:
    """An Output from rows fetched elsewhere (BigQuery); no folders."""
    out = Output()
    for table, table_rows in rows.items():
        out.rows[table] = [_normalized(table, dict(r)) for r in table_rows]
    return out


# --------------------------------------------------------------------------
# the summary haulage prints


@dataclass
class Summary:
    lines_read: int
    files: Optional[int]
    file_faults: int
    rows: int
    dead_letters: int
    balanced: bool
    skipped: int
    per_day: dict[tuple[str, str], int]
    reasons: dict[str, int]


def parse_summary(text: str) -> Summary:
    first = re.search(r"^([\d,]+) lines read(?: from ([\d,]+) files)? in ", text, re.M)
    books = re.search(
        r"^lines read ([\d,]+) \+ file faults ([\d,]+) = rows ([\d,]+) \+ dead letters ([\d,]+)"
        r"(?: \+ outside --from/--to ([\d,]+))?(?: \+ already ingested [\d,]+)?: (.*)$", text, re.M
    )
    assert first and books, f"no summary in output:\n{text}"
    num = lambda s: int(s.replace(",", ""))  # noqa: E731
    per_day = {}
    for m in re.finditer(r"^(file_downloads|simple_requests|unprocessed)\s+(\d{4}-\d\d-\d\d)\s+([\d,]+)$", text, re.M):
        per_day[(m.group(1), m.group(2))] = num(m.group(3))
    reasons = {}
    block = re.search(r"^dead letters by reason:\n((?:  .*\n?)*)", text, re.M)
    if block:
        for line in block.group(1).splitlines():
            reason, count = line.split()
            reasons[reason] = num(count)
    return Summary(
        lines_read=num(first.group(1)),
        files=num(first.group(2)) if first.group(2) else None,
        file_faults=num(books.group(2)),
        rows=num(books.group(3)),
        dead_letters=num(books.group(4)),
        balanced=books.group(6) == "balanced",
        skipped=num(books.group(5)) if books.group(5) else 0,
        per_day=per_day,
        reasons=reasons,
    )


# --------------------------------------------------------------------------
# running the CLI in-process


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def summary(self) -> Summary:
        return parse_summary(self.stdout)


def run_cli(argv: Sequence[str]) -> CliResult:
    """``haulage`` in this process (so test spies and env patches apply)."""
    from haulage.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse errors
            code = exc.code if isinstance(exc.code, int) else 1
    return CliResult(code, out.getvalue(), err.getvalue())


# --------------------------------------------------------------------------
# the checks


def reason_of(dead: dict[str, Any]) -> str:
    return dead["error"].split(":", 1)[0]


def _signature(table: str, row: dict[str, Any]) -> tuple:
    """What the oracle says about a row, read from the row."""
    c = row["classification"]
    base = (table, row["timestamp"], row["project"], c["kind"], c["traffic"], c["ci"], c["mirror"])
    if table == "file_downloads":
        f = row["file"]
        assert f["project"] == row["project"], row
        assert f["filename"] == row["url"].rsplit("/", 1)[-1], row
        return base + (f["version"], f["type"])
    return base + (None, None)


def _expected_signature(e: Any) -> tuple:
    return (e.table, e.timestamp, e.project, e.kind, e.traffic, e.ci, e.mirror, e.version, e.package_type)


@dataclass
class Accounting:
    """What :func:`check_output` established (for further assertions)."""

    lines: int
    faults: int
    expected_per_day: collections.Counter
    reasons: collections.Counter


def check_output(out: Output, sources: Sequence[Source], *, check_folders: bool = True) -> Accounting:
    """Every line of ``sources`` is in ``out`` exactly once, as the oracle says."""
    by_label = {s.label: s for s in sources}
    assert len(by_label) == len(sources), "duplicate source labels"

    # -- event ids: present and unique across the whole output
    ids = [r["event_id"] for t in ROW_TABLES for r in out.rows[t]]
    assert all(ids), "a row without event_id"
    dupes = [i for i, n in collections.Counter(ids).items() if n > 1]
    assert not dupes, f"event ids not unique: {dupes[:5]}"

    # -- each row in its day's folder
    if check_folders:
        for table in TABLES:
            key = "received_at" if table == "unprocessed" else "timestamp"
            for row, folder in zip(out.rows[table], out.folders[table], strict=True):
                assert row[key][:10] == folder, f"{table} row with {key} {row[key]} in folder date={folder}"

    # -- dead letters: each names its source and line; reasons as expected
    dead_at: dict[tuple[str, int], dict[str, Any]] = {}
    for dead in out.rows["unprocessed"]:
        label, _, pos = dead["source"].rpartition(":")
        assert label in by_label, f"dead letter from an unknown source: {dead['source']!r}"
        assert pos.isdigit(), dead["source"]
        # a file fault is kept apart from a line dead letter at the same position
        key = (label, -1) if reason_of(dead) in FILE_REASONS else (label, int(pos))
        assert key not in dead_at, f"two dead letters for {key}: {dead_at[key]} and {dead}"
        dead_at[key] = dead

    expected_rows: collections.Counter = collections.Counter()
    expected_per_day: collections.Counter = collections.Counter()
    reasons: collections.Counter = collections.Counter()
    lines = faults = 0
    optional_rows: collections.Counter = collections.Counter()  # lines of damaged files after an unknown cut
    for src in sources:
        n = len(src.items)
        fault = dead_at.pop((src.label, -1), None)
        if src.fault is None:
            assert fault is None, f"unexpected file fault for {src.label}: {fault}"
            readable = n
        else:
            assert fault is not None, f"no dead letter for damaged source {src.label} (expected {src.fault})"
            assert reason_of(fault) == src.fault, f"{src.label}: {fault['error']!r}, expected {src.fault}"
            assert src.label in fault["error"], f"fault does not name the file: {fault}"
            faults += 1
            reasons[src.fault] += 1
            _, _, pos = fault["source"].rpartition(":")
            readable = int(pos) - 1  # the fault stands in for the line after the last complete one
            if src.readable is not None:
                assert readable == src.readable, f"{src.label}: fault at line {pos}, expected {src.readable + 1}"
            assert readable <= n
        lines += readable
        for position, (raw, e) in enumerate(src.items[:readable], start=1):
            dead = dead_at.pop((src.label, position), None)
            if e.is_row:
                assert dead is None, f"{src.label}:{position} should be a {e.table} row, got dead letter {dead}: {raw!r}"
                expected_rows[_expected_signature(e)] += 1
                expected_per_day[(e.table, e.date)] += 1
            else:
                assert dead is not None, f"{src.label}:{position} should be a dead letter ({e.reason}): {raw!r}"
                got = reason_of(dead)
                assert got in (e.reason, *e.also_ok), f"{src.label}:{position}: {dead['error']!r}, expected {e.reason}: {raw!r}"
                assert dead["line"] == raw.decode("utf-8", "backslashreplace"), (dead["line"], raw)
                reasons[got] += 1
    assert not dead_at, f"dead letters that match no input line: {list(dead_at.values())[:3]}"

    got_rows = collections.Counter(_signature(t, r) for t in ROW_TABLES for r in out.rows[t])
    missing = expected_rows - got_rows
    extra = got_rows - expected_rows
    assert not missing and not extra, f"rows differ from the oracle:\nmissing {list(missing.items())[:5]}\nextra {list(extra.items())[:5]}"
    for t in ROW_TABLES:
        got_days = out.per_day(t)
        want_days = collections.Counter({d: n for (tt, d), n in expected_per_day.items() if tt == t})
        assert got_days == want_days, (t, got_days, want_days)
    # the books: lines read + file faults == rows + dead letters
    assert lines + faults == out.count(), (lines, faults, out.count())
    return Accounting(lines, faults, expected_per_day, reasons)


def check_summary(summary: Summary, out: Output, acc: Accounting, *, files: Optional[int] = None) -> None:
    """The printed summary agrees with the output files and the oracle."""
    assert summary.balanced
    assert summary.skipped == 0
    assert summary.lines_read == acc.lines, (summary.lines_read, acc.lines)
    assert summary.file_faults == acc.faults, (summary.file_faults, acc.faults)
    assert summary.lines_read + summary.file_faults == summary.rows + summary.dead_letters
    assert summary.rows == sum(len(out.rows[t]) for t in ROW_TABLES)
    assert summary.dead_letters == len(out.rows["unprocessed"])
    want = {(t, d): n for t in TABLES for d, n in out.per_day(t).items()}
    assert summary.per_day == want, (summary.per_day, want)
    assert summary.reasons == dict(acc.reasons), (summary.reasons, dict(acc.reasons))
    if files is not None:
        assert summary.files == files


def lines_of(items: Sequence[tuple[bytes, Any]]) -> list[bytes]:
    return [line for line, _ in items]
