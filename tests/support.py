"""Helpers every test tier shares: free ports, unique names, waiting for a condition."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on loopback nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique_name(prefix: str = "t") -> str:
    """An app, user or resource name no other test (or run) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def wait_port(port: int, timeout_s: float = 10.0, host: str = "127.0.0.1") -> None:
    """Return once something accepts connections on the port."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listened on {host}:{port} within {timeout_s} s")


def wait_until(
    probe: Callable[[], T | None], timeout_s: float, what: str, every_s: float = 0.3
) -> T:
    """Poll `probe` until it returns something truthy; fail naming `what` otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


async def wait_until_async(
    probe: Callable[[], Awaitable[T | None]], timeout_s: float, what: str, every_s: float = 0.05
) -> T:
    """`wait_until` for coroutines."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = await probe()
        if found:
            return found
        await asyncio.sleep(every_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def stop_process(proc: subprocess.Popen[bytes], timeout_s: float = 5.0) -> None:
    """SIGTERM, then SIGKILL if it is still there after `timeout_s`."""
    proc.terminate()
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout_s)
