"""BigQuery load jobs with deterministic ids, retried until they are known done.

Rules:

* A job's id is chosen by the caller from what the job carries
  (``haulage_<dataset>_<table>_<batch>``), plus an attempt suffix ``_a<n>``.
  BigQuery refuses a second job with an id it has seen (409 Already Exists),
  so a retry — after a lost response, a crash, a redelivery — finds the
  first job instead of loading the rows again.
* Before inserting attempt *n*, the job is looked up: done without error →
  nothing to do; done with a **transient** error (``backendError``,
  ``internalError``, ``rateLimitExceeded``, ``timeout``…) → attempt *n+1*;
  running → wait for it; unknown → insert it. The lookup also covers an
  emulator that does not enforce unique job ids.
* Transient failures of the API itself (HTTP 429 and 5xx, timeouts,
  dropped connections) are retried with exponential backoff; they never
  become dead letters. The client library's own retries are switched off so
  that every retry goes through the lookup above.
* A job that fails for what its rows contain (``invalid``…) raises
  :class:`LoadRejected`, carrying BigQuery's message: the caller decides what
  becomes a dead letter.
"""

from __future__ import annotations

import logging
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Callable, Optional, TypeVar

__all__ = [
    "Backoff",
    "LoadRejected",
    "TRANSIENT_REASONS",
    "is_transient",
    "job_id",
    "retry_transient",
    "run_load_job",
]

_LOG = logging.getLogger("haulage")
T = TypeVar("T")

TRANSIENT_REASONS = frozenset(
    {"backendError", "internalError", "rateLimitExceeded", "timeout", "jobBackendError", "jobInternalError",
     "jobRateLimitExceeded"}
)
_TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class LoadRejected(RuntimeError):
    """BigQuery refused a load for what it contains (not a transient failure)."""

    def __init__(self, job_id: str, reason: str, message: str) -> None:
        super().__init__(f"load job {job_id} failed: {reason}: {message}")
        self.job_id = job_id
        self.reason = reason
        self.message = message


def job_id(*parts: str) -> str:
    """A job id from its parts: letters, digits, ``_`` and ``-`` only (BigQuery's rule)."""
    text = "_".join(parts)
    return "".join(c if c.isalnum() or c in "_-" else "_" for c in text)[:1000]


def _status(exc: BaseException) -> Optional[int]:
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    response = getattr(exc, "response", None)
    return getattr(response, "status_code", None) or getattr(response, "status", None)


def _reasons(exc: BaseException) -> set[str]:
    errors = getattr(exc, "errors", None) or []
    return {e.get("reason", "") for e in errors if isinstance(e, dict)}


def is_transient(exc: BaseException) -> bool:
    """True for failures worth retrying: throttling, server errors, timeouts, dropped connections."""
    import requests
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    if isinstance(exc, (ConnectionError, TimeoutError, requests.ConnectionError, requests.Timeout,
                        auth_exc.TransportError, gexc.RetryError)):
        return True
    if isinstance(exc, gexc.GoogleAPICallError):
        if _reasons(exc) & TRANSIENT_REASONS:
            return True
        return _status(exc) in _TRANSIENT_STATUS
    return False


def _env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


@dataclass
class Backoff:
    """Exponential backoff with jitter; gives up after ``deadline`` seconds.

    ``HAULAGE_RETRY_INITIAL`` / ``HAULAGE_RETRY_DEADLINE`` override the first
    delay and the deadline (the tests shorten them).
    """

    initial: float = field(default_factory=lambda: _env_float("HAULAGE_RETRY_INITIAL", 1.0))
    maximum: float = 60.0
    deadline: float = field(default_factory=lambda: _env_float("HAULAGE_RETRY_DEADLINE", 1800.0))

    def delays(self):
        started = time.monotonic()
        delay = self.initial
        while time.monotonic() - started < self.deadline:
            yield delay * (0.5 + random.random() / 2)
            delay = min(delay * 2, self.maximum)


def retry_transient(call: Callable[[], T], what: str, backoff: Optional[Backoff] = None) -> T:
    """``call()`` until it succeeds or fails for a reason that is not transient."""
    delays = (backoff or Backoff()).delays()
    while True:
        try:
            return call()
        except Exception as exc:
            if not is_transient(exc):
                raise
            delay = next(delays, None)
            if delay is None:
                raise
            _LOG.warning("%s: transient BigQuery error, retrying in %.1fs: %s", what, delay, str(exc).splitlines()[0][:300])
            time.sleep(delay)


def _job_state(client: Any, job_id_: str, location: Optional[str]) -> Optional[Any]:
    from google.api_core import exceptions as gexc

    try:
        return retry_transient(lambda: client.get_job(job_id_, location=location, retry=None), f"looking up job {job_id_}")
    except gexc.NotFound:
        return None


def _wait(client: Any, job: Any, location: Optional[str]) -> Any:
    """Poll until the job is DONE (transient polling errors retried)."""
    delay = 0.2
    while job.state != "DONE":
        time.sleep(delay)
        delay = min(delay * 1.5, 5.0)
        job = retry_transient(lambda: client.get_job(job.job_id, location=location, retry=None), f"polling job {job.job_id}")
    return job


def run_load_job(
    client: Any,
    base_id: str,
    destination: str,
    config: Any,
    *,
    uris: Optional[list[str]] = None,
    upload: Optional[Callable[[], BinaryIO]] = None,
    location: Optional[str] = None,
    max_attempts: int = 20,
) -> Any:
    """Make sure the load ``base_id`` has happened exactly once; return its finished job.

    The rows come from ``uris`` (``gs://``…) or from ``upload()`` (a fresh
    readable file each call). Raises :class:`LoadRejected` when BigQuery
    refuses the rows.
    """
    delays = Backoff().delays()
    for attempt in range(max_attempts):
        current = f"{base_id}_a{attempt}"
        job = _job_state(client, current, location)
        if job is None:
            job = _insert(client, current, destination, config, uris, upload, location, delays)
        job = _wait(client, job, location)
        error = job.error_result
        if not error:
            return job
        reason, message = error.get("reason", ""), error.get("message", "")
        if reason not in TRANSIENT_REASONS:
            raise LoadRejected(current, reason, message)
        _LOG.warning("load %s failed transiently (%s: %s); next attempt", current, reason, message[:300])
        delay = next(delays, None)
        if delay is None:
            break
        time.sleep(delay)
    raise RuntimeError(f"load {base_id}: no attempt succeeded after {max_attempts} tries")


def _insert(client, current, destination, config, uris, upload, location, delays) -> Any:
    """Insert job ``current``; on a lost answer or a transient failure, look it up before trying again."""
    from google.api_core import exceptions as gexc

    while True:
        try:
            if uris is not None:
                return client.load_table_from_uri(uris, destination, job_id=current, job_config=config,
                                                  location=location, retry=None)
            with upload() as handle:
                return client.load_table_from_file(handle, destination, job_id=current, job_config=config,
                                                   location=location, num_retries=0, rewind=True)
        except gexc.Conflict:
            job = _job_state(client, current, location)  # created by an earlier try whose answer was lost
            if job is not None:
                return job
            raise
        except Exception as exc:
            if not is_transient(exc):
                raise
            delay = next(delays, None)
            if delay is None:
                raise
            _LOG.warning("load %s: transient error, looking it up in %.1fs: %s", current, delay,
                         str(exc).splitlines()[0][:300])
            time.sleep(delay)
            job = _job_state(client, current, location)
            if job is not None:
                return job
