"""The Parquet ledger's index of committed units stays what its markers say, however they come and go;
a marker's unit records are the units' fields.

``ParquetLedger.committed_unit_ids`` is kept up to date as markers are read,
written and deleted (instead of being rebuilt from every marker at each call,
which made a long line-delivery run slower with every window it committed).
The rule checked: after any sequence of markers written here, written or
deleted by another process, and forgotten here, the index holds exactly the
unit ids of the markers on disk — what a fresh reader of the folder finds.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, fields

from hypothesis import given, settings
from hypothesis import strategies as st

from haulage.pipeline.elements import FILE, MESSAGE, SourceUnit
from haulage.pipeline.sinks.parquet_commit import ParquetDataset

UNITS = [f"u{i}" for i in range(8)]  # few ids, so that markers share units and deletions must count them

operations = st.lists(
    st.tuples(
        st.sampled_from(["write here", "write elsewhere", "delete elsewhere", "forget here", "read"]),
        st.sets(st.sampled_from(UNITS), max_size=4),
    ),
    max_size=30,
)


def _marker(units) -> dict:
    return {"units": [{"unit_id": u, "kind": "message", "lines": 1} for u in sorted(units)], "files": []}


@settings(max_examples=150, deadline=None)
@given(ops=operations)
def test_the_index_is_the_units_of_the_markers_on_disk(tmp_path_factory, ops):
    root = tmp_path_factory.mktemp("out")
    here = ParquetDataset(str(root))
    here.markers()  # the ledger folder, read once empty
    os.makedirs(here.path("_ledger"), exist_ok=True)
    for op, units in ops:
        commit = "c-" + "-".join(sorted(units))  # as commit ids are: the same id, the same units
        if op == "write here":
            here.write_marker(commit, _marker(units))
        elif op == "write elsewhere":
            with open(here.marker_path(commit), "w") as out:
                json.dump(_marker(units), out)
            # another process committed it: this one learns of it by reading the folder
        elif op == "delete elsewhere":
            if os.path.exists(here.marker_path(commit)):
                os.remove(here.marker_path(commit))
        elif op == "forget here":
            if os.path.exists(here.marker_path(commit)):
                os.remove(here.marker_path(commit))
                here._forget(commit)
        else:
            here.markers()
        fresh = ParquetDataset(str(root))
        assert set(here.committed_unit_ids()) == set(fresh.committed_units()) == set(here.committed_units())


@given(unit=st.builds(SourceUnit, st.text(max_size=20), st.sampled_from([FILE, MESSAGE]), st.text(max_size=20),
                      st.integers(0, 2**40), st.integers(0, 2**31), st.integers(0, 100)))
def test_a_units_record_is_what_asdict_gives(unit):
    """Markers list units by ``SourceUnit.record`` (cheaper than ``asdict``): the same dict, every field."""
    assert unit.record() == asdict(unit)
    assert list(unit.record()) == [f.name for f in fields(SourceUnit)]
