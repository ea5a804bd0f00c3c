"""Session-scoped fixtures that start real local Google Cloud emulators.

Each emulator starts once per test run, on first use, and is stopped at the
end of the session.  See tests/support/emulators.py.

Hypothesis runs in one of two profiles, chosen by ``HYPOTHESIS_PROFILE``:
``gate`` (the default, what ``make test`` and CI run) draws the same examples
on every run, so a green suite stays green and a red one is reproducible;
``explore`` (``make explore``) draws fresh random examples on every run to
look for new failures, which then become ``@example`` cases.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from support import emulators

settings.register_profile("gate", derandomize=True, database=None, print_blob=True)
settings.register_profile("explore", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "gate"))


@pytest.fixture(scope="session", autouse=True)
def private_cache_home(tmp_path_factory):
    """haulage's default BigQuery staging lives under XDG_CACHE_HOME: keep the tests' out of ~/.cache."""
    import os

    saved = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache-home"))
    yield
    if saved is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = saved


@pytest.fixture(scope="session")
def pubsub_emulator():
    """Google's Pub/Sub emulator; ``.host``, ``.project``, ``.env()``."""
    with emulators.pubsub_emulator(project="test-project") as emu:
        yield emu


@pytest.fixture(scope="session")
def gcs_emulator():
    """gcp-storage-emulator with bucket ``test-bucket``; ``.url``, ``.client()``."""
    with emulators.gcs_emulator(bucket="test-bucket") as emu:
        yield emu


@pytest.fixture(scope="session")
def bigquery_emulator():
    """bqemulator; ``.url``, ``.client()``, ``.env()``."""
    with emulators.bigquery_emulator(project="test-project") as emu:
        yield emu


@pytest.fixture(scope="session")
def google_credentials(tmp_path_factory):
    """Env vars for a throwaway service account backed by a local token server.

    Not applied to os.environ: use ``emulators.patched_env(google_credentials)``.
    """
    with emulators.fake_google_credentials(
            tmp_path_factory.mktemp("fake-google-credentials"),
            project="test-project") as env:
        yield env


def pytest_terminal_summary(terminalreporter):
    """The fault-injection suite's table: faults injected and lines accounted for."""
    from support.exactly_once import FAULT_TABLE, render_fault_table

    if FAULT_TABLE:
        terminalreporter.write_sep("=", "exactly once: faults injected and lines accounted for")
        terminalreporter.write_line(render_fault_table(FAULT_TABLE))
