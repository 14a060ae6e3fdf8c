"""Tiny test images built locally (no registry here): FROM scratch plus the static busybox."""

from __future__ import annotations

import io
import secrets
import tarfile
from pathlib import Path

import docker

BUSYBOX = Path("/bin/busybox")

# One image, several behaviours chosen by $APP_MODE, so a single fast build serves every test.
APP_SCRIPT = """\
echo "${APP_TEXT:-hello}" > /www/index.html
case "$APP_MODE" in
  crash)
    echo "booting the crash app"
    echo "fatal: cannot read config" >&2
    exit 3 ;;
  slow)
    echo "warming up"
    sleep "${SLOW_S:-30}"
    exec httpd -f -p "$PORT" -h /www ;;
  hog)
    httpd -p "$PORT" -h /www
    sleep "${HOG_DELAY_S:-2}"
    echo "eating memory"
    x=a; while true; do x=$x$x; done ;;
  *)
    echo "listening on $PORT"
    exec httpd -f -p "$PORT" -h /www ;;
esac
"""

# A Server-Sent Events stream (busybox httpd CGI relays output as it comes): one event, a
# pause, another. A proxy that buffers delivers the first only after the pause.
SSE_SCRIPT = """\
#!/bin/sh
printf 'Content-Type: text/event-stream\\r\\n\\r\\n'
printf 'data: one\\n\\n'
sleep "${SSE_PAUSE_S:-3}"
printf 'data: two\\n\\n'
"""

DOCKERFILE = """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
ENV PATH=/bin
COPY app.sh /app.sh
COPY www /www
CMD ["/bin/sh", "/app.sh"]
"""


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    tar.addfile(info, io.BytesIO(data))


def build_context(dockerfile: str = DOCKERFILE) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add(tar, "Dockerfile", dockerfile.encode())
        _add(tar, "busybox", BUSYBOX.read_bytes(), 0o755)
        _add(tar, "app.sh", APP_SCRIPT.encode(), 0o755)
        _add(tar, "www/index.html", b"hello\n")
        _add(tar, "www/health", b"ok\n")
        _add(tar, "www/cgi-bin/sse", SSE_SCRIPT.encode(), 0o755)
    buf.seek(0)
    return buf


def build_image(
    client: docker.DockerClient, labels: dict[str, str] | None = None, prefix: str = "ipaas-test"
) -> str:
    """Build the busybox app image under a unique tag and return the tag."""
    tag = f"{prefix}-bb:{secrets.token_hex(4)}"
    client.images.build(
        fileobj=build_context(), custom_context=True, tag=tag, labels=labels or {}, rm=True
    )
    return tag
