"""In-process notice of app changes, so status long-polls wake at once (others poll)."""

from __future__ import annotations

import asyncio


class ChangeBus:
    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def notify(self, app_id: str) -> None:
        event = self._events.pop(app_id, None)
        if event is not None:
            event.set()

    async def wait(self, app_id: str, timeout_s: float) -> bool:
        event = self._events.setdefault(app_id, asyncio.Event())
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
            return True
        except TimeoutError:
            return False
