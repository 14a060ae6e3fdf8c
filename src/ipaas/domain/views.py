"""The shapes pure decisions read: an app as stored, a container as the engine reports it.

Protocols, so the store's rows and the runtime's records fit without conversion.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol


class ContainerView(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def app_id(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def started_at(self) -> datetime | None: ...
    @property
    def finished_at(self) -> datetime | None: ...
    @property
    def store_id(self) -> str: ...
    @property
    def created_at(self) -> datetime | None: ...


class AppView(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def container_id(self) -> str | None: ...
    @property
    def state_reason(self) -> str | None: ...
