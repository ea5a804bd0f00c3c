"""File-delivery mode: a Cloud Storage bucket notification to the topic.

When the CDN writes gzip log files to a bucket (how PyPI's Fastly service
delivers them), each finished object should become one Pub/Sub message that
``haulage run --message-format gcs-notification`` turns into a read of that
file. That is a bucket notification: OBJECT_FINALIZE events, JSON_API_V1
payload, to the topic; the Cloud Storage service agent must be allowed to
publish there (granted first: the service checks it when the notification
is created).

Idempotence matters more than usual here: two notifications for the same
objects would deliver every file twice and count every download twice. So an
existing notification to the topic is reused when it covers OBJECT_FINALIZE
for the same prefix, and anything overlapping but different is refused with
the command to remove it — never stacked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from .iam import ensure_binding
from .outcomes import Outcome, Status
from .pubsub_setup import project_of

__all__ = ["EVENT", "PAYLOAD", "NotificationRequest", "ensure_notification", "iter_notification"]


EVENT = "OBJECT_FINALIZE"
PAYLOAD = "JSON_API_V1"


@dataclass(frozen=True)
class NotificationRequest:
    """A bucket notification: OBJECT_FINALIZE events of ``bucket`` (under ``prefix``) to ``topic``."""

    bucket: str
    topic: str  # projects/P/topics/T
    prefix: str = ""

    @property
    def label(self) -> str:
        """How the notification is named in setup's report: ``gs://BUCKET/PREFIX* -> TOPIC``."""
        return f"gs://{self.bucket}/{self.prefix}* -> {self.topic}"


def ensure_notification(storage_client: Any, publisher: Any, request: NotificationRequest) -> list[Outcome]:
    """Everything of :func:`iter_notification`, done when it returns."""
    return list(iter_notification(storage_client, publisher, request))


def iter_notification(storage_client: Any, publisher: Any, request: NotificationRequest) -> Iterator[Outcome]:
    """IAM for the Cloud Storage service agent first (checked at creation), then the notification."""
    from google.api_core import exceptions as gexc

    label = request.label
    try:
        bucket = storage_client.get_bucket(request.bucket)
    except gexc.NotFound:
        yield Outcome("notification", label, Status.REFUSED,
                      f"bucket gs://{request.bucket} does not exist (create it first, see deploy/README.md)")
        return

    def storage_agent() -> str:
        project = bucket.project_number or storage_client.project
        return f"serviceAccount:{storage_client.get_service_account_email(project=project)}"

    yield ensure_binding(publisher, request.topic, "roles/pubsub.publisher", storage_agent,
                         "Cloud Storage must be allowed to publish the notifications")
    try:
        existing = list(bucket.list_notifications())
    except (gexc.MethodNotImplemented, gexc.NotFound) as exc:
        # the bucket exists, so a 404/501 here means the server has no notifications API (an emulator)
        yield Outcome("notification", label, Status.SKIPPED,
                      f"the server does not support bucket notifications ({type(exc).__name__}); nothing was created")
        return
    yield _reuse_or_create(bucket, existing, request)


def _same_topic(notification: Any, topic: str) -> bool:
    return f"projects/{notification.topic_project}/topics/{notification.topic_name}" == topic


def _reuse_or_create(bucket: Any, existing: list[Any], request: NotificationRequest) -> Outcome:
    label = request.label
    for n in existing:
        if not _same_topic(n, request.topic):
            continue
        prefix = n.blob_name_prefix or ""
        events = list(n.event_types or [])
        delete = f"gcloud storage buckets notifications delete projects/_/buckets/{request.bucket}/notificationConfigs/{n.notification_id}"
        if prefix == request.prefix:
            if not events or EVENT in events:
                extra = [] if n.payload_format == PAYLOAD else [f"payload {n.payload_format} (haulage reads only the attributes)"]
                if events and events != [EVENT]:
                    extra.append(f"also {', '.join(e for e in events if e != EVENT)} (ignored by haulage)")
                return Outcome("notification", label, Status.UNCHANGED, "; ".join([f"id {n.notification_id}", *extra]))
            return Outcome("notification", label, Status.REFUSED,
                           f"notification {n.notification_id} to this topic has events {events}, not {EVENT}; "
                           f"remove it first: {delete}")
        if prefix.startswith(request.prefix) or request.prefix.startswith(prefix):
            return Outcome("notification", label, Status.REFUSED,
                           f"notification {n.notification_id} to this topic covers prefix {prefix!r}; a second one for "
                           f"{request.prefix!r} would deliver files twice. Remove it first: {delete}")
    notification = bucket.notification(
        topic_name=request.topic.split("/")[3],
        topic_project=project_of(request.topic),
        event_types=[EVENT],
        payload_format=PAYLOAD,
        blob_name_prefix=request.prefix or None,
    )
    notification.create()
    return Outcome("notification", label, Status.CREATED, f"{EVENT}, {PAYLOAD}, id {notification.notification_id}")
