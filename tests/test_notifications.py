"""Which Cloud Storage notifications are read (pipeline/sources/notifications.py) and the options around them.

The rule: an OBJECT_FINALIZE is read only when its bucket is an allowed
bucket and its name starts with that bucket's prefix; other events are
ignored; anything else is a dead letter with the reason and the
notification's attributes. A property test throws arbitrary attributes at
the policy: whatever it decides to read is always inside the allow-list.
The end-to-end check (forged notification → dead letter, object never
requested from the storage emulator) is in test_pipeline_pubsub.py.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from haulage.pipeline.sources.notifications import (
    BAD_NOTIFICATION,
    NOT_ALLOWED,
    LocationError,
    NotificationPolicy,
    Refusal,
    parse_location,
)

POLICY = NotificationPolicy.from_locations(["gs://cdn-logs/logs/", "gs://archive-2026"])


def finalize(bucket: str, name: str, **more: str) -> dict[str, str]:
    return {"eventType": "OBJECT_FINALIZE", "payloadFormat": "JSON_API_V1", "bucketId": bucket, "objectId": name, **more}


@pytest.mark.parametrize("attributes, decision", [
    (finalize("cdn-logs", "logs/2026-10-01/00.log.gz"), "gs://cdn-logs/logs/2026-10-01/00.log.gz"),
    (finalize("archive-2026", "anything/at/all.gz"), "gs://archive-2026/anything/at/all.gz"),
    # other events: nothing to read, nothing to report
    ({"eventType": "OBJECT_DELETE", "bucketId": "elsewhere", "objectId": "x"}, None),
    ({"eventType": "OBJECT_METADATA_UPDATE", "bucketId": "cdn-logs", "objectId": "logs/a"}, None),
    ({}, None),
    # outside the allow-list
    (finalize("cdn-logs", "secrets/key.json"), NOT_ALLOWED),
    (finalize("cdn-logs", "logs"), NOT_ALLOWED),  # the folder marker itself is not under "logs/"
    (finalize("cdn-logs", "logsX/a.gz"), NOT_ALLOWED),
    (finalize("cdn-logs-evil", "logs/a.gz"), NOT_ALLOWED),
    (finalize("other", "logs/a.gz"), NOT_ALLOWED),
    # not a notification of an object
    (finalize("cdn-logs", ""), BAD_NOTIFICATION),
    ({"eventType": "OBJECT_FINALIZE", "objectId": "logs/a.gz"}, BAD_NOTIFICATION),
    (finalize("Bad_Bucket!", "logs/a.gz"), BAD_NOTIFICATION),
    (finalize("cdn-logs", "logs/a\nb.gz"), BAD_NOTIFICATION),
    (finalize("cdn-logs", "logs/" + "x" * 1100), BAD_NOTIFICATION),
])
def test_decisions(attributes, decision):
    got = POLICY.decide(attributes)
    if isinstance(got, Refusal):
        assert got.reason == decision, got
        kept = json.loads(got.attributes)
        assert kept.get("objectId", "") == attributes.get("objectId", "")[:1100]
        if got.reason == NOT_ALLOWED:
            assert f"gs://{attributes['bucketId']}/{attributes['objectId']}" in got.detail
            assert "gs://cdn-logs/logs/" in got.detail and "gs://archive-2026/" in got.detail
    else:
        assert got == decision


def test_refusal_keeps_the_notification_but_bounded():
    attributes = finalize("other", "x" * 5000, notificationConfig="projects/_/buckets/other/notificationConfigs/1",
                          customKey="y" * 5000)
    got = POLICY.decide(attributes)
    assert isinstance(got, Refusal) and got.reason == BAD_NOTIFICATION  # the name is too long to be an object
    kept = json.loads(got.attributes)
    assert kept["bucketId"] == "other" and len(kept["objectId"]) == 1100 and kept["otherAttributes"] == "customKey"
    assert len(got.attributes) < 4000 and len(got.detail) <= 2000


@settings(max_examples=400, deadline=None)
@given(hs.dictionaries(hs.sampled_from(["eventType", "bucketId", "objectId", "payloadFormat", "x"]),
                       hs.one_of(hs.sampled_from(["OBJECT_FINALIZE", "cdn-logs", "archive-2026", "logs/", "logs/a.gz",
                                                  "logs", "../logs/a", "cdn-logs/logs"]), hs.text(max_size=30))))
def test_whatever_is_read_is_inside_the_allow_list(attributes):
    got = POLICY.decide(attributes)
    if isinstance(got, str):
        bucket, _, name = got[len("gs://"):].partition("/")
        assert attributes["eventType"] == "OBJECT_FINALIZE"
        assert (bucket, name) == (attributes["bucketId"], attributes["objectId"])
        assert (bucket == "cdn-logs" and name.startswith("logs/")) or bucket == "archive-2026"
    elif got is None:
        assert attributes.get("eventType") != "OBJECT_FINALIZE"
    else:
        assert got.reason in (NOT_ALLOWED, BAD_NOTIFICATION)


@pytest.mark.parametrize("text", ["cdn-logs/logs/", "s3://cdn-logs/", "gs://", "gs://UPPER/x", "gs://bkt/logs/*.gz",
                                  "gs://cdn-logs/a\tb"])
def test_locations_that_are_refused(text):
    with pytest.raises(LocationError):
        parse_location(text)


# --------------------------------------------------------------------------
# the options


def _options(*argv: str):
    import argparse

    from haulage.cli import run as run_cli
    from haulage.pipeline.options import options_from_namespace

    root = argparse.ArgumentParser()
    parser = run_cli.add_parser(root.add_subparsers())
    ns, beam_args = parser.parse_known_args(list(argv))
    return options_from_namespace(ns, beam_args)


SUB = ["--subscription", "projects/p1/subscriptions/s1"]


@pytest.mark.parametrize("argv, message", [
    ([*SUB, "--message-format", "gcs-notification"], "needs --notification-allow gs://BUCKET/PREFIX"),
    ([*SUB, "--notification-allow", "gs://cdn-logs/logs/"], "applies to --message-format gcs-notification"),
    ([*SUB, "--message-format", "gcs-notification", "--notification-allow", "cdn-logs/logs/"], "expected gs://BUCKET/PREFIX"),
    ([*SUB, "--run-for", "10", "--runner", "DataflowRunner"], "a DataflowRunner job runs until it is drained"),
])
def test_options_refused_with_what_to_do(argv, message):
    from haulage.pipeline.options import OptionsError

    with pytest.raises(OptionsError, match=message.replace("*", r"\*")):
        _options(*argv)


def test_which_graph_runs_where():
    assert _options(*SUB).local and not _options(*SUB).direct_streaming
    direct = _options(*SUB, "--runner", "BundleBasedDirectRunner", "--streaming", "--run-for", "5")
    assert direct.direct_streaming and direct.in_process and not direct.local and direct.run_for == 5
    remote = _options(*SUB, "--runner=DataflowRunner")
    assert not remote.in_process and not remote.direct_streaming
    allowed = _options(*SUB, "--message-format", "gcs-notification", "--notification-allow", "gs://a-b/x/", "gs://c-d")
    assert allowed.notification_allow == ["gs://a-b/x/", "gs://c-d"]
    assert _options(*SUB, "--chunk-mib", "32").chunk_bytes == 32 << 20


def test_chunk_defaults_are_larger_for_files_than_for_streaming():
    from haulage.pipeline import options

    streaming, files = _options(*SUB), _options("--input", "/logs/*.gz")
    assert (streaming.chunk_lines, streaming.chunk_bytes) == (options.DEFAULT_CHUNK_LINES, int(options.DEFAULT_CHUNK_MIB * (1 << 20)))
    assert (files.chunk_lines, files.chunk_bytes) == (options.FILE_CHUNK_LINES, int(options.FILE_CHUNK_MIB * (1 << 20)))
    assert files.chunk_bytes > streaming.chunk_bytes
    given = _options("--input", "/logs/*.gz", "--chunk-lines", "7", "--chunk-mib", "2")
    assert (given.chunk_lines, given.chunk_bytes) == (7, 2 << 20)
