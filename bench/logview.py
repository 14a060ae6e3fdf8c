"""The dashboard's log viewer alone in Debian's Chromium: its page and script fed by a stand-in
Server-Sent Events source at a steady rate (no platform, so the machine's other work weighs
less than in bench/dashboard.py), measured for frame gaps; then one run traced, and the
renderer's main-thread time split into script, style, layout, pre-paint and paint.

With `--baseline REV`, the viewer of that git revision (its script and stylesheet, in the
markup it expects) is measured the same way, alternately run by run.
Usage: .venv/bin/python -m bench.logview [--rate 1000] [--seconds 15] [--runs 5]
       [--baseline main]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.report import write_section

TITLE = "Log viewer in the browser (bench/logview.py)"
STATIC = Path(__file__).resolve().parent.parent / "src" / "ipaas" / "web" / "static"
# The container each viewer follows: the first ones took lines straight into a <pre>.
MARKUP = {
    "chunks": '<div class="log tall" id="log" role="log" tabindex="0" data-stream="/stream" '
    'data-cursor=""></div>',
    "pre": '<pre class="log tall" id="log" tabindex="0" data-stream="/stream" data-cursor="">'
    "</pre>",
}
PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>logs</title>
<link rel="stylesheet" href="/static/app.css"><script src="/static/dashboard.js" defer></script>
</head><body><header class="top"><a class="brand" href="/">ipaas</a></header><main>
<div class="apphead"><h1>Apps / flood</h1></div>
<form class="logbar"><button type="button" data-js-only hidden data-log-pause>Pause</button>
<span class="live" data-log-state></span></form>{log}</main></body></html>"""
WATCH = """() => { window.gaps = []; let last = performance.now();
  const tick = (t) => { window.gaps.push(t - last); last = t; requestAnimationFrame(tick); };
  requestAnimationFrame(tick); }"""
PHASES = {
    "script": ("FunctionCall", "EventDispatch", "EvaluateScript", "V8.GC_SCAVENGER", "MajorGC"),
    "style": ("UpdateLayoutTree",),
    "layout": ("Layout",),
    "pre-paint": ("PrePaint",),
    "paint": ("Paint",),
}
HEADER = (
    "| viewer | longest frame gap, ms (each run) | p99 gap, ms | frames/s | lines kept "
    "| JS heap, MB | main thread ms/s: script / style / layout / pre-paint / paint |"
)
CATEGORIES = ["devtools.timeline", "disabled-by-default-devtools.timeline", "v8"]


class Viewer:
    """A viewer's files and markup, served with a stream of `rate` lines a second."""

    def __init__(self, static: Path, rate: int) -> None:
        script = (static / "dashboard.js").read_text()
        self.files = {"dashboard.js": script, "app.css": (static / "app.css").read_text()}
        self.page = PAGE.format(log=MARKUP["pre" if "pre.log[data-stream]" in script else "chunks"])
        self.rate = rate
        viewer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path.startswith("/static/"):
                    name = path.removeprefix("/static/")
                    kind = "text/css" if name.endswith(".css") else "text/javascript"
                    self._send(viewer.files[name].encode(), kind)
                elif path == "/stream":
                    viewer.stream(self)
                else:
                    self._send(viewer.page.encode(), "text/html")

            def _send(self, body: bytes, kind: str) -> None:
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.base = f"http://127.0.0.1:{self.server.server_port}"

    def stream(self, handler: BaseHTTPRequestHandler) -> None:
        """Events as the platform sends them (an id, a JSON line), written every 40 ms."""
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()
        start, sent = time.monotonic(), 0
        try:
            while True:
                due = int((time.monotonic() - start) * self.rate)
                if due > sent:
                    handler.wfile.write("".join(_event(i) for i in range(sent, due)).encode())
                    handler.wfile.flush()
                    sent = due
                time.sleep(0.04)
        except OSError:
            return

    def close(self) -> None:
        self.server.shutdown()


def _event(i: int) -> str:
    line = {"timestamp": "2026-12-01T08:52:14.247123456Z", "stream": "stdout",
            "container": "c0ffee", "line": f"line {i} of the flood"}  # fmt: skip
    return f"id: eyJhIjogMTc2NDU3OTEyODI0NzAwMDAwMH0{i}\ndata: {json.dumps(line)}\n\n"


async def measure(viewer: Viewer, seconds: float, trace: Path | None) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    from tests.chromium import FLAGS, ensure_chromium

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(ensure_chromium()), args=FLAGS
        )
        page = await browser.new_page(viewport={"width": 1280, "height": 860})
        await page.goto(viewer.base + "/")
        await page.evaluate(WATCH)
        if trace is not None:
            await browser.start_tracing(page=page, path=str(trace), categories=CATEGORIES)
        await asyncio.sleep(seconds)
        if trace is not None:
            await browser.stop_tracing()
        gaps = sorted(await page.evaluate("window.gaps"))
        kept = await page.locator("#log .l").count()
        heap = await page.evaluate("performance.memory.usedJSHeapSize") / 2**20
        await browser.close()
    return {"max_gap": gaps[-1], "p99_gap": gaps[int(len(gaps) * 0.99)], "frames": len(gaps),
            "kept": kept, "heap": heap}  # fmt: skip


def main_thread_ms(trace: Path, seconds: float) -> dict[str, float]:
    """Main-thread time of the page's renderer a second, by phase."""
    events = json.loads(trace.read_text())
    events = events["traceEvents"] if isinstance(events, dict) else events
    mains = {
        (e["pid"], e["tid"]) for e in events
        if e.get("ph") == "M" and e.get("name") == "thread_name"
        and e.get("args", {}).get("name") == "CrRendererMain"
    }  # fmt: skip
    spent: Counter[str] = Counter()
    for e in events:
        if e.get("ph") == "X" and (e.get("pid"), e.get("tid")) in mains:
            spent[e["name"]] += e.get("dur", 0)
    return {phase: sum(spent[n] for n in names) / 1000 / seconds for phase, names in PHASES.items()}


def baseline_static(rev: str, folder: Path) -> Path:
    for name in ("dashboard.js", "app.css"):
        text = subprocess.run(
            ["git", "show", f"{rev}:src/ipaas/web/static/{name}"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        (folder / name).write_text(text)
    return folder


def _short(rev: str) -> str:
    out = subprocess.run(["git", "rev-parse", "--short", rev], capture_output=True, text=True)
    return out.stdout.strip()


def main(rate: int, seconds: float, runs: int, baseline: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="ipaas-bench-logview-") as tmp:
        viewers = {"this tree": Viewer(STATIC, rate)}
        if baseline:
            name = f"{baseline} ({_short(baseline)}), without this change"
            viewers[name] = Viewer(baseline_static(baseline, Path(tmp)), rate)
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in viewers}
        phases: dict[str, dict[str, float]] = {}
        try:
            for _ in range(runs):  # alternated, so each meets the same machine
                for name, viewer in viewers.items():
                    results[name].append(asyncio.run(measure(viewer, seconds, None)))
            for name, viewer in viewers.items():
                trace = Path(tmp) / "trace.json"
                asyncio.run(measure(viewer, seconds, trace))
                phases[name] = main_thread_ms(trace, seconds)
        finally:
            for viewer in viewers.values():
                viewer.close()
    for name, found in results.items():
        print(name, found, phases[name])
    write_section(TITLE, report(rate, seconds, runs, results, phases))


def report(
    rate: int,
    seconds: float,
    runs: int,
    results: dict[str, list[dict[str, Any]]],
    phases: dict[str, dict[str, float]],
) -> str:
    rows = []
    for name, found in results.items():
        med = {k: statistics.median(r[k] for r in found) for k in found[0]}
        each = ", ".join(f"{r['max_gap']:.0f}" for r in found)
        spent = phases[name]
        rows.append(
            f"| {name} | {med['max_gap']:.0f} ({each}) | {med['p99_gap']:.0f} "
            f"| {med['frames'] / seconds:.0f} | {med['kept']:.0f} | {med['heap']:.1f} "
            f"| {' / '.join(f'{spent[p]:.0f}' for p in PHASES)} |"
        )
    table = "\n".join(rows)
    return f"""
The log page's viewer (its script and stylesheet) in Debian's Chromium (headless, 1280×860),
fed {rate} lines/s by a stand-in event source for {seconds:.0f} s; {runs} runs each, medians,
the viewers alternated run by run. Then one traced run each: the renderer's main-thread time
a second, by phase (script includes the style and layout it forces by reading the layout).
Load average at the end: {os.getloadavg()[0]:.1f}.

The first viewer drew each line as a block of its own in one box and let the oldest go one by
one: once 5,000 lines were kept, every frame laid out, pre-painted and painted all of them (a
line removed at the top moves every other), in the frame's script too (it read the box's
height to keep the newest line in view). The viewer now keeps lines in chunks of 250: a frame
lays out only the last chunk, chunks out of view are skipped by layout and paint (CSS
`content-visibility: auto`), the oldest lines go a whole chunk at a time, and the state line
changes at most twice a second.

{HEADER}
|---|---|---|---|---|---|---|
{table}
"""


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline", default=None, help="a git revision whose viewer to compare")
    args = parser.parse_args()
    main(args.rate, args.seconds, args.runs, args.baseline)
