"""Small network checks shared by the router and the runtime."""

from __future__ import annotations

import asyncio
import contextlib


async def tcp_open(host: str, port: int | str | None, timeout_s: float = 1.0) -> bool:
    """True when something accepts a TCP connection at host:port within the timeout."""
    if port is None:
        return False
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError):
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True
