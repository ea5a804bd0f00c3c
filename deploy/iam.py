"""IAM bindings that Google's own service agents need for setup to work.

Two features only work if a Google-managed service account may touch our
Pub/Sub resources, and nobody notices until messages go missing:

* dead lettering: the Pub/Sub service agent
  ``service-<project number>@gcp-sa-pubsub.iam.gserviceaccount.com`` must be
  allowed to publish to the dead-letter topic and to subscribe to the source
  subscription (it acks what it forwarded);
* bucket notifications: the Cloud Storage service agent of the bucket's
  project must be allowed to publish to the notification topic.

Bindings are added, never removed. A server without IAM (the Pub/Sub emulator
answers UNIMPLEMENTED) gives a SKIPPED outcome that says so — nothing is
pretended.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from .outcomes import Outcome, Status


__all__ = ["pubsub_service_agent", "lookup_project_number", "ensure_binding"]


def pubsub_service_agent(project_number: str) -> str:
    """The Pub/Sub service agent of a project: it must be allowed to publish dead letters."""
    return f"serviceAccount:service-{project_number}@gcp-sa-pubsub.iam.gserviceaccount.com"


def lookup_project_number(project_id: str) -> str:
    """The project's number (service-agent e-mails use it), from Resource Manager."""
    from google.cloud import resourcemanager_v3

    project = resourcemanager_v3.ProjectsClient().get_project(name=f"projects/{project_id}")
    return project.name.split("/", 1)[1]


def ensure_binding(client: Any, resource: str, role: str, member: Callable[[], Optional[str]], why: str) -> Outcome:
    """Grant ``role`` on ``resource`` to ``member()`` unless already granted.

    ``client`` is a Pub/Sub PublisherClient or SubscriberClient (both speak
    the IAM mixin). ``member`` is called only when the server has IAM, so an
    emulator never triggers a project-number lookup; it returns None (with
    the reason logged in the outcome) when the member cannot be determined.
    """
    from google.api_core import exceptions as gexc

    label = f"{role} on {resource}"
    try:
        policy = client.get_iam_policy(request={"resource": resource})
    except gexc.MethodNotImplemented:
        return Outcome("iam", label, Status.SKIPPED, f"the server has no IAM (emulator); {why}")
    try:
        who = member()
    except Exception as exc:  # permission to read the project, missing library, …
        return Outcome("iam", label, Status.SKIPPED,
                       f"could not determine the service agent ({_short(exc)}); pass --project-number; {why}")
    if who is None:
        return Outcome("iam", label, Status.SKIPPED, f"no member to grant; {why}")
    for binding in policy.bindings:
        if binding.role == role and who in binding.members:
            return Outcome("iam", label, Status.UNCHANGED, who)
    for binding in policy.bindings:
        if binding.role == role and not binding.condition.expression:
            binding.members.append(who)
            break
    else:
        policy.bindings.add(role=role, members=[who])
    client.set_iam_policy(request={"resource": resource, "policy": policy})
    return Outcome("iam", label, Status.CREATED, f"granted to {who}")


def _short(exc: Exception) -> str:
    return str(exc).replace("\n", " ")[:200]
