"""Local (or ``gs://``) Parquet sink: ``<dir>/<table>/date=YYYY-MM-DD/part-*.parquet``.

Files are written under a hidden temporary name and renamed into place when
complete, so any file a reader can see is whole (readers skip names that
start with ``.``). In batch runs a writer stays open per table and day for
the whole bundle, flushing row groups as it goes; in streaming runs every
chunk (one window of messages) is flushed to its own files before the
source acknowledges it.
"""

from __future__ import annotations

import os
import uuid
from typing import Any, Iterator, Optional

import apache_beam as beam
import orjson
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from haulage.deploy.schemas import UNPROCESSED, arrow_schema

from .arrow_rows import rows_to_arrow
from .elements import ParsedChunk, TableDay
from .metrics import Counters
from .progress import note_day

ROW_GROUP_ROWS = 50_000


def day_dir(output_dir: str, table: str, day: str) -> str:
    return f"{output_dir.rstrip('/')}/{table}/date={day}"


def _is_local(path: str) -> bool:
    return "://" not in path


class PartWriter:
    """One Parquet file being written for one table and day."""

    def __init__(self, output_dir: str, table: str, day: str, prefix: str = "part", compression: str = "zstd") -> None:
        self.table = table
        self.directory = day_dir(output_dir, table, day)
        name = f"{prefix}-{uuid.uuid4().hex}.parquet"
        self.final_path = f"{self.directory}/{name}"
        self.temp_path = f"{self.directory}/.{name}.inprogress"
        self.pending: list[dict[str, Any]] = []
        self.rows = 0
        self._compression = compression
        self._writer: Optional[pq.ParquetWriter] = None
        self._handle: Any = None

    def add(self, rows: list[dict[str, Any]]) -> None:
        self.pending.extend(rows)
        if len(self.pending) >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if not self.pending:
            return
        if self._writer is None:
            if _is_local(self.directory):
                os.makedirs(self.directory, exist_ok=True)
                where: Any = self.temp_path
            else:
                self._handle = FileSystems.create(self.temp_path)
                where = self._handle
            self._writer = pq.ParquetWriter(where, arrow_schema(self.table), compression=self._compression)
        self._writer.write_table(rows_to_arrow(self.table, self.pending), row_group_size=ROW_GROUP_ROWS)
        self.rows += len(self.pending)
        self.pending = []

    def close(self) -> int:
        """Finish the file and move it into place; returns its row count."""
        self._flush()
        if self._writer is None:
            return 0
        self._writer.close()
        if self._handle is not None:
            self._handle.close()
            FileSystems.rename([self.temp_path], [self.final_path])
        else:
            os.replace(self.temp_path, self.final_path)
        return self.rows

    def abort(self) -> None:
        try:
            if self._writer is not None:
                self._writer.close()
            if self._handle is not None:
                self._handle.close()
            FileSystems.delete([self.temp_path])
        except Exception:
            pass


class NdjsonPartWriter(PartWriter):
    """The same part-file protocol with newline-delimited JSON rows, for BigQuery load jobs."""

    def __init__(self, output_dir: str, table: str, day: str, prefix: str = "part") -> None:
        super().__init__(output_dir, table, day, prefix)
        self.final_path = self.final_path[: -len(".parquet")] + ".ndjson"
        self.temp_path = self.temp_path.replace(".parquet.inprogress", ".ndjson.inprogress")

    def _flush(self) -> None:
        if not self.pending:
            return
        if self._handle is None:
            if _is_local(self.directory):
                os.makedirs(self.directory, exist_ok=True)
                self._handle = open(self.temp_path, "wb")
            else:
                self._handle = FileSystems.create(self.temp_path)
        dumps = orjson.dumps
        self._handle.write(b"".join(dumps(row) + b"\n" for row in self.pending))
        self.rows += len(self.pending)
        self.pending = []

    def close(self) -> int:
        self._flush()
        if self._handle is None:
            return 0
        self._handle.close()
        if _is_local(self.temp_path):
            os.replace(self.temp_path, self.final_path)
        else:
            FileSystems.rename([self.temp_path], [self.final_path])
        return self.rows


WRITERS = {"parquet": PartWriter, "ndjson": NdjsonPartWriter}


class WriteFilesFn(beam.DoFn):
    """Writes each (table, day) of the chunks it sees to part files.

    ``day_range`` (inclusive ISO dates) keeps only rows of those days — what
    a replay limited by --from/--to rebuilds; rows outside are counted as
    ``skipped.<table>`` so the books still balance.
    """

    def __init__(
        self,
        output_dir: str,
        flush_each_chunk: bool,
        file_format: str = "parquet",
        day_range: Optional[tuple[str, str]] = None,
    ) -> None:
        self._output_dir = output_dir
        self._flush_each_chunk = flush_each_chunk
        self._writer_class = WRITERS[file_format]
        self._day_range = day_range

    def setup(self) -> None:
        self._counters = Counters()

    def start_bundle(self) -> None:
        self._writers: dict[TableDay, PartWriter] = {}

    def process(self, chunk: ParsedChunk) -> Iterator[Any]:
        for (table, day), rows in chunk.rows.items():
            if self._day_range is not None and table != UNPROCESSED and not (self._day_range[0] <= day <= self._day_range[1]):
                self._counters.inc(f"skipped.{table}", len(rows))
                continue
            writer = self._writers.get((table, day))
            if writer is None:
                writer = self._writers[(table, day)] = self._writer_class(self._output_dir, table, day)
                if table != UNPROCESSED:
                    note_day(day)
            writer.add(rows)
            self._counters.inc(f"rows.{table}.{day}", len(rows))
        if self._flush_each_chunk:
            self._close_all()
        return iter(())

    def finish_bundle(self) -> None:
        self._close_all()

    def teardown(self) -> None:
        for writer in getattr(self, "_writers", {}).values():
            writer.abort()

    def _close_all(self) -> None:
        writers, self._writers = self._writers, {}
        for writer in writers.values():
            writer.close()


class WriteParquet(beam.PTransform):
    """Parsed chunks → part files per table and UTC day; counts ``rows.<table>.<day>``.

    Parquet by default; ``file_format="ndjson"`` stages rows for BigQuery load
    jobs. ``day_range`` limits the days written (replay --from/--to).
    """

    def __init__(
        self,
        output_dir: str,
        flush_each_chunk: bool = False,
        file_format: str = "parquet",
        day_range: Optional[tuple[str, str]] = None,
    ) -> None:
        super().__init__()
        self._fn = WriteFilesFn(output_dir, flush_each_chunk, file_format, day_range)

    def expand(self, parsed):
        return parsed | "WriteFiles" >> beam.ParDo(self._fn)
