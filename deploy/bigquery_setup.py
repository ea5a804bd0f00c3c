"""BigQuery side of ``haulage setup``: dataset, the three tables, the views.

Tables come from :mod:`haulage.parsers.schemas` (the one definition the
pipeline's writers and the docs use too): DAY partitions on the partition
column, clustering and descriptions as defined there.

Idempotent and never destructive. For a table that already exists the
schema is *planned* against the code (:func:`plan_schema`):

* columns the code has and the table lacks are added, at any depth (a new
  field inside an existing RECORD too) — but only NULLABLE ones, because
  BigQuery cannot add a REQUIRED column to a table that has rows;
* a REQUIRED column the code now allows to be NULL is relaxed;
* column and table descriptions follow the code;
* anything else — a different type, a missing REQUIRED column, a column the
  table requires that the code does not write, other partitioning — is
  refused with a message saying why, and nothing of that table is changed.

Partition expiration and clustering can be changed in place, so they are.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

from .bigquery_views import ViewSpec, normalized_sql, views
from .outcomes import Outcome, Status
from ..parsers.schemas import (
    CLUSTERING,
    DESCRIPTIONS,
    LEDGER,
    LEDGER_DESCRIPTION,
    LOCKS,
    LOCKS_DESCRIPTION,
    PARTITION_COLUMN,
    TABLE_NAMES,
    bigquery_schema,
    bookkeeping_schema,
)

DAY_MS = 86_400_000
DATASET_DESCRIPTION = "haulage: package-index CDN downloads (tables and views made by 'haulage setup')"

_TYPE_ALIASES = {"STRUCT": "RECORD", "BOOL": "BOOLEAN", "INT64": "INTEGER", "FLOAT64": "FLOAT"}


# --------------------------------------------------------------------------
# schema planning (pure: REST-style field dicts in, plan out)


@dataclass
class SchemaPlan:
    """How to bring an existing table's schema to the code's, without losing anything."""

    merged: list[dict[str, Any]]
    added: list[str] = field(default_factory=list)
    relaxed: list[str] = field(default_factory=list)
    described: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    stricter_in_table: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def changes(self) -> bool:
        return bool(self.added or self.relaxed or self.described)


def _type(f: dict[str, Any]) -> str:
    t = str(f.get("type", "")).upper()
    return _TYPE_ALIASES.get(t, t)


def _mode(f: dict[str, Any]) -> str:
    return str(f.get("mode") or "NULLABLE").upper()


def _all_nullable(f: dict[str, Any]) -> bool:
    return _mode(f) != "REQUIRED" and all(_all_nullable(sub) for sub in f.get("fields", []))


def plan_schema(existing: list[dict[str, Any]], desired: list[dict[str, Any]]) -> SchemaPlan:
    """Merge ``desired`` (the code) into ``existing`` (the table): order kept, new columns appended."""
    plan = SchemaPlan(merged=[])
    plan.merged = _merge(existing, desired, "", plan)
    return plan


def _merge(existing: list[dict[str, Any]], desired: list[dict[str, Any]], prefix: str, plan: SchemaPlan) -> list[dict[str, Any]]:
    wanted = {f["name"].lower(): f for f in desired}
    merged: list[dict[str, Any]] = []
    seen: set[str] = set()
    for have in existing:
        name = have["name"]
        path = prefix + name
        seen.add(name.lower())
        out = copy.deepcopy(have)
        want = wanted.get(name.lower())
        if want is None:
            if _mode(have) == "REQUIRED":
                plan.problems.append(f"column {path} is REQUIRED in the table but the pipeline does not write it")
            else:
                plan.extra.append(path)
            merged.append(out)
            continue
        if _type(have) != _type(want):
            plan.problems.append(f"column {path} is {_type(have)} in the table, {_type(want)} in the code")
            merged.append(out)
            continue
        if (_mode(have) == "REPEATED") != (_mode(want) == "REPEATED"):
            plan.problems.append(f"column {path} is {_mode(have)} in the table, {_mode(want)} in the code")
            merged.append(out)
            continue
        if _mode(have) == "REQUIRED" and _mode(want) == "NULLABLE":
            out["mode"] = "NULLABLE"
            plan.relaxed.append(path)
        elif _mode(have) == "NULLABLE" and _mode(want) == "REQUIRED":
            plan.stricter_in_table.append(path)  # the table accepts more than the code writes: fine
        description = want.get("description") or ""
        if description and description != (have.get("description") or ""):
            out["description"] = description
            plan.described.append(path)
        if _type(want) == "RECORD":
            out["fields"] = _merge(have.get("fields", []), want.get("fields", []), path + ".", plan)
        merged.append(out)
    for want in desired:
        if want["name"].lower() in seen:
            continue
        path = prefix + want["name"]
        if _all_nullable(want):
            merged.append(copy.deepcopy(want))
            plan.added.append(path)
        else:
            plan.problems.append(
                f"column {path} is missing and REQUIRED in the code; BigQuery can add only NULLABLE columns "
                "to an existing table (recreate the table, or copy it with a value for the column)"
            )
    return merged


# --------------------------------------------------------------------------
# resources


@dataclass(frozen=True)
class TableSpec:
    name: str
    schema: list[dict[str, Any]]
    partition_field: str
    clustering: tuple[str, ...]
    description: str


def table_specs() -> list[TableSpec]:
    """The three data tables, then haulage's ledger (partitioned by day, clustered by unit id, so
    looking units up reads little) and its lock table."""
    return [
        *(TableSpec(t, bigquery_schema(t), PARTITION_COLUMN[t], tuple(CLUSTERING[t]), DESCRIPTIONS[t])
          for t in TABLE_NAMES),
        TableSpec(LEDGER, bookkeeping_schema(LEDGER), "committed_at", ("unit_id",), LEDGER_DESCRIPTION),
        TableSpec(LOCKS, bookkeeping_schema(LOCKS), "expires", (), LOCKS_DESCRIPTION),
    ]


@dataclass(frozen=True)
class BigQueryRequest:
    project: str
    dataset: str
    location: str = "US"
    # None: leave partition expiration as it is (none for new tables); 0: no expiration
    partition_expiration_days: Optional[int] = None

    @property
    def expiration_ms(self) -> Optional[int]:
        if self.partition_expiration_days is None or self.partition_expiration_days == 0:
            return None
        return self.partition_expiration_days * DAY_MS


def ensure_bigquery(client: Any, request: BigQueryRequest) -> list[Outcome]:
    """Dataset, tables, then views; all done when it returns (see :func:`iter_bigquery`)."""
    return list(iter_bigquery(client, request))


def iter_bigquery(client: Any, request: BigQueryRequest) -> Iterator[Outcome]:
    """Dataset, tables, then views (they read the tables); one Outcome per resource, as it is done,
    so a caller still has the earlier ones when a later API call fails."""
    yield _ensure_dataset(client, request)
    for spec in table_specs():
        yield _ensure_table(client, request, spec)
    for view in views(request.project, request.dataset):
        yield _ensure_view(client, request, view)


def _ensure_dataset(client: Any, request: BigQueryRequest) -> Outcome:
    from google.api_core.exceptions import NotFound
    from google.cloud import bigquery

    dataset_id = f"{request.project}.{request.dataset}"
    name = f"{request.project}:{request.dataset}"
    try:
        existing = client.get_dataset(dataset_id)
    except NotFound:
        dataset = bigquery.Dataset(dataset_id)
        dataset.location = request.location
        dataset.description = DATASET_DESCRIPTION
        client.create_dataset(dataset)
        return Outcome("dataset", name, Status.CREATED, f"location {request.location}")
    location = existing.location or "?"
    if request.location and location.upper() != request.location.upper():
        return Outcome("dataset", name, Status.UNCHANGED,
                       f"in location {location} (--location {request.location} applies only to a new dataset)")
    return Outcome("dataset", name, Status.UNCHANGED)


def _new_table(request: BigQueryRequest, spec: TableSpec) -> Any:
    from google.cloud import bigquery

    table = bigquery.Table(f"{request.project}.{request.dataset}.{spec.name}",
                           schema=[bigquery.SchemaField.from_api_repr(f) for f in spec.schema])
    table.time_partitioning = bigquery.TimePartitioning(
        type_=bigquery.TimePartitioningType.DAY, field=spec.partition_field, expiration_ms=request.expiration_ms)
    table.clustering_fields = list(spec.clustering) or None
    table.description = spec.description
    return table


def _describe_layout(spec: TableSpec, expiration_ms: Optional[int]) -> str:
    parts = [f"DAY partitions on {spec.partition_field}"]
    if spec.clustering:
        parts.append(f"clustered by {', '.join(spec.clustering)}")
    if expiration_ms:
        parts.append(f"partitions expire after {expiration_ms // DAY_MS} days")
    return ", ".join(parts)


def _ensure_table(client: Any, request: BigQueryRequest, spec: TableSpec) -> Outcome:
    from google.api_core.exceptions import NotFound
    from google.cloud import bigquery

    table_id = f"{request.project}.{request.dataset}.{spec.name}"
    try:
        existing = client.get_table(table_id)
    except NotFound:
        client.create_table(_new_table(request, spec))
        return Outcome("table", spec.name, Status.CREATED, _describe_layout(spec, request.expiration_ms))

    if (existing.table_type or "TABLE") != "TABLE":
        return Outcome("table", spec.name, Status.REFUSED, f"exists as a {existing.table_type}, not a table")
    problems: list[str] = []
    partitioning = existing.time_partitioning
    if partitioning is None or (existing.range_partitioning is not None):
        problems.append("not DAY-partitioned by time; BigQuery cannot re-partition an existing table")
    elif (partitioning.type_ or "DAY") != "DAY" or (partitioning.field or "") != spec.partition_field:
        problems.append(
            f"partitioned by {partitioning.type_} on {partitioning.field or '_PARTITIONTIME'}, the code wants DAY on "
            f"{spec.partition_field}; BigQuery cannot re-partition an existing table"
        )
    plan = plan_schema([f.to_api_repr() for f in existing.schema], spec.schema)
    problems += plan.problems
    if problems:
        return Outcome("table", spec.name, Status.REFUSED, "; ".join(problems))

    fields: list[str] = []
    notes: list[str] = []
    if plan.changes:
        existing.schema = [bigquery.SchemaField.from_api_repr(f) for f in plan.merged]
        fields.append("schema")
        if plan.added:
            notes.append("added columns " + ", ".join(plan.added))
        if plan.relaxed:
            notes.append("made nullable " + ", ".join(plan.relaxed))
        if plan.described:
            notes.append(f"descriptions of {len(plan.described)} column(s)")
    if request.partition_expiration_days is not None and (partitioning.expiration_ms or None) != request.expiration_ms:
        before = f"{partitioning.expiration_ms // DAY_MS} days" if partitioning.expiration_ms else "none"
        after = f"{request.partition_expiration_days} days" if request.expiration_ms else "none"
        existing.time_partitioning = bigquery.TimePartitioning(
            type_=partitioning.type_, field=partitioning.field, expiration_ms=request.expiration_ms)
        fields.append("time_partitioning")
        notes.append(f"partition expiration {before} -> {after}")
    want_clustering = list(spec.clustering) or None
    if (existing.clustering_fields or None) != want_clustering:
        notes.append(f"clustering {existing.clustering_fields or 'none'} -> {want_clustering or 'none'}")
        existing.clustering_fields = want_clustering
        fields.append("clustering_fields")
    if (existing.description or "") != spec.description:
        existing.description = spec.description
        fields.append("description")
        notes.append("table description")

    info = []
    if plan.extra:
        info.append("kept columns the code does not write: " + ", ".join(plan.extra))
    if plan.stricter_in_table:
        info.append("nullable in the table, required in the code (fine): " + ", ".join(plan.stricter_in_table))
    if not fields:
        return Outcome("table", spec.name, Status.UNCHANGED, "; ".join(info))
    client.update_table(existing, fields)
    return Outcome("table", spec.name, Status.UPDATED, "; ".join(notes + info))


def _ensure_view(client: Any, request: BigQueryRequest, view: ViewSpec) -> Outcome:
    from google.api_core.exceptions import NotFound
    from google.cloud import bigquery

    view_id = f"{request.project}.{request.dataset}.{view.name}"
    try:
        existing = client.get_table(view_id)
    except NotFound:
        table = bigquery.Table(view_id)
        table.view_query = view.query
        table.description = view.description
        client.create_table(table)
        return Outcome("view", view.name, Status.CREATED)
    if (existing.table_type or "") != "VIEW":
        return Outcome("view", view.name, Status.REFUSED, f"exists as a {existing.table_type or 'table'}, not a view")
    fields: list[str] = []
    notes: list[str] = []
    detail = ""
    current = normalized_sql(existing.view_query)
    if current is None:
        # BigQuery always returns view.query; an emulator may not. Leave it rather than rewrite blindly.
        detail = "the server did not return the view's SQL, so it was not compared"
    elif current != normalized_sql(view.query):
        existing.view_query = view.query
        fields.append("view_query")
        notes.append("SQL")
    if (existing.description or "") != view.description:
        existing.description = view.description
        fields.append("description")
        notes.append("description")
    if not fields:
        return Outcome("view", view.name, Status.UNCHANGED, detail)
    client.update_table(existing, fields)
    return Outcome("view", view.name, Status.UPDATED, " and ".join(notes))
