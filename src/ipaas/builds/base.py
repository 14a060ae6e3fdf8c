"""The ImageBuilder seam: one build of one app at one commit."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ipaas.domain.repo_access import RepoCredentials

# Called with each line of build output, in order, as it appears.
LogSink = Callable[[str], Awaitable[None]]


@dataclass(frozen=True)
class BuildOptions:
    builder: Literal["auto", "dockerfile", "plan"] = "auto"
    dockerfile_path: str = "Dockerfile"
    language: str | None = None  # python | node | go | static; None = detect
    install_command: str | None = None
    build_command: str | None = None
    start_command: str | None = None
    root_directory: str = ""


@dataclass(frozen=True)
class BuildRequest:
    app_id: str
    app_name: str
    release: int  # the release number this build will become
    repo_url: str
    branch: str | None = None  # None: the repo's default branch
    commit: str | None = None  # None: the branch head
    options: BuildOptions = field(default_factory=BuildOptions)
    build_args: dict[str, str] = field(default_factory=dict)
    allow_local: bool = False  # file:// and plain paths (admins only)
    # False only for admins' apps: everyone else's repository host is checked and pinned.
    check_host: bool = True
    credentials: RepoCredentials | None = field(default=None, repr=False)
    # Schemes allowed for this URL besides the operator's list: the scheme of a provider's git
    # host (an operator setting, like the host itself, which is then not checked either).
    extra_schemes: tuple[str, ...] = ()
    no_cache: bool = False  # rebuild every layer (benchmarks, "clear build cache")


@dataclass(frozen=True)
class BuildResult:
    image_id: str
    image_tag: str
    commit: str  # the exact SHA built
    plan: dict[str, Any]  # the plan as plain data (stored with the release)
    duration_s: float


class BuildFailed(Exception):
    """A build that did not produce an image.

    user_fault=True: the user must change something (bad branch, nothing buildable, install
    command failed) - fail at once. False: the platform failed (engine down, network) - retry.
    """

    def __init__(self, reason: str, *, user_fault: bool, code: str = "build_failed") -> None:
        super().__init__(reason)
        self.reason = reason
        self.user_fault = user_fault
        self.code = code


class BuildCancelled(Exception):
    pass


class ImageBuilder(Protocol):
    async def build(
        self, request: BuildRequest, log: LogSink, cancel: asyncio.Event | None = None
    ) -> BuildResult: ...
