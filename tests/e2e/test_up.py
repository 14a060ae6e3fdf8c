"""`ipaas up` on a fresh data directory: prints the URL and the first admin's password once;
/healthz answers and /docs lists the API."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.live import free_port
from tests.services import need


def test_up_prints_url_and_first_admin(database_url: str, tmp_path: Path) -> None:
    need("docker")
    port = free_port()
    env = {
        **os.environ,
        "IPAAS_DATA_DIR": str(tmp_path / "data"),
        "IPAAS_SECRETS_FILE": str(tmp_path / "data" / "secrets.json"),  # not the run's shared one
        "IPAAS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'fresh.db'}",
        "IPAAS_PORT": str(port),
        "IPAAS_ROUTER__KIND": "transparent",
        "PYTHONUNBUFFERED": "1",
    }
    cmd = [sys.executable, "-m", "ipaas.cli.main", "up", "--no-bootstrap"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        text = "".join(lines)
        password = re.search(r"user 'admin', password '([^']+)'", text)
        url = re.search(r"ipaas is up: (http://\S+)", text)
        assert password and url, text
        base = url.group(1)
        for _ in range(100):
            try:
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        assert httpx.get(f"{base}/healthz").json()["status"] == "ok"
        docs = httpx.get(f"{base}/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        spec = httpx.get(f"{base}/openapi.json").json()
        assert "/api/v1/applications" in spec["paths"]
        login = httpx.post(
            f"{base}/api/v1/auth/login",
            json={"username": "admin", "password": password.group(1)},
        )
        assert login.status_code == 200
        assert oct((tmp_path / "data" / "secrets.json").stat().st_mode & 0o777) == "0o600"
    finally:
        proc.terminate()
        proc.wait(20)
    # A second start does not print a password again.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert "password" not in first and "ipaas is up" in first
    finally:
        proc.terminate()
        proc.wait(20)
