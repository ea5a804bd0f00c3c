"""The streaming job's transform names, pinned, and the check that keeps them.

``gcloud dataflow flex-template run … --update`` replaces a running streaming
job in place. Dataflow matches the new graph to the old one by transform
name: a renamed or removed step makes the update fail (or, for a stateful
step, start from empty state) unless ``--transform-name-mappings`` maps old
names to new ones. So the names of the production graphs — line delivery and
file delivery, into BigQuery — are listed here, a test builds both jobs
offline and compares, and :func:`update_problem` says what changed and the
mapping an operator would pass.

Changing a name is allowed; doing it silently is not: update the list in the
same change and say in deploy/README.md ("Update") what the mapping is.
"""

from __future__ import annotations

import json
from typing import Iterable, Optional

__all__ = ["PINNED_STREAMING_STEPS", "update_problem"]

_READ = (
    "ReadPubSub", "ReadPubSub/ReadFromPubSub", "ReadPubSub/ReadFromPubSub/Read",
    "ReadPubSub/ReadFromPubSub/Map(_from_proto_str)", "ReadPubSub/ReadFromPubSub/ParDo(_AddMetricsPassThrough)",
    "ReadPubSub/DecodeMessages",
)
_PARSE_AND_WRITE = (
    "ParseLogLines", "ParseLogLines/ParseChunks",
    "WriteBigQuery", "WriteBigQuery/StageBundles", "WriteBigQuery/EveryLoadInterval", "WriteBigQuery/OneLoader",
    "WriteBigQuery/CollectStaged", "WriteBigQuery/LoadBatches",
)

PINNED_STREAMING_STEPS: dict[str, frozenset[str]] = {
    # message_format -> every transform name of the Dataflow job (BigQuery sink)
    "lines": frozenset(
        _READ
        + ("ReadPubSub/BatchMessages", "ReadPubSub/BatchMessages/KeyByWorker", "ReadPubSub/BatchMessages/Batch")
        + _PARSE_AND_WRITE
    ),
    "gcs-notification": frozenset(_READ + _PARSE_AND_WRITE),
}


def update_problem(pinned: Iterable[str], built: Iterable[str]) -> Optional[str]:
    """None when the names agree; else what was added and removed, and the mapping to pass."""
    pinned, built = set(pinned), set(built)
    if pinned == built:
        return None
    added, removed = sorted(built - pinned), sorted(pinned - built)
    mapping = _likely_renames(removed, added)
    lines = [
        "the streaming job's transform names changed; a running job can only be updated with "
        "--transform-name-mappings (deploy/README.md, 'Update'), and stateful steps restart empty",
        f"  removed: {removed}",
        f"  added:   {added}",
    ]
    if mapping:
        lines.append(f"  likely renames: --transform-name-mappings='{json.dumps(mapping, sort_keys=True)}'")
    lines.append("update deploy/update_steps.py (PINNED_STREAMING_STEPS) and deploy/README.md if this is intended")
    return "\n".join(lines)


def _likely_renames(removed: list[str], added: list[str]) -> dict[str, str]:
    """Pairs of one removed and one added name under the same parent step."""
    def parent(name: str) -> str:
        return name.rpartition("/")[0]

    mapping = {}
    for old in removed:
        candidates = [new for new in added if parent(new) == parent(old)]
        siblings = [o for o in removed if parent(o) == parent(old)]
        if len(candidates) == 1 and len(siblings) == 1:
            mapping[old] = candidates[0]
    return mapping
