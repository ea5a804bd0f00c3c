"""Pub/Sub side of ``haulage setup``: topic, subscription, dead letters.

What "an outage loses nothing" needs, and why each setting is here:

* the subscription keeps unacknowledged messages for ``retention`` (7 days,
  the maximum): a stopped or broken pipeline has a week to come back;
* it never expires (Pub/Sub deletes a subscription idle for 31 days by
  default, and its backlog with it);
* a message that cannot be delivered ``max_delivery_attempts`` times is
  forwarded to a dead-letter topic instead of blocking or being dropped, and
  that topic has its own subscription — messages published to a topic with
  no subscription are lost;
* the Pub/Sub service agent gets the two IAM roles dead lettering needs
  (:mod:`haulage.deploy.iam`).

Existing resources are compared field by field and updated in place where
Pub/Sub allows it; a subscription attached to another topic, or a push /
export subscription (haulage pulls), is refused, not recreated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional

from .iam import ensure_binding, lookup_project_number, pubsub_service_agent
from .outcomes import Outcome, Status

__all__ = [
    "DAY", "PubSubRequest", "default_dead_letter_topic", "project_of", "ensure_topic", "SubscriptionSpec",
    "ensure_subscription", "ensure_pubsub", "iter_pubsub",
]


DAY = 86_400


@dataclass(frozen=True)
class PubSubRequest:
    """The Pub/Sub part of ``haulage setup``: topic, subscription, dead letters and retention."""

    topic: str
    subscription: Optional[str] = None
    dead_letter_topic: Optional[str] = None
    ack_deadline_seconds: int = 600
    retention_seconds: int = 7 * DAY
    max_delivery_attempts: int = 10
    topic_retention_seconds: Optional[int] = None
    project_number: Optional[str] = None

    @property
    def dead_letter_subscription(self) -> Optional[str]:
        """The subscription that keeps dead letters readable (None without a subscription and dead-letter topic)."""
        return f"{self.subscription}-dead-letter" if self.subscription and self.dead_letter_topic else None


def default_dead_letter_topic(topic: str) -> str:
    """The dead-letter topic next to a topic when none is named: ``<topic>-dead-letter``."""
    return f"{topic}-dead-letter"


def project_of(resource: str) -> str:
    """``projects/P/topics/T`` -> ``P``."""
    return resource.split("/")[1]


def _seconds(value: Any) -> int:
    """A proto Duration as whole seconds (proto-plus may hand out timedelta or Duration)."""
    if value is None:
        return 0
    if hasattr(value, "total_seconds"):
        return int(value.total_seconds())
    return int(getattr(value, "seconds", 0))


def _span(seconds: int) -> str:
    if seconds == 0:
        return "never"
    if seconds % DAY == 0:
        return f"{seconds // DAY}d"
    return f"{seconds}s"


# --------------------------------------------------------------------------
# topics


def ensure_topic(publisher: Any, name: str, retention_seconds: Optional[int] = None, kind: str = "topic") -> Outcome:
    """Create the topic, or bring its message retention to the one asked for."""
    from google.api_core.exceptions import NotFound
    from google.protobuf import duration_pb2

    try:
        topic = publisher.get_topic(request={"topic": name})
    except NotFound:
        request: dict[str, Any] = {"name": name}
        if retention_seconds:
            request["message_retention_duration"] = duration_pb2.Duration(seconds=retention_seconds)
        publisher.create_topic(request=request)
        return Outcome(kind, name, Status.CREATED, f"keeps messages {_span(retention_seconds)}" if retention_seconds else "")
    if retention_seconds is not None and _seconds(topic.message_retention_duration) != retention_seconds:
        before = _seconds(topic.message_retention_duration)
        publisher.update_topic(request={
            "topic": {"name": name, "message_retention_duration": duration_pb2.Duration(seconds=retention_seconds)},
            "update_mask": {"paths": ["message_retention_duration"]},
        })
        return Outcome(kind, name, Status.UPDATED,
                       f"message retention {_span(before) if before else 'none'} -> {_span(retention_seconds)}")
    return Outcome(kind, name, Status.UNCHANGED)


# --------------------------------------------------------------------------
# subscriptions


@dataclass(frozen=True)
class SubscriptionSpec:
    """A pull subscription as ``haulage run`` needs it: ack deadline, retention, dead letters, never expiring."""

    name: str
    topic: str
    ack_deadline_seconds: int
    retention_seconds: int
    dead_letter_topic: Optional[str] = None
    max_delivery_attempts: int = 10

    def create_request(self) -> dict[str, Any]:
        """The request that creates this subscription."""
        from google.protobuf import duration_pb2

        request: dict[str, Any] = {
            "name": self.name,
            "topic": self.topic,
            "ack_deadline_seconds": self.ack_deadline_seconds,
            "message_retention_duration": duration_pb2.Duration(seconds=self.retention_seconds),
            "expiration_policy": {},  # an empty policy: never expires
        }
        if self.dead_letter_topic:
            request["dead_letter_policy"] = {
                "dead_letter_topic": self.dead_letter_topic,
                "max_delivery_attempts": self.max_delivery_attempts,
            }
        return request


def _never_expires(subscription: Any) -> bool:
    return "expiration_policy" in subscription and _seconds(subscription.expiration_policy.ttl) == 0


def _dead_letter(subscription: Any) -> tuple[str, int]:
    if "dead_letter_policy" not in subscription:
        return ("", 0)
    policy = subscription.dead_letter_policy
    return (policy.dead_letter_topic or "", policy.max_delivery_attempts or 0)


def _not_pulled(subscription: Any) -> Optional[str]:
    """Why haulage could not pull from this subscription, if it cannot."""
    push = getattr(getattr(subscription, "push_config", None), "push_endpoint", "")
    if push:
        return f"is a push subscription (to {push}); haulage pulls"
    for attr, what in (("bigquery_config", "table"), ("cloud_storage_config", "bucket")):
        config = getattr(subscription, attr, None)
        if config is not None and getattr(config, what, ""):
            return f"exports to {attr.split('_config')[0]} ({getattr(config, what)}); haulage pulls"
    return None


def ensure_subscription(subscriber: Any, spec: SubscriptionSpec, kind: str = "subscription") -> Outcome:
    """Create the subscription or bring it to ``spec``; refuse one on another topic or pushing elsewhere.

    A subscription cannot change topic, and one that pushes would never be pulled,
    so those are reported, not "fixed".
    """
    from google.api_core.exceptions import InvalidArgument, NotFound
    from google.protobuf import duration_pb2

    try:
        existing = subscriber.get_subscription(request={"subscription": spec.name})
    except NotFound:
        subscriber.create_subscription(request=spec.create_request())
        parts = [f"ack deadline {spec.ack_deadline_seconds}s", f"keeps unacked messages {_span(spec.retention_seconds)}",
                 "never expires"]
        if spec.dead_letter_topic:
            parts.append(f"dead letters to {spec.dead_letter_topic} after {spec.max_delivery_attempts} attempts")
        return Outcome(kind, spec.name, Status.CREATED, ", ".join(parts))

    if existing.topic != spec.topic:
        return Outcome(kind, spec.name, Status.REFUSED,
                       f"is attached to {existing.topic}, not {spec.topic} (a subscription cannot change topic)")
    why_not = _not_pulled(existing)
    if why_not:
        return Outcome(kind, spec.name, Status.REFUSED, why_not)

    changes: dict[str, Any] = {}
    notes: list[str] = []
    if existing.ack_deadline_seconds != spec.ack_deadline_seconds:
        changes["ack_deadline_seconds"] = spec.ack_deadline_seconds
        notes.append(f"ack deadline {existing.ack_deadline_seconds}s -> {spec.ack_deadline_seconds}s")
    retention = _seconds(existing.message_retention_duration)
    if retention != spec.retention_seconds:
        changes["message_retention_duration"] = duration_pb2.Duration(seconds=spec.retention_seconds)
        notes.append(f"retention {_span(retention)} -> {_span(spec.retention_seconds)}")
    if not _never_expires(existing):
        changes["expiration_policy"] = {}
        ttl = _seconds(existing.expiration_policy.ttl) if "expiration_policy" in existing else 31 * DAY
        notes.append(f"expires after idle {_span(ttl)} -> never")
    want_dl = (spec.dead_letter_topic or "", spec.max_delivery_attempts if spec.dead_letter_topic else 0)
    have_dl = _dead_letter(existing)
    if spec.dead_letter_topic and have_dl != want_dl:
        changes["dead_letter_policy"] = {"dead_letter_topic": want_dl[0], "max_delivery_attempts": want_dl[1]}
        before = f"{have_dl[0]} after {have_dl[1]}" if have_dl[0] else "none"
        notes.append(f"dead letters {before} -> {want_dl[0]} after {want_dl[1]} attempts")
    info = []
    if getattr(existing, "filter", ""):
        info.append(f"has filter {existing.filter!r} (kept)")
    if changes:
        try:
            _update_subscription(subscriber, spec.name, changes)
        except InvalidArgument as exc:
            # The Pub/Sub emulator cannot update expiration policies ("currently unsupported in the
            # Pub/Sub Emulator"); apply the rest and say what was left as it is.
            if "expiration_policy" not in changes or "expiration_policy" not in str(exc):
                raise
            del changes["expiration_policy"]
            notes = [n for n in notes if "-> never" not in n]
            info.append(f"expiration policy left as it is: the server refused to change it ({_first_line(exc)})")
            if not changes:
                return Outcome(kind, spec.name, Status.SKIPPED, "; ".join(info))
            _update_subscription(subscriber, spec.name, changes)
        return Outcome(kind, spec.name, Status.UPDATED, "; ".join(notes + info))
    return Outcome(kind, spec.name, Status.UNCHANGED, "; ".join(info))


def _update_subscription(subscriber: Any, name: str, changes: dict[str, Any]) -> None:
    subscriber.update_subscription(request={
        "subscription": {"name": name, **changes},
        "update_mask": {"paths": list(changes)},
    })


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:160]


# --------------------------------------------------------------------------
# everything


def ensure_pubsub(publisher: Any, subscriber: Any, request: PubSubRequest) -> list[Outcome]:
    """Everything of :func:`iter_pubsub`, done when it returns."""
    return list(iter_pubsub(publisher, subscriber, request))


def iter_pubsub(publisher: Any, subscriber: Any, request: PubSubRequest) -> Iterator[Outcome]:
    """Topic, then dead-letter topic and its subscription, then the subscription, then IAM; one
    Outcome each, as it is done."""
    yield ensure_topic(publisher, request.topic, request.topic_retention_seconds)
    if not request.subscription:
        return
    if request.dead_letter_topic:
        yield ensure_topic(publisher, request.dead_letter_topic, kind="dead-letter topic")
        yield ensure_subscription(subscriber, SubscriptionSpec(
            request.dead_letter_subscription or "", request.dead_letter_topic,
            ack_deadline_seconds=600, retention_seconds=7 * DAY,
        ), kind="dead-letter subscription")
    yield ensure_subscription(subscriber, SubscriptionSpec(
        request.subscription, request.topic, request.ack_deadline_seconds, request.retention_seconds,
        request.dead_letter_topic, request.max_delivery_attempts,
    ))
    if request.dead_letter_topic:
        project = project_of(request.subscription)
        found: dict[str, str] = {}

        def agent() -> str:  # looked up once, and only if the server has IAM
            if "number" not in found:
                found["number"] = request.project_number or lookup_project_number(project)
            return pubsub_service_agent(found["number"])

        why = "dead lettering needs it"
        yield ensure_binding(publisher, request.dead_letter_topic, "roles/pubsub.publisher", agent, why)
        yield ensure_binding(subscriber, request.subscription, "roles/pubsub.subscriber", agent, why)
