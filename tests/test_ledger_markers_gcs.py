"""Reading a ``gs://`` ledger while another worker of the same run forgets commits in it.

A local run deals its files to several worker processes (one per core), and
with BigQuery staging on ``gs://`` they share one staging dataset without a
lock: each worker lists ``_ledger/*.json`` and reads the markers it has not
read yet (before staging a group, and before loading it), while the other
worker deletes the marker of a commit it has just loaded
(``BigQueryCommitter._forget``). A marker can therefore be listed and then be
gone when it is read. Seen once in a full run as an HTTP 404 on the marker's
download (Beam's reader fetches the object's metadata, then downloads that
generation). These tests put the other worker's delete (or rewrite) exactly
into that window, against the real Cloud Storage emulator; without
``parquet_ledger._read_listed`` (the reading half of the ledger) each of them fails with that 404.
"""

from __future__ import annotations

import uuid

import pytest

from support import emulators
from support.fault_proxy import Rule, fault_proxy

pytestmark = pytest.mark.emulator

A, B = "a" * 16, "b" * 16


def _marker(commit: str, unit: str) -> dict:
    return {"commit": commit, "run": "r", "kind": "staged", "files": [],
            "units": [{"unit_id": unit, "kind": "file", "label": unit, "size": 1, "lines": 1, "faults": 0}]}


@pytest.fixture
def gcs_env(gcs_emulator, google_credentials):
    emulators.reset_beam_credentials_cache()
    try:
        with emulators.patched_env({**google_credentials, **gcs_emulator.env()}):
            yield gcs_emulator
    finally:
        emulators.reset_beam_credentials_cache()


@pytest.fixture
def two_markers(gcs_env):
    """A staging dataset on gs:// holding the markers of commits A and B (written by "the other worker")."""
    from haulage.pipeline.sinks.parquet_commit import ParquetDataset

    other = ParquetDataset(f"gs://{gcs_env.bucket}/ledger-race-{uuid.uuid4().hex[:8]}")
    other.write_marker(A, _marker(A, "unit-a"))
    other.write_marker(B, _marker(B, "unit-b"))
    return other


def test_marker_forgotten_after_the_listing_is_not_read(two_markers, monkeypatch):
    """Listed, then deleted by the other worker before this one reads it: not a marker any more."""
    from haulage.pipeline.sinks import parquet_commit, parquet_ledger

    reader = parquet_commit.ParquetDataset(two_markers.root)
    real_list = parquet_ledger._list

    def list_then_other_forgets(pattern: str) -> list[str]:
        names = real_list(pattern)
        if pattern.endswith("/_ledger/*.json"):
            parquet_commit._delete(two_markers.marker_path(B))  # what BigQueryCommitter._forget does
        return names

    monkeypatch.setattr(parquet_ledger, "_list", list_then_other_forgets)  # where markers() lists
    markers = reader.markers()
    assert sorted(markers) == [A]
    assert set(reader.committed_units()) == {"unit-a"}


def test_marker_forgotten_between_metadata_and_download_is_not_read(two_markers, monkeypatch):
    """The window seen in the flaky run: the object's metadata read (its generation pinned), then it is
    deleted, then the download of that generation answers 404."""
    from apache_beam.io.gcp import gcsio

    from haulage.pipeline.sinks import parquet_commit

    reader = parquet_commit.ParquetDataset(two_markers.root)
    real_init = gcsio.BeamBlobReader.__init__
    forgotten = []

    def other_forgets_after_metadata(self, blob, *args, **kwargs):
        real_init(self, blob, *args, **kwargs)  # reloads the metadata: blob.generation is now set
        if blob.name.endswith(f"/_ledger/{B}.json") and not forgotten:
            assert blob.generation  # the download will ask for exactly this generation
            parquet_commit._delete(two_markers.marker_path(B))
            forgotten.append(blob.generation)

    monkeypatch.setattr(gcsio.BeamBlobReader, "__init__", other_forgets_after_metadata)
    assert sorted(reader.markers()) == [A]
    assert forgotten, "the delete was not put between the metadata read and the download"


def test_marker_rewritten_between_metadata_and_download_is_read_as_it_is_now(gcs_env, google_credentials,
                                                                             monkeypatch):
    """Replaced by a newer generation after its metadata was read: Cloud Storage answers the download
    of the old generation with 404 (the object is not gone); the marker as it is now is read.

    gcp-storage-emulator ignores ``generation`` on downloads (it always serves the live object), so
    a proxy in front of it gives Cloud Storage's answer for exactly the generation that was replaced."""
    from apache_beam.io.gcp import gcsio

    from haulage.pipeline.sinks import parquet_commit

    with fault_proxy(gcs_env.url) as proxy, emulators.patched_env({"STORAGE_EMULATOR_HOST": proxy.url}):
        emulators.reset_beam_credentials_cache()
        other = parquet_commit.ParquetDataset(f"gs://{gcs_env.bucket}/ledger-race-{uuid.uuid4().hex[:8]}")
        other.write_marker(A, _marker(A, "unit-a"))
        other.write_marker(B, _marker(B, "unit-b"))
        reader = parquet_commit.ParquetDataset(other.root)
        real_init = gcsio.BeamBlobReader.__init__

        def other_rewrites_after_metadata(self, blob, *args, **kwargs):
            real_init(self, blob, *args, **kwargs)
            if blob.name.endswith(f"/_ledger/{B}.json") and not proxy.rules:
                other.write_marker(B, _marker(B, "unit-b2"))
                # the download goes to the object's mediaLink, which the emulator builds with its own
                # address (the proxy does not pass the Host header on): send it through the proxy
                blob._properties["mediaLink"] = blob.media_link.replace(gcs_env.url, proxy.url)
                proxy.add(Rule("error:404:notFound", "GET", rf"/download/.*{B}\.json\?generation={blob.generation}&"))

        monkeypatch.setattr(gcsio.BeamBlobReader, "__init__", other_rewrites_after_metadata)
        units = set(reader.committed_units())
        injected = list(proxy.injected)
    assert len(injected) == 1, injected  # the old generation's download was answered 404
    assert units == {"unit-a", "unit-b2"}
