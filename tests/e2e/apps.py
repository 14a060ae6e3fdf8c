"""Small apps for end-to-end tests, as files of a git repository (Dockerfile builds)."""

from __future__ import annotations

DOCKERFILE = """FROM python:3.11-slim
WORKDIR /srv
COPY server.py .
ENV PORT=8080
CMD ["python3", "-u", "server.py"]
"""

# Serves /health; /crash prints a marker and exits 1; /oom eats memory until killed;
# CRASH_AFTER (seconds) makes it exit on its own, for crash loops.
SERVER = """
import os, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/crash":
            print("about to crash: marker-7f3a", flush=True)
            os._exit(1)
        if self.path == "/oom":
            hog = []
            while True:
                hog.append(bytearray(16 * 1024 * 1024))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok\\n")

after = float(os.environ.get("CRASH_AFTER", "0"))
if after:
    def die():
        time.sleep(after)
        print("crashing on purpose", flush=True)
        os._exit(3)
    threading.Thread(target=die, daemon=True).start()
print("listening", flush=True)
ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"""

CRASHY = {"Dockerfile": DOCKERFILE, "server.py": SERVER}

# Answers "<GREETING> from <version.txt> on <PORT>" (what it was built from and how it runs);
# /data keeps a value in its volume (GET /data?set=V writes it); FAIL_STARTS=N makes its first
# N starts exit at once (counted in /data, which a volume keeps across containers).
SETTINGS_SERVER = """
import os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

fail_starts = int(os.environ.get("FAIL_STARTS", "0"))
if fail_starts:
    os.makedirs("/data", exist_ok=True)
    counter = "/data/starts"
    starts = int(open(counter).read()) + 1 if os.path.exists(counter) else 1
    open(counter, "w").write(str(starts))
    if starts <= fail_starts:
        print(f"start {starts} fails on purpose", flush=True)
        sys.exit(5)

VERSION = open("version.txt").read().strip()
GREETING = os.environ.get("GREETING", "hello")

class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, text):
        body = (text + "\\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/health":
            return self.answer("ok")
        if url.path == "/data":
            value = parse_qs(url.query).get("set")
            if value:
                open("/data/value", "w").write(value[0])
            return self.answer(open("/data/value").read() if os.path.exists("/data/value") else "")
        self.answer(f"{GREETING} from {VERSION} on {os.environ['PORT']}")

ThreadingHTTPServer(("0.0.0.0", int(os.environ["PORT"])), Handler).serve_forever()
"""

SETTINGS_DOCKERFILE = """FROM python:3.11-slim
WORKDIR /srv
COPY server.py version.txt ./
CMD ["python3", "-u", "server.py"]
"""


def settings_app(version: str, dockerfile: str = SETTINGS_DOCKERFILE) -> dict[str, str]:
    """The files of the settings app, answering with `version`."""
    return {"Dockerfile": dockerfile, "server.py": SETTINGS_SERVER, "version.txt": version}
