"""Reading a Parquet dataset's ledger: which commits are visible, which units are in, which files to read.

The reading half of :mod:`haulage.pipeline.sinks.parquet_commit` (which
writes the ledger and owns the commit protocol), on its own so that readers —
``haulage stats``, the sources that skip units already ingested — depend on
the rule of visibility and not on the writer. It imports neither Beam nor
Arrow (``gs://`` paths go through Beam's filesystems, imported when first
used).

The rules, as the writer keeps them (the layout is in ``parquet_commit``):

* a commit is **visible** when its marker ``_ledger/<commit>.json`` exists
  and its intent ``_ledger/pending/<commit>.json`` does not;
* a unit is **ingested** when a marker lists it;
* a marker listed and then deleted before it is read (on ``gs://``, a BigQuery
  staging commit another worker of the run has loaded and forgotten) is not a
  marker;
* a reader reads a part file named by a commit (``part-<commit>-….parquet``)
  only once that commit is visible, any other ``*.parquet`` file as it is,
  and hidden names (``.…``, ``_…``) never.
"""

from __future__ import annotations

import glob
import json
import os
import re
from typing import Any, KeysView, Optional

__all__ = ["LEDGER", "PENDING", "ParquetLedger", "committed_files"]

LEDGER = "_ledger"
"""The ledger's folder under the dataset's root: one marker per commit."""

PENDING = "_ledger/pending"
"""Intents of commits being made (or interrupted): their files are not visible yet."""

# part-<16 hex commit>-<anything>.parquet: files written with a ledger.
_COMMITTED_NAME = re.compile(r"^part-(?P<commit>[0-9a-f]{16})-[^/]+\.parquet$")


# --------------------------------------------------------------------------
# reading, local or any Beam filesystem


def _is_local(path: str) -> bool:
    return "://" not in path


def _join(*parts: str) -> str:
    return "/".join(p.strip("/") if i else p.rstrip("/") for i, p in enumerate(parts))


def _exists(path: str) -> bool:
    if _is_local(path):
        return os.path.exists(path)
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.exists(path)


def _read_bytes(path: str) -> bytes:
    if _is_local(path):
        with open(path, "rb") as handle:
            return handle.read()
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path) as handle:
        return handle.read()


def _read_listed(path: str) -> Optional[bytes]:
    """The bytes of a file a listing just named, or None if it has been deleted since.

    Rule: a listed file that is gone when read is treated as not listed (the
    listing came a moment too early). On ``gs://`` two workers of one run
    share a staging dataset without a lock, and one deletes the marker of a
    commit it has loaded while the other lists and reads markers. Beam's
    reader fetches the object's metadata, then downloads *that generation*:
    Cloud Storage answers 404 when the object was deleted, and also when it
    was replaced by a newer generation in between — so a 404 is followed by
    one look at whether the name still exists, and if it does, by one read of
    the object as it is now.
    """
    if _is_local(path):
        try:
            with open(path, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            return None
    from google.api_core.exceptions import NotFound

    for attempt in (1, 2):  # the second read only when the first one's generation was replaced
        try:
            return _read_bytes(path)
        except NotFound:
            if not _exists(path):
                return None
            if attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def _list(pattern: str) -> list[str]:
    if _is_local(pattern):
        return sorted(glob.glob(pattern))
    from apache_beam.io.filesystems import FileSystems

    return sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)


# --------------------------------------------------------------------------
# the ledger, read


class ParquetLedger:
    """An output folder's ledger, read: its markers, pending intents, units and visible files.

    ``day_prefix`` names the day folders (``date=`` — Hive style, what
    readers expect of a Parquet dataset).
    """

    DAY_PREFIX = "date="

    def __init__(self, root: str, day_prefix: Optional[str] = None) -> None:
        self.day_prefix = day_prefix or self.DAY_PREFIX
        self.root = root.rstrip("/") if not _is_local(root) else os.path.abspath(root)
        self.local = _is_local(self.root)
        self._markers: dict[str, dict[str, Any]] = {}
        # unit id -> how many of the markers read hold it; kept in step with _markers by markers()
        self._unit_counts: dict[str, int] = {}

    # -- paths
    def path(self, *parts: str) -> str:
        """A path under the dataset's root."""
        return _join(self.root, *parts)

    def day_folder(self, table: str, day: str) -> str:
        """``<table>/<prefix><day>``, relative to the root."""
        return f"{table}/{self.day_prefix}{day}"

    def day_of(self, path: str) -> str:
        """The day of a part file's path."""
        return path.rsplit("/" + self.day_prefix, 1)[1].split("/", 1)[0]

    def marker_path(self, commit: str) -> str:
        """Where the ledger marker of ``commit`` is written (its presence makes the commit visible)."""
        return self.path(LEDGER, f"{commit}.json")

    def intent_path(self, commit: str) -> str:
        """Where the intent of ``commit`` is written before its files move (what recovery finishes)."""
        return self.path(PENDING, f"{commit}.json")

    # -- reading the ledger
    def markers(self) -> dict[str, dict[str, Any]]:
        """Every commit marker, by commit id (read once, then only new ones).

        The index of committed units (:meth:`committed_unit_ids`) follows the
        markers as they come and go, so a long run that commits a window at a
        time never rebuilds it from every marker (line delivery makes each
        message a unit: that rebuild, once per pull, grew with everything the
        output had ever committed).
        """
        names = _list(self.path(LEDGER, "*.json"))
        current = {}
        known = self._markers
        for path in names:
            commit = path.rsplit("/", 1)[-1][: -len(".json")]
            marker = known.get(commit)
            if marker is None:
                data = _read_listed(path)
                if data is None:  # forgotten (loaded, then deleted by another worker) since the listing
                    continue
                marker = json.loads(data)
                self._count_units(marker, +1)
            current[commit] = marker
        for commit in known.keys() - current.keys():  # deleted since the last reading (a replay replaced it)
            self._count_units(known[commit], -1)
        self._markers = current
        return current

    def _remember(self, commit: str, marker: dict[str, Any]) -> None:
        """A marker this process has just written: read as if listed."""
        previous = self._markers.get(commit)
        if previous is not None:
            self._count_units(previous, -1)
        self._markers[commit] = marker
        self._count_units(marker, +1)

    def _forget(self, commit: str) -> None:
        """A marker this process has just deleted."""
        marker = self._markers.pop(commit, None)
        if marker is not None:
            self._count_units(marker, -1)

    def _count_units(self, marker: dict[str, Any], step: int) -> None:
        counts = self._unit_counts
        for unit in marker["units"]:
            left = counts.get(unit["unit_id"], 0) + step
            if left > 0:
                counts[unit["unit_id"]] = left
            else:
                counts.pop(unit["unit_id"], None)

    def committed_unit_ids(self) -> KeysView[str]:
        """The ids of every unit a marker holds: :meth:`committed_units`' keys, without building its records."""
        self.markers()
        return self._unit_counts.keys()

    def pending(self) -> set[str]:
        """Commits with an intent not yet cleared (being made, or interrupted)."""
        return {p.rsplit("/", 1)[-1][: -len(".json")] for p in _list(self.path(PENDING, "*.json"))}

    def committed_units(self) -> dict[str, dict[str, Any]]:
        """Unit id → its record (``kind``, ``source``, ``lines``…, ``commit``, ``run``)."""
        units: dict[str, dict[str, Any]] = {}
        for commit, marker in self.markers().items():
            for unit in marker["units"]:
                units.setdefault(unit["unit_id"], {**unit, "commit": commit, "run": marker.get("run")})
        return units

    def visible_commits(self) -> set[str]:
        """Commits readers may see: a marker and no pending intent."""
        return set(self.markers()) - self.pending()

    def committed_files(self, table: str) -> list[str]:
        """The Parquet files of ``table`` a reader may read.

        A file named by a commit (``part-<commit>-…``) is read once that
        commit is visible; any other ``*.parquet`` file (written before the
        ledger existed, or put there by hand) is read as it is; hidden names
        (``.…``, ``_…``) never.
        """
        visible = self.visible_commits()
        files = []
        for path in _list(self.path(table, f"{self.day_prefix}*", "*.parquet")):
            name = path.rsplit("/", 1)[-1]
            if name.startswith((".", "_")):
                continue
            match = _COMMITTED_NAME.match(name)
            if match is None or match["commit"] in visible:
                files.append(path)
        return files


def committed_files(output_dir: str, table: str) -> list[str]:
    """The part files of ``table`` under ``output_dir`` that a reader may read."""
    return ParquetLedger(output_dir).committed_files(table)
