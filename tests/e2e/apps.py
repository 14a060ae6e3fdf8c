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
