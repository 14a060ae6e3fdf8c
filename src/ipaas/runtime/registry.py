"""Images on every Swarm node: a registry the nodes pull from, and pushing built images to it.

`LocalRegistry` runs Debian's `docker-registry` (the CNCF distribution registry) on
`swarm.registry.push_address` (loopback: the build engine pushes there without TLS, which an
engine allows for loopback registries only), restarts it when it dies, and relays
`swarm.registry.address` (an address the nodes reach, e.g. the Swarm bridge's) to it.
`ImagePublisher` pushes an image and names it by digest for the nodes. `RegistryImages`
deletes the images of releases no longer kept (`keep_releases`) and those of a deleted app;
the registry ipaas serves then frees their space (`garbage-collect`, at most every
`collect_interval_s`, in a pause of its own: the command is not safe beside pushes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path

import docker
import docker.errors
import httpx
import structlog

from ipaas.config import RegistrySettings
from ipaas.domain.swarm import unkept_tags
from ipaas.runtime.docker import EngineClient, in_thread

log = structlog.get_logger()
_READY_S = 15.0
# What a manifest may be; the registry names the digest of whichever one it holds.
_MANIFESTS = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
])  # fmt: skip
_ELIGIBLE = "blob eligible for deletion"  # what garbage-collect says of each blob it frees


def repository_of(app_id: str) -> str:
    """An app's repository in the registry (short: the digest reference of a release must fit
    the release's image column, 128 characters)."""
    return f"ipaas/{app_id[:12]}"


def _split(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


class LocalRegistry:
    """The registry process the platform starts and supervises."""

    def __init__(self, settings: RegistrySettings, data_dir: Path) -> None:
        self.settings = settings
        self.root = data_dir / "registry"
        self._proc: asyncio.subprocess.Process | None = None
        self._relay: asyncio.Server | None = None
        self._watch: asyncio.Task[None] | None = None
        self._collected_at = time.monotonic()
        self._paused = False  # stopped on purpose (garbage collection): not to be restarted

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def _config(self) -> str:
        # JSON is YAML: no YAML writer needed.
        return json.dumps(
            {
                "version": 0.1,
                "log": {"level": "warn"},
                "storage": {
                    "filesystem": {"rootdirectory": str(self.root / "data")},
                    "delete": {"enabled": True},
                },
                "http": {"addr": self.settings.push_address},
            }
        )

    async def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "config.yml").write_text(self._config())
        await self._spawn()
        address = self.settings.address
        if address and address != self.settings.push_address:
            host, port = _split(address)
            self._relay = await asyncio.start_server(self._pipe, host, port)
        self._watch = asyncio.create_task(self._supervise(), name="registry-supervisor")

    async def _spawn(self) -> None:
        with (self.root / "registry.log").open("ab") as out:
            self._proc = await asyncio.create_subprocess_exec(
                self.settings.binary,
                "serve",
                str(self.root / "config.yml"),
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        await self._wait_ready()

    async def _wait_ready(self) -> None:
        url = f"http://{self.settings.push_address}/v2/"
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _READY_S
        async with httpx.AsyncClient(timeout=1.0) as http:
            while loop.time() < deadline:
                if self._proc is not None and self._proc.returncode is not None:
                    break
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(url)).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        tail = (self.root / "registry.log").read_text(errors="replace")[-1000:]
        raise RuntimeError(f"the registry did not answer at {url}: {tail}")

    async def _supervise(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self._paused:
                continue
            if self._proc is not None and self._proc.returncode is not None:
                log.warning("registry exited; restarting", code=self._proc.returncode)
                with contextlib.suppress(Exception):
                    await self._spawn()
            if time.monotonic() - self._collected_at >= self.settings.collect_interval_s:
                self._collected_at = time.monotonic()
                try:
                    await self.collect()
                except Exception:  # noqa: BLE001 - the next round tries again
                    log.exception("registry garbage collection failed")

    async def _gc(self, *flags: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            self.settings.binary, "garbage-collect", *flags, str(self.root / "config.yml"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await proc.communicate()
        if proc.returncode:
            raise RuntimeError(f"garbage-collect exited with {proc.returncode}: {out[-500:]!r}")
        return out.decode(errors="replace")

    async def collect(self) -> int:
        """Free the blobs no manifest uses any more; returns how many. A dry run (read only,
        beside the serving registry) says whether there are any; only then does the registry
        stop for the real run (pushes and pulls in that moment fail and are retried: a build
        retries its push, the Swarm a task's pull) and serve again."""
        if _ELIGIBLE not in await self._gc("--dry-run"):
            return 0
        self._paused = True
        try:
            await self._stop_process()
            freed = (await self._gc()).count(_ELIGIBLE)
        finally:
            try:
                await self._spawn()
            finally:
                self._paused = False
        log.info("registry space freed", blobs=freed)
        return freed

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = _split(self.settings.push_address)
        try:
            up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(_copy(reader, up_writer), _copy(up_reader, writer))

    async def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        if self._relay is not None:
            self._relay.close()
            await self._relay.wait_closed()
        await self._stop_process()

    async def _stop_process(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            try:
                await asyncio.wait_for(self._proc.wait(), 10)
            except TimeoutError:
                self._proc.kill()
                await self._proc.wait()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


class PushFailed(Exception):
    pass


class ImagePublisher:
    """Pushes images the build engine made to the registry; returns what nodes pull."""

    def __init__(self, settings: RegistrySettings, docker_host: str | None = None) -> None:
        self.settings = settings
        self._engine = EngineClient(docker_host)

    def _push_sync(self, image: str, repository: str, tag: str) -> str:
        api = self._engine.get().api
        target = f"{self.settings.push_address}/{repository}"
        api.tag(image, target, tag)
        digest = ""
        try:
            for item in api.push(target, tag=tag, stream=True, decode=True):
                if item.get("error"):
                    raise PushFailed(str(item["error"]))
                digest = (item.get("aux") or {}).get("Digest") or digest
        finally:
            with contextlib.suppress(docker.errors.APIError):
                api.remove_image(f"{target}:{tag}", noprune=True)
        if not digest:
            raise PushFailed(f"the registry gave no digest for {target}:{tag}")
        return f"{self.settings.pull_address}/{repository}@{digest}"

    async def publish(self, image: str, repository: str, tag: str) -> str:
        """Push `image` (an id or tag on the build engine) as repository:tag; return its
        name by digest at the address the nodes pull from."""
        try:
            return await in_thread(self._push_sync, image, repository, tag)
        except docker.errors.APIError as exc:
            raise PushFailed(str(exc.explanation)) from exc

    def close(self) -> None:
        self._engine.close()


class RegistryImages:
    """The images of an app's releases in the registry, through its HTTP API at
    `push_address` (the control plane reaches it there too): deletes those of releases no
    longer kept. A manifest that a kept release also names (an identical rebuild) stays."""

    def __init__(self, settings: RegistrySettings) -> None:
        self.settings = settings
        self.base = f"http://{settings.push_address}/v2"

    async def prune(self, app_id: str, current: int) -> int:
        """After `current` was deployed: all but the newest `keep_releases` go."""
        return await self._delete(app_id, current)

    async def remove_app(self, app_id: str) -> int:
        return await self._delete(app_id, None)

    async def _delete(self, app_id: str, current: int | None) -> int:
        repository = repository_of(app_id)
        async with httpx.AsyncClient(timeout=10.0) as http:
            found = await http.get(f"{self.base}/{repository}/tags/list")
            if found.status_code == 404:
                return 0
            found.raise_for_status()
            tags = list(found.json().get("tags") or [])
            doomed = unkept_tags(tags, current, self.settings.keep_releases)
            kept = {await self._digest(http, repository, t) for t in tags if t not in doomed}
            digests = {await self._digest(http, repository, t) for t in doomed} - kept
            deleted = 0
            for digest in sorted(d for d in digests if d):
                answer = await http.delete(f"{self.base}/{repository}/manifests/{digest}")
                if answer.status_code not in (202, 404):
                    answer.raise_for_status()
                deleted += answer.status_code == 202
        if deleted:
            log.info("release images deleted", app_id=app_id, manifests=deleted)
        return deleted

    async def _digest(self, http: httpx.AsyncClient, repository: str, tag: str) -> str | None:
        answer = await http.head(
            f"{self.base}/{repository}/manifests/{tag}", headers={"Accept": _MANIFESTS}
        )
        return answer.headers.get("Docker-Content-Digest") if answer.status_code == 200 else None
