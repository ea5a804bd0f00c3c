"""The Flex Template and the operator README, checked without a cloud account.

* metadata.json's parameters and ``haulage run``'s options match both ways
  (the option list comes from the CLI's own argparse parser; the few
  deliberate exceptions are named, with reasons, in
  deploy/template_options.py), their regexes agree with the CLI's
  validation on sample values, and the defaults quoted in the help texts are
  the CLI's defaults; the gcloud CLI, when installed, accepts the file;
* deploy/Dockerfile is built on the Beam SDK image of exactly the Beam
  version pinned in pyproject.toml and constraints.txt, for the project's
  Python, with the launcher copied in and flex_main.py as the entry
  (Docker cannot run here, so this is a reading of the file);
* deploy/README.md: its generated column tables are current; every
  ``haulage`` command in it parses (and ``haulage setup`` validates); every
  gcloud / bq flag it uses exists (checked against ``--help`` of the
  installed SDK); every ``--parameters`` name is a template parameter; and
  the Fastly log formats it gives, filled with example values, parse into
  the expected rows.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import pytest

from haulage.deploy import template_options
from haulage.pipeline import options

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
METADATA = json.loads((DEPLOY / "metadata.json").read_text())
README = (DEPLOY / "README.md").read_text()


def _parameters() -> dict[str, dict]:
    return {p["name"]: p for p in METADATA["parameters"]}


# --------------------------------------------------------------------------
# metadata.json <-> haulage run


def test_template_parameters_and_run_options_match_both_ways():
    parser = template_options.run_parser()
    cli = set(template_options.run_options(parser))
    declared = {p["name"] for p in METADATA["parameters"]}
    assert len(declared) == len(METADATA["parameters"]), "duplicate parameter names"
    expected = {template_options.parameter_name(f) for f in cli - set(template_options.NOT_TEMPLATE_PARAMETERS)}
    assert declared - expected == set(), f"parameters that are not haulage run options: {sorted(declared - expected)}"
    assert expected - declared == set(), (
        f"haulage run options missing from deploy/metadata.json: {sorted(expected - declared)} "
        "(declare them, or list them in template_options.NOT_TEMPLATE_PARAMETERS with the reason)")
    # the exclusions are real options (so the list cannot go stale) and each has a reason
    assert set(template_options.NOT_TEMPLATE_PARAMETERS) <= cli
    assert all(len(why) > 20 for why in template_options.NOT_TEMPLATE_PARAMETERS.values())
    # and the mapping flex_main uses is the same one
    assert set(template_options.template_parameters(parser)) == declared


def test_every_parameter_is_described_for_the_console():
    assert METADATA["name"] and len(METADATA["description"]) > 50
    for p in METADATA["parameters"]:
        assert p.get("label") and len(p.get("helpText", "")) > 20, p["name"]
        assert p.get("isOptional") is True, f"{p['name']}: sources and sinks are alternatives, so none is required"
        for regex in p.get("regexes", []):
            re.compile(regex)
        assert p.get("regexes"), f"{p['name']} has no regex"


VALID = {
    "subscription": ["projects/my-project/subscriptions/haulage"],
    "topic": ["projects/my-project/topics/cdn-logs"],
    "message_format": ["lines", "gcs-notification"],
    "input": ["gs://b/logs/*.gz", "gs://b/a/*.gz,gs://c/b/2026-10-*.log"],
    "bigquery_dataset": ["my-project:pypi", "example.com:my-project:pypi_2", "my-project.pypi"],
    "output_dir": ["gs://b/backfill/2026-10"],
    "window_seconds": ["60", "0.5", "2.", ".5"],
    "agent_cache_size": ["16384", "1"],
    "chunk_lines": ["20000"],
    "notification_allow": ["gs://my-logs/logs/", "gs://my-logs", "gs://a.b-c/x/y,gs://d_e/"],
    "staging_dir": ["gs://b/haulage-staging"],
    "bigquery_method": ["load-jobs", "streaming-inserts"],
    "load_interval": ["120", "30.5"],
    "chunk_mib": ["4", "0.5", "16."],
}
INVALID = {
    "subscription": ["haulage", "projects/p/topics/t"],
    "topic": ["cdn-logs", "projects/p/subscriptions/s"],
    "message_format": ["json", "LINES"],
    "input": ["/local/logs/*.gz", "gs://b/a.gz,/tmp/x"],
    "bigquery_dataset": ["pypi", "My-Project:pypi", "p:with-dash"],
    "output_dir": ["./haulage-out", "/tmp/out"],
    "window_seconds": ["-1", "abc", "1e3x"],
    "agent_cache_size": ["0", "-5", "1.5"],
    "chunk_lines": ["0", "ten"],
    "notification_allow": ["my-logs/logs/", "gs://My-Logs/x", "gs://b/logs/*.gz", "gs://ok/x,/tmp/y"],
    "staging_dir": ["/tmp/staging", "./s"],
    "bigquery_method": ["storage", "LOAD-JOBS"],
    "load_interval": ["-1", "soon"],
    "chunk_mib": ["-1", "four", "4MiB"],
}


def _cli_accepts(name: str, value: str) -> bool:
    """Does `haulage run` (as flex_main drives it) accept this parameter value?"""
    from haulage.pipeline.options import OptionsError, options_from_namespace

    source = [] if name in ("input", "subscription", "topic") else ["--subscription=projects/p1/subscriptions/s1"]
    if name in ("bigquery_dataset", "output_dir"):
        sink = []
    elif name in ("staging_dir", "bigquery_method", "load_interval"):  # BigQuery sink options
        sink = ["--bigquery_dataset=p1:d1"]
    else:
        sink = ["--output_dir=gs://b/out"]
    # notifications are read only with an allow-list, and an allow-list only applies to notifications
    if name == "notification_allow":
        source.append("--message_format=gcs-notification")
    if name == "message_format" and value == "gcs-notification":
        source.append("--notification_allow=gs://logs-bucket/logs/")
    cli_argv, rejected = template_options.to_cli_argv([f"--{name}={value}", *source, *sink])
    assert not rejected
    try:
        ns, beam = template_options.run_parser().parse_known_args(cli_argv)
        options_from_namespace(ns, beam)
    except (SystemExit, OptionsError):
        return False
    if name == "input" and any(not p.startswith("gs://") for p in ns.inputs):
        return False  # flex_main refuses local paths on Dataflow
    if name == "output_dir" and not value.startswith("gs://"):
        return False
    return True


@pytest.mark.parametrize("name", sorted(VALID))
def test_parameter_regexes_agree_with_the_cli(name, capsys):
    regexes = _parameters()[name]["regexes"]
    for value in VALID[name]:
        assert all(re.search(r, value) for r in regexes), f"{name}={value!r} refused by metadata.json"
        assert _cli_accepts(name, value), f"{name}={value!r} refused by haulage run"
    for value in INVALID[name]:
        assert not all(re.search(r, value) for r in regexes), f"{name}={value!r} accepted by metadata.json"
    capsys.readouterr()  # argparse's complaints about the invalid samples


def test_defaults_quoted_in_help_texts_are_the_cli_defaults():
    parser = template_options.run_parser()
    defaults = {template_options.parameter_name(a.option_strings[0]): a.default for a in parser._actions if a.option_strings}
    # the template starts streaming jobs: the chunk options' defaults depend on the mode, and streaming's apply
    assert defaults["chunk_lines"] is None and defaults["chunk_mib"] is None
    defaults.update(chunk_lines=options.DEFAULT_CHUNK_LINES, chunk_mib=options.DEFAULT_CHUNK_MIB)
    for p in METADATA["parameters"]:
        m = re.search(r"Default ([\w.-]+)", p["helpText"])
        if m:
            assert str(defaults[p["name"]]).removesuffix(".0") == m.group(1).rstrip("."), p["name"]
        if p["name"] == "message_format":
            assert "'lines'" in p["helpText"] and defaults["message_format"] == "lines"


def test_gcloud_accepts_the_metadata(tmp_path):
    gcloud = shutil.which("gcloud")
    if not gcloud:
        pytest.skip("gcloud CLI not installed")
    env = {"CLOUDSDK_CONFIG": str(tmp_path / "gcloud"), "CLOUDSDK_CORE_DISABLE_PROMPTS": "1", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [gcloud, "dataflow", "flex-template", "build", "gs://haulage-test/templates/t.json",
         "--image", "us-central1-docker.pkg.dev/p1/haulage/haulage:test", "--sdk-language", "PYTHON",
         "--metadata-file", str(DEPLOY / "metadata.json"), "--print-only", "--project", "test-project"],
        capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    spec = json.loads(proc.stdout.split("\n", 1)[1])  # gcloud prints a YAML block scalar header first
    assert spec["sdkInfo"]["language"] == "PYTHON"
    assert {p["name"] for p in spec["metadata"]["parameters"]} == set(_parameters())
    for p in spec["metadata"]["parameters"]:
        assert p["regexes"] == _parameters()[p["name"]]["regexes"] and p["helpText"] == _parameters()[p["name"]]["helpText"]


# --------------------------------------------------------------------------
# Dockerfile


def _beam_pin() -> str:
    pyproject = (ROOT / "pyproject.toml").read_text()
    (pin,) = re.findall(r'"apache-beam\[gcp\]==([\d.]+)"', pyproject)
    (constraint,) = re.findall(r"^apache-beam==([\d.]+)$", (ROOT / "constraints.txt").read_text(), re.M)
    assert pin == constraint, "pyproject.toml and constraints.txt pin different Beam versions"
    return pin


def test_dockerfile_is_the_beam_sdk_image_of_the_pinned_version_with_the_launcher():
    import apache_beam

    text = (DEPLOY / "Dockerfile").read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith("#")]
    froms = [line.split()[1:] for line in instructions if line.startswith("FROM ")]
    assert froms[0] == ["${LAUNCHER_IMAGE}", "AS", "launcher"]
    (launcher,) = re.findall(r"^ARG LAUNCHER_IMAGE=(\S+)$", text, re.M)
    py = f"{sys.version_info.major}{sys.version_info.minor}"
    assert launcher.startswith(f"gcr.io/dataflow-templates-base/python{py}-template-launcher-base:")
    # the final stage (what runs) is Beam's SDK image: same Beam, same Python as this project
    assert froms[-1] == [f"apache/beam_python{sys.version_info.major}.{sys.version_info.minor}_sdk:{_beam_pin()}"]
    assert _beam_pin() == apache_beam.__version__
    assert "COPY --from=launcher /opt/google/dataflow/python_template_launcher /opt/google/dataflow/python_template_launcher" in instructions
    (py_file,) = re.findall(r'^ENV FLEX_TEMPLATE_PYTHON_PY_FILE="\$\{WORKDIR\}/(\S+)"$', text, re.M)
    assert (ROOT / py_file).is_file() and py_file == "deploy/flex_main.py"
    assert "def main(" in (ROOT / py_file).read_text() and '__name__ == "__main__"' in (ROOT / py_file).read_text()
    # everything copied exists, and haulage is installed with the project's pins
    for line in instructions:
        if line.startswith("COPY ") and "--from" not in line:
            for src in line.split()[1:-1]:
                assert (ROOT / src).exists(), src
    assert re.search(r"pip install .*--constraint constraints\.txt \.", text)
    assert instructions[-1] == 'ENTRYPOINT ["/opt/apache/beam/boot"]'


def test_cloudbuild_builds_that_dockerfile():
    text = (DEPLOY / "cloudbuild.yaml").read_text()
    assert '"--file", "deploy/Dockerfile"' in text and '"${_IMAGE}"' in text


def test_flex_main_runs_as_a_script_with_absolute_imports_only():
    text = (DEPLOY / "flex_main.py").read_text()
    assert not re.search(r"^\s*from \.", text, re.M), "the launcher runs flex_main.py as a script"
    assert "wait_until_finish" not in text.replace("``wait_until_finish``", "")


# --------------------------------------------------------------------------
# README


def test_readme_generated_sections_are_current():
    from haulage.deploy import docs

    assert docs.regenerate(README) == README, "run: .venv/bin/python -m haulage.deploy.docs"
    for table in ("file_downloads", "simple_requests", "unprocessed", "views"):
        assert f"<!-- generated: {table} -->" in README


def _shell_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README, re.S)


def _commands() -> list[str]:
    """Every command line of the README's sh blocks, continuations joined, loop bodies included."""
    out = []
    for block in _shell_blocks():
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            line = re.sub(r"^(for .*?; do|do|done)\s*", "", line).strip()
            if line:
                out.append(line)
    return out


def _names_env() -> dict[str, str]:
    """The README's step-0 variables, expanded (command substitutions replaced by a placeholder)."""
    env: dict[str, str] = {}
    for line in _shell_blocks()[0].splitlines():
        m = re.match(r"export (\w+)=(\S+)", line)
        if m:
            value = re.sub(r"\$\(.*?\)", "abc1234", m.group(2))
            env[m.group(1)] = re.sub(r"\$\{?(\w+)\}?", lambda v: env.get(v.group(1), v.group(0)), value)
    return env


def _expand(text: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda v: env.get(v.group(1), v.group(0)), text)


def test_readme_haulage_commands_parse():
    from haulage.cli import setup as setup_command
    from haulage.cli.main import build_parser

    env = _names_env()
    assert {"PROJECT", "REGION", "BUCKET", "DATASET", "TOPIC", "SUBSCRIPTION", "IMAGE", "TEMPLATE"} <= set(env)
    parser = build_parser()
    found = 0
    for command in _commands():
        m = re.match(r"(?:\.venv/bin/)?haulage (.*)", command)
        if not m:
            continue
        found += 1
        argv = shlex.split(_expand(m.group(1), env))
        args, extra = parser.parse_known_args(argv)
        if args.command == "run":  # Beam's own options (--runner, --streaming) pass through; haulage validates
            from haulage.pipeline.options import options_from_namespace

            options_from_namespace(args, extra)
        else:
            assert not extra, (command, extra)
        if args.command == "setup":
            setup_command._validate(args)  # raises on anything setup would refuse as a usage error
    assert found >= 1


GCLOUD_COMMANDS = [
    "artifacts repositories add-iam-policy-binding", "artifacts repositories create", "auth application-default login",
    "builds submit", "config get-value", "config set", "dataflow flex-template build", "dataflow flex-template run",
    "dataflow jobs drain", "dataflow jobs list", "iam service-accounts add-iam-policy-binding",
    "iam service-accounts create", "iam service-accounts keys create", "projects add-iam-policy-binding",
    "pubsub subscriptions add-iam-policy-binding", "pubsub subscriptions pull", "pubsub topics add-iam-policy-binding",
    "services enable", "storage buckets add-iam-policy-binding", "storage buckets create", "storage buckets update",
]


def _flags(command: str) -> set[str]:
    return {t.split("=", 1)[0] for t in shlex.split(command) if t.startswith("--")}


def _tool_commands(tool: str) -> list[str]:
    out = []
    for command in _commands():
        assigned = re.match(r"^\w+=\$\((.*)\)$", command)  # JOB_ID=$(gcloud ...)
        if assigned:
            command = assigned.group(1)
        if command.startswith(tool + " "):
            out.append(command)
        # simple command substitutions inside, e.g. --member=user:$(gcloud config get-value account)
        out += [m.group(1) for m in re.finditer(rf"\$\(({tool} [^()]*)\)", command)]
    return out


@lru_cache(maxsize=None)
def _help(tool: str, path: str, config: str) -> set[str]:
    argv = [shutil.which(tool) or tool, *path.split(), "--help"] if tool == "gcloud" else [shutil.which(tool) or tool, "help", path]
    env = {"CLOUDSDK_CONFIG": config, "CLOUDSDK_CORE_DISABLE_PROMPTS": "1", "PATH": "/usr/bin:/bin", "HOME": config}
    text = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env).stdout
    text = re.sub(r"\x1b\[[0-9;]*m", "", text)
    flags = set(re.findall(r"--[a-z][a-z0-9_-]*", text))
    flags |= {f"--{m}" for m in re.findall(r"--\[no-?\]([a-z][a-z0-9_-]*)", text)}
    flags |= {f"--no-{m}" for m in re.findall(r"--\[no-?\]([a-z][a-z0-9_-]*)", text)}
    return flags


@pytest.mark.slow
def test_readme_gcloud_and_bq_flags_exist(tmp_path):
    if not (shutil.which("gcloud") and shutil.which("bq")):
        pytest.skip("gcloud / bq not installed")
    config = str(tmp_path)
    checks: list[tuple[str, str, str]] = []
    for command in _tool_commands("gcloud"):
        rest = command[len("gcloud "):]
        path = next((p for p in GCLOUD_COMMANDS if rest == p or rest.startswith(p + " ")), None)
        assert path, f"README uses a gcloud command this test does not know yet: {command!r}"
        checks.append(("gcloud", path, command))
    for command in _tool_commands("bq"):
        checks.append(("bq", command.split()[1], command))
    assert len(checks) > 30
    paths = sorted({(tool, path) for tool, path, _ in checks})
    with ThreadPoolExecutor(4) as pool:
        helps = dict(zip(paths, pool.map(lambda p: _help(p[0], p[1], config), paths)))
    for tool, path, command in checks:
        known = helps[(tool, path)]
        assert known, f"no help for {tool} {path}"
        unknown = _flags(command) - known
        assert not unknown, f"{tool} {path}: unknown flags {sorted(unknown)} in {command!r}"


def test_readme_template_parameters_exist():
    declared = set(_parameters()) | {"sdk_container_image"}  # a Beam option Dataflow passes to the launcher
    used = set()
    for command in _tool_commands("gcloud"):
        for m in re.finditer(r"--parameters[ =]\"?(?:\^.\^)?(\w+)=", command):
            used.add(m.group(1))
    assert {"subscription", "bigquery_dataset", "message_format", "input", "output_dir", "sdk_container_image"} <= used
    assert used - {"app"} <= declared, sorted(used - declared)


# --------------------------------------------------------------------------
# the Fastly log formats


EXAMPLE = {
    "now": "Thu, 07 Jan 2021 20:54:54 GMT",
    "client.geo.country_code": "US",
    "req.url.path": "/packages/f7/12/ec3f2e203afa394a149911729357aa48affc59c20e2c1c8297a60f33f133/threadpoolctl-2.1.0-py3-none-any.whl",
    "tls.client.protocol": "TLSv1.2",
    "tls.client.cipher": "ECDHE-RSA-AES128-GCM-SHA256",
    "resp.http.x-amz-meta-project": "threadpoolctl",
    "resp.http.x-amz-meta-version": "2.1.0",
    "resp.http.x-amz-meta-package-type": "bdist_wheel",
    "req.http.user-agent": 'pip/20.1.1 {"ci":null,"cpu":"x86_64","implementation":{"name":"CPython","version":"3.7.9"},'
                           '"installer":{"name":"pip","version":"20.1.1"},"python":"3.7.9"}',
}


def _fastly_formats() -> dict[str, str]:
    blocks = re.findall(r"```text\n(.*?)\n```", README, re.S)
    formats = {b.split("|", 1)[0]: b for b in blocks if "%{" in b}
    assert set(formats) == {"download", "simple"}
    # the commands use the very same strings
    for kind, fmt in formats.items():
        assert README.count(f"--format '{fmt}'") >= 1, kind
    return formats


def _render(fmt: str, values: dict[str, str]) -> str:
    unknown = set(re.findall(r"%\{([^}]*)\}V", fmt)) - set(values)
    assert not unknown, f"format uses {unknown}"
    return re.sub(r"%\{([^}]*)\}V", lambda m: values[m.group(1)], fmt)


def test_fastly_formats_produce_lines_haulage_parses():
    from haulage.parsers import LineParser, Origin

    formats = _fastly_formats()
    parser = LineParser()
    origin = Origin.for_file("gs://logs/logs/2026-10-01T00.log.gz")
    rec = parser.parse(_render(formats["download"], EXAMPLE), origin, 1, received_at="2026-10-01T00:00:00Z")
    assert rec.table == "file_downloads", rec.row
    row = rec.row
    assert (row["timestamp"], row["country_code"], row["project"], row["tls_protocol"]) == \
        ("2021-01-07T20:54:54Z", "US", "threadpoolctl", "TLSv1.2")
    assert row["file"] == {"filename": "threadpoolctl-2.1.0-py3-none-any.whl", "project": "threadpoolctl",
                           "version": "2.1.0", "type": "bdist_wheel"}
    assert row["details"]["installer"]["name"] == "pip"

    simple = _render(formats["simple"], {**EXAMPLE, "req.url.path": "/simple/NumPy/"})
    rec = parser.parse(simple, origin, 2, received_at="2026-10-01T00:00:00Z")
    assert rec.table == "simple_requests" and rec.row["project"] == "numpy", rec.row

    # a value the CDN did not have is rendered "(null)" and read as NULL
    rec = parser.parse(_render(formats["download"], {**EXAMPLE, "client.geo.country_code": "(null)"}), origin, 3,
                       received_at="2026-10-01T00:00:00Z")
    assert rec.table == "file_downloads" and rec.row["country_code"] is None
