"""BigQuery dataset references and clients (light: no Beam import)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["DatasetSpecError", "DatasetRef", "bigquery_client"]


_DATASET_SPEC = re.compile(r"^(?P<project>[a-z][a-z0-9.:\-]*[a-z0-9])[:.](?P<dataset>[A-Za-z0-9_]{1,1024})$")


class DatasetSpecError(ValueError):
    """A ``--bigquery-dataset`` value that is not ``PROJECT:DATASET``; the message says what to write."""


@dataclass(frozen=True)
class DatasetRef:
    """A BigQuery dataset: its project and name, parsed from ``PROJECT:DATASET``."""

    project: str
    dataset: str

    @classmethod
    def parse(cls, spec: str) -> "DatasetRef":
        """``PROJECT:DATASET`` (or ``PROJECT.DATASET``)."""
        # a domain-scoped project looks like example.com:proj, so split at the last separator
        match = _DATASET_SPEC.match(spec or "")
        if match is None:
            raise DatasetSpecError(
                f"--bigquery-dataset {spec!r}: expected PROJECT:DATASET, e.g. my-project:pypi_downloads "
                "(dataset names use letters, digits and underscores)"
            )
        return cls(match["project"], match["dataset"])

    def table_id(self, table: str) -> str:
        """The table's id as the BigQuery client wants it: ``project.dataset.table``."""
        return f"{self.project}.{self.dataset}.{table}"

    def __str__(self) -> str:
        return f"{self.project}:{self.dataset}"


def bigquery_client(project: str) -> Any:
    """A BigQuery client; anonymous when BIGQUERY_EMULATOR_HOST points at an emulator."""
    from google.cloud import bigquery

    if os.environ.get("BIGQUERY_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return bigquery.Client(
            project=project,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": os.environ["BIGQUERY_EMULATOR_HOST"]},
        )
    return bigquery.Client(project=project)


