"""Local batch runs on every core: one in-process Beam pipeline per worker process, over a share of the files.

Why not Beam's own ``direct_num_workers`` with ``multi_processing``: that
mode starts fresh Python interpreters as SDK workers (each importing Beam
and haulage again, seconds on a busy machine) and moves every bundle's
elements between them and the runner over gRPC. Measured here it made two
workers *slower* than one (0.55× on 2 cores). Log files need no shuffle at
all — each file is read, parsed and written by one worker — so the driver
instead lists the input, deals the files into one share per worker (largest
first, each to the least loaded share), and forks one process per share
that runs the usual pipeline (Beam's FnApiRunner in process, see
``graph.local_runner``) on its files. Forking shares the driver's
imports, nothing crosses processes but the file list and the counters, and
the run summary adds up every worker's counters.

The default is one worker per core the process may run on; ``--workers 1``
runs in the driver itself, as before.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import traceback
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Optional, Sequence

from ...parsers.ndjson_sinks import usable_cores
from ..sources.files import InputFile

__all__ = ["default_workers", "deal_files", "run_in_workers"]

_LOG = logging.getLogger("haulage")


def default_workers() -> int:
    """One worker per core this process may run on (as ``haulage parse``'s default)."""
    return usable_cores()


def deal_files(files: Sequence[InputFile], workers: int) -> list[list[InputFile]]:
    """Files in ``workers`` shares of near-equal bytes (largest first to the lightest share).

    Never more shares than files, never an empty share; within a share, files
    keep their listed order.
    """
    count = max(1, min(workers, len(files)))
    shares: list[list[InputFile]] = [[] for _ in range(count)]
    loads = [0] * count
    for item in sorted(files, key=lambda f: (-f.size, f.path)):
        lightest = loads.index(min(loads))
        shares[lightest].append(item)
        loads[lightest] += item.size
    order = {f.path: i for i, f in enumerate(files)}
    return [sorted(share, key=lambda f: order[f.path]) for share in shares if share]


Job = Callable[[list[InputFile], str], dict[str, int]]
"""Runs a pipeline on some files (the ``str`` names the worker, e.g. ``"2/2"``); returns its counters."""


def _worker(job: Job, share: list[InputFile], name: str, results: Connection) -> None:
    """A forked worker: run ``job``, send back ``("ok", counters)`` or ``("error", exception)``."""
    try:
        payload: tuple[str, Any] = ("ok", job(share, name))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the driver
        try:
            pickle.dumps(exc)
            payload = ("error", exc)
        except Exception:
            payload = ("error", RuntimeError(f"worker {name}: {traceback.format_exc()}"))
    results.send(payload)
    results.close()
    os._exit(0)  # no atexit handlers or finalizers of the forked driver's state


def run_in_workers(files: Sequence[InputFile], workers: int, job: Job) -> dict[str, int]:
    """Run ``job`` on each share of ``files`` in its own forked process; the counters summed.

    ``job`` runs a whole pipeline on its files and returns its ``haulage``
    counters. The run fails as its first failing worker does: an exception
    in a worker stops the others and is raised here; a worker that dies from
    a signal (``kill -9``, the OOM killer) stops the others and the driver
    then dies from the same signal, so the run ends the way one process
    would. The output stays exact either way: every worker commits through
    the dataset's ledger, and a re-run skips what was committed.
    """
    shares = deal_files(files, workers)
    if len(shares) == 1:
        return job(shares[0], "")
    context = multiprocessing.get_context("fork")  # the workers share the driver's imports
    running: dict[Any, tuple[Any, str]] = {}
    for i, share in enumerate(shares, 1):
        name = f"{i}/{len(shares)}"
        reader, writer = context.Pipe(duplex=False)
        process = context.Process(target=_worker, args=(job, share, name, writer), name=f"haulage-worker-{name}")
        process.start()
        writer.close()
        running[reader] = (process, name)
    totals: dict[str, int] = {}
    failure: Optional[BaseException] = None
    signal_number = 0
    while running and failure is None and not signal_number:
        for reader in wait(list(running)):
            process, name = running.pop(reader)
            try:
                status, value = reader.recv()
            except EOFError:  # died without a word: killed
                process.join()
                code = process.exitcode or 0
                if code < 0:
                    signal_number = -code
                else:
                    failure = RuntimeError(f"worker {name} exited with status {code}")
                break
            process.join()
            if status == "error":
                failure = value
                break
            for counter, count in value.items():
                totals[counter] = totals.get(counter, 0) + count
    for process, _ in running.values():
        process.terminate()
        process.join()
    if signal_number:
        _LOG.error("a worker was killed by signal %d; stopping the run the same way", signal_number)
        os.kill(os.getpid(), signal_number)
    if failure is not None:
        raise failure
    return totals
