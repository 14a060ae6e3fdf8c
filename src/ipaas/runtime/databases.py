"""The seam for database containers: what the databases use case needs from an engine.

A database container runs the image's `ipaas-db` script; everything the platform does inside
it (create users, dump, restore, count rows) is that script run through the engine's exec, so
no database driver loads into the control plane and the engine's superuser never has a
network password.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True)
class DbContainerSpec:
    database_id: str
    owner_id: str
    image: str
    memory_mb: int
    cpus: float
    pids_limit: int
    server_args: tuple[str, ...]
    ready_timeout_s: float


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: str  # stdout, or (for exec_to_file) the end of stderr

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class DbStartFailed(Exception):
    """The database container did not come up; `reason` is for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SessionLost(Exception):
    """A session's command ended, its output ran past its limit, or it took too long."""


class DbSession(Protocol):
    """One long-lived client inside a database container (the viewer's), spoken to over its
    standard input and output: a question costs a round trip, not a new process."""

    async def ask(
        self, text: bytes, end: bytes, limit: int, timeout_s: float
    ) -> tuple[bytes, bool]:
        """Send `text`; return the output up to the line `end` (which `text` makes the client
        print last), and False. Output past `limit` bytes: its first `limit` bytes and True,
        and the session is closed. SessionLost, and the session closed, when it ends first or
        gives no answer within `timeout_s`."""
        ...

    async def close(self) -> None: ...


def host_name(database_id: str) -> str:
    """The database's name on its owner's network (the host of its URL)."""
    return f"db-{database_id[:12]}"


class DatabaseRuntime(Protocol):
    async def start(self, spec: DbContainerSpec) -> str:
        """Create and start the database's container on its owner's network, with its named
        volume, no published port; return its id once the server answers (DbStartFailed)."""
        ...

    async def start_scratch(self, spec: DbContainerSpec, seed: Path | None) -> str:
        """A throwaway container of the same image: no network, no named volume; `seed`
        (a Redis snapshot) is put in place before its server starts."""
        ...

    async def remove_scratch(self, container_id: str) -> None: ...

    async def exec(
        self, container_id: str, argv: list[str], timeout_s: float, stdin: bytes | None = None
    ) -> ExecResult:
        """Run a command in the container; `stdin` is handed over as a file, never in argv."""
        ...

    async def exec_to_file(
        self, container_id: str, argv: list[str], dest: Path, timeout_s: float
    ) -> ExecResult:
        """Run a command and stream its stdout into `dest` (a dump)."""
        ...

    async def open_session(self, container_id: str, argv: list[str]) -> DbSession:
        """Start `argv` in the container (its stderr merged into its stdout) and keep it."""
        ...

    async def put_file(self, container_id: str, path: str, source: Path) -> None:
        """Copy a host file into the container (running or not) at `path`, root-only."""
        ...

    async def restart(self, container_id: str, spec: DbContainerSpec) -> None:
        """Restart the container and wait until the server answers again (DbStartFailed)."""
        ...

    async def state(self, container_id: str) -> str | None:
        """The engine's word for the container (running, exited, ...); None when gone."""
        ...

    async def remove(self, database_id: str) -> None:
        """Remove every container of the database (not its volume)."""
        ...

    async def remove_volume(self, database_id: str) -> None: ...
