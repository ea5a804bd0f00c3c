"""Debian's headless Chromium, driven over the Chrome DevTools Protocol.

Why the DevTools protocol and not WebDriver: it needs nothing beyond the
``chromium`` package and the ``websockets`` client the project already
pins, and it can watch every network request the page makes (to prove the
page loads nothing from another host) and switch JavaScript off (to prove
the numbers need none).

The browser is started with a fresh profile in the test's folder and the
flags that work in this sandbox; :func:`find_chromium` says why when it
cannot be started, and ``make test`` / ``.ci/run`` install the package.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any, Optional

__all__ = ["Chromium", "find_chromium", "BrowserUnavailable"]

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio")


class BrowserUnavailable(RuntimeError):
    """No Chromium to start; the message says how to install it."""


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise BrowserUnavailable("Chromium is not installed: apt-get install -y chromium "
                             "(make test and .ci/run do this when they run as root)")


class Chromium:
    """One headless browser with one page, for one test."""

    def __init__(self, profile: Path, width: int = 1200, height: int = 900, timeout: float = 30.0) -> None:
        from websockets.sync.client import connect

        self.timeout = timeout
        profile.mkdir(parents=True, exist_ok=True)
        self.log = open(profile / "chromium.log", "wb")
        self.process = subprocess.Popen(
            [find_chromium(), *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
             f"--window-size={width},{height}", "about:blank"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise BrowserUnavailable(f"Chromium did not start: see {profile / 'chromium.log'}")
            time.sleep(0.05)
        port = int(port_file.read_text().splitlines()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=timeout) as answer:
            targets = json.load(answer)
        page = next(t for t in targets if t.get("type") == "page")
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=timeout))
        self._next_id = 0
        self.events: list[dict[str, Any]] = []
        self.send("Page.enable")
        self.send("Network.enable")
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    # ---- protocol -------------------------------------------------------

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        """Call one DevTools method and return its result; events that arrive meanwhile are kept."""
        self._next_id += 1
        call_id = self._next_id
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def _wait_event(self, method: str) -> dict[str, Any]:
        for i, event in enumerate(self.events):
            if event.get("method") == method:
                return self.events.pop(i)
        deadline = time.monotonic() + self.timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("method") == method:
                return message
            self.events.append(message)

    # ---- what tests use --------------------------------------------------

    def disable_javascript(self) -> None:
        """Pages run no script from now on (the test still reads the DOM through the protocol)."""
        self.send("Emulation.setScriptExecutionDisabled", value=True)

    def goto(self, url: str) -> int:
        """Load ``url``, wait for the load event; returns the HTTP status of the document."""
        self.events.clear()
        frame = self.send("Page.navigate", url=url)
        if frame.get("errorText"):
            raise RuntimeError(f"{url}: {frame['errorText']}")
        self._wait_event("Page.loadEventFired")
        statuses = [e["params"]["response"]["status"] for e in self.events
                    if e.get("method") == "Network.responseReceived" and e["params"].get("type") == "Document"]
        return statuses[-1] if statuses else 0

    def requested_urls(self) -> list[str]:
        """Every URL the page asked for since the last :meth:`goto`."""
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression evaluated by the test (not by the page)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def url(self) -> str:
        return self.evaluate("location.href")

    def screenshot(self, path: Path, width: Optional[int] = None) -> Path:
        """A PNG of the whole page (not only the window)."""
        metrics = self.send("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        shot = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True,
                         clip={"x": 0, "y": 0, "width": width or size["width"], "height": size["height"], "scale": 1})
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        try:
            if getattr(self, "_stack", None) is not None:
                self._stack.close()
        finally:
            if self.process.poll() is None:
                self.process.terminate()
                try:
                    self.process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.log.close()

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def installed() -> bool:
    try:
        find_chromium()
        return True
    except BrowserUnavailable:
        return False


if __name__ == "__main__":  # a quick manual check: python tests/support/browser.py URL OUT.png
    import sys

    with Chromium(Path(os.environ.get("TMPDIR", "/tmp")) / "haulage-chromium-check") as browser:
        print(browser.goto(sys.argv[1]), browser.url())
        browser.screenshot(Path(sys.argv[2]))
