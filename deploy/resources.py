"""``haulage setup``'s job: every resource ``haulage run`` needs, in dependency order.

The BigQuery dataset's tables and views, then the Pub/Sub topic, subscription
and dead letters, then the bucket notification that publishes to that topic.
Each step is idempotent and reports an :class:`~haulage.deploy.outcomes.Outcome`;
the command line (options, validation, printing) is :mod:`haulage.cli.setup`.

Uses the Google client libraries (google-cloud-bigquery, -pubsub, -storage).
They honour the emulator variables: PUBSUB_EMULATOR_HOST and
STORAGE_EMULATOR_HOST by themselves, BIGQUERY_EMULATOR_HOST through
:func:`haulage.pipeline.datasets.bigquery_client`.
"""

from __future__ import annotations

import argparse
from typing import Optional

__all__ = ["run_setup"]


def run_setup(args: argparse.Namespace, outcomes: Optional[list] = None) -> list:
    """Every step in dependency order, appending to ``outcomes`` (so what was done
    before an API error can still be reported); returns them."""
    from .outcomes import Outcome, Status

    outcomes = [] if outcomes is None else outcomes
    if args.bigquery_dataset:
        from ..pipeline.datasets import DatasetRef, bigquery_client

        from .bigquery_setup import BigQueryRequest, iter_bigquery

        ref = DatasetRef.parse(args.bigquery_dataset)
        client = bigquery_client(ref.project)
        try:
            outcomes.extend(iter_bigquery(client, BigQueryRequest(ref.project, ref.dataset, args.location,
                                                                    args.partition_expiration_days)))
        finally:
            client.close()
    if args.topic:
        from google.cloud import pubsub_v1

        from .pubsub_setup import PubSubRequest, default_dead_letter_topic, iter_pubsub

        publisher = pubsub_v1.PublisherClient()
        subscriber = pubsub_v1.SubscriberClient()
        try:
            request = PubSubRequest(
                topic=args.topic,
                subscription=args.subscription,
                dead_letter_topic=(args.dead_letter_topic or default_dead_letter_topic(args.topic)) if args.subscription else None,
                ack_deadline_seconds=args.ack_deadline_seconds,
                retention_seconds=args.retention_days * 86_400,
                max_delivery_attempts=args.max_delivery_attempts,
                topic_retention_seconds=args.topic_retention_days * 86_400 if args.topic_retention_days else None,
                project_number=args.project_number,
            )
            outcomes.extend(iter_pubsub(publisher, subscriber, request))
            if args.notification_bucket:
                from google.cloud import storage

                from .notification_setup import NotificationRequest, iter_notification

                storage_client = storage.Client(project=request.topic.split("/")[1])
                outcomes.extend(iter_notification(storage_client, publisher, NotificationRequest(
                    args.notification_bucket.removeprefix("gs://").rstrip("/"), args.topic, args.notification_prefix)))
        finally:
            subscriber.close()
            publisher.stop()
    if not outcomes:
        outcomes.append(Outcome("setup", "-", Status.SKIPPED, "nothing requested"))
    return outcomes
