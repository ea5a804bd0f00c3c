"""Smoke tests: each local emulator answers real client round trips, and Beam's
GCS and BigQuery IO talk to them on the local runners.

What Beam needs (found by these tests):

* Credentials: Beam's GCP IO calls ``google.auth.default()`` and caches the
  result per process.  Without credentials it retries for ~25 s and then goes
  anonymous (and would probe the GCE metadata server unless NO_GCE_CHECK=True).
  With the ``google_credentials`` fixture's env (GOOGLE_APPLICATION_CREDENTIALS
  = a throwaway service account whose token_uri is a local server,
  GOOGLE_CLOUD_PROJECT, NO_GCE_CHECK=True) it starts at once.
  ``emulators.reset_beam_credentials_cache()`` makes Beam look again.
* GCS: add STORAGE_EMULATOR_HOST=http://127.0.0.1:PORT; ``gs://`` paths then
  go to the emulator (ReadFromText of ``.gz``, WriteToText).
* BigQuery: add BIGQUERY_EMULATOR_HOST=http://127.0.0.1:PORT; WriteToBigQuery
  with STREAMING_INSERTS + CREATE_NEVER into a table created beforehand works.
* Runner: ``--runner=DirectRunner`` first tries to download Prism (offline it
  fails in ~0.2 s and falls back); ``--runner=FnApiRunner`` skips Prism for
  batch pipelines (``BundleBasedDirectRunner`` for streaming ones).
"""

from __future__ import annotations

import gzip
import time
import uuid
import warnings

import pytest

from support import emulators

pytestmark = pytest.mark.emulator


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------
# Pub/Sub


def test_pubsub_publish_pull_ack(pubsub_emulator):
    from google.cloud import pubsub_v1

    with emulators.patched_env(pubsub_emulator.env()):
        publisher = pubsub_v1.PublisherClient()
        subscriber = pubsub_v1.SubscriberClient()
    try:
        project = pubsub_emulator.project
        topic = publisher.topic_path(project, _unique("topic"))
        subscription = subscriber.subscription_path(project, _unique("sub"))
        publisher.create_topic(name=topic)
        subscriber.create_subscription(name=subscription, topic=topic,
                                       ack_deadline_seconds=10)

        sent = {
            f"line {i}".encode(): {"source": "fastly", "seq": str(i)}
            for i in range(3)
        }
        for data, attrs in sent.items():
            publisher.publish(topic, data, **attrs).result(timeout=10)

        received = {}
        ack_ids = []
        deadline = time.monotonic() + 20
        while len(received) < 3 and time.monotonic() < deadline:
            resp = subscriber.pull(
                request={"subscription": subscription, "max_messages": 10},
                timeout=10)
            if resp.received_messages:
                ids = [m.ack_id for m in resp.received_messages]
                subscriber.acknowledge(
                    request={"subscription": subscription, "ack_ids": ids})
                ack_ids += ids
            for m in resp.received_messages:
                received[m.message.data] = dict(m.message.attributes)

        assert received == sent

        # The acks took: "nacking" the same ack ids (deadline 0) would make
        # unacked messages come straight back, acked ones stay gone.
        subscriber.modify_ack_deadline(request={
            "subscription": subscription, "ack_ids": ack_ids,
            "ack_deadline_seconds": 0})
        redelivered = []
        with warnings.catch_warnings():  # return_immediately is deprecated
            warnings.simplefilter("ignore", DeprecationWarning)
            for _ in range(3):
                resp = subscriber.pull(
                    request={"subscription": subscription, "max_messages": 10,
                             "return_immediately": True},
                    timeout=10)
                redelivered += [m.message.data for m in resp.received_messages]
                time.sleep(0.2)
        assert redelivered == []
    finally:
        subscriber.close()
        publisher.stop()


# --------------------------------------------------------------------------
# BigQuery


def _downloads_schema():
    from google.cloud import bigquery

    return [
        bigquery.SchemaField("ts", "TIMESTAMP", mode="REQUIRED"),
        bigquery.SchemaField("project", "STRING", mode="REQUIRED"),
        bigquery.SchemaField("downloads", "INT64"),
        bigquery.SchemaField("details", "RECORD", fields=[
            bigquery.SchemaField("installer", "STRING"),
            bigquery.SchemaField("version", "STRING"),
            bigquery.SchemaField("tags", "STRING", mode="REPEATED"),
        ]),
    ]


def _create_partitioned_table(client, dataset_id: str, table_name: str):
    from google.cloud import bigquery

    table = bigquery.Table(f"{client.project}.{dataset_id}.{table_name}",
                           schema=_downloads_schema())
    table.time_partitioning = bigquery.TimePartitioning(
        type_=bigquery.TimePartitioningType.DAY, field="ts")
    table.clustering_fields = ["project"]
    return client.create_table(table)


ROWS = [
    {"ts": "2024-05-01T10:00:00Z", "project": "requests", "downloads": 1,
     "details": {"installer": "pip", "version": "24.0", "tags": ["a"]}},
    {"ts": "2024-05-01T11:30:00Z", "project": "numpy", "downloads": 5,
     "details": {"installer": "uv", "version": "0.1.2", "tags": ["b", "c"]}},
    {"ts": "2024-05-02T00:15:00Z", "project": "requests", "downloads": 7,
     "details": {"installer": "poetry", "version": "1.8.2", "tags": []}},
]


def test_bigquery_partitioned_clustered_nested(bigquery_emulator):
    import datetime

    from google.cloud import bigquery

    client = bigquery_emulator.client()
    dataset_id = _unique("ds")
    client.create_dataset(dataset_id)
    try:
        _create_partitioned_table(client, dataset_id, "downloads")
        table = client.get_table(f"{dataset_id}.downloads")
        assert table.time_partitioning.type_ == "DAY"
        assert table.time_partitioning.field == "ts"
        assert table.clustering_fields == ["project"]
        assert [f.name for f in table.schema] == ["ts", "project", "downloads",
                                                  "details"]
        assert table.schema[3].field_type == "RECORD"

        errors = client.insert_rows_json(table, ROWS)
        assert errors == []

        job = client.query(
            f"""
            SELECT ts, project, downloads, details.installer AS installer,
                   details.version AS version, details.tags AS tags
            FROM `{dataset_id}.downloads`
            WHERE downloads >= @min_downloads
            ORDER BY downloads
            """,
            job_config=bigquery.QueryJobConfig(query_parameters=[
                bigquery.ScalarQueryParameter("min_downloads", "INT64", 2),
            ]),
        )
        rows = [dict(r) for r in job.result()]
        utc = datetime.timezone.utc
        assert rows == [
            {"ts": datetime.datetime(2024, 5, 1, 11, 30, tzinfo=utc),
             "project": "numpy", "downloads": 5, "installer": "uv",
             "version": "0.1.2", "tags": ["b", "c"]},
            {"ts": datetime.datetime(2024, 5, 2, 0, 15, tzinfo=utc),
             "project": "requests", "downloads": 7, "installer": "poetry",
             "version": "1.8.2", "tags": []},
        ]

        # The whole nested record comes back too.
        (row,) = client.query(
            f"SELECT details FROM `{dataset_id}.downloads` "
            f"WHERE project = @p AND downloads = 1",
            job_config=bigquery.QueryJobConfig(query_parameters=[
                bigquery.ScalarQueryParameter("p", "STRING", "requests"),
            ]),
        ).result()
        assert row["details"] == {"installer": "pip", "version": "24.0",
                                  "tags": ["a"]}
    finally:
        client.delete_dataset(dataset_id, delete_contents=True)


# --------------------------------------------------------------------------
# Cloud Storage


def test_gcs_upload_list_download(gcs_emulator):
    client = gcs_emulator.client()
    bucket = client.bucket(gcs_emulator.bucket)
    prefix = _unique("objs") + "/"
    plain = b"first line\nsecond line\n"
    packed = gzip.compress(b"a\nb\nc\n" * 100)

    bucket.blob(prefix + "plain.txt").upload_from_string(
        plain, content_type="text/plain")
    bucket.blob(prefix + "lines.txt.gz").upload_from_string(
        packed, content_type="application/gzip")

    listed = sorted((b.name, b.size) for b in
                    client.list_blobs(gcs_emulator.bucket, prefix=prefix))
    assert listed == [(prefix + "lines.txt.gz", len(packed)),
                      (prefix + "plain.txt", len(plain))]

    assert bucket.blob(prefix + "plain.txt").download_as_bytes() == plain
    got = bucket.blob(prefix + "lines.txt.gz").download_as_bytes()
    assert got == packed
    assert gzip.decompress(got) == b"a\nb\nc\n" * 100

    # Objects are plain files under DATA_DIR/.cloudstorage/BUCKET/OBJECT.
    assert gcs_emulator.object_path(prefix + "plain.txt").read_bytes() == plain
    assert gcs_emulator.object_path(prefix + "lines.txt.gz").read_bytes() == packed


# --------------------------------------------------------------------------
# Beam against the emulators


@pytest.fixture
def beam_gcp_env(google_credentials):
    """Apply the fake credentials for one test and make Beam pick them up."""
    def apply(*emulator_envs):
        env = dict(google_credentials)
        for e in emulator_envs:
            env.update(e)
        return emulators.patched_env(env)

    emulators.reset_beam_credentials_cache()
    yield apply
    emulators.reset_beam_credentials_cache()


@pytest.mark.parametrize("runner", ["FnApiRunner", "DirectRunner"])
def test_beam_reads_gzip_text_from_gcs_emulator(gcs_emulator, beam_gcp_env,
                                                runner):
    """ReadFromText('gs://test-bucket/….txt.gz') on a local runner.

    Works with STORAGE_EMULATOR_HOST plus the fake credentials
    (GOOGLE_APPLICATION_CREDENTIALS, GOOGLE_CLOUD_PROJECT, NO_GCE_CHECK).
    Also writes the lines back to gs:// with WriteToText.
    """
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.testing.util import assert_that, equal_to

    lines = [f"line {i}" for i in range(50)]
    name = _unique("in") + "/x.txt.gz"
    out_prefix = _unique("out") + "/part"
    client = gcs_emulator.client()
    client.bucket(gcs_emulator.bucket).blob(name).upload_from_string(
        gzip.compress(("\n".join(lines) + "\n").encode()))

    with beam_gcp_env(gcs_emulator.env()):
        options = PipelineOptions([f"--runner={runner}"])
        with beam.Pipeline(options=options) as p:
            read = p | beam.io.ReadFromText(f"gs://{gcs_emulator.bucket}/{name}")
            assert_that(read, equal_to(lines))
            _ = read | beam.io.WriteToText(
                f"gs://{gcs_emulator.bucket}/{out_prefix}", num_shards=1)

    written = [b for b in client.list_blobs(gcs_emulator.bucket,
                                            prefix=out_prefix)]
    assert len(written) == 1
    assert sorted(written[0].download_as_bytes().decode().splitlines()) == \
        sorted(lines)


def test_beam_write_to_bigquery_streaming_inserts(bigquery_emulator,
                                                  beam_gcp_env):
    """WriteToBigQuery(STREAMING_INSERTS, CREATE_NEVER) into the emulator.

    Works with BIGQUERY_EMULATOR_HOST plus the fake credentials.  The table
    must exist beforehand: table creation (and FILE_LOADS) use a Beam client
    with a hard-coded googleapis.com URL.
    """
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    client = bigquery_emulator.client()
    dataset_id = _unique("beam")
    client.create_dataset(dataset_id)
    try:
        _create_partitioned_table(client, dataset_id, "downloads")
        table_spec = f"{bigquery_emulator.project}:{dataset_id}.downloads"

        with beam_gcp_env(bigquery_emulator.env()):
            options = PipelineOptions(["--runner=FnApiRunner",
                                       f"--project={bigquery_emulator.project}"])
            with beam.Pipeline(options=options) as p:
                _ = (p
                     | beam.Create(ROWS)
                     | beam.io.WriteToBigQuery(
                         table_spec,
                         method=beam.io.WriteToBigQuery.Method.STREAMING_INSERTS,
                         create_disposition=beam.io.BigQueryDisposition.CREATE_NEVER,
                         write_disposition=beam.io.BigQueryDisposition.WRITE_APPEND))

        rows = [dict(r) for r in client.query(
            f"SELECT project, downloads, details.installer AS installer, "
            f"details.tags AS tags FROM `{dataset_id}.downloads` "
            f"ORDER BY downloads").result()]
        assert rows == [
            {"project": "requests", "downloads": 1, "installer": "pip",
             "tags": ["a"]},
            {"project": "numpy", "downloads": 5, "installer": "uv",
             "tags": ["b", "c"]},
            {"project": "requests", "downloads": 7, "installer": "poetry",
             "tags": []},
        ]
    finally:
        client.delete_dataset(dataset_id, delete_contents=True)
