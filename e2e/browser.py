"""Headless Chromium driven over the Chrome DevTools protocol: log in to the UI, read the page, screenshot it."""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import time
from pathlib import Path
from typing import Any

import requests
from websockets.sync.client import connect

from embedded_aws.processes import Proc, Processes

# The flags of the brief, plus: DNS answers only for loopback, so the browser reaches nothing else.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-domain-reliability",
    "--no-pings",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
    "--window-size=1440,900",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


class Page:
    """One browser tab over its DevTools WebSocket."""

    def __init__(self, ws_url: str) -> None:
        self._stack = contextlib.ExitStack()
        self.ws = self._stack.enter_context(connect(ws_url, max_size=None, open_timeout=20))
        self._ids = itertools.count(1)

    def close(self) -> None:
        self._stack.close()

    def send(self, method: str, params: dict | None = None, timeout: float = 30) -> dict:
        message_id = next(self._ids)
        self.ws.send(json.dumps({"id": message_id, "method": method, "params": params or {}}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.monotonic())))
            if message.get("id") == message_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", {"url": url})

    def wait_for(self, expression: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = self.evaluate(expression)
            except RuntimeError:
                last = None
            if last:
                return last
            time.sleep(0.5)
        raise TimeoutError(f"page: {expression[:120]} still false after {timeout:.0f} s")

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def screenshot(self, path: Path) -> None:
        data = self.send("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": False})["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))


class Chromium:
    def __init__(self, procs: Processes, root: Path, executable: str) -> None:
        self.procs = procs
        self.root = root / "chromium"
        self.executable = executable
        self.proc: Proc | None = None
        self.port = 0

    def start(self, timeout: float = 60) -> None:
        profile = self.root / "profile"
        home = self.root / "home"
        profile.mkdir(parents=True, exist_ok=True)
        home.mkdir(parents=True, exist_ok=True)
        env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8"}
        argv = [self.executable, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"]
        self.proc = self.procs.start("chromium", argv, env, self.root, stop_timeout=10)
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise RuntimeError("chromium exited\n" + self.proc.describe_failure())
            if active.exists() and active.read_text().strip():
                self.port = int(active.read_text().split()[0])
                return
            time.sleep(0.2)
        raise TimeoutError("chromium did not open its DevTools port\n" + self.proc.describe_failure())

    def page(self) -> Page:
        session = requests.Session()
        session.trust_env = False
        targets = session.get(f"http://127.0.0.1:{self.port}/json/list", timeout=10).json()
        pages = [t for t in targets if t.get("type") == "page"]
        if not pages:
            pages = [session.put(f"http://127.0.0.1:{self.port}/json/new?about:blank", timeout=10).json()]
        page = Page(pages[0]["webSocketDebuggerUrl"])
        page.send("Page.enable")
        page.send("Runtime.enable")
        return page


def fill_and_submit_login(page: Page, username: str, password: str) -> None:
    """Fill the FAB login form (/auth/login/) and submit it."""
    script = f"""
    (() => {{
      const user = document.querySelector('input[name="username"], #username');
      const pass = document.querySelector('input[name="password"], #password');
      if (!user || !pass) return false;
      user.value = {json.dumps(username)};
      pass.value = {json.dumps(password)};
      const form = user.form || document.querySelector('form');
      if (form.requestSubmit) form.requestSubmit(); else form.submit();
      return true;
    }})()
    """
    if not page.wait_for(script, timeout=30):
        raise RuntimeError("no login form")
