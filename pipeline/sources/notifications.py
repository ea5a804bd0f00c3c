"""Which Cloud Storage notifications haulage acts on: an allow-list of bucket and prefix.

A notification message names an object (``bucketId``, ``objectId``) and the
pipeline then reads it with the workers' credentials. Anyone who can publish
to the topic can write those attributes, so without a check they could make
the workers read any object the workers can read and store its lines in
``unprocessed.line`` (or forge rows from a file of their own). The rule:

* events other than ``OBJECT_FINALIZE`` (deletes, metadata updates, archive
  events) are not files to read: they are acknowledged and counted as
  ``notifications_ignored``, nothing more;
* an ``OBJECT_FINALIZE`` is read only when its bucket is exactly an allowed
  bucket and its object name starts with that bucket's allowed prefix (a
  raw string prefix, as Cloud Storage's own ``objectNamePrefix`` — give
  ``logs/`` rather than ``logs`` to mean a folder);
* anything else — another bucket, another prefix, a name that is not a
  plain object name, missing attributes — is a dead letter naming the
  message, with the reason and the notification's attributes, and the object
  is never opened.

The allow-list is what ``haulage setup --notification-bucket B
--notification-prefix P`` sets up notifications for: ``gs://B/P``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Union

import orjson

__all__ = [
    "FINALIZE",
    "NOT_ALLOWED",
    "BAD_NOTIFICATION",
    "AllowedLocation",
    "NotificationPolicy",
    "Refusal",
    "parse_location",
]

FINALIZE = "OBJECT_FINALIZE"
NOT_ALLOWED = "notification-not-allowed"
BAD_NOTIFICATION = "bad-notification"

# Cloud Storage bucket names: 3-63 characters (222 with dots), lower-case
# letters, digits, '-', '_' and '.', starting and ending with a letter or digit.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")
# Object names: 1-1024 bytes of UTF-8 without carriage return or line feed
# (Cloud Storage's rule); haulage also refuses control characters.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
MAX_OBJECT_NAME_BYTES = 1024
# attributes kept in the dead letter, and how much of each
_KEPT_ATTRIBUTES = ("eventType", "bucketId", "objectId", "objectGeneration", "payloadFormat", "notificationConfig")
_KEPT_CHARS = 1100


class LocationError(ValueError):
    """A ``--notification-allow`` value that is not ``gs://BUCKET[/PREFIX]``."""


@dataclass(frozen=True)
class AllowedLocation:
    bucket: str
    prefix: str = ""

    def covers(self, bucket: str, name: str) -> bool:
        return bucket == self.bucket and name.startswith(self.prefix)

    def __str__(self) -> str:
        return f"gs://{self.bucket}/{self.prefix}"


def parse_location(text: str) -> AllowedLocation:
    """``gs://BUCKET`` or ``gs://BUCKET/PREFIX`` → :class:`AllowedLocation`."""
    if not text.startswith("gs://"):
        raise LocationError(f"{text!r}: expected gs://BUCKET/PREFIX (the bucket and prefix the log files are written to)")
    bucket, _, prefix = text[len("gs://") :].partition("/")
    if not _BUCKET.match(bucket):
        raise LocationError(f"{text!r}: {bucket!r} is not a Cloud Storage bucket name")
    if any(c in prefix for c in "*?[") or _CONTROL.search(prefix):
        raise LocationError(f"{text!r}: the prefix is a plain object-name prefix (no wildcards or control characters)")
    return AllowedLocation(bucket, prefix)


@dataclass(frozen=True)
class Refusal:
    """Why a notification is not acted on: a dead-letter reason, detail and the attributes as text."""

    reason: str
    detail: str
    attributes: str


@dataclass(frozen=True)
class NotificationPolicy:
    """The allow-list, applied to a notification's attributes."""

    allowed: tuple[AllowedLocation, ...]

    @classmethod
    def from_locations(cls, locations: Sequence[str]) -> "NotificationPolicy":
        return cls(tuple(parse_location(text) for text in locations))

    def describe(self) -> str:
        return ", ".join(str(a) for a in self.allowed) or "(nothing)"

    def decide(self, attributes: Mapping[str, str]) -> Union[None, str, Refusal]:
        """``None``: not a new file, ignore; ``"gs://b/o"``: read it; :class:`Refusal`: dead letter."""
        if attributes.get("eventType") != FINALIZE:
            return None
        bucket = attributes.get("bucketId") or ""
        name = attributes.get("objectId") or ""
        if not bucket or not name:
            return self._refuse(BAD_NOTIFICATION, "OBJECT_FINALIZE without bucketId or objectId", attributes)
        if not _BUCKET.match(bucket) or _CONTROL.search(name) or len(name.encode("utf-8", "surrogatepass")) > MAX_OBJECT_NAME_BYTES:
            return self._refuse(BAD_NOTIFICATION, "bucketId or objectId is not a valid Cloud Storage name", attributes)
        if not any(a.covers(bucket, name) for a in self.allowed):
            return self._refuse(
                NOT_ALLOWED, f"gs://{bucket}/{name} is outside the allowed locations {self.describe()}", attributes
            )
        return f"gs://{bucket}/{name}"

    @staticmethod
    def _refuse(reason: str, detail: str, attributes: Mapping[str, str]) -> Refusal:
        kept = {k: str(attributes[k])[:_KEPT_CHARS] for k in _KEPT_ATTRIBUTES if k in attributes}
        others = sorted(k for k in attributes if k not in _KEPT_ATTRIBUTES)
        if others:
            kept["otherAttributes"] = ",".join(others)[:_KEPT_CHARS]
        return Refusal(reason, detail[:2000], orjson.dumps(kept, option=orjson.OPT_SORT_KEYS).decode())


def policy_or_none(locations: Optional[Sequence[str]]) -> Optional[NotificationPolicy]:
    return NotificationPolicy.from_locations(locations) if locations else None
