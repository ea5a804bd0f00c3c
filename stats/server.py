"""The HTTP side of ``haulage serve``: routes, status codes, headers, a small page cache.

Why the standard library's ThreadingHTTPServer: a read-only page for one
maintainer at a time needs no framework, and every added dependency would
sit in the request path. Routes:

* ``GET /`` — search box, freshness, the most downloaded projects of the newest day;
* ``GET /search?q=NAME`` — 303 to the project page of the canonical name;
* ``GET /project/NAME[?range=7d|30d|90d|all]`` — the page (default range:
  ``haulage stats``' default, every day); a non-canonical NAME is 301'd to
  its canonical form (``packaging.utils.canonicalize_name``, PEP 503); a
  project without downloads is a 404 with close names as links;
* anything else — 404. Only GET and HEAD are served.

Every response forbids scripts and outside hosts in its
Content-Security-Policy, so the page provably loads nothing from elsewhere.
"""

from __future__ import annotations

import datetime as dt
import sys
import threading
import time
from collections import OrderedDict
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional
from urllib.parse import parse_qs, unquote, urlsplit

from packaging.utils import canonicalize_name

from .backends import Backend, SourceError
from .query import normalize_project, top_projects_query
from .report import (NoDownloadsInRange, StatsError, UnknownProject, freshness_label)

from . import page
from .page_data import DEFAULT_RANGE, RANGES, project_page

__all__ = ["PageServer", "make_server", "SECURITY_HEADERS"]

SECURITY_HEADERS: dict[str, str] = {
    # no script at all, nothing from another origin; inline style and SVG only
    "Content-Security-Policy": ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                                "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
CACHED_PAGES = 64
TOP_PROJECTS = 25


def _dataset_state(backend: Backend) -> Any:
    """Something that changes when the dataset does, to key cached pages on.

    Parquet: the committed files, listed again for every request (a new
    commit adds files, a replay replaces them; a committed file never
    changes). BigQuery: the ten-minute slot (streaming inserts change tables
    without anything cheap to ask).
    """
    refresh = getattr(backend, "refresh", None)
    if refresh is None:
        return int(time.time() // 600)
    refresh()
    return hash(backend.state())


class PageServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that holds the backend and a small cache of rendered pages."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], backend: Backend, today: Callable[[], dt.date],
                 log: bool = True) -> None:
        super().__init__(address, Handler)
        self.backend = backend
        self.today = today
        self.log = log
        self._cache: OrderedDict[Any, tuple[int, str]] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, key: Any, make: Callable[[], tuple[int, str]]) -> tuple[int, str]:
        """The rendered (status, html) for ``key`` under the dataset's current state."""
        full_key = (key, _dataset_state(self.backend), self.today())
        with self._lock:
            if full_key in self._cache:
                self._cache.move_to_end(full_key)
                return self._cache[full_key]
        result = make()
        with self._lock:
            self._cache[full_key] = result
            while len(self._cache) > CACHED_PAGES:
                self._cache.popitem(last=False)
        return result


class Handler(BaseHTTPRequestHandler):
    server: PageServer
    server_version = "haulage-serve"
    protocol_version = "HTTP/1.1"

    # ---- plumbing --------------------------------------------------------

    def _send(self, status: int, body: str = "", headers: Optional[dict[str, str]] = None,
              head_only: bool = False) -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        for name, value in {**SECURITY_HEADERS, **(headers or {})}.items():
            self.send_header(name, value)
        if body:
            self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head_only:
            self.wfile.write(data)

    def _redirect(self, status: int, location: str, head_only: bool) -> None:
        self._send(status, "", {"Location": location}, head_only)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (BaseHTTPRequestHandler's name)
        if self.server.log:
            sys.stderr.write(f"{self.address_string()} {format % args}\n")

    def do_HEAD(self) -> None:  # noqa: N802
        self._route(head_only=True)

    def do_GET(self) -> None:  # noqa: N802
        self._route(head_only=False)

    def _route(self, head_only: bool) -> None:
        started = time.perf_counter()
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        try:
            if url.path == "/":
                status, body = self.server.cached(("home",), self._home)
            elif url.path == "/search":
                name = normalize_project((query.get("q") or [""])[0])
                self._redirect(HTTPStatus.SEE_OTHER, page.project_url(name) if name else "/", head_only)
                return
            elif url.path.startswith("/project/"):
                raw = unquote(url.path[len("/project/"):])
                name = canonicalize_name(raw)
                range_key = (query.get("range") or [DEFAULT_RANGE])[0]
                if not name:
                    self._redirect(HTTPStatus.SEE_OTHER, "/", head_only)
                    return
                if range_key not in RANGES:
                    status, body = HTTPStatus.BAD_REQUEST, page.error_page(
                        "Unknown range", f"range={range_key!r}: choose one of {', '.join(RANGES)}.", name)
                elif raw != name:
                    given = "range" in query
                    self._redirect(HTTPStatus.MOVED_PERMANENTLY, page.project_url(name, range_key if given else None),
                                   head_only)
                    return
                else:
                    status, body = self.server.cached(("project", name, range_key),
                                                      lambda: self._project(name, range_key))
            elif url.path == "/favicon.ico":
                self._send(HTTPStatus.NO_CONTENT, head_only=head_only)
                return
            else:
                status, body = HTTPStatus.NOT_FOUND, page.error_page(
                    "Not found", "There is no such page here. Search for a project above.")
        except SourceError as exc:
            status, body = HTTPStatus.SERVICE_UNAVAILABLE, page.error_page("The dataset cannot be read", str(exc))
        self._send(status, body, {"Server-Timing": f"page;dur={1000 * (time.perf_counter() - started):.1f}"},
                   head_only)

    # ---- pages -----------------------------------------------------------

    def _home(self) -> tuple[int, str]:
        from .query import newest_day_query

        backend = self.server.backend
        (row,) = backend.run(newest_day_query(backend.dialect))
        newest = row["day"]
        age = label = None
        projects: list[tuple[str, int]] = []
        if newest is not None:
            age = (self.server.today() - dt.date.fromisoformat(newest)).days
            label = freshness_label(age)
            day = dt.date.fromisoformat(newest)
            rollups = getattr(backend, "rollups", None)
            rows = rollups.top_projects(day, TOP_PROJECTS) if rollups is not None else None
            if rows is None:
                rows = backend.run(top_projects_query(backend.dialect, day, TOP_PROJECTS))
            projects = [(r["project"], r["downloads"]) for r in rows if r["project"]]
        return HTTPStatus.OK, page.home_page(backend.describe(), newest, age, label, projects)

    def _project(self, name: str, range_key: str) -> tuple[int, str]:
        try:
            found = project_page(self.server.backend, name, range_key, today=self.server.today())
        except UnknownProject as exc:
            return HTTPStatus.NOT_FOUND, page.not_found_page(name, str(exc), exc.suggestions)
        except NoDownloadsInRange as exc:
            return HTTPStatus.OK, page.empty_range_page(name, range_key, str(exc))
        except StatsError as exc:
            return HTTPStatus.NOT_FOUND, page.not_found_page(name, str(exc))
        return HTTPStatus.OK, page.project_html(found)


def make_server(backend: Backend, host: str = "127.0.0.1", port: int = 8000,
                today: Optional[Callable[[], dt.date]] = None, log: bool = True) -> PageServer:
    """A server bound to host:port (port 0: a free one; see ``server_address``)."""
    return PageServer((host, port), backend, today or (lambda: dt.datetime.now(dt.timezone.utc).date()), log)
