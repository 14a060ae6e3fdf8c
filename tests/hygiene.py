"""What a test run must not leave behind: processes started from its temporary folders (a
Caddy orphaned by a SIGKILLed control plane), and containers of its test platforms."""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from dataclasses import dataclass
from pathlib import Path

from ipaas.domain.labels import IMAGE_NAMESPACE, LABEL_PLATFORM

TEST_INSTANCE_PREFIX = "test-"
# The platform instances this run started: only their containers are this run's to check (a
# run beside another one, or beside `ipaas up`, must not touch theirs).
STARTED: set[str] = set()


def new_instance() -> str:
    """A platform instance id for a test platform, remembered for the end-of-run check."""
    instance = f"{TEST_INSTANCE_PREFIX}{uuid.uuid4().hex[:8]}"
    STARTED.add(instance)
    return instance


def processes_under(folder: Path) -> list[tuple[int, str]]:
    """Processes (not this one) whose command line names a path inside `folder`."""
    needle = str(folder).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            found.append((int(entry.name), cmdline.replace(b"\0", b" ").decode(errors="replace")))
    return found


def reap(folder: Path) -> list[str]:
    """Stop what was left running from `folder`; returns what that was."""
    left = processes_under(folder)
    for pid, _ in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return [cmd[:200] for _, cmd in left]


def containers_left() -> list[str]:
    """Containers of this run's test platforms still on the engine: removed, and named."""
    return remove_containers_of(STARTED)


def remove_containers_of(instances: set[str]) -> list[str]:
    """Remove the containers of these platform instances."""
    try:
        import docker

        client = docker.from_env(timeout=10)
        containers = client.containers.list(all=True, filters={"label": LABEL_PLATFORM})
    except Exception:  # noqa: BLE001 - no engine: nothing can be left on it
        return []
    removed = []
    for c in containers:
        instance = c.labels.get(LABEL_PLATFORM, "")
        wanted = (
            instance in instances
            if instances is not None
            else instance.startswith(TEST_INSTANCE_PREFIX)
        )
        if wanted and instance != "default":
            with contextlib.suppress(Exception):
                c.remove(force=True, v=True)
            removed.append(f"{c.name} ({instance})")
    return removed


@dataclass(frozen=True)
class EngineThings:
    """What a run can leave on the engine besides containers: app images (tagged in the
    platform's namespace, or dangling layers), volumes and networks."""

    images: frozenset[str]
    volumes: frozenset[str]
    networks: frozenset[str]


def engine_things() -> EngineThings | None:
    try:
        import docker

        client = docker.from_env(timeout=30)
        images = client.images.list(filters={"dangling": True}) + [
            image
            for image in client.images.list()
            if any(tag.startswith(f"{IMAGE_NAMESPACE}/") for tag in image.tags)
        ]
        return EngineThings(
            frozenset(image.id for image in images),
            frozenset(volume.name for volume in client.volumes.list()),
            # By name: an engine restarted mid-run gives its own `bridge` a new id.
            frozenset(network.name for network in client.networks.list()),
        )
    except Exception:  # noqa: BLE001 - no engine: nothing can be left on it
        return None


def engine_leftovers(before: EngineThings | None) -> list[str]:
    """What appeared on the engine since `before` and is still there: removed, and named.
    Only meaningful when nothing else uses the engine meanwhile (`make test`, CI)."""
    after = engine_things()
    if before is None or after is None:
        return []
    import docker

    client = docker.from_env(timeout=30)
    left = []
    for network_name in after.networks - before.networks:
        left.append(f"network {network_name}")
        with contextlib.suppress(Exception):
            client.networks.get(network_name).remove()
    for name in after.volumes - before.volumes:
        left.append(f"volume {name}")
        with contextlib.suppress(Exception):
            client.volumes.get(name).remove(force=True)
    for image_id in after.images - before.images:
        with contextlib.suppress(Exception):
            image = client.images.get(image_id)
            config = image.attrs.get("Config") or {}
            # Where it came from: its labels and the step that made it.
            left.append(
                f"image {', '.join(image.tags) or image_id[:19]}"
                f" created {image.attrs.get('Created', '?')[:19]}"
                f" labels {config.get('Labels') or {}} cmd {str(config.get('Cmd'))[:200]}"
            )
            client.images.remove(image_id, force=True)
    return left
