"""A lock in a BigQuery dataset: one replay at a time.

BigQuery has no locks, but it runs mutating DML statements on one table one
after another (a conflicting one waits or fails), so a row of
``<dataset>._haulage_locks`` claimed by a ``MERGE`` that only succeeds when
the row is free, then read back, is held by exactly one claimant. Rules:

* the lock is a **lease**: it expires ``lease`` seconds after it was last
  renewed, and a thread renews it every third of that while it is held —
  a replay that was killed frees it by itself;
* a claimant on the same machine may take over a lock whose holder process
  is gone (``kill -9`` and run again does not wait for the lease);
* a lock held by someone alive is refused at once with who holds it and
  until when (:class:`LockHeld`), never waited for.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from typing import Any, Optional

from ...parsers.schemas import LOCKS
from ..datasets import DatasetRef
from .bigquery_jobs import retry_transient

__all__ = ["DatasetLock", "LockHeld"]

_LOG = logging.getLogger("haulage")


class LockHeld(RuntimeError):
    """Someone alive holds the lock."""


def _holder_alive(holder: str) -> bool:
    """Whether ``host:pid:token`` names a live process (or one on another machine: assumed alive)."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DatasetLock:
    """A lease on a BigQuery dataset, held in haulage's lock table and renewed while held.

    Replays and commits that swap whole days take it so that two of them never
    rewrite the same dataset at once; a lease whose holder died expires.
    """

    def __init__(self, client: Any, dataset: DatasetRef, name: str, lease: int = 600) -> None:
        self.client = client
        self.table = dataset.table_id(LOCKS)
        self.name = name
        self.lease = lease
        self.holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _query(self, sql: str, **params: Any) -> list[Any]:
        from google.cloud import bigquery

        kinds = {str: "STRING", int: "INT64"}
        config = bigquery.QueryJobConfig(query_parameters=[
            bigquery.ScalarQueryParameter(k, kinds[type(v)], v) for k, v in params.items()])
        return retry_transient(lambda: list(self.client.query(sql, job_config=config, retry=None).result()),
                               f"lock {self.name}")

    def _claim(self, take_over: Optional[str]) -> None:
        self._query(
            f"MERGE `{self.table}` T USING (SELECT @name AS name) S ON T.name = S.name "
            "WHEN MATCHED AND (T.expires < CURRENT_TIMESTAMP() OR T.holder = @dead) THEN UPDATE SET "
            "holder = @holder, expires = TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL @lease SECOND) "
            "WHEN NOT MATCHED THEN INSERT (name, holder, expires) VALUES "
            "(@name, @holder, TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL @lease SECOND))",
            name=self.name, holder=self.holder, lease=self.lease, dead=take_over or "")

    def _current(self) -> Optional[Any]:
        rows = self._query(f"SELECT holder, CAST(expires AS STRING) AS expires FROM `{self.table}` WHERE name = @name",
                           name=self.name)
        return rows[0] if rows else None

    def acquire(self) -> None:
        """Take the lock or raise :class:`LockHeld`."""
        self._claim(None)
        current = self._current()
        if current is not None and current["holder"] != self.holder and not _holder_alive(current["holder"]):
            _LOG.info("taking over lock %s from %s, which is gone", self.name, current["holder"])
            self._claim(current["holder"])
            current = self._current()
        if current is None or current["holder"] != self.holder:
            who = current["holder"] if current else "?"
            until = current["expires"] if current else "?"
            raise LockHeld(f"another replay holds the {self.name} lock of {self.table.rsplit('.', 1)[0]} "
                           f"({who}, until {until} unless renewed); run this one after it finishes")
        self._thread = threading.Thread(target=self._renew, name=f"haulage-lock-{self.name}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.lease / 3):
            try:
                self._query(f"UPDATE `{self.table}` SET expires = TIMESTAMP_ADD(CURRENT_TIMESTAMP(), INTERVAL @lease "
                            "SECOND) WHERE name = @name AND holder = @holder",
                            lease=self.lease, name=self.name, holder=self.holder)
            except Exception as exc:  # the lease may run out; the replay's commit is atomic either way
                _LOG.warning("could not renew lock %s: %s", self.name, exc)

    def release(self) -> None:
        """Stop renewing the lease and give the lock back (if this holder still has it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
            self._query(f"DELETE FROM `{self.table}` WHERE name = @name AND holder = @holder",
                        name=self.name, holder=self.holder)
