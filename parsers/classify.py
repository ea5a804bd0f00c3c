"""Classification of a download: who sent it and what kind of traffic it is.

Rules from schema.md. ``traffic`` takes exactly one value with the precedence
mirror > ci > automation > human > unknown, so the series a maintainer reads
(total, without mirrors, human, CI) partition the rows without overlap.
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = ["KINDS", "TRAFFIC", "infer_cloud", "classify"]


KINDS = ("installer", "mirror", "browser", "script", "os", "bot", "unknown")
TRAFFIC = ("mirror", "ci", "automation", "human", "unknown")

_AUTOMATION_KINDS = frozenset({"script", "os", "bot"})
_HUMAN_KINDS = frozenset({"installer", "browser"})

# Substrings of a lower-cased kernel release or distro name/id that give the
# cloud away: provider-built kernels carry the provider in their release.
_CLOUD_MARKERS: tuple[tuple[str, str], ...] = (
    ("-azure", "azure"),
    ("-aws", "aws"),
    ("amzn", "aws"),
    ("-gcp", "gcp"),
    ("-gke", "gcp"),
    ("+gke", "gcp"),
    ("-oracle", "oracle"),
    ("-ibm", "ibm"),
)
_CLOUD_DISTROS: tuple[tuple[str, str], ...] = (
    ("amazon linux", "aws"),
    ("amzn", "aws"),
    ("container-optimized os", "gcp"),
    ("cos", "gcp"),
    ("azure linux", "azure"),
    ("mariner", "azure"),
)


def infer_cloud(details: Optional[dict[str, Any]]) -> Optional[str]:
    """Cloud provider from the kernel release or distro, None when nothing says."""
    if not details:
        return None
    system = details.get("system")
    release = system.get("release") if system else None
    if release:
        lowered = release.lower()
        for marker, cloud in _CLOUD_MARKERS:
            if marker in lowered:
                return cloud
    distro = details.get("distro")
    if distro:
        distro_id = (distro.get("id") or "").lower()
        distro_name = (distro.get("name") or "").lower()
        for marker, cloud in _CLOUD_DISTROS:
            if distro_id == marker or (len(marker) > 3 and marker in distro_name):
                return cloud
    return None


def classify(details: Optional[dict[str, Any]], kind: str) -> dict[str, Any]:
    """The ``classification`` record of a row: kind, traffic, mirror, ci and cloud.

    Rule (schema.md): traffic is 'mirror' for mirroring clients, else 'ci' when the
    client says it runs in CI (``details.ci`` TRUE), else 'automation' or 'human'
    by kind, else 'unknown'. Exactly one traffic class per row, so the classes
    partition Total.
    """
    ci = bool(details) and details.get("ci") is True
    if kind == "mirror":
        traffic = "mirror"
    elif ci:
        traffic = "ci"
    elif kind in _AUTOMATION_KINDS:
        traffic = "automation"
    elif kind in _HUMAN_KINDS:
        traffic = "human"
    else:
        traffic = "unknown"
    return {
        "kind": kind,
        "traffic": traffic,
        "mirror": traffic == "mirror",
        "ci": ci,
        "cloud": infer_cloud(details),
    }
