"""A small HTTP proxy that injects faults in front of a real emulator.

Point a client at :attr:`FaultProxy.url` instead of the emulator; every
request is forwarded unchanged, except those a :class:`Rule` picks, which get
one of these faults instead:

* ``error:<status>:<reason>`` — answered by the proxy with that HTTP status
  and a Google API error body (``reason`` e.g. ``backendError``); the
  emulator never sees the request;
* ``lost:<status>:<reason>`` — forwarded (the emulator acts on it), then the
  emulator's answer is replaced by that error: the caller cannot know its
  request took effect;
* ``reset`` — the connection is closed without an answer;
* ``delay:<seconds>`` — forwarded after a pause;
* ``hold`` — forwarded only once :meth:`FaultProxy.release` is called.

A rule matches a method, a regular expression on the path (and optionally
one on the body) and fires on its first ``times`` matches (after skipping
``skip``). :attr:`FaultProxy.injected` lists what was done, for the fault
table.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import http.server
import json
import re
import socket
import threading
import time
import urllib.parse
from typing import Iterator, Optional

_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
        "transfer-encoding", "upgrade", "host", "content-length", "accept-encoding"}


@dataclasses.dataclass
class Rule:
    action: str
    method: str = "POST"
    path: str = ".*"
    body: Optional[str] = None
    times: int = 1
    skip: int = 0
    seen: int = 0
    fired: int = 0

    def matches(self, method: str, path: str, body: bytes) -> bool:
        if method != self.method or not re.search(self.path, path):
            return False
        if self.body is not None and not re.search(self.body.encode(), body):
            return False
        self.seen += 1
        if self.seen <= self.skip or self.fired >= self.times:
            return False
        self.fired += 1
        return True


def _error_body(status: int, reason: str) -> bytes:
    return json.dumps({"error": {"code": status, "message": f"injected fault: {reason}",
                                 "errors": [{"reason": reason, "message": f"injected fault: {reason}"}]}}).encode()


class FaultProxy:
    def __init__(self, target: str) -> None:
        parsed = urllib.parse.urlparse(target)
        self.target_host = parsed.hostname
        self.target_port = parsed.port
        self.rules: list[Rule] = []
        self.injected: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        self.held = threading.Event()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    body = self._read_chunked()
                action = proxy._pick(self.command, self.path, body)
                if action == "reset":
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if action and action.startswith("error:"):
                    _, status, reason = action.split(":", 2)
                    return self._reply(int(status), _error_body(int(status), reason), "application/json")
                if action and action.startswith("delay:"):
                    time.sleep(float(action.split(":", 1)[1]))
                if action == "hold":
                    proxy.held.set()
                    proxy._released.wait(300)
                status, headers, data = proxy._forward(self.command, self.path, self.headers, body)
                if action and action.startswith("lost:"):
                    _, lost_status, reason = action.split(":", 2)
                    return self._reply(int(lost_status), _error_body(int(lost_status), reason), "application/json")
                self._reply(status, data, headers.get("Content-Type", "application/json"), headers)

            def _read_chunked(self) -> bytes:
                data = b""
                while True:
                    size = int(self.rfile.readline().strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return data
                    data += self.rfile.read(size)
                    self.rfile.readline()

            def _reply(self, status: int, data: bytes, content_type: str, headers: Optional[dict] = None) -> None:
                self.send_response(status)
                for key, value in (headers or {}).items():
                    if key.lower() not in _HOP and key.lower() != "content-type":
                        self.send_header(key, value)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="fault-proxy", daemon=True)

    def _pick(self, method: str, path: str, body: bytes) -> Optional[str]:
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path, body):
                    self.injected.append((rule.action, method, path.split("?", 1)[0]))
                    return rule.action
        return None

    def _forward(self, method: str, path: str, headers, body: bytes) -> tuple[int, dict, bytes]:
        connection = http.client.HTTPConnection(self.target_host, self.target_port, timeout=300)
        try:
            forwarded = {k: v for k, v in headers.items() if k.lower() not in _HOP}
            forwarded["Content-Length"] = str(len(body))
            connection.request(method, path, body=body, headers=forwarded)
            response = connection.getresponse()
            data = response.read()
            return response.status, dict(response.getheaders()), data
        finally:
            connection.close()

    def add(self, *rules: Rule) -> None:
        with self._lock:
            self.rules.extend(rules)

    def clear(self) -> None:
        with self._lock:
            self.rules = []
            self.injected = []
            self._released.clear()
            self.held.clear()

    def release(self) -> None:
        self._released.set()

    def __enter__(self) -> "FaultProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._released.set()
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def fault_proxy(target: str) -> Iterator[FaultProxy]:
    with FaultProxy(target) as proxy:
        yield proxy
