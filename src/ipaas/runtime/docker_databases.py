"""Database containers on the Docker engine (the DatabaseRuntime seam).

Each database is one container on its owner's bridge network only (the engine isolates
bridges from each other, and the host firewall keeps containers off the host), with a named
volume and no published port. Its reachable name is `host_name(id)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import shlex
import signal
import socket
import struct
import tarfile
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import docker
import docker.errors
from docker.types import LogConfig
from docker.utils.socket import read_exactly

from ipaas.config import DatabaseSettings
from ipaas.domain.databases import LABEL_DATABASE, MOUNT_PATH
from ipaas.domain.labels import LABEL_OWNER, LABEL_PLATFORM
from ipaas.runtime.databases import (
    DbContainerSpec,
    DbStartFailed,
    ExecResult,
    SessionLost,
    host_name,
)
from ipaas.runtime.docker import EngineClient, in_thread

LABEL_SCRATCH = "org.ipaas.database.scratch"
VOLUME_PREFIX = "ipaas-db-"
_POLL_S = 0.2
_STDERR_KEEP = 4000


def db_volume_name(database_id: str) -> str:
    return f"{VOLUME_PREFIX}{database_id}"


class DockerDatabases:
    def __init__(
        self,
        settings: DatabaseSettings,
        instance: str,
        owner_network: Callable[[str], Awaitable[str]],
        docker_host: str | None = None,
    ) -> None:
        self.settings = settings
        self.instance = instance  # the platform instance (runtime.instance) labelling them
        self.owner_network = owner_network  # the runtime's: created on demand, firewalled
        self._engine = EngineClient(docker_host)

    def _api(self) -> docker.APIClient:
        return self._engine.get().api

    # --- containers -----------------------------------------------------------------------
    def _create_kwargs(self, spec: DbContainerSpec, scratch: bool) -> dict[str, Any]:
        memory = f"{spec.memory_mb}m"
        labels = {
            LABEL_PLATFORM: self.instance,
            LABEL_DATABASE: spec.database_id,
            LABEL_OWNER: spec.owner_id,
        }
        if scratch:
            labels[LABEL_SCRATCH] = "1"
        return {
            "image": spec.image,
            "command": list(spec.server_args),
            "labels": labels,
            "security_opt": ["no-new-privileges"],
            "cap_drop": ["ALL"],
            "cap_add": list(self.settings.capabilities),
            "mem_limit": memory,
            "memswap_limit": memory,
            "nano_cpus": int(spec.cpus * 1e9),
            "pids_limit": spec.pids_limit,
            "log_config": LogConfig(type="json-file", config={"max-size": "10m", "max-file": "2"}),
            "detach": True,
        }

    def _create_sync(self, spec: DbContainerSpec, network: str) -> str:
        client = self._engine.get()
        volume = db_volume_name(spec.database_id)
        labels = {LABEL_PLATFORM: "1", LABEL_DATABASE: spec.database_id}
        client.volumes.create(volume, labels={**labels, LABEL_OWNER: spec.owner_id})
        alias = host_name(spec.database_id)
        endpoint = client.api.create_endpoint_config(aliases=[alias])
        container = client.containers.create(
            name=f"ipaas-{alias}",
            hostname=alias,
            volumes={volume: {"bind": MOUNT_PATH, "mode": "rw"}},
            # The engine brings it back after a crash or an engine restart.
            restart_policy={"Name": "unless-stopped"},
            network=network,
            networking_config={network: endpoint},
            **self._create_kwargs(spec, scratch=False),
        )
        container.start()
        return str(container.id)

    def _create_scratch_sync(self, spec: DbContainerSpec, seed: Path | None) -> str:
        container = self._engine.get().containers.create(
            network_mode="none", **self._create_kwargs(spec, scratch=True)
        )
        try:
            if seed is not None:
                self._put_sync(container.id, f"{MOUNT_PATH}/restore.rdb", seed)
            container.start()
        except BaseException:
            self._remove_container_sync(str(container.id))
            raise
        return str(container.id)

    async def start(self, spec: DbContainerSpec) -> str:
        network = await self.owner_network(spec.owner_id)
        await self.remove(spec.database_id)  # a half-made one from an interrupted create
        container_id = await self._created(in_thread(self._create_sync, spec, network))
        await self._wait_ready(container_id, spec.ready_timeout_s)
        return container_id

    async def start_scratch(self, spec: DbContainerSpec, seed: Path | None) -> str:
        container_id = await self._created(in_thread(self._create_scratch_sync, spec, seed))
        try:
            await self._wait_ready(container_id, spec.ready_timeout_s)
        except BaseException:
            await asyncio.shield(in_thread(self._remove_container_sync, container_id))
            raise
        return container_id

    @staticmethod
    async def _created(create: Awaitable[str]) -> str:
        try:
            return await create
        except docker.errors.ImageNotFound as exc:
            raise DbStartFailed(
                f"the engine image is missing ({exc.explanation}): run `ipaas images bootstrap`"
            ) from exc
        except docker.errors.APIError as exc:
            raise DbStartFailed(f"the engine refused the container: {exc.explanation}") from exc

    async def _wait_ready(self, container_id: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            state = await self.state(container_id)
            if state not in ("running", "created", "restarting"):
                raise DbStartFailed(
                    f"the server exited while starting:\n{await self._logs(container_id)}"
                )
            if state == "running" and (await self.exec(container_id, ["ipaas-db", "ready"], 10)).ok:
                return
            if time.monotonic() >= deadline:
                raise DbStartFailed(
                    f"the server did not answer within {timeout_s:g} s:\n"
                    f"{await self._logs(container_id)}"
                )
            await asyncio.sleep(_POLL_S)

    async def _logs(self, container_id: str) -> str:
        def read() -> str:
            try:
                raw = self._api().logs(container_id, stdout=True, stderr=True, tail=20)
            except docker.errors.NotFound:
                return ""
            return bytes(raw).decode("utf-8", errors="replace").rstrip()

        return await in_thread(read)

    async def restart(self, container_id: str, spec: DbContainerSpec) -> None:
        await in_thread(self._api().restart, container_id, timeout=30)
        await self._wait_ready(container_id, spec.ready_timeout_s)

    def _state_sync(self, container_id: str) -> str | None:
        try:
            attrs = self._api().inspect_container(container_id)
        except docker.errors.NotFound:
            return None
        return str((attrs.get("State") or {}).get("Status", "unknown"))

    async def state(self, container_id: str) -> str | None:
        return await in_thread(self._state_sync, container_id)

    def _remove_container_sync(self, container_id: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self._api().remove_container(container_id, force=True, v=True)

    def _remove_sync(self, database_id: str) -> None:
        found = self._api().containers(
            all=True, filters={"label": f"{LABEL_DATABASE}={database_id}"}
        )
        for summary in found:
            self._remove_container_sync(summary["Id"])

    async def remove(self, database_id: str) -> None:
        await in_thread(self._remove_sync, database_id)

    async def remove_scratch(self, container_id: str) -> None:
        await in_thread(self._remove_container_sync, container_id)

    def _remove_volume_sync(self, database_id: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            self._api().remove_volume(db_volume_name(database_id), force=True)

    async def remove_volume(self, database_id: str) -> None:
        await in_thread(self._remove_volume_sync, database_id)

    # --- exec and files ---------------------------------------------------------------------
    def _put_sync(self, container_id: str, path: str, source: Path) -> None:
        folder, _, name = path.rpartition("/")
        with tempfile.TemporaryFile() as archive:
            with tarfile.open(fileobj=archive, mode="w") as tar:
                info = tar.gettarinfo(str(source), arcname=name)
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mode = 0o600
                with source.open("rb") as fh:
                    tar.addfile(info, fh)
            archive.seek(0)
            self._api().put_archive(container_id, folder or "/", archive)

    async def put_file(self, container_id: str, path: str, source: Path) -> None:
        await in_thread(self._put_sync, container_id, path, source)

    def _exec_sync(
        self, container_id: str, argv: list[str], sink: io.RawIOBase | None
    ) -> ExecResult:
        api = self._api()
        exec_id = api.exec_create(container_id, argv, stdout=True, stderr=True)["Id"]
        out, err = bytearray(), bytearray()
        for stdout, stderr in api.exec_start(exec_id, stream=True, demux=True):
            if stdout:
                if sink is not None:
                    sink.write(stdout)
                else:
                    out += stdout
            if stderr:
                err = (err + stderr)[-_STDERR_KEEP:]
        code = api.exec_inspect(exec_id).get("ExitCode")
        text = out if sink is None and code == 0 else err or out
        return ExecResult(-1 if code is None else int(code), bytes(text).decode(errors="replace"))

    async def _exec_bounded(
        self, container_id: str, argv: list[str], timeout_s: float, sink: io.RawIOBase | None
    ) -> ExecResult:
        task = asyncio.ensure_future(in_thread(self._exec_sync, container_id, argv, sink))
        try:
            return await asyncio.wait_for(asyncio.shield(task), timeout_s)
        except TimeoutError:
            await in_thread(self._kill_execs, container_id, argv)
            with contextlib.suppress(Exception):
                await task
            return ExecResult(
                124,
                f"{argv[0]} {argv[1] if len(argv) > 1 else ''} took longer than {timeout_s:g} s",
            )

    def _kill_execs(self, container_id: str, argv: list[str]) -> None:
        """Stop a command that ran over its time: exec processes are the host's to kill."""
        api = self._api()
        for exec_id in api.inspect_container(container_id).get("ExecIDs") or []:
            found = api.exec_inspect(exec_id)
            if (
                found.get("Running")
                and (found.get("ProcessConfig") or {}).get("arguments") == argv[1:]
            ):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(found["Pid"]), signal.SIGKILL)

    async def exec(
        self, container_id: str, argv: list[str], timeout_s: float, stdin: bytes | None = None
    ) -> ExecResult:
        if stdin is None:
            return await self._exec_bounded(container_id, argv, timeout_s, None)
        with tempfile.NamedTemporaryFile() as tmp:
            tmp.write(stdin)
            tmp.flush()
            inside = f"/tmp/ipaas-in-{os.urandom(6).hex()}"
            await self.put_file(container_id, inside, Path(tmp.name))
        try:
            script = f"{shlex.join(argv)} < {inside}"
            return await self._exec_bounded(container_id, ["sh", "-c", script], timeout_s, None)
        finally:
            await self._exec_bounded(container_id, ["rm", "-f", inside], 10, None)

    def _open_session_sync(self, container_id: str, argv: list[str]) -> DockerSession:
        api = self._api()
        exec_id = api.exec_create(container_id, argv, stdin=True, stdout=True, stderr=True)["Id"]
        hijacked = api.exec_start(exec_id, socket=True)
        return DockerSession(api, exec_id, getattr(hijacked, "_sock", hijacked))

    async def open_session(self, container_id: str, argv: list[str]) -> DockerSession:
        try:
            return await in_thread(self._open_session_sync, container_id, argv)
        except docker.errors.APIError as exc:
            raise SessionLost(f"the engine refused the session: {exc.explanation}") from exc

    async def exec_to_file(
        self, container_id: str, argv: list[str], dest: Path, timeout_s: float
    ) -> ExecResult:
        with dest.open("wb") as sink:
            return await self._exec_bounded(container_id, argv, timeout_s, sink)  # type: ignore[arg-type]


def _ends_with_line(out: bytearray, line: bytes) -> bool:
    return out.endswith(line) and (len(out) == len(line) or out[-len(line) - 1] == ord("\n"))


class DockerSession:
    """A DbSession over a Docker exec's hijacked connection: what is written goes to the
    command's stdin, what it prints comes back in the engine's frames (8-byte headers)."""

    def __init__(self, api: docker.APIClient, exec_id: str, sock: socket.socket) -> None:
        self._api = api
        self._exec_id = exec_id
        self._sock = sock
        self.closed = False

    def _ask_sync(
        self, text: bytes, end: bytes, limit: int, timeout_s: float
    ) -> tuple[bytes, bool]:
        if self.closed:
            raise SessionLost("the session is closed")
        deadline = time.monotonic() + timeout_s
        marker = end + b"\n"
        out = bytearray()
        try:
            self._sock.settimeout(timeout_s)
            self._sock.sendall(text)
            while not _ends_with_line(out, marker):
                if len(out) > limit + len(marker):
                    self._close_sync()
                    return bytes(out[:limit]), True
                if time.monotonic() > deadline:
                    raise TimeoutError
                _stream, size = struct.unpack(">BxxxL", read_exactly(self._sock, 8))
                out += read_exactly(self._sock, size)
        except TimeoutError:
            self._close_sync()
            raise SessionLost(f"no answer within {timeout_s:g} s") from None
        except (OSError, docker.errors.DockerException) as exc:
            self._close_sync()
            raise SessionLost(f"the session ended: {exc}") from None
        return bytes(out[: -len(marker)]), False

    async def ask(
        self, text: bytes, end: bytes, limit: int, timeout_s: float
    ) -> tuple[bytes, bool]:
        return await in_thread(self._ask_sync, text, end, limit, timeout_s)

    def _close_sync(self) -> None:
        """Its stdin closes (the client ends), and the process is killed if it still runs."""
        if self.closed:
            return
        self.closed = True
        with contextlib.suppress(OSError):
            self._sock.close()
        with contextlib.suppress(docker.errors.DockerException, ProcessLookupError, ValueError):
            found = self._api.exec_inspect(self._exec_id)
            if found.get("Running") and found.get("Pid"):
                os.kill(int(found["Pid"]), signal.SIGKILL)

    async def close(self) -> None:
        await in_thread(self._close_sync)
