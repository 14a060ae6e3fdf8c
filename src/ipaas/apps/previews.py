"""Pull-request previews: an app `<name>-pr-<number>` built from the pull request's head, with
the app's settings and small resources, deleted when the pull request closes."""

from __future__ import annotations

import contextlib

from ipaas.apps.service import AppService
from ipaas.domain.errors import Conflict, LimitReached
from ipaas.domain.pushes import Outcome
from ipaas.domain.states import IllegalTransition, State
from ipaas.store.apps import AppStore, NameTaken, NotFound
from ipaas.store.models import Application, new_id

PREVIEW_MEMORY_MB = 256
PREVIEW_CPUS = 0.5


def preview_name(name: str, number: int) -> str:
    """`<name>-pr-<number>`, the app's name shortened so the whole stays a DNS label."""
    suffix = f"-pr-{number}"
    return name[: 63 - len(suffix)].rstrip("-") + suffix


def preview_of(app: Application, number: int, branch: str) -> Application:
    """The preview's row: the app's source and settings, on the pull request's branch, without
    volumes (a preview must not share or fill the app's data), with small resources."""
    memory = min(int(app.resources.get("memory_mb") or PREVIEW_MEMORY_MB), PREVIEW_MEMORY_MB)
    cpus = min(float(app.resources.get("cpus") or PREVIEW_CPUS), PREVIEW_CPUS)
    return Application(
        id=new_id(), name=preview_name(app.name, number), name_scope="", kind=app.kind,
        owner_id=app.owner_id, repo=app.repo, provider=app.provider,
        repo_credentials_encrypted=app.repo_credentials_encrypted, branch=branch, commit=None,
        root_directory=app.root_directory, port=app.port, envs_encrypted=app.envs_encrypted,
        build=app.build, health_check=app.health_check, volumes=[],
        resources={"memory_mb": memory, "cpus": cpus}, replicas=1, visibility=app.visibility,
        state=State.PENDING.value, version=1, preview_of=app.id, preview_number=number,
    )  # fmt: skip


class Previews:
    def __init__(self, apps: AppStore, service: AppService, max_per_app: int) -> None:
        self.apps = apps
        self.service = service
        self.max_per_app = max_per_app

    async def deploy(self, app: Application, outcome: Outcome) -> int:
        """Build the pull request's head in its preview (made on the first delivery); the
        build's number."""
        number, commit = outcome.number or 0, outcome.commit
        existing = {p.preview_number: p for p in await self.apps.previews_of(app.id)}
        preview = existing.get(number)
        reason = f"{outcome.reason} ({(commit or '')[:12]})"
        if preview is not None:
            return await self.service.rebuild(preview.id, reason, commit=commit)
        if len(existing) >= self.max_per_app:
            raise LimitReached(
                f"at most {self.max_per_app} previews per app", code="too_many_previews"
            )
        row = preview_of(app, number, outcome.branch or "")
        try:
            await self.apps.create(row, guard=self.service.quotas.create_guard(row))
        except NameTaken:
            raise Conflict(f"the name {row.name!r} is taken", code="name_taken") from None
        return await self.service.scheduler.enqueue(row.id, commit=commit)

    async def delete(self, app: Application, number: int) -> bool:
        for preview in await self.apps.previews_of(app.id):
            if preview.preview_number == number:
                with contextlib.suppress(IllegalTransition, NotFound):
                    await self.service.deployer.delete(preview.id, True)
                return True
        return False
