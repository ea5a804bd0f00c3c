"""``haulage serve``: the maintainer's page over the tables ``haulage run`` wrote.

The command line only: it picks the backend exactly as ``haulage stats``
does (Parquet under ``--output-dir`` with DuckDB by default, BigQuery with
``--bigquery-dataset``), binds the address and serves until interrupted.
It prints the URL on stdout once it listens (``--port 0`` picks a free port).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import threading
from typing import Optional

from ..pipeline.options import DEFAULT_OUTPUT_DIR, non_negative_int

__all__ = ["add_parser", "main"]


def add_parser(commands) -> argparse.ArgumentParser:
    """Declare ``haulage serve`` and its options (the source, as for ``haulage stats``; address and port)."""
    serve = commands.add_parser(
        "serve",
        help="a local, read-only web page of a project's downloads (cards, chart, breakdowns)",
        description=textwrap.fill(
            "Serve a read-only web page of download statistics over the tables 'haulage run' wrote, with the same "
            "numbers as 'haulage stats': search a project, then /project/NAME with 7d/30d/90d/all. Reads the "
            f"Parquet dataset under --output-dir (default {DEFAULT_OUTPUT_DIR}) with DuckDB, or BigQuery with "
            "--bigquery-dataset. Nothing is loaded from outside this machine; the page has no JavaScript.", 79),
    )
    source = serve.add_argument_group("where the tables are (one of)")
    source.add_argument("--output-dir", metavar="DIR", help=f"Parquet dataset directory (default {DEFAULT_OUTPUT_DIR})")
    source.add_argument("--bigquery-dataset", metavar="PROJECT:DATASET", help="BigQuery dataset with file_downloads")
    where = serve.add_argument_group("where to listen")
    where.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    where.add_argument("--port", type=non_negative_int, default=8000, metavar="N",
                       help="port (default 8000; 0 picks a free one)")
    serve.add_argument("--quiet", action="store_true", help="do not log requests on stderr")
    return serve


def main(args: argparse.Namespace, extra: Optional[list[str]] = None) -> int:
    """Pick the backend, bind the address and serve until interrupted."""
    from ..pipeline.datasets import DatasetRef, DatasetSpecError
    from ..stats.backends import BigQueryBackend, DuckDBBackend, SourceError

    from ..stats.server import make_server

    def fail(message: str, code: int) -> int:
        print(f"haulage serve: {message}", file=sys.stderr)
        return code

    if args.output_dir and args.bigquery_dataset:
        return fail("one source: give --output-dir or --bigquery-dataset, not both", 2)
    try:
        if args.bigquery_dataset:
            backend = BigQueryBackend(DatasetRef.parse(args.bigquery_dataset))
        else:
            backend = DuckDBBackend(args.output_dir or DEFAULT_OUTPUT_DIR)
    except DatasetSpecError as exc:
        return fail(str(exc), 2)
    except SourceError as exc:
        return fail(str(exc), exc.exit_code)
    rollups = getattr(backend, "rollups", None)
    if rollups is not None:
        rollups.start()
    try:
        server = make_server(backend, args.host, args.port, log=not args.quiet)
    except OSError as exc:
        return fail(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", 2)
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in str(host) else host
    print(f"serving {backend.describe()} on http://{shown}:{port}/ (Ctrl-C to stop)", flush=True)
    if rollups is not None:  # days without a current rollup are rolled up in the background, newest first
        threading.Thread(target=_warm, args=(rollups,), name="rollups", daemon=True).start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _warm(rollups) -> None:
    """Build missing rollups; a failure here is only logged (the request that needs the day builds it again)."""
    try:
        rollups.warm()
    except Exception as exc:  # noqa: BLE001 - a background convenience must not kill the server
        print(f"haulage serve: rolling up days in the background failed: {exc}", file=sys.stderr)
