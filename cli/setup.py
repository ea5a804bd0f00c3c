"""``haulage setup``: create what ``haulage run`` needs, idempotently.

    haulage setup --bigquery-dataset P:D --topic projects/P/topics/T \\
                  --subscription projects/P/subscriptions/S [--notification-bucket B]

The flags are the ones ``haulage run`` takes for the same resources, so the
two commands are written with the same values. Each resource is reported as
created, exists/unchanged, updated (with what changed), skipped (with why)
or refused (an incompatible difference setup will not "fix"); a run that
changed nothing ends with "nothing to change". Exit status: 0 done, 1 a
resource was refused or an API call failed, 2 bad options.

Uses the Google client libraries (google-cloud-bigquery, -pubsub, -storage).
They honour the emulator variables: PUBSUB_EMULATOR_HOST and
STORAGE_EMULATOR_HOST by themselves, BIGQUERY_EMULATOR_HOST through
:func:`haulage.pipeline.datasets.bigquery_client`.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Optional

_TOPIC = re.compile(r"^projects/[^/]+/topics/[^/]+$")
_SUBSCRIPTION = re.compile(r"^projects/[^/]+/subscriptions/[^/]+$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")


def _int_in(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


def add_parser(commands) -> argparse.ArgumentParser:
    setup = commands.add_parser(
        "setup",
        help="create the BigQuery tables and views, Pub/Sub topic and subscription, bucket notification (idempotent)",
        description=(
            "Create, idempotently, what 'haulage run' needs: the BigQuery dataset, tables and views; the Pub/Sub "
            "topic, subscription and dead-letter topic; optionally the Cloud Storage notification for file delivery. "
            "A second run changes nothing and says so. Never destructive: older tables get new nullable columns, "
            "incompatible differences are refused."
        ),
    )
    bq = setup.add_argument_group("BigQuery")
    bq.add_argument("--bigquery-dataset", metavar="PROJECT:DATASET", help="dataset of the tables ('haulage run --bigquery-dataset')")
    bq.add_argument("--location", default="US", help="location of a new dataset (default US; an existing one keeps its own)")
    bq.add_argument("--partition-expiration-days", type=_int_in(0, 100_000), metavar="DAYS",
                    help="drop partitions older than this (0: never); default: new tables keep everything, existing ones unchanged")
    ps = setup.add_argument_group("Pub/Sub")
    ps.add_argument("--topic", metavar="projects/P/topics/T", help="topic the CDN (or the bucket notification) publishes to")
    ps.add_argument("--subscription", metavar="projects/P/subscriptions/S", help="subscription 'haulage run' reads")
    ps.add_argument("--dead-letter-topic", metavar="projects/P/topics/T",
                    help="where undeliverable messages go (default: TOPIC-dead-letter, with subscription SUBSCRIPTION-dead-letter)")
    ps.add_argument("--max-delivery-attempts", type=_int_in(5, 100), default=10, metavar="N",
                    help="deliveries before a message is dead-lettered (5-100, default 10)")
    ps.add_argument("--ack-deadline-seconds", type=_int_in(10, 600), default=600, metavar="S",
                    help="seconds a pulled message stays leased before redelivery (10-600, default 600: a notification "
                         "message stands for a whole file)")
    ps.add_argument("--retention-days", type=_int_in(1, 7), default=7, metavar="D",
                    help="days the subscription keeps unacknowledged messages: the longest outage that loses nothing (1-7, default 7)")
    ps.add_argument("--topic-retention-days", type=_int_in(1, 31), metavar="D",
                    help="also keep published messages on the topic for replay with seek (1-31; default off)")
    ps.add_argument("--project-number", metavar="N", help="number of the subscription's project, for the Pub/Sub service agent "
                    "(looked up with Resource Manager if omitted)")
    gcs = setup.add_argument_group("Cloud Storage (file delivery)")
    gcs.add_argument("--notification-bucket", metavar="BUCKET",
                     help="bucket the CDN writes log files to: notify --topic of each new object")
    gcs.add_argument("--notification-prefix", default="", metavar="PREFIX", help="only objects under this prefix")
    return setup


class _UsageError(ValueError):
    pass


def _validate(args: argparse.Namespace) -> None:
    from ..pipeline.datasets import DatasetRef, DatasetSpecError

    if args.subscription and not args.topic:
        raise _UsageError("--subscription needs --topic (the topic it is attached to)")
    if args.notification_bucket and not args.topic:
        raise _UsageError("--notification-bucket needs --topic (where the notifications go)")
    if not (args.bigquery_dataset or args.topic):
        raise _UsageError("nothing to set up: give --bigquery-dataset and/or --topic (with --subscription)")
    if args.bigquery_dataset:
        try:
            DatasetRef.parse(args.bigquery_dataset)
        except DatasetSpecError as exc:
            raise _UsageError(str(exc)) from None
    if args.topic and not _TOPIC.match(args.topic):
        raise _UsageError(f"--topic {args.topic!r}: expected projects/PROJECT/topics/NAME")
    if args.subscription and not _SUBSCRIPTION.match(args.subscription):
        raise _UsageError(f"--subscription {args.subscription!r}: expected projects/PROJECT/subscriptions/NAME")
    if args.dead_letter_topic and not _TOPIC.match(args.dead_letter_topic):
        raise _UsageError(f"--dead-letter-topic {args.dead_letter_topic!r}: expected projects/PROJECT/topics/NAME")
    if args.notification_bucket and not _BUCKET.match(args.notification_bucket.removeprefix("gs://")):
        raise _UsageError(f"--notification-bucket {args.notification_bucket!r}: expected a bucket name")
    if args.dead_letter_topic and args.dead_letter_topic == args.topic:
        raise _UsageError("--dead-letter-topic must differ from --topic")


def run_setup(args: argparse.Namespace, outcomes: Optional[list] = None) -> list:
    """Every step in dependency order, appending to ``outcomes`` (so what was done
    before an API error can still be reported); returns them."""
    from ..deploy.outcomes import Outcome, Status

    outcomes = [] if outcomes is None else outcomes
    if args.bigquery_dataset:
        from ..pipeline.datasets import DatasetRef, bigquery_client

        from ..deploy.bigquery_setup import BigQueryRequest, iter_bigquery

        ref = DatasetRef.parse(args.bigquery_dataset)
        client = bigquery_client(ref.project)
        try:
            outcomes.extend(iter_bigquery(client, BigQueryRequest(ref.project, ref.dataset, args.location,
                                                                    args.partition_expiration_days)))
        finally:
            client.close()
    if args.topic:
        from google.cloud import pubsub_v1

        from ..deploy.pubsub_setup import PubSubRequest, default_dead_letter_topic, iter_pubsub

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

                from ..deploy.notification_setup import NotificationRequest, iter_notification

                storage_client = storage.Client(project=request.topic.split("/")[1])
                outcomes.extend(iter_notification(storage_client, publisher, NotificationRequest(
                    args.notification_bucket.removeprefix("gs://").rstrip("/"), args.topic, args.notification_prefix)))
        finally:
            subscriber.close()
            publisher.stop()
    if not outcomes:
        outcomes.append(Outcome("setup", "-", Status.SKIPPED, "nothing requested"))
    return outcomes


def main(args: argparse.Namespace, extra: Optional[list[str]] = None) -> int:
    try:
        _validate(args)
    except _UsageError as exc:
        print(f"haulage setup: {exc}", file=sys.stderr)
        return 2
    from ..deploy.outcomes import Status, render

    outcomes: list = []
    try:
        run_setup(args, outcomes)
    except Exception as exc:  # an API error: say which, after what was done so far
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as auth_exc

        if isinstance(exc, (gexc.GoogleAPIError, auth_exc.GoogleAuthError)):
            if outcomes:
                print("\n".join(o.line() for o in outcomes))
            print(f"haulage setup: stopped: {type(exc).__name__}: {str(exc).strip()}", file=sys.stderr)
            return 1
        raise
    print(render(outcomes))
    if args.notification_bucket:  # the allow-list that matches the notification just set up
        bucket = args.notification_bucket.removeprefix("gs://").rstrip("/")
        print(f"haulage setup: read its notifications with --message-format gcs-notification "
              f"--notification-allow gs://{bucket}/{args.notification_prefix}", file=sys.stderr)
    return 1 if any(o.status is Status.REFUSED for o in outcomes) else 0
