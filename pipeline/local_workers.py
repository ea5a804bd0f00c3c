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
``run_command.local_runner``) on its files. Forking shares the driver's
imports, nothing crosses processes but the file list and the counters, and
the run summary adds up every worker's counters.

The default is one worker per core the process may run on; ``--workers 1``
runs in the driver itself, as before.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Optional, Sequence

from .file_source import InputFile

__all__ = ["default_workers", "deal_files", "run_in_workers"]

_LOG = logging.getLogger("haulage")


def default_workers() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


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

_job: Optional[Job] = None


def _run_share(numbered: tuple[str, list[InputFile]]) -> dict[str, int]:
    assert _job is not None
    name, share = numbered
    return _job(share, name)


def run_in_workers(files: Sequence[InputFile], workers: int, job: Job) -> dict[str, int]:
    """Run ``job`` on each share of ``files`` in its own forked process; the counters summed.

    ``job`` runs a whole pipeline on its files and returns its ``haulage``
    counters. A worker that fails fails the run (its exception is raised
    here); a worker that dies (killed, out of memory) raises
    ``BrokenProcessPool`` instead of hanging.
    """
    global _job
    shares = deal_files(files, workers)
    if len(shares) == 1:
        return job(shares[0], "")
    _job = job  # inherited by the forked workers; nothing is pickled but the shares
    numbered = [(f"{i}/{len(shares)}", share) for i, share in enumerate(shares, 1)]
    try:
        with ProcessPoolExecutor(len(shares), mp_context=multiprocessing.get_context("fork")) as pool:
            results = list(pool.map(_run_share, numbered))
    finally:
        _job = None
    totals: dict[str, int] = {}
    for counters in results:
        for name, value in counters.items():
            totals[name] = totals.get(name, 0) + value
    return totals
