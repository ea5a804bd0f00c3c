"""Pub/Sub subscriber clients that also work with big messages against the emulator.

Against the real service the Pub/Sub client opens its gRPC channel without
a message-size limit. When ``PUBSUB_EMULATOR_HOST`` is set it opens a plain
channel with gRPC's default 4 MiB receive limit, so one pull of, say, ten
500 KB messages fails with RESOURCE_EXHAUSTED ("Received message larger than
max"). :func:`subscriber_client` gives the emulator the same unlimited
channel the service gets.
"""

from __future__ import annotations

import os
from typing import Any

__all__ = ["subscriber_client"]

_UNLIMITED = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


def subscriber_client() -> Any:
    """A ``pubsub_v1.SubscriberClient``; for the emulator, on a channel without a message-size limit."""
    from google.cloud import pubsub_v1

    host = os.environ.get("PUBSUB_EMULATOR_HOST")
    if not host:
        return pubsub_v1.SubscriberClient()
    import grpc
    from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

    return pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=grpc.insecure_channel(host, options=_UNLIMITED)))
