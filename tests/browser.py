"""Load a page in headless Chromium and report what happened: console errors, requests, a DOM
probe and a screenshot. A small Chrome DevTools Protocol client over `--remote-debugging-pipe`
(JSON messages separated by NUL bytes on file descriptors 3 and 4), so no extra package is needed.

    python tests/browser.py report.html docs/report.png    # screenshot of a page
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
LOCAL_SCHEMES = ("file:", "data:", "about:", "blob:", "chrome:", "devtools:")


def find_chromium() -> str | None:
    """The browser to use: $PDOPT_CHROMIUM, else the first of BROWSERS on the PATH."""
    given = os.environ.get("PDOPT_CHROMIUM")
    if given:
        return given if shutil.which(given) else None
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageVisit:
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    probe: Any = None  # the value of the probe expression
    screenshot_png: bytes = b""

    @property
    def external_requests(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(LOCAL_SCHEMES)]


class Cdp:
    """Commands and events over the pipe; one browser process."""

    def __init__(self, browser: str, user_dir: str, timeout_s: float):
        self.timeout_s = timeout_s
        cmd_r, cmd_w = os.pipe()
        res_r, res_w = os.pipe()
        # the child's ends above 3 and 4 first, so that putting them there clobbers neither
        high_r = fcntl.fcntl(cmd_r, fcntl.F_DUPFD_CLOEXEC, 10)
        high_w = fcntl.fcntl(res_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(cmd_r)
        os.close(res_w)

        def child_fds() -> None:  # the browser reads commands on fd 3 and writes on fd 4
            os.dup2(high_r, 3)  # dup2 leaves the copies inheritable; every other fd Python
            os.dup2(high_w, 4)  # opened is close-on-exec (PEP 446)

        self.proc = subprocess.Popen(
            [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--mute-audio", f"--user-data-dir={user_dir}",
             "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            close_fds=False, preexec_fn=child_fds,
        )
        os.close(high_r)
        os.close(high_w)
        self.out, self.inp = cmd_w, res_r
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> dict[str, Any]:
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.out, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, session: str | None = None) -> dict[str, Any]:
        for k, ev in enumerate(self.events):
            if ev.get("method") == method and ev.get("sessionId") == session:
                return self.events.pop(k)
        while True:
            ev = self._read()
            if ev.get("method") == method and ev.get("sessionId") == session:
                return ev
            self.events.append(ev)

    def drain(self, seconds: float) -> None:
        """Collect events for a while (late requests, console messages)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            ready, _, _ = select.select([self.inp], [], [], max(0.0, end - time.monotonic()))
            if not ready:
                break
            self._fill()
            while b"\0" in self.buffer:
                raw, _, self.buffer = self.buffer.partition(b"\0")
                self.events.append(json.loads(raw))

    def _fill(self) -> None:
        chunk = os.read(self.inp, 1 << 20)
        if not chunk:
            raise RuntimeError("the browser closed its debugging pipe")
        self.buffer += chunk

    def _read(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout_s
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.inp], [], [], max(0.0, left))
            if not ready:
                raise TimeoutError(f"no answer from the browser in {self.timeout_s:g} s")
            self._fill()
        raw, _, self.buffer = self.buffer.partition(b"\0")
        return json.loads(raw)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self.out, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.out)
        os.close(self.inp)


def visit(path: Path, probe: str = "null", *, width: int = 1200, timeout_s: float = 60.0,
          browser: str | None = None) -> PageVisit:
    """Open `path` (file:// URL) in headless Chromium; collect console errors and uncaught
    exceptions, every URL the page requested, the value of the JavaScript expression `probe`,
    and a full-page PNG screenshot."""
    browser = browser or find_chromium()
    if browser is None:
        raise FileNotFoundError("no Chromium found (" + ", ".join(BROWSERS) + ")")
    out = PageVisit()
    with tempfile.TemporaryDirectory(prefix="pdopt-chromium-") as user_dir:
        cdp = Cdp(browser, user_dir, timeout_s)
        try:
            target = cdp.send("Target.createTarget", {"url": "about:blank"})["targetId"]
            session = cdp.send("Target.attachToTarget",
                               {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log", "Network"):
                cdp.send(f"{domain}.enable", session=session)
            cdp.send("Emulation.setDeviceMetricsOverride",
                     {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False},
                     session=session)
            cdp.send("Page.navigate", {"url": path.resolve().as_uri()}, session=session)
            cdp.wait_event("Page.loadEventFired", session)
            cdp.drain(0.5)
            result = cdp.send("Runtime.evaluate", {"expression": probe, "returnByValue": True},
                              session=session)
            out.probe = result.get("result", {}).get("value")
            height = cdp.send("Runtime.evaluate", {
                "expression": "document.documentElement.scrollHeight", "returnByValue": True},
                session=session)["result"]["value"]
            cdp.send("Emulation.setDeviceMetricsOverride",
                     {"width": width, "height": int(height), "deviceScaleFactor": 1,
                      "mobile": False}, session=session)
            shot = cdp.send("Page.captureScreenshot", {"format": "png"}, session=session)
            out.screenshot_png = base64.b64decode(shot["data"])
            cdp.drain(0.2)
        finally:
            cdp.close()
    for ev in cdp.events:
        method, params = ev.get("method"), ev.get("params", {})
        if method == "Network.requestWillBeSent":
            out.requests.append(params["request"]["url"])
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            out.console_errors.append("exception: " + str(details.get("text"))
                                      + " " + str(details.get("exception", {}).get("description")))
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.console_errors.append("console: " + " ".join(
                str(a.get("value", a.get("description"))) for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            out.console_errors.append(f"log: {entry.get('text')} {entry.get('url', '')}")
    return out


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python tests/browser.py PAGE.html SCREENSHOT.png")
    page = visit(Path(sys.argv[1]))
    Path(sys.argv[2]).write_bytes(page.screenshot_png)
    print(f"console errors: {page.console_errors or 'none'}; external requests: "
          f"{page.external_requests or 'none'}")
