"""Run ``haulage`` in a child process that a failpoint may SIGKILL, cheaply.

A fresh ``haulage`` process spends seconds importing Beam before it does
anything; the kill tests start dozens. Children here are forked from a
multiprocessing *forkserver* that imported haulage and Beam once, so each
starts in milliseconds, with nothing of the test process (threads, emulator
clients, Beam's cached credentials) inherited. A child is a real process:
``SIGKILL`` from a failpoint ends it exactly as it would end ``haulage``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from typing import Mapping, Optional, Sequence

_CONTEXT = None


_PRELOAD = [
    "apache_beam",
    "google.cloud.bigquery",
    "google.cloud.pubsub_v1",
    "haulage.cli.main",
    "haulage.pipeline.jobs.run",
    "haulage.pipeline.jobs.replay",
    "support.killable",
]


def _context():
    global _CONTEXT
    if _CONTEXT is None:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        _CONTEXT = context
    return _CONTEXT


def _child(argv: Sequence[str], env: Mapping[str, str], cwd: Optional[str], log: Optional[str]) -> None:
    # A shell without job control starts background jobs with SIGINT ignored, and
    # children inherit that; haulage is meant to be run as a foreground command.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ.clear()
    os.environ.update(env)
    if cwd:
        os.chdir(cwd)
    target = os.open(log or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(target, 1)
    os.dup2(target, 2)
    from haulage.cli.main import main

    code = main(list(argv))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


def start_haulage(argv: Sequence[str], env: Mapping[str, str], *, cwd: Optional[str] = None,
                  log: Optional[str] = None):
    """``haulage ARGV`` in a forked child, not waited for (a ``multiprocessing.Process``)."""
    process = _context().Process(target=_child, args=(list(argv), dict(env), cwd, log))
    process.start()
    return process


def run_haulage(argv: Sequence[str], env: Mapping[str, str], *, cwd: Optional[str] = None,
                log: Optional[str] = None, timeout: float = 180.0) -> int:
    """``haulage ARGV`` in a forked child; its exit code (``-9`` when SIGKILLed)."""
    process = start_haulage(argv, env, cwd=cwd, log=log)
    process.join(timeout)
    if process.is_alive():
        process.kill()
        process.join()
        raise TimeoutError(f"haulage {' '.join(argv)} did not finish within {timeout:g}s")
    return process.exitcode
