"""``haulage setup`` decisions that need no server: schema planning, view SQL,
option errors, the report, and which bucket notifications are reused.

The same code then runs against the emulators in tests/test_setup_emulators.py.
"""

from __future__ import annotations

import copy
import re
from types import SimpleNamespace

import pytest

from haulage.deploy import bigquery_views
from haulage.deploy.bigquery_setup import plan_schema
from haulage.deploy.notification_setup import NotificationRequest, _reuse_or_create
from haulage.deploy.outcomes import Outcome, Status, render
from haulage.parsers.schemas import DOWNLOADS, SIMPLE, TABLE_NAMES, bigquery_schema
from support import pipeline_check as pc


def _drop(schema: list[dict], dotted: str) -> list[dict]:
    """A copy of ``schema`` without the (possibly nested) column ``dotted``."""
    schema = copy.deepcopy(schema)
    *parents, leaf = dotted.split(".")
    fields = schema
    for name in parents:
        fields = next(f for f in fields if f["name"] == name)["fields"]
    fields[:] = [f for f in fields if f["name"] != leaf]
    return schema


def _paths(schema: list[dict], prefix: str = "") -> dict[str, tuple[str, str]]:
    out = {}
    for f in schema:
        out[prefix + f["name"]] = (f["type"], f.get("mode", "NULLABLE"))
        out.update(_paths(f.get("fields", []), prefix + f["name"] + "."))
    return out


# --------------------------------------------------------------------------
# schema planning


@pytest.mark.parametrize("table", TABLE_NAMES)
def test_plan_of_the_code_schema_against_itself_changes_nothing(table):
    plan = plan_schema(bigquery_schema(table), bigquery_schema(table))
    assert not plan.changes and not plan.problems and not plan.extra
    assert plan.merged == bigquery_schema(table)


def test_plan_adds_missing_nullable_columns_at_any_depth():
    code = bigquery_schema(DOWNLOADS)
    older = _drop(_drop(_drop(code, "details.installer.subcommand"), "details.user_data"), "user_agent")
    plan = plan_schema(older, code)
    assert not plan.problems
    assert sorted(plan.added) == ["details.installer.subcommand", "details.user_data", "user_agent"]
    # nothing lost, nothing re-typed: the merged schema has exactly the code's columns
    assert _paths(plan.merged) == _paths(code)
    # existing columns keep their order; a new top-level column goes last
    assert [f["name"] for f in plan.merged][-1] == "user_agent"


def test_plan_adds_a_whole_missing_nullable_record():
    code = bigquery_schema(DOWNLOADS)
    plan = plan_schema(_drop(code, "details"), code)
    assert plan.added == ["details"] and not plan.problems


def test_plan_refuses_a_missing_required_column():
    """event_id is REQUIRED: BigQuery cannot add it to a table that has rows, so it is refused."""
    code = bigquery_schema(DOWNLOADS)
    plan = plan_schema(_drop(code, "event_id"), code)
    assert not plan.added
    assert len(plan.problems) == 1 and "event_id" in plan.problems[0] and "REQUIRED" in plan.problems[0]


def test_plan_refuses_a_missing_record_that_has_required_fields():
    code = bigquery_schema(SIMPLE)
    plan = plan_schema(_drop(code, "classification"), code)
    assert any("classification" in p for p in plan.problems) and not plan.added


def test_plan_refuses_type_changes_and_required_extras_but_keeps_nullable_extras():
    code = bigquery_schema(DOWNLOADS)
    table = copy.deepcopy(code)
    next(f for f in table if f["name"] == "project")["type"] = "INTEGER"
    table.append({"name": "legacy_note", "type": "STRING", "mode": "NULLABLE"})
    table.append({"name": "legacy_id", "type": "STRING", "mode": "REQUIRED"})
    plan = plan_schema(table, code)
    assert plan.extra == ["legacy_note"]
    assert any("project is INTEGER" in p for p in plan.problems)
    assert any("legacy_id" in p and "REQUIRED" in p for p in plan.problems)


def test_plan_relaxes_required_to_nullable_and_follows_descriptions():
    code = bigquery_schema(DOWNLOADS)
    table = copy.deepcopy(code)
    country = next(f for f in table if f["name"] == "country_code")
    country["mode"] = "REQUIRED"
    country["description"] = "old words"
    table_event = next(f for f in table if f["name"] == "event_id")
    table_event["mode"] = "NULLABLE"  # looser than the code: fine, left alone
    plan = plan_schema(table, code)
    assert plan.relaxed == ["country_code"] and plan.described == ["country_code"]
    assert plan.stricter_in_table == ["event_id"] and not plan.problems
    merged = next(f for f in plan.merged if f["name"] == "country_code")
    assert merged["mode"] == "NULLABLE" and merged["description"] != "old words"


def test_plan_accepts_standard_sql_type_aliases():
    code = bigquery_schema(DOWNLOADS)
    table = copy.deepcopy(code)
    for f in table:
        if f["type"] == "RECORD":
            f["type"] = "STRUCT"
        if f["type"] == "BOOLEAN":
            f["type"] = "BOOL"
    plan = plan_schema(table, code)
    assert not plan.problems and not plan.changes


# --------------------------------------------------------------------------
# views


def test_view_sql_is_null_safe():
    """No series may drop or keep a row because a field is NULL: no `!=`, `<>`, `= FALSE`, `NOT x =`."""
    for view in bigquery_views.views("p", "d"):
        sql = view.query
        assert "!=" not in sql and "<>" not in sql, view.name
        assert not re.search(r"=\s*FALSE", sql, re.I), view.name
        assert not re.search(r"\bNOT\s+classification", sql, re.I), view.name
        assert "`p.d.file_downloads`" in sql
    without = next(v for v in bigquery_views.views("p", "d") if v.name == "downloads_without_mirrors")
    assert "classification.traffic IS DISTINCT FROM 'mirror'" in without.query
    ci = next(v for v in bigquery_views.views("p", "d") if v.name == "downloads_ci")
    assert "classification.ci IS TRUE" in ci.query


def test_view_series_are_those_of_schema_md():
    names = [v.name for v in bigquery_views.views("p", "d")]
    assert names == ["downloads_total", "downloads_without_mirrors", "downloads_human", "downloads_ci",
                     "daily_project_downloads", "daily_downloads"]
    assert bigquery_views.daily_columns()[:4] == ["total", "without_mirrors", "human", "ci"]


# --------------------------------------------------------------------------
# options and the report


@pytest.mark.parametrize("argv, message", [
    (["setup"], "nothing to set up"),
    (["setup", "--topic", "cdn-lines"], "--topic"),
    (["setup", "--topic", "projects/p1/topics/cdn", "--subscription", "haulage"], "--subscription"),
    (["setup", "--subscription", "projects/p1/subscriptions/s1"], "needs --topic"),
    (["setup", "--bigquery-dataset", "p1:d", "--notification-bucket", "logs-bucket"], "needs --topic"),
    (["setup", "--bigquery-dataset", "not a dataset"], "PROJECT:DATASET"),
    (["setup", "--topic", "projects/p1/topics/cdn", "--subscription", "projects/p1/subscriptions/s1",
      "--dead-letter-topic", "projects/p1/topics/cdn"], "must differ"),
])
def test_setup_option_errors(argv, message):
    result = pc.run_cli(argv)
    assert result.code == 2, result
    assert message in result.stderr and result.stderr.startswith("haulage setup: ")
    assert result.stdout == ""


@pytest.mark.parametrize("flag, value", [("--max-delivery-attempts", "4"), ("--ack-deadline-seconds", "601"),
                                         ("--retention-days", "8"), ("--partition-expiration-days", "-1")])
def test_setup_out_of_range_values_are_usage_errors(flag, value):
    result = pc.run_cli(["setup", "--topic", "projects/p1/topics/cdn", flag, value])
    assert result.code == 2 and flag in result.stderr


def test_report_verdicts():
    created = Outcome("table", "file_downloads", Status.CREATED)
    same = Outcome("table", "simple_requests", Status.UNCHANGED)
    skipped = Outcome("iam", "x", Status.SKIPPED, "emulator")
    refused = Outcome("table", "unprocessed", Status.REFUSED, "no")
    assert render([same, skipped]).endswith("nothing to change: everything already set up as requested (1 skipped, see above)")
    assert "done: created 1, updated 0, unchanged 1" in render([created, same])
    assert render([created, refused]).splitlines()[-1].startswith("refused: 1 resource(s)")


# --------------------------------------------------------------------------
# bucket notifications: reuse, create or refuse (never two for the same files)


class _Bucket:
    def __init__(self):
        self.created = []

    def notification(self, **kw):
        bucket = self

        class _N(SimpleNamespace):
            def create(self):
                self.notification_id = "99"
                bucket.created.append(self)

        return _N(**kw)


def _existing(topic="cdn", project="p1", prefix=None, events=None, payload="JSON_API_V1", nid="7"):
    return SimpleNamespace(topic_name=topic, topic_project=project, blob_name_prefix=prefix, event_types=events,
                           payload_format=payload, notification_id=nid)


REQ = NotificationRequest("logs-bucket", "projects/p1/topics/cdn", "fastly/")


def test_notification_created_when_none_targets_the_topic():
    bucket = _Bucket()
    out = _reuse_or_create(bucket, [_existing(topic="other", prefix="fastly/")], REQ)
    assert out.status is Status.CREATED
    (n,) = bucket.created
    assert (n.topic_name, n.topic_project, n.event_types, n.payload_format, n.blob_name_prefix) == \
        ("cdn", "p1", ["OBJECT_FINALIZE"], "JSON_API_V1", "fastly/")


@pytest.mark.parametrize("events", [None, ["OBJECT_FINALIZE"], ["OBJECT_FINALIZE", "OBJECT_DELETE"]])
def test_notification_reused_when_it_covers_finalize_for_the_prefix(events):
    bucket = _Bucket()
    out = _reuse_or_create(bucket, [_existing(prefix="fastly/", events=events)], REQ)
    assert out.status is Status.UNCHANGED and not bucket.created


@pytest.mark.parametrize("existing", [
    _existing(prefix="fastly/", events=["OBJECT_DELETE"]),  # same files, wrong events
    _existing(prefix=None),                                 # all objects: would deliver fastly/* twice
    _existing(prefix="fastly/downloads/"),                  # a narrower overlapping one
])
def test_notification_refused_when_a_second_one_would_double_count(existing):
    bucket = _Bucket()
    out = _reuse_or_create(bucket, [existing], REQ)
    assert out.status is Status.REFUSED and not bucket.created
    assert "gcloud storage buckets notifications delete" in out.detail


# --------------------------------------------------------------------------
# IAM bindings for Google's service agents (the emulator has no IAM, so the
# real-service path is exercised here with the real protobuf policy)


class _IamClient:
    def __init__(self, policy=None, unimplemented=False):
        from google.iam.v1 import policy_pb2

        self.policy = policy if policy is not None else policy_pb2.Policy()
        self.unimplemented = unimplemented
        self.set_calls = []

    def get_iam_policy(self, request):
        from google.api_core import exceptions as gexc

        if self.unimplemented:
            raise gexc.MethodNotImplemented("IAM")
        from google.iam.v1 import policy_pb2

        copy_ = policy_pb2.Policy()
        copy_.CopyFrom(self.policy)
        return copy_

    def set_iam_policy(self, request):
        self.set_calls.append(request)
        self.policy = request["policy"]
        return self.policy


AGENT = "serviceAccount:service-123@gcp-sa-pubsub.iam.gserviceaccount.com"


def test_binding_is_granted_once():
    from haulage.deploy.iam import ensure_binding

    client = _IamClient()
    client.policy.bindings.add(role="roles/pubsub.publisher", members=["user:someone@example.com"])
    first = ensure_binding(client, "projects/p1/topics/dl", "roles/pubsub.publisher", lambda: AGENT, "why")
    assert first.status is Status.CREATED and len(client.set_calls) == 1
    (binding,) = client.policy.bindings
    assert list(binding.members) == ["user:someone@example.com", AGENT]  # added to the binding, nothing removed
    again = ensure_binding(client, "projects/p1/topics/dl", "roles/pubsub.publisher", lambda: AGENT, "why")
    assert again.status is Status.UNCHANGED and len(client.set_calls) == 1


def test_binding_skipped_without_iam_and_without_asking_for_the_member():
    from haulage.deploy.iam import ensure_binding

    def member():
        raise AssertionError("the project number must not be looked up when the server has no IAM")

    out = ensure_binding(_IamClient(unimplemented=True), "projects/p1/topics/dl", "roles/pubsub.publisher", member, "why")
    assert out.status is Status.SKIPPED and "no IAM" in out.detail


def test_binding_skipped_with_advice_when_the_member_cannot_be_found():
    from haulage.deploy.iam import ensure_binding

    def member():
        raise PermissionError("resourcemanager.projects.get denied")

    client = _IamClient()
    out = ensure_binding(client, "projects/p1/subscriptions/s1", "roles/pubsub.subscriber", member, "why")
    assert out.status is Status.SKIPPED and "--project-number" in out.detail and not client.set_calls
