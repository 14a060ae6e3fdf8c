"""A real ipaas API server on a free port, in a thread with its own event loop.

Code that touches the platform's store must run on that loop (`live.run(coro)`): its database
connections belong to it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import uvicorn

from ipaas.platform import ControlPlane
from ipaas.web.site import create_site
from tests.support import free_port

T = TypeVar("T")


@dataclass
class Live:
    base: str
    plane: ControlPlane
    loop: asyncio.AbstractEventLoop
    server: uvicorn.Server
    thread: threading.Thread = field(repr=False)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        if not self.thread.is_alive():
            self.loop.close()


def start_live(
    plane: ControlPlane,
    *,
    manage_lifecycle: bool = True,
    timeout_s: float = 60,
    port: int | None = None,
) -> Live:
    """Serve the platform's API and dashboard (and, with manage_lifecycle, run its workers and warden), on
    `port` (the one its settings name, where Caddy asks about private apps) or a free one."""
    port = port or free_port()
    app = create_site(plane, manage_lifecycle=manage_lifecycle)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="error",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return Live(base, plane, loop, server, thread)
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError("the API server did not start")
