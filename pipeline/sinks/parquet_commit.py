"""A Parquet dataset with a ledger: units are committed whole, once, or not at all.

Layout of an output folder::

    <table>/date=YYYY-MM-DD/part-<commit>-<n>.parquet   rows (what readers read)
    _ledger/<commit>.json                               one marker per commit: its units and files
    _ledger/pending/<commit>.json                       a commit in progress (its intent)
    _ledger/.lock                                       commits take turns (flock, local disks)
    _staging/<run>/…                                    part files being written (hidden from table globs)

Rules:

* A **unit** (a log file, a Pub/Sub message) is *ingested* when a marker
  lists it. Ingesting it again is skipped (and said so in the summary).
* A part file is **committed** when the marker of its commit exists and its
  intent does not. Readers (``haulage stats``,
  :func:`~haulage.pipeline.sinks.parquet_ledger.committed_files`) read
  committed files only; files of a commit in progress are never half visible
  to them. Rows are written to ``_staging/`` (outside every table folder, so
  ``bq load gs://…/<table>/*`` cannot pick up a file being written) and moved
  into the table folders only during the commit.
* A commit, in order (each step a failpoint, see :data:`STEPS`): staged files
  and their folders fsynced → intent written → marker written (the unit is
  now ingested) → files renamed into place → target folders fsynced → intent
  removed (the files are now visible) → staging removed. Every write that
  matters is fsynced, file and folder, before the next step, and a Pub/Sub
  message is acknowledged only after the last one.
* **Recovery** (under the lock, before every commit, and when a run starts):
  an intent with its marker is rolled forward (the remaining renames are
  done); an intent without a marker is rolled back (nothing was published).
  Staging folders of runs that are no longer alive are removed.
* A unit is never half committed: a group holding part of a unit is refused
  (:class:`IncompleteUnitError`); a group holding units another commit already
  ingested has those units' rows dropped before it commits.

On ``gs://`` there is no lock and recovery runs when a run starts (no other
run may write the dataset then). The workers of one run may commit at once
(each its own units): a marker listed by one and deleted by another before it
is read (a BigQuery staging commit forgotten after its load) is not a marker.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Optional, Sequence

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ...parsers.schemas import DOWNLOADS, SIMPLE, UNPROCESSED
from ...parsers.arrow_rows import rows_to_arrow
from ...parsers.batch_schema import batch_schema, conform

from .. import failpoints
from .parquet_ledger import LEDGER, PENDING, ParquetLedger, _exists, _is_local, _join, _list, _read_bytes

if TYPE_CHECKING:  # types only: the stats read Parquet datasets without importing Beam (elements' coders)
    from ..elements import SourceUnit, TableDay

__all__ = [
    "STEPS",
    "CommitOutcome",
    "IncompleteUnitError",
    "ParquetDataset",
    "StagedGroup",
    "commit_id_for",
    "fsync_dir",
    "fsync_file",
    "without_units",
]

_LOG = logging.getLogger("haulage")

STEPS = (
    "parquet:staged",
    "parquet:intent-written",
    "parquet:marker-written",
    "parquet:first-file-published",
    "parquet:all-files-published",
    "parquet:visible",
)
STAGING = "_staging"
STAGED = "_staged"  # staging datasets only: files committed where they were written
ROW_GROUP_ROWS = 50_000


STATISTICS_COLUMNS: dict[str, tuple[str, ...]] = {
    DOWNLOADS: ("timestamp", "country_code", "project", "event_id"),
    SIMPLE: ("timestamp", "country_code", "project", "event_id"),
    UNPROCESSED: ("received_at", "source"),
}
"""Columns whose min/max go into each row group: what readers filter on (day, project, ids).
Statistics of every column (long urls, agent details) cost a third of the write time."""


class IncompleteUnitError(RuntimeError):
    """A group holds only part of a unit (its chunks were split across bundles)."""


def commit_id_for(unit_ids: Sequence[str], salt: str = "") -> str:
    """16 hex digits naming a commit of these units (the same units, the same id)."""
    digest = hashlib.blake2b(digest_size=8)
    digest.update(salt.encode())
    for unit_id in sorted(unit_ids):
        digest.update(unit_id.encode() + b"\n")
    return digest.hexdigest()


def fsync_dir(path: str) -> None:
    """Make a directory's entries (renames, new files) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: str) -> None:
    """Flush a file's data to disk, so a commit that names it never points at a file a crash emptied."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _makedirs_durable(path: str) -> None:
    """``os.makedirs`` whose new entries survive a crash (each new level's parent fsynced)."""
    missing = []
    current = path
    while not os.path.isdir(current):
        missing.append(current)
        current = os.path.dirname(current)
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory)
        fsync_dir(os.path.dirname(directory))


# --------------------------------------------------------------------------
# filesystem primitives, local or any Beam filesystem


def _write_durable(path: str, data: bytes) -> None:
    """Write a small file whole or not at all (temp name, fsync, rename, fsync folder)."""
    if _is_local(path):
        directory = os.path.dirname(path)
        _makedirs_durable(directory)
        temp = f"{directory}/.{os.path.basename(path)}.{uuid.uuid4().hex[:8]}.tmp"
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
        fsync_dir(directory)
        return
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(path) as handle:  # an object appears whole when the upload completes
        handle.write(data)


def _delete(path: str) -> None:
    if _is_local(path):
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        return
    from apache_beam.io.filesystems import FileSystems

    with contextlib.suppress(Exception):
        FileSystems.delete([path])


def _rename(source: str, target: str) -> None:
    if _is_local(source):
        os.replace(source, target)
        return
    from apache_beam.io.filesystems import FileSystems

    if FileSystems.exists(target):
        FileSystems.delete([target])
    FileSystems.rename([source], [target])


def _remove_tree(path: str) -> None:
    if _is_local(path):
        shutil.rmtree(path, ignore_errors=True)
        return
    for item in _list(_join(path, "**")):
        _delete(item)


# --------------------------------------------------------------------------
# the dataset


class ParquetDataset(ParquetLedger):
    """An output folder: its ledger (read as :class:`ParquetLedger` reads it, and written), its lock, its
    recovery and its staging.

    ``day_prefix`` names the day folders (``date=`` — Hive style, what
    readers expect of a Parquet dataset).
    """

    def __init__(self, root: str, day_prefix: Optional[str] = None) -> None:
        super().__init__(root, day_prefix)
        self._liveness: list[Any] = []

    # -- paths
    def staging_dir(self, run_id: str) -> str:
        """The staging folder of run ``run_id``."""
        return self.path(STAGING, run_id)

    # -- the lock
    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Commits (and replays) on a local dataset take turns; on gs:// this does nothing."""
        if not self.local:
            yield
            return
        _makedirs_durable(self.path(LEDGER))
        with open(self.path(LEDGER, ".lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # -- staging liveness
    def hold_staging(self, run_id: str) -> None:
        """Mark this run's staging folder as in use for as long as this process lives."""
        if not self.local:
            return
        _makedirs_durable(self.path(STAGING))
        handle = open(self.path(STAGING, f"{run_id}.lock"), "a")
        fcntl.flock(handle, fcntl.LOCK_SH)
        self._liveness.append(handle)

    def release_staging(self, run_id: str) -> None:
        """Give up run ``run_id``'s staging folder: close its liveness handles, remove it."""
        for handle in self._liveness:
            handle.close()
        self._liveness = []
        _remove_tree(self.staging_dir(run_id))
        _delete(self.path(STAGING, f"{run_id}.lock"))

    def _staging_alive(self, run_id: str) -> bool:
        lock_path = self.path(STAGING, f"{run_id}.lock")
        try:
            handle = open(lock_path, "r")
        except FileNotFoundError:
            return False
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    return True
                raise
            return False

    # -- recovery
    def recover(self, *, from_driver: bool = False) -> list[str]:
        """Finish or undo commits a crash interrupted; remove dead staging.

        Call with the lock held (local), or ``from_driver`` when a run starts
        (gs://: no other writer may be running then). Returns what was done.
        """
        if not self.local and not from_driver:
            return []
        done = []
        markers = set(self.markers())
        for commit in sorted(self.pending()):
            intent = json.loads(_read_bytes(self.intent_path(commit)))
            if commit in markers:
                for op in intent["ops"]:
                    self._redo(op)
                if self.local:
                    for directory in sorted({os.path.dirname(self.path(op["to"])) for op in intent["ops"] if op["op"] == "rename"}):
                        if os.path.isdir(directory):
                            fsync_dir(directory)
                done.append(f"finished commit {commit}")
            else:
                done.append(f"undid commit {commit}")
            _delete(self.intent_path(commit))
            if self.local:
                fsync_dir(self.path(PENDING))
        for path in _list(self.path(STAGING, "*")):
            name = path.rstrip("/").rsplit("/", 1)[-1]
            if name.endswith(".lock"):
                if self.local and not self._staging_alive(name[: -len(".lock")]) and not os.path.isdir(path[: -len(".lock")]):
                    _delete(path)
                continue
            if self.local and self._staging_alive(name):
                continue
            if not self.local and not from_driver:
                continue
            _remove_tree(path)
            _delete(path + ".lock")
            done.append(f"removed staging {name}")
        for line in done:
            _LOG.info("recovery: %s", line)
        return done

    def _redo(self, op: dict[str, Any]) -> None:
        if op["op"] == "rename":
            source, target = self.path(op["from"]), self.path(op["to"])
            if _exists(source):
                if self.local:
                    _makedirs_durable(os.path.dirname(target))
                _rename(source, target)
        elif op["op"] == "delete":
            _delete(self.path(op["path"]))
        elif op["op"] == "swap-day":
            from .day_swap import finish_day_swap

            finish_day_swap(self.path(op["staged"]), self.path(op["live"]), self.path(op["graveyard"]), op["commit"])
        else:  # pragma: no cover - written by this module only
            raise ValueError(f"unknown ledger operation {op!r}")

    # -- writing the ledger
    def write_intent(self, commit: str, ops: list[dict[str, Any]]) -> None:
        """Durably record what ``commit`` is about to do (``ops``), so a crash can be finished."""
        _write_durable(self.intent_path(commit), json.dumps({"commit": commit, "ops": ops}).encode())

    def write_marker(self, commit: str, marker: dict[str, Any]) -> None:
        """Durably write ``commit``'s ledger marker: from now on its units are in the output."""
        # orjson, keys sorted: the same bytes for the same commit, and a tenth of the json module's time
        # for a window of one-line messages (a unit record per message)
        _write_durable(self.marker_path(commit), orjson.dumps(marker, option=orjson.OPT_SORT_KEYS))
        self._remember(commit, marker)

    def clear_intent(self, commit: str) -> None:
        """Remove ``commit``'s intent once everything it names is done."""
        _delete(self.intent_path(commit))
        if self.local:
            fsync_dir(self.path(PENDING))


def without_units(name: str, table: pa.Table, units: Sequence[SourceUnit]) -> pa.Table:
    """``table`` (rows of table ``name``) without the rows of ``units``.

    Rows are recognised by their event id's first 16 characters (the unit
    id); dead letters, which have no event id, by the unit's label in their
    ``source`` (``<label>:<line>``).
    """
    if not units or table.num_rows == 0:
        return table
    if name == UNPROCESSED:
        labels = {u.label for u in units}
        keep = pa.array([s.rpartition(":")[0] not in labels for s in table.column("source").to_pylist()], pa.bool_())
    else:
        keys = pa.array(sorted(u.unit_id for u in units), pa.string())
        keep = pc.invert(pc.is_in(pc.utf8_slice_codeunits(table.column("event_id"), 0, 16), value_set=keys))
    return table.filter(keep)


# --------------------------------------------------------------------------
# a group of units being written, and its commit


@dataclass
class _StagedFile:
    table: str
    day: str
    path: str
    rows: int = 0
    writer: Optional[pq.ParquetWriter] = None
    handle: Any = None
    pending: list = field(default_factory=list)  # pa.Tables in batch_schema, not yet written
    pending_rows: int = 0


@dataclass
class CommitOutcome:
    """What a commit did: rows per (table, day) made visible, units skipped."""

    commit: Optional[str]
    rows: dict[TableDay, int]
    skipped_units: list[SourceUnit]

    @property
    def skipped_lines(self) -> int:
        """Lines (and file faults) of the units skipped because the output already held them."""
        return sum(u.lines + u.faults for u in self.skipped_units)


class StagedGroup:
    """Rows of a group of units, staged as Parquet files per (table, day), then committed.

    Rows arrive as Arrow tables (:meth:`add_table`, what the parser makes) or
    row dicts (:meth:`add_rows`); the commit protocol does not care which.
    """

    def __init__(self, dataset: ParquetDataset, run_id: str, compression: str = "zstd", direct: bool = False) -> None:
        self.dataset = dataset
        self.run_id = run_id
        self.direct = direct
        if direct:  # written where they stay: see commit()
            self.directory = dataset.path(STAGED, run_id, uuid.uuid4().hex)
        else:
            self.directory = _join(dataset.staging_dir(run_id), uuid.uuid4().hex)
        self.units: dict[str, SourceUnit] = {}
        self.sources: set[str] = set()
        self._files: dict[TableDay, list[_StagedFile]] = {}
        self._compression = compression
        self._count = 0

    # -- collecting
    def add_units(self, units: Sequence[SourceUnit], sources: set[str]) -> None:
        """Record the source units whose rows this group holds, and the sources they came from."""
        for unit in units:
            self.units.setdefault(unit.unit_id, unit)
        self.sources |= sources

    def add_rows(self, table: str, day: str, rows: list[dict[str, Any]]) -> None:
        """Stage row dicts of one table and day."""
        self.add_table(table, day, rows_to_arrow(table, rows))

    def add_table(self, table: str, day: str, rows: pa.Table) -> None:
        """Rows as parsed (``batch_schema``) or plain; buffered into row groups of ``ROW_GROUP_ROWS``."""
        staged = self._current(table, day)
        staged.pending.append(conform(table, rows))
        staged.pending_rows += rows.num_rows
        if staged.pending_rows >= ROW_GROUP_ROWS:
            self._flush(staged)

    def _current(self, table: str, day: str) -> _StagedFile:
        files = self._files.setdefault((table, day), [])
        if not files:
            path = _join(self.directory, self.dataset.day_folder(table, day), f"part-{self._count}.parquet")
            self._count += 1
            files.append(_StagedFile(table, day, path))
        return files[-1]

    def _write(self, staged: _StagedFile, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        if staged.writer is None:
            if self.dataset.local:
                os.makedirs(os.path.dirname(staged.path), exist_ok=True)
                where: Any = staged.path
            else:
                from apache_beam.io.filesystems import FileSystems

                staged.handle = FileSystems.create(staged.path)
                where = staged.handle
            # the batch schema's dictionaries are written as Parquet dictionaries; without the
            # stored Arrow schema, readers see the table's plain schema (parsers/schemas.py)
            staged.writer = pq.ParquetWriter(
                where, batch_schema(staged.table), compression=self._compression, store_schema=False,
                write_statistics=list(STATISTICS_COLUMNS[staged.table]),
            )
        # one dictionary per column across the chunks, or Parquet falls back to plain pages
        staged.writer.write_table(conform(staged.table, table).unify_dictionaries(), row_group_size=ROW_GROUP_ROWS)
        staged.rows += table.num_rows

    def _flush(self, staged: _StagedFile) -> None:
        if staged.pending:
            tables, staged.pending, staged.pending_rows = staged.pending, [], 0
            self._write(staged, pa.concat_tables(tables) if len(tables) > 1 else tables[0])

    def _close(self) -> list[_StagedFile]:
        closed = []
        for files in self._files.values():
            for staged in files:
                self._flush(staged)
                if staged.writer is not None:
                    staged.writer.close()
                    staged.writer = None
                    if staged.handle is not None:
                        staged.handle.close()
                        staged.handle = None
                    if self.dataset.local:
                        fsync_file(staged.path)
                if staged.rows:
                    closed.append(staged)
        if self.dataset.local:
            for directory in sorted({os.path.dirname(s.path) for s in closed}):
                fsync_dir(directory)
        return closed

    def abort(self) -> None:
        """Close and remove everything staged: nothing of this group is committed."""
        for files in self._files.values():
            for staged in files:
                with contextlib.suppress(Exception):
                    if staged.writer is not None:
                        staged.writer.close()
                    if staged.handle is not None:
                        staged.handle.close()
        _remove_tree(self.directory)

    # -- committing
    def commit(self, salt: str = "") -> CommitOutcome:
        """Commit the group (see the module docstring); returns what became visible."""
        incomplete = self.sources - set(self.units)
        if incomplete:
            self.abort()
            raise IncompleteUnitError(
                f"{len(incomplete)} source(s) reached the sink without their last part (e.g. {sorted(incomplete)[0]}): "
                "the reader and the sink must run in the same bundle"
            )
        staged = self._close()
        failpoints.reached("parquet:staged")
        dataset = self.dataset
        with dataset.locked():
            dataset.recover()
            committed = dataset.committed_unit_ids()
            skipped = [u for u in self.units.values() if u.unit_id in committed]
            if skipped:
                staged = self._drop_units(staged, skipped)
            fresh = [u for u in self.units.values() if u.unit_id not in committed]
            if not fresh:
                _remove_tree(self.directory)
                return CommitOutcome(None, {}, skipped)
            commit = commit_id_for([u.unit_id for u in fresh], salt)
            if self.direct:
                return self._commit_in_place(commit, staged, fresh, skipped)
            ops, files = [], []
            for i, item in enumerate(staged):
                final = _join(dataset.day_folder(item.table, item.day), f"part-{commit}-{i}.parquet")
                ops.append({"op": "rename", "from": item.path[len(dataset.root) + 1:], "to": final})
                files.append({"table": item.table, "day": item.day, "path": final, "rows": item.rows})
            marker = self._marker(commit, "run", fresh, files)
            dataset.write_intent(commit, ops)
            failpoints.reached("parquet:intent-written")
            dataset.write_marker(commit, marker)
            failpoints.reached("parquet:marker-written")
            targets = set()
            for n, op in enumerate(ops):
                target = dataset.path(op["to"])
                if dataset.local:
                    _makedirs_durable(os.path.dirname(target))
                    targets.add(os.path.dirname(target))
                _rename(dataset.path(op["from"]), target)
                if n == 0:
                    failpoints.reached("parquet:first-file-published")
            for directory in sorted(targets):
                fsync_dir(directory)
            failpoints.reached("parquet:all-files-published")
            dataset.clear_intent(commit)
            failpoints.reached("parquet:visible")
        _remove_tree(self.directory)
        rows: dict[TableDay, int] = {}
        for item in staged:
            rows[(item.table, item.day)] = rows.get((item.table, item.day), 0) + item.rows
        return CommitOutcome(commit, rows, skipped)

    def _marker(self, commit: str, kind: str, fresh: list[SourceUnit], files: list[dict]) -> dict:
        """The ledger marker of a commit: what it is, which run made it, the units it ingests, the files it publishes.

        ``kind`` is ``"run"`` for files published into table folders and
        ``"staged"`` for files left where they were written (a staging dataset).
        Units are sorted so the same commit always writes the same marker.
        """
        return {
            "commit": commit,
            "run": self.run_id,
            "kind": kind,
            "committed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "units": [u.record() for u in sorted(fresh, key=lambda u: u.unit_id)],
            "files": files,
        }

    def _commit_in_place(self, commit: str, staged: list[_StagedFile], fresh: list[SourceUnit],
                         skipped: list[SourceUnit]) -> CommitOutcome:
        """Commit without moving anything: the marker names the files where they were written.

        For staging datasets only (rows waiting for a BigQuery load, read
        through their markers, never by globbing table folders): on Cloud
        Storage a rename is a copy and a delete, so this saves three
        operations per file. A crash before the marker leaves files no
        marker names; nothing reads them (a lifecycle rule removes them).
        """
        dataset = self.dataset
        files = [{"table": s.table, "day": s.day, "path": s.path[len(dataset.root) + 1:], "rows": s.rows} for s in staged]
        marker = self._marker(commit, "staged", fresh, files)
        dataset.write_marker(commit, marker)
        failpoints.reached("parquet:marker-written")
        rows: dict[TableDay, int] = {}
        for item in staged:
            rows[(item.table, item.day)] = rows.get((item.table, item.day), 0) + item.rows
        return CommitOutcome(commit, rows, skipped)

    def _drop_units(self, staged: list[_StagedFile], units: Sequence[SourceUnit]) -> list[_StagedFile]:
        """Rewrite staged files without the rows of ``units`` (already ingested elsewhere)."""
        kept = []
        for item in staged:
            table = pq.read_table(item.path) if self.dataset.local else pq.read_table(_read_bytes_buffer(item.path))
            table = without_units(item.table, table, units)
            _delete(item.path)
            if table.num_rows:
                item.rows = 0
                item.writer = None
                self._write(item, table)
                item.writer.close()
                item.writer = None
                if item.handle is not None:
                    item.handle.close()
                    item.handle = None
                if self.dataset.local:
                    fsync_file(item.path)
                kept.append(item)
        return kept


def _read_bytes_buffer(path: str) -> pa.BufferReader:
    return pa.BufferReader(_read_bytes(path))
