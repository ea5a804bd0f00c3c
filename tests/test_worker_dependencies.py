"""The Dataflow worker image installs what the pipeline needs and nothing for the workstation.

``haulage stats`` needs DuckDB and matplotlib; the pipeline needs neither,
and every package in the worker image (deploy/Dockerfile: ``pip install .``)
is start-up time and attack surface on every worker. Checked offline:

* the image installs haulage without extras;
* the closure of haulage's own requirements (followed through the installed
  packages' metadata, markers evaluated for this Python, extras as
  requested) contains neither duckdb nor matplotlib — they come only with the
  ``stats`` extra;
* in a process where importing duckdb or matplotlib fails, the template
  launcher builds both Dataflow jobs (streaming and batch) and a local run
  parses the fixtures — so nothing on the worker path imports them.
"""

from __future__ import annotations

import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
WORKSTATION_ONLY = {"duckdb", "matplotlib"}


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(requirements: list[Requirement]) -> set[str]:
    """Every distribution these requirements pull in (installed metadata; markers for this interpreter)."""
    seen: set[tuple[str, frozenset[str]]] = set()
    names: set[str] = set()
    todo = [(r, frozenset()) for r in requirements]
    while todo:
        req, _ = todo.pop()
        key = (_normal(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        names.add(key[0])
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue  # not installed here, so not needed on this platform either
        for text in dist.requires or []:
            sub = Requirement(text)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in (req.extras or {""})):
                todo.append((sub, frozenset()))
    return names


def _base_requirements() -> list[Requirement]:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"]]


def test_the_image_installs_haulage_without_extras():
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    (install,) = [line for line in text.splitlines() if "pip install" in line and not line.lstrip().startswith("#")]
    assert re.search(r"pip install .*--constraint constraints\.txt \.(\s|$)", install), install
    assert "[" not in install, f"the worker image installs extras: {install}"


def test_worker_requirements_exclude_the_workstation_tools():
    closure = _closure(_base_requirements())
    assert {"apache-beam", "pyarrow", "google-cloud-bigquery", "google-cloud-pubsub", "orjson"} <= closure
    assert not closure & WORKSTATION_ONLY, sorted(closure & WORKSTATION_ONLY)
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert {_normal(Requirement(r).name) for r in extras["stats"]} == WORKSTATION_ONLY


BLOCKED_RUN = r'''
import sys, importlib.abc

class Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("duckdb", "matplotlib"):
            raise ImportError(f"{name} is not in the worker image", name=name)
        return None

sys.meta_path.insert(0, Blocked())
from haulage.deploy.flex_main import launch

common = ["--project=test-project", "--region=us-central1", "--temp_location=gs://haulage-test/tmp",
          "--staging_location=gs://haulage-test/staging",
          "--sdk_container_image=example/haulage:test", "--dry_run=True"]
launch(["--subscription=projects/test-project/subscriptions/s1", "--bigquery_dataset=test-project:pypi", *common])
launch(["--subscription=projects/test-project/subscriptions/s1", "--message_format=gcs-notification",
        "--notification_allow=gs://logs-bucket/logs/", "--output_dir=gs://haulage-test/out", *common])
from haulage.cli.main import main
code = main(["run", "--input", "fixtures/downloads-2026-10-01T00.log.gz", "--output-dir", sys.argv[1], "--quiet"])
assert code == 0, code
assert not {"duckdb", "matplotlib"} & {m.split(".")[0] for m in sys.modules}
print("ok")
'''


def test_the_worker_path_runs_without_them(tmp_path):
    proc = subprocess.run([sys.executable, "-c", BLOCKED_RUN, str(tmp_path / "out")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stdout[-2000:] + proc.stderr[-3000:]
    assert (tmp_path / "out" / "file_downloads").is_dir()
