"""Headless Chromium for the report's tests, driven over the DevTools protocol.

Why the protocol and not ``chromium --screenshot``: it tells us exactly where
each ``<figure>`` is (``getBoundingClientRect``), so each one can be
screenshotted on its own, and it reports console errors, uncaught exceptions
and every request the page makes as structured events rather than log lines
to grep. The transport is ``--remote-debugging-pipe``: Chromium reads
commands from its fd 3 and writes answers and events to its fd 4, each a
JSON text ended by a NUL byte. No websocket library, no port.

Bounds: every command waits at most ``timeout`` seconds; the browser is
closed (then killed) on exit, and its profile lives in a temporary
directory removed afterwards.
"""

from __future__ import annotations

import base64
import fcntl
import io
import json
import os
import select
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM = "chromium"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--remote-debugging-pipe",
]


class BrowserError(Exception):
    pass


class Chromium:
    """A headless Chromium process, as a context manager.

    Args:
        profile: where to put the throwaway profile (a temporary directory
            inside it, removed on exit); the system's temp dir if None.
        width: the window width in CSS pixels.
        timeout: the most seconds any one command may take.
    """

    def __init__(self, profile: Path | None = None, *, width: int = 1400, timeout: float = 15.0) -> None:
        self.width = width
        self.timeout = timeout
        if profile is not None:
            profile.mkdir(parents=True, exist_ok=True)
        self._profile = tempfile.TemporaryDirectory(prefix="chromium-", dir=profile)
        self._next_id = 0
        self._buffer = b""
        self.events: list[dict[str, Any]] = []

    def __enter__(self) -> Chromium:
        to_child, self._write = os.pipe()
        self._read, from_child = os.pipe()

        def fds_3_and_4() -> None:
            # In the child: move the pipe ends out of the way, then onto 3 and 4
            # (dup2 clears close-on-exec, so they survive the exec).
            r = fcntl.fcntl(to_child, fcntl.F_DUPFD, 10)
            w = fcntl.fcntl(from_child, fcntl.F_DUPFD, 10)
            os.dup2(r, 3)
            os.dup2(w, 4)

        self._stderr = open(Path(self._profile.name) / "stderr.txt", "wb")  # noqa: SIM115
        self._process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self._profile.name}/data", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            close_fds=False,
            preexec_fn=fds_3_and_4,
        )
        os.close(to_child)
        os.close(from_child)
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            if self._process.poll() is None:
                try:
                    self.call("Browser.close", timeout=5)
                except (BrowserError, OSError):
                    pass
                try:
                    self._process.wait(5)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait(5)
        finally:
            os.close(self._read)
            os.close(self._write)
            self._stderr.close()
            self._profile.cleanup()

    def stderr(self) -> str:
        self._stderr.flush()
        return (Path(self._profile.name) / "stderr.txt").read_text(errors="replace")[-4000:]

    ####
    # The protocol
    ####

    def call(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None,
             timeout: float | None = None) -> dict[str, Any]:
        """Send one command and wait for its answer, keeping the events that come first."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        answer = self._wait(lambda m: m.get("id") == self._next_id, timeout or self.timeout, method)
        if "error" in answer:
            raise BrowserError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def wait_event(self, method: str, *, session: str | None = None, timeout: float | None = None) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method and event.get("sessionId") == session:
                return event
        return self._wait(
            lambda m: m.get("method") == method and m.get("sessionId") == session, timeout or self.timeout, method
        )

    def _wait(self, match: Any, timeout: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if "method" in message:
                    self.events.append(message)
                if match(message):
                    return message
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError(f"no answer to {what} in {timeout} s; stderr:\n{self.stderr()}")
            ready, _, _ = select.select([self._read], [], [], left)
            if ready:
                chunk = os.read(self._read, 1 << 20)
                if not chunk:
                    raise BrowserError(f"chromium exited during {what}; stderr:\n{self.stderr()}")
                self._buffer += chunk

    def open(self, path: Path) -> Page:
        """Load ``path`` (a local file) in a new tab and wait for its load event."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=session)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.width, "height": 900, "deviceScaleFactor": 1, "mobile": False},
            session=session,
        )
        url = path.resolve().as_uri()
        self.call("Page.navigate", {"url": url}, session=session)
        self.wait_event("Page.loadEventFired", session=session)
        return Page(self, session, url)


class Page:
    """One loaded tab."""

    def __init__(self, browser: Chromium, session: str, url: str) -> None:
        self.browser = browser
        self.session = session
        self.url = url

    def evaluate(self, expression: str) -> Any:
        result = self.browser.call(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=self.session
        )
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def box(self, selector: str) -> dict[str, float]:
        """The page-coordinate box of the first element matching ``selector``."""
        rect = self.evaluate(
            "(() => { const r = document.querySelector(%s).getBoundingClientRect();"
            " return [r.left + scrollX, r.top + scrollY, r.width, r.height]; })()" % json.dumps(selector)
        )
        x, y, w, h = rect
        return {"x": x, "y": y, "width": w, "height": h, "scale": 1}

    def screenshot(self, clip: dict[str, float] | None = None) -> bytes:
        """A PNG of ``clip`` (page coordinates), or of the whole page."""
        if clip is None:
            w, h = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            clip = {"x": 0, "y": 0, "width": w, "height": h, "scale": 1}
        data = self.browser.call(
            "Page.captureScreenshot",
            {"format": "png", "clip": clip, "captureBeyondViewport": True},
            session=self.session,
            timeout=30,
        )["data"]
        return base64.b64decode(data)

    def screenshot_of(self, selector: str) -> bytes:
        return self.screenshot(self.box(selector))

    def problems(self) -> list[str]:
        """What went wrong while the page loaded and ran: console errors and
        warnings, uncaught exceptions, log entries of level error or warning,
        and any request for something other than the page itself."""
        out = []
        for event in self.browser.events:
            if event.get("sessionId") != self.session:
                continue
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.exceptionThrown":
                out.append(f"uncaught: {params['exceptionDetails'].get('text')}")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning", "assert"):
                out.append(f"console.{params['type']}: {[a.get('value') for a in params.get('args', [])]}")
            elif method == "Log.entryAdded" and params["entry"]["level"] in ("error", "warning"):
                out.append(f"log {params['entry']['level']}: {params['entry'].get('text')}")
            elif method == "Network.requestWillBeSent" and params["request"]["url"] != self.url:
                out.append(f"request: {params['request']['url']}")
        return out


def ink(png: bytes) -> tuple[int, float]:
    """How much is drawn in ``png``: (distinct colours, share of pixels that are not near-white)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 24) or []
        total = rgb.width * rgb.height
        light = sum(n for n, (r, g, b) in colours if min(r, g, b) >= 240)
        return len(colours), (total - light) / total if total else 0.0
