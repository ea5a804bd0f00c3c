"""The real Dataflow job graph, built offline.

Beam's DataflowRunner has a test option ``--dry_run=True``
(``apache_beam.options.pipeline_options.TestOptions``; ``DataflowRunner.run_pipeline``
returns right after building the ``Job`` when it is set, before any API
client exists). The template entry point (deploy/flex_main.py, the code the
Flex Template launcher runs) builds and "submits" the job that way, with
every non-loopback network connection refused, and the tests inspect the
portable pipeline proto the Dataflow service would receive:

* streaming from a subscription, lines or notifications: a STREAMING job on
  Streaming Engine, Pub/Sub read of that subscription, ParseLogLines,
  WriteBigQuery, the SDK container image given at launch; its transform
  names are pinned (deploy/update_steps.py), because renaming a step breaks
  ``--update`` of the running job unless a transform name mapping is given
  (deploy/README.md), and a renamed step is caught with that mapping;
* batch over ``gs://`` globs: the launcher lists the files (in the GCS
  emulator here), and the job is a BATCH job ReadLogFiles -> ParseLogLines ->
  WriteParquet / WriteBigQuery;
* ``haulage run --runner=DataflowRunner`` builds the same streaming job;
* the template refuses what cannot work on Dataflow, with a message.
"""

from __future__ import annotations

import gzip
import socket
import uuid

import pytest

from support import emulators
from support import pipeline_check as pc

PROJECT = "test-project"
IMAGE = "us-central1-docker.pkg.dev/test-project/haulage/haulage:test"
DATAFLOW = [f"--project={PROJECT}", "--region=us-central1", "--temp_location=gs://haulage-test/tmp",
            "--staging_location=gs://haulage-test/staging", f"--sdk_container_image={IMAGE}", "--dry_run=True"]
SUBSCRIPTION = f"projects/{PROJECT}/subscriptions/haulage-lines"

@pytest.fixture
def offline(monkeypatch):
    """Refuse every name lookup except loopback: building the job must not need the network."""
    real = socket.getaddrinfo
    asked: list[str] = []

    def loopback_only(host, *args, **kwargs):
        if host not in ("localhost", "127.0.0.1", "::1", None):
            asked.append(str(host))
            raise socket.gaierror(socket.EAI_NONAME, f"network disabled in this test (asked for {host})")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    yield asked
    assert not asked, f"building the job tried to reach {asked}"


def _names(result) -> set[str]:
    return {t.unique_name for t in result.job.proto_pipeline.components.transforms.values()
            if not t.unique_name.startswith("ref_")}


def _images(result) -> set[str]:
    from apache_beam.portability.api import beam_runner_api_pb2

    images = set()
    for env in result.job.proto_pipeline.components.environments.values():
        assert env.urn == "beam:env:docker:v1"
        images.add(beam_runner_api_pb2.DockerPayload.FromString(env.payload).container_image)
    return images


STREAMING_ARGS = {
    "lines": [],
    "gcs-notification": ["--message_format=gcs-notification", "--notification_allow=gs://cdn-logs/logs/"],
}


def streaming_job(message_format: str, *extra: str):
    """The streaming job as the template launcher builds it (dry run: built, not submitted)."""
    from haulage.deploy.flex_main import launch

    return launch([f"--subscription={SUBSCRIPTION}", f"--bigquery_dataset={PROJECT}:pypi", "--window_seconds=30",
                   "--chunk_lines=50000", "--job_name=haulage-streaming", *STREAMING_ARGS[message_format], *extra,
                   *DATAFLOW])


@pytest.mark.parametrize("message_format", sorted(STREAMING_ARGS))
def test_streaming_job_graph_from_the_template_entry_point(offline, message_format):
    from apache_beam.options.pipeline_options import DebugOptions, StandardOptions
    from apache_beam.portability.api import beam_runner_api_pb2
    from apache_beam.runners.runner import PipelineState

    from haulage.deploy.update_steps import PINNED_STREAMING_STEPS, update_problem

    result = streaming_job(message_format)
    assert result.state == PipelineState.DONE  # dry run: built, not submitted
    job = result.job
    assert job.proto.name == "haulage-streaming"
    assert job.proto.type_.name == "JOB_TYPE_STREAMING"
    assert job.options.view_as(StandardOptions).streaming
    experiments = job.options.view_as(DebugOptions).experiments
    assert "enable_streaming_engine" in experiments and "use_runner_v2" in experiments
    assert _images(result) == {IMAGE}

    problem = update_problem(PINNED_STREAMING_STEPS[message_format], _names(result))
    assert problem is None, problem
    (read,) = [t for t in result.job.proto_pipeline.components.transforms.values()
               if t.spec.urn == "beam:transform:pubsub_read:v1"]
    payload = beam_runner_api_pb2.PubSubReadPayload.FromString(read.spec.payload)
    assert payload.subscription == SUBSCRIPTION and payload.with_attributes


def test_a_renamed_step_is_caught_with_the_mapping_to_pass(offline, monkeypatch):
    """Renaming a step (here ParseLogLines/ParseChunks) must not reach a running job unnoticed."""
    import apache_beam as beam

    from haulage.deploy.update_steps import PINNED_STREAMING_STEPS, update_problem
    from haulage.pipeline import parse_transform

    def renamed(self, chunks):
        return chunks | "Parse" >> beam.ParDo(parse_transform.ParseChunkFn(self._agent_cache_size))

    monkeypatch.setattr(parse_transform.ParseLogLines, "expand", renamed)
    problem = update_problem(PINNED_STREAMING_STEPS["lines"], _names(streaming_job("lines")))
    assert problem is not None
    assert "removed: ['ParseLogLines/ParseChunks']" in problem and "added:   ['ParseLogLines/Parse']" in problem
    assert """--transform-name-mappings='{"ParseLogLines/ParseChunks": "ParseLogLines/Parse"}'""" in problem
    # a removed step alone (nothing to map it to) is caught too
    assert "removed: ['WriteBigQuery/LoadBatches']" in update_problem(
        PINNED_STREAMING_STEPS["lines"], PINNED_STREAMING_STEPS["lines"] - {"WriteBigQuery/LoadBatches"})


def test_haulage_run_builds_the_same_streaming_job_for_dataflow(offline):
    result = pc.run_cli(["run", "--subscription", SUBSCRIPTION, "--bigquery-dataset", f"{PROJECT}:pypi",
                         "--runner=DataflowRunner", *DATAFLOW])
    assert result.code == 0, result.stderr
    assert "streaming job submitted" in result.stderr


def _beam_uses_no_credentials() -> None:
    """Make Beam's GCS client anonymous (what it falls back to without credentials, minus the
    ~25 s of retries): the GCS emulator needs none, and real credentials would call Google."""
    from apache_beam.internal.gcp import auth

    with auth._Credentials._credentials_lock:
        auth._Credentials._credentials_init = True
        auth._Credentials._credentials = None


@pytest.fixture
def gcs_logs(gcs_emulator):
    """Two gzip log files in the GCS emulator, with Beam's gs:// filesystem pointed at it."""
    prefix = f"logs-{uuid.uuid4().hex[:8]}"
    bucket = gcs_emulator.client().bucket(gcs_emulator.bucket)
    items = pc.labelled(20, seed=3)
    names = [f"{prefix}/2026-10-01T00.log.gz", f"{prefix}/2026-10-01T12.log.gz"]
    for name in names:
        bucket.blob(name).upload_from_string(gzip.compress(pc.joined(pc.lines_of(items))))
    _beam_uses_no_credentials()
    try:
        with emulators.patched_env(gcs_emulator.env()):
            yield f"gs://{gcs_emulator.bucket}/{prefix}", [f"gs://{gcs_emulator.bucket}/{n}" for n in names]
    finally:
        emulators.reset_beam_credentials_cache()


@pytest.mark.emulator
@pytest.mark.parametrize("sink, write", [(f"--bigquery_dataset={PROJECT}:pypi", "WriteBigQuery"),
                                         ("--output_dir=gs://haulage-test/backfill", "WriteParquet")])
def test_batch_job_graph_over_gcs_files(gcs_logs, offline, monkeypatch, sink, write):
    from apache_beam.options.pipeline_options import StandardOptions

    from haulage.pipeline.sources import files as file_source

    folder, paths = gcs_logs
    listed: list = []
    real = file_source.expand_inputs
    monkeypatch.setattr(file_source, "expand_inputs", lambda patterns: listed.extend(real(patterns)) or list(listed))
    from haulage.deploy.flex_main import launch

    result = launch([f"--input={folder}/*.log.gz", sink, "--job_name=haulage-backfill-2026-10", *DATAFLOW])
    assert sorted(f.path for f in listed) == paths  # the launcher listed the files through Beam's GCS filesystem
    assert result.job.proto.type_.name == "JOB_TYPE_BATCH"
    assert not result.job.options.view_as(StandardOptions).streaming
    names = _names(result)
    for step in ("ReadLogFiles/ListFiles", "ReadLogFiles/SpreadFiles", "ReadLogFiles/ReadFiles",
                 "ParseLogLines/ParseChunks", write):
        assert any(n == step or n.startswith(step + "/") for n in names), (step, sorted(names))
    assert _images(result) == {IMAGE}


@pytest.mark.parametrize("argv, message", [
    ([f"--subscription={SUBSCRIPTION}", f"--bigquery_dataset={PROJECT}:pypi", "--run_for=60"],
     "parameter run_for is not supported by the template"),
    ([f"--subscription={SUBSCRIPTION}"], "no sink"),
    ([f"--subscription={SUBSCRIPTION}", "--output_dir=/tmp/out"], "must be a gs:// folder"),
    (["--input=/data/logs/*.gz", f"--bigquery_dataset={PROJECT}:pypi"], "must be a gs:// glob"),
    ([f"--subscription={SUBSCRIPTION}", f"--bigquery_dataset={PROJECT}:pypi", "--runner=DirectRunner"],
     "runs on Dataflow only"),
    ([f"--subscription={SUBSCRIPTION}", f"--topic=projects/{PROJECT}/topics/cdn", f"--bigquery_dataset={PROJECT}:pypi"],
     "one source per run"),
])
def test_template_refuses_what_cannot_run_on_dataflow(offline, capsys, argv, message):
    from haulage.deploy.flex_main import main

    assert main([*argv, *DATAFLOW]) == 2
    err = capsys.readouterr().err
    assert err.startswith("haulage template: ") and message in err, err
