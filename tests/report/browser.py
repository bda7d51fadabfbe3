"""Open a local HTML file in headless Chromium over the DevTools protocol and report what happened.

    from browser import open_page, find_chromium
    with open_page("report.html") as page:
        page.console_errors, page.requests, page.figure_boxes(), page.screenshot(clip)

Chromium runs with a fresh profile, no sandbox or GPU, and every background service that could reach
the network (QUIC, component updates, sync, background networking) turned off, so any request the page
makes is the page's own. Events are read from one websocket (``websocket-client``): console messages
and uncaught exceptions (Runtime), browser log entries (Log), and every request (Network).

Run as a script to write a screenshot of a report: ``python tests/report/browser.py report.html out.png``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars"]
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:", "chrome:", "devtools:")
VIEWPORT = (1280, 900)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Page:
    def __init__(self, ws):
        self.ws, self._id = ws, 0
        self.console_errors: list[str] = []
        self.requests: list[str] = []
        self.events: list[dict] = []

    def send(self, method: str, timeout: float = 60.0, **params) -> dict:
        self._id += 1
        my_id = self._id
        self.ws.send(json.dumps({"id": my_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._event(msg)
        raise TimeoutError(method)

    def _event(self, msg: dict) -> None:
        method, p = msg.get("method", ""), msg.get("params", {})
        self.events.append(msg)
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.console_errors.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.console_errors.append(d.get("exception", {}).get("description") or d.get("text", "exception"))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            self.console_errors.append(p["entry"].get("text", ""))
        elif method == "Network.requestWillBeSent":
            self.requests.append(p.get("request", {}).get("url", ""))

    def wait_for(self, expression: str, timeout: float = 60.0):
        """Poll a JS expression until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.eval(expression)
            if value:
                return value
            time.sleep(0.2)
        raise TimeoutError(expression)

    def eval(self, expression: str):
        res = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(res["exceptionDetails"].get("text"))
        return res.get("result", {}).get("value")

    @property
    def external_requests(self) -> list[str]:
        return [u for u in self.requests if not u.startswith(LOCAL_SCHEMES)]

    def figure_boxes(self) -> list[dict]:
        """Page-coordinate box of every figure, and whether plotly drew an SVG with content into it."""
        return self.eval("""Array.from(document.querySelectorAll('.plot')).map(function(el){
            var r = el.getBoundingClientRect();
            return {id: el.id, x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height,
                    plotted: el.classList.contains('js-plotly-plot'),
                    marks: el.querySelectorAll('.scatterlayer .trace path, .scatterlayer .point').length};
        })""")

    def screenshot(self, clip: dict | None = None) -> bytes:
        params = {"format": "png", "captureBeyondViewport": True}
        if clip:
            params["clip"] = {**clip, "scale": 1}
        return base64.b64decode(self.send("Page.captureScreenshot", **params)["data"])


@contextlib.contextmanager
def open_page(html: str | Path, chromium: str | None = None, timeout: float = 60.0):
    """Load ``html`` in a fresh headless Chromium; yields a :class:`Page` after every figure is drawn."""
    import websocket  # websocket-client

    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("chromium")
    profile = tempfile.mkdtemp(prefix="scalinglab-chromium-")
    proc = subprocess.Popen([chromium, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                             f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ws = None
    try:
        port_file = Path(profile) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.is_file() and port_file.read_text().strip()):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            targets = json.loads(r.read())
        target = next(t for t in targets if t.get("type") == "page")
        ws = websocket.create_connection(target["webSocketDebuggerUrl"], timeout=timeout, suppress_origin=True)
        page = Page(ws)
        for domain in ("Runtime", "Log", "Network", "Page"):
            page.send(f"{domain}.enable")
        page.send("Emulation.setDeviceMetricsOverride", width=VIEWPORT[0], height=VIEWPORT[1], deviceScaleFactor=1,
                  mobile=False)
        page.send("Page.navigate", url=Path(html).resolve().as_uri())
        page.wait_for("document.readyState === 'complete'", timeout)
        page.wait_for("Array.from(document.querySelectorAll('.plot')).every(function(e){"
                      "return e.classList.contains('js-plotly-plot') && e.querySelector('.main-svg');})", timeout)
        time.sleep(0.5)  # let the last events (late console messages, requests) arrive
        page.eval("1")
        yield page
    finally:
        if ws is not None:
            ws.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)


def full_screenshot(html: str | Path, out: str | Path, max_height: int = 2600) -> Path:
    """A PNG of the top of the page (up to ``max_height`` pixels), for the docs."""
    with open_page(html) as page:
        height = min(max_height, int(page.eval("document.body.scrollHeight")))
        Path(out).write_bytes(page.screenshot({"x": 0, "y": 0, "width": VIEWPORT[0], "height": height}))
    return Path(out)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    print(full_screenshot(sys.argv[1], sys.argv[2]))
