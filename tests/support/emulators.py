"""Start and stop real local Google Cloud emulators for tests.

Every emulator is started on a free loopback port, with its stdout/stderr in a
log file inside a private temporary directory, and is polled until it answers
(``timeout`` seconds, 60 by default).  On exit its whole process group is
terminated (SIGTERM, then SIGKILL) and the temporary directory removed.  If an
emulator does not come up, :class:`RuntimeError` is raised with the tail of its
log; if a needed program (java, the Pub/Sub jar, ``bqemulator``,
``gcp-storage-emulator``) is missing, :class:`EmulatorUnavailable` (a
``RuntimeError``) says what is missing.  Nothing here waits without a bound.

The recipes follow shared/docs/emulators.md.

pytest note: bqemulator registers a pytest plugin (entry point ``bqemulator``)
that imports ``testcontainers``, which is not installed; run pytest with
``-p no:bqemulator`` (or put it in addopts) or collection fails at startup.

Beam notes (verified by tests/test_emulators.py):

* Beam's GCP IO asks ``google.auth.default()`` for credentials and caches the
  answer for the whole process (``apache_beam.internal.gcp.auth._Credentials``).
  Use :func:`fake_google_credentials` (its env includes
  ``GOOGLE_APPLICATION_CREDENTIALS``) *before* the first Beam pipeline touches
  GCP, and call :func:`reset_beam_credentials_cache` so a cached ``None`` from
  an earlier test does not stick.
* Avoid the Prism download: use ``--runner=FnApiRunner`` for batch pipelines
  and ``--runner=BundleBasedDirectRunner`` for streaming (Pub/Sub) pipelines.
  Plain ``--runner=DirectRunner`` always tries Prism first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Iterator, Mapping, Optional

DEFAULT_TIMEOUT = 60.0
LOOPBACK = "127.0.0.1"

PUBSUB_JAR_GLOB = "cloud-pubsub-emulator-*.jar"
PUBSUB_JAR_DIRS = (
    "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/lib",
    "/usr/share/google-cloud-sdk/platform/pubsub-emulator/lib",
    "/opt/google-cloud-sdk/platform/pubsub-emulator/lib",
)


class EmulatorUnavailable(RuntimeError):
    """A program needed to run an emulator is not installed."""


# --------------------------------------------------------------------------
# helpers


def free_port() -> int:
    """A TCP port on the loopback interface that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"<cannot read {path}: {exc}>"
    tail = [line if len(line) <= 400 else line[:400] + " ..."
            for line in text.splitlines()[-lines:]]
    return "\n".join(tail) or "<empty log>"


def _http_status(url: str, timeout: float = 2.0) -> Optional[int]:
    """HTTP status of GET url, or None if nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


def _venv_executable(name: str) -> Optional[str]:
    """``name`` next to sys.executable (the venv's bin/), else on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return shutil.which(name)


class _ManagedProcess:
    """A child process in its own process group, logging to a file."""

    def __init__(self, name: str, argv: list[str], log_path: Path,
                 env: Optional[Mapping[str, str]] = None,
                 cwd: Optional[Path] = None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._log = open(log_path, "wb")
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=str(cwd) if cwd else None,
                start_new_session=True,  # own process group: killpg on exit
            )
        except OSError as exc:
            self._log.close()
            raise EmulatorUnavailable(
                f"{name}: cannot run {argv[0]!r}: {exc}") from exc
        self.started_at = time.monotonic()
        self.ready_after: Optional[float] = None

    def wait_ready(self, is_ready: Callable[[], bool],
                   timeout: float = DEFAULT_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            code = self.proc.poll()
            if code is not None:
                raise RuntimeError(
                    f"{self.name} exited with code {code} before it answered.\n"
                    f"command: {' '.join(self.argv)}\n"
                    f"--- tail of {self.log_path} ---\n{_log_tail(self.log_path)}")
            if is_ready():
                self.ready_after = time.monotonic() - self.started_at
                return
            if time.monotonic() >= deadline:
                raise RuntimeError(
                    f"{self.name} did not answer within {timeout:g} s.\n"
                    f"command: {' '.join(self.argv)}\n"
                    f"--- tail of {self.log_path} ---\n{_log_tail(self.log_path)}")
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)

    def _group_alive(self) -> bool:
        try:
            os.killpg(self.proc.pid, 0)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the whole process group; SIGKILL whatever is left after grace.

        Wrappers (gcloud, shell scripts) may exit before their java child, so
        this waits for the group to be empty, not just for the leader.
        """
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            self.proc.poll()  # reap the leader so it does not count as alive
            if self.proc.returncode is not None and not self._group_alive():
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        self._log.close()


@contextlib.contextmanager
def _tempdir(prefix: str) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def patched_env(mapping: Mapping[str, Optional[str]]) -> Iterator[None]:
    """Set os.environ keys (a value of None unsets one); restore on exit."""
    saved = {key: os.environ.get(key) for key in mapping}
    try:
        for key, value in mapping.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = str(value)
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def reset_beam_credentials_cache() -> None:
    """Forget the credentials Beam cached for this process (if Beam is loaded).

    Beam resolves Google credentials once per process and keeps the result,
    including ``None`` after a failed lookup.  Call this after changing
    GOOGLE_APPLICATION_CREDENTIALS so the next pipeline looks again.
    """
    with contextlib.suppress(ImportError):
        from apache_beam.internal.gcp import auth

        with auth._Credentials._credentials_lock:
            auth._Credentials._credentials_init = False
            auth._Credentials._credentials = None


# --------------------------------------------------------------------------
# Pub/Sub


@dataclasses.dataclass
class PubSubEmulator:
    host: str  # "127.0.0.1:PORT"
    project: str
    log_path: Path
    startup_seconds: float

    def env(self) -> dict[str, str]:
        return {"PUBSUB_EMULATOR_HOST": self.host}


def unique_name(prefix: str) -> str:
    """``prefix-<8 hex>``: a topic or subscription name no other test uses."""
    import uuid

    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclasses.dataclass
class PubSubChannel:
    """A fresh topic on the emulator, its subscription (None when not asked for) and the two clients."""

    publisher: object
    subscriber: object
    topic: str
    subscription: Optional[str]


@contextlib.contextmanager
def pubsub_channel(emulator: PubSubEmulator, prefix: str = "logs", *, subscribe: bool = True,
                   ack_deadline_seconds: int = 10, retain_acked_messages: bool = False) -> Iterator[PubSubChannel]:
    """A topic (and, with ``subscribe``, a subscription to it) made for one test, on ``emulator``.

    The clients are made, and the body runs, with the emulator's environment
    set (a client reads ``PUBSUB_EMULATOR_HOST`` when it is made, and a
    haulage started from the body inherits it); both are closed at the end.
    Tests differ in the ack deadline (how soon an unacknowledged message comes
    back) and in keeping acknowledged messages (what a seek replays).
    """
    from google.cloud import pubsub_v1

    with patched_env(emulator.env()):
        publisher = pubsub_v1.PublisherClient()
        subscriber = pubsub_v1.SubscriberClient()
        try:
            topic = publisher.topic_path(emulator.project, unique_name(prefix))
            publisher.create_topic(name=topic)
            subscription = None
            if subscribe:
                subscription = subscriber.subscription_path(emulator.project, unique_name(f"{prefix}-sub"))
                subscriber.create_subscription(request={
                    "name": subscription, "topic": topic, "ack_deadline_seconds": ack_deadline_seconds,
                    "retain_acked_messages": retain_acked_messages,
                })
            yield PubSubChannel(publisher, subscriber, topic, subscription)
        finally:
            publisher.stop()
            subscriber.close()


def find_pubsub_jar() -> Optional[str]:
    """The Pub/Sub emulator jar of the installed gcloud SDK, if any."""
    dirs = list(PUBSUB_JAR_DIRS)
    gcloud = shutil.which("gcloud")
    if gcloud:
        sdk_root = Path(os.path.realpath(gcloud)).parent.parent
        dirs.insert(0, str(sdk_root / "platform" / "pubsub-emulator" / "lib"))
    for d in dirs:
        jars = sorted(glob.glob(os.path.join(d, PUBSUB_JAR_GLOB)))
        if jars:
            return jars[-1]
    return None


@contextlib.contextmanager
def pubsub_emulator(project: str = "test-project",
                    timeout: float = DEFAULT_TIMEOUT) -> Iterator[PubSubEmulator]:
    """Google's Pub/Sub emulator: the jar run with java, else via gcloud."""
    java = shutil.which("java")
    jar = find_pubsub_jar()
    gcloud = shutil.which("gcloud")
    with _tempdir("pubsub-emulator-") as tmp:
        port = free_port()
        host = f"{LOOPBACK}:{port}"
        env = dict(os.environ)
        env.pop("PUBSUB_EMULATOR_HOST", None)
        (tmp / "data").mkdir()
        if java and jar:
            argv = [java, "-jar", jar, f"--host={LOOPBACK}", f"--port={port}",
                    f"--dir={tmp / 'data'}"]
        elif gcloud:
            env["CLOUDSDK_CONFIG"] = str(tmp / "gcloud-config")
            env["CLOUDSDK_CORE_DISABLE_PROMPTS"] = "1"
            argv = [gcloud, "beta", "emulators", "pubsub", "start",
                    f"--host-port={host}", f"--project={project}",
                    f"--data-dir={tmp / 'data'}"]
        else:
            missing = []
            if not java:
                missing.append("`java` on PATH")
            if not jar:
                missing.append(f"the Pub/Sub emulator jar ({PUBSUB_JAR_GLOB} "
                               f"under {PUBSUB_JAR_DIRS[0]})")
            missing.append("`gcloud` on PATH (fallback)")
            raise EmulatorUnavailable(
                "Pub/Sub emulator unavailable; missing: " + ", ".join(missing)
                + ". Install the Debian package google-cloud-cli-pubsub-emulator.")
        proc = _ManagedProcess("Pub/Sub emulator", argv, tmp / "pubsub.log",
                               env=env, cwd=tmp)
        try:
            url = f"http://{host}/v1/projects/{project}/topics"
            proc.wait_ready(lambda: _http_status(url) == 200, timeout)
            yield PubSubEmulator(host=host, project=project,
                                 log_path=proc.log_path,
                                 startup_seconds=proc.ready_after or 0.0)
        finally:
            proc.stop()


# --------------------------------------------------------------------------
# BigQuery


@dataclasses.dataclass
class BigQueryEmulator:
    url: str  # "http://127.0.0.1:PORT"
    project: str
    grpc_port: int
    home: Path
    log_path: Path
    startup_seconds: float

    def env(self) -> dict[str, str]:
        return {"BIGQUERY_EMULATOR_HOST": self.url}

    def client(self):
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(
            project=self.project,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=self.url),
        )


def _install_duckdb_spatial(home: Path) -> None:
    """Copy the spatial extension shipped on PyPI into HOME's DuckDB dir.

    DuckDB would otherwise try to download it, which fails offline.
    """
    try:
        import duckdb
        import duckdb_extension_spatial
    except ImportError as exc:
        raise EmulatorUnavailable(
            f"BigQuery emulator needs duckdb and duckdb-extension-spatial "
            f"(pip install 'duckdb==1.5.5' duckdb-extension-spatial==1.5.5): {exc}"
        ) from exc
    version = "v" + duckdb.__version__
    source = (Path(duckdb_extension_spatial.__file__).parent / "extensions"
              / version / "spatial.duckdb_extension")
    if not source.is_file():
        raise EmulatorUnavailable(
            f"BigQuery emulator: no spatial extension for duckdb {version} at "
            f"{source}; install duckdb-extension-spatial matching duckdb.")
    platform = duckdb.execute("PRAGMA platform").fetchone()[0]
    target_dir = home / ".duckdb" / "extensions" / version / platform
    target_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target_dir / source.name)


@contextlib.contextmanager
def bigquery_emulator(project: str = "test-project",
                      timeout: float = DEFAULT_TIMEOUT,
                      gcs_local_root: Optional[str | os.PathLike] = None,
                      ) -> Iterator[BigQueryEmulator]:
    """``bqemulator`` (DuckDB-backed BigQuery REST API), in-memory.

    ``gcs_local_root``: where ``gs://`` load-job sources live on disk, e.g.
    ``GcsEmulator.data_dir / ".cloudstorage"`` (sets BQEMU_GCS_LOCAL_ROOT).
    """
    exe = _venv_executable("bqemulator")
    if not exe:
        raise EmulatorUnavailable(
            f"BigQuery emulator unavailable: no `bqemulator` executable next to "
            f"{sys.executable} or on PATH (pip install bqemulator==1.4.0).")
    with _tempdir("bigquery-emulator-") as tmp:
        home = tmp / "home"
        home.mkdir()
        _install_duckdb_spatial(home)
        port, grpc_port = free_port(), free_port()
        while grpc_port == port:
            grpc_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("BQEMU_")}
        env["HOME"] = str(home)
        env.pop("BIGQUERY_EMULATOR_HOST", None)
        if gcs_local_root is not None:
            env["BQEMU_GCS_LOCAL_ROOT"] = str(gcs_local_root)
        argv = [exe, "start", "--rest-host", LOOPBACK, "--rest-port", str(port),
                "--grpc-host", LOOPBACK, "--grpc-port", str(grpc_port),
                "--project", project, "--ephemeral", "--log-level", "info"]
        proc = _ManagedProcess("BigQuery emulator (bqemulator)", argv,
                               tmp / "bqemulator.log", env=env, cwd=tmp)
        url = f"http://{LOOPBACK}:{port}"
        try:
            proc.wait_ready(lambda: _http_status(f"{url}/readyz") == 200, timeout)
            yield BigQueryEmulator(url=url, project=project, grpc_port=grpc_port,
                                   home=home, log_path=proc.log_path,
                                   startup_seconds=proc.ready_after or 0.0)
        finally:
            proc.stop()


# --------------------------------------------------------------------------
# Cloud Storage


@dataclasses.dataclass
class GcsEmulator:
    url: str  # "http://127.0.0.1:PORT"
    bucket: str
    project: str
    data_dir: Path  # objects are files under data_dir/.cloudstorage/BUCKET/OBJECT
    log_path: Path
    startup_seconds: float

    def env(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.url}

    def object_path(self, name: str, bucket: Optional[str] = None) -> Path:
        """Where the emulator keeps object ``name`` on disk."""
        return self.data_dir / ".cloudstorage" / (bucket or self.bucket) / name

    def client(self):
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        # client_options pins the endpoint even if STORAGE_EMULATOR_HOST is unset.
        return storage.Client(
            project=self.project,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": self.url},
        )


@contextlib.contextmanager
def gcs_emulator(bucket: str = "test-bucket", project: str = "test-project",
                 timeout: float = DEFAULT_TIMEOUT) -> Iterator[GcsEmulator]:
    """``gcp-storage-emulator`` storing objects on disk, with ``bucket`` made."""
    exe = _venv_executable("gcp-storage-emulator")
    if not exe:
        raise EmulatorUnavailable(
            f"GCS emulator unavailable: no `gcp-storage-emulator` executable "
            f"next to {sys.executable} or on PATH (pip install gcp-storage-emulator).")
    with _tempdir("gcs-emulator-") as tmp:
        data_dir = tmp / "data"
        data_dir.mkdir()
        port = free_port()
        env = dict(os.environ)
        env.pop("STORAGE_EMULATOR_HOST", None)
        argv = [exe, "-d", str(data_dir), "start", "--host", LOOPBACK,
                "--port", str(port), "--default-bucket", bucket]
        proc = _ManagedProcess("GCS emulator (gcp-storage-emulator)", argv,
                               tmp / "gcs.log", env=env, cwd=tmp)
        url = f"http://{LOOPBACK}:{port}"
        try:
            proc.wait_ready(
                lambda: _http_status(f"{url}/storage/v1/b/{bucket}") == 200, timeout)
            yield GcsEmulator(url=url, bucket=bucket, project=project,
                              data_dir=data_dir, log_path=proc.log_path,
                              startup_seconds=proc.ready_after or 0.0)
        finally:
            proc.stop()


# --------------------------------------------------------------------------
# Fake Google credentials for Beam


class _TokenHandler(http.server.BaseHTTPRequestHandler):
    BODY = json.dumps({"access_token": "x", "token_type": "Bearer",
                       "expires_in": 3600}).encode()

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.BODY)))
        self.end_headers()
        self.wfile.write(self.BODY)

    do_POST = _answer
    do_GET = _answer

    def log_message(self, format, *args):  # keep test output quiet
        pass


def _make_private_key_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@contextlib.contextmanager
def fake_google_credentials(tmpdir: str | os.PathLike,
                            project: str = "test-project") -> Iterator[dict[str, str]]:
    """A throwaway service account whose token endpoint is a local server.

    Yields env vars to apply (e.g. with :func:`patched_env`):
    GOOGLE_APPLICATION_CREDENTIALS, GOOGLE_CLOUD_PROJECT, and NO_GCE_CHECK=True
    (so google-auth never probes the GCE metadata server).
    """
    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), _TokenHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever,
                              name="fake-token-server", daemon=True)
    thread.start()
    try:
        token_uri = f"http://{LOOPBACK}:{server.server_address[1]}/token"
        info = {
            "type": "service_account",
            "project_id": project,
            "private_key_id": "0" * 40,
            "private_key": _make_private_key_pem(),
            "client_email": f"tests@{project}.iam.gserviceaccount.com",
            "client_id": "1" * 21,
            "auth_uri": token_uri,
            "token_uri": token_uri,
        }
        path = Path(tmpdir) / "fake-service-account.json"
        path.write_text(json.dumps(info))
        yield {
            "GOOGLE_APPLICATION_CREDENTIALS": str(path),
            "GOOGLE_CLOUD_PROJECT": project,
            "NO_GCE_CHECK": "True",
        }
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
