"""Application operations as a user sees them. The API is a thin layer over this."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ipaas.api.errors import Problem, not_found
from ipaas.api.schemas import AppCreate, AppUpdate, EnvVar
from ipaas.apps.envs import encode_envs, env_vars
from ipaas.builds.base import BuildFailed
from ipaas.builds.repo_guard import RepoGuard
from ipaas.domain.repos import repo_columns, split_credentials
from ipaas.domain.states import State
from ipaas.domain.updates import Action, action_for
from ipaas.platform import Platform
from ipaas.providers.base import RepoError
from ipaas.queue.base import BuildJob
from ipaas.store.apps import NameTaken, NotFound
from ipaas.store.models import Application, new_id


@dataclass(frozen=True)
class Principal:
    user_id: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


LOCAL_PREFIXES = ("file://", "/", "./", "../")


async def check_repo_url(platform: Platform, who: Principal, repo: str) -> None:
    """Scheme allow-list; local paths only for admins; no option injection; for non-admins,
    no host that is or resolves to an internal address."""
    if repo.startswith("-") or any(c in repo for c in "\r\n\t\0 "):
        raise Problem(422, "invalid_repo", "the repository URL is not valid")
    if repo.startswith(LOCAL_PREFIXES):
        if not who.is_admin:
            raise Problem(403, "local_repo_forbidden", "only admins may deploy local paths")
        return
    scheme = repo.split("://", 1)[0].lower() if "://" in repo else ""
    if not scheme and "@" in repo and ":" in repo:  # scp-like ssh: git@host:owner/repo
        scheme = "ssh"
    if scheme not in platform.settings.allowed_repo_schemes:
        allowed = ", ".join(platform.settings.allowed_repo_schemes)
        raise Problem(422, "invalid_repo", f"repository URL scheme must be one of: {allowed}")
    if not who.is_admin:
        try:
            await RepoGuard.from_settings(platform.settings).check(repo)
        except BuildFailed as exc:  # only user faults: a slow resolver lets the clone decide
            raise Problem(422, exc.code, exc.reason) from None


def is_local_repo(repo: str) -> bool:
    return repo.startswith(LOCAL_PREFIXES)


class AppService:
    def __init__(self, platform: Platform) -> None:
        self.p = platform

    def url_for(self, name: str) -> str:
        host = f"{name}.{self.p.settings.base_domain}"
        return self.p.router.url_for(host) if self.p.router else f"http://{host}/"

    async def get(self, who: Principal, app_id: str) -> Application:
        try:
            return await self.p.apps.get(app_id, who.user_id)
        except NotFound:
            raise not_found("application") from None

    async def create(self, who: Principal, body: AppCreate) -> Application:
        await check_repo_url(self.p, who, body.repo)
        self._check_env_count(body.envs)
        app = Application(
            id=new_id(),
            name=body.name,
            name_scope="",
            kind=body.kind,
            owner_id=who.user_id,
            **repo_columns(self.p.cipher, body.repo),  # credentials split off, encrypted
            branch=body.branch,
            commit=body.commit,
            root_directory=body.root_directory,
            port=body.port,
            envs_encrypted=encode_envs(self.p.cipher, body.envs),
            build=body.build.model_dump(),
            health_check=body.health_check,
            volumes=[v.model_dump() for v in body.volumes],
            resources=body.resources.model_dump(exclude_none=True),
            replicas=body.replicas,
            visibility=body.visibility,
            state=State.PENDING.value,
            version=1,
        )
        _, total = await self.p.apps.list(who.user_id, limit=1)
        if total >= self.p.settings.max_apps_per_user:
            raise Problem(409, "quota_exceeded", "you have reached the maximum number of apps")
        try:
            await self.p.apps.create(app)
        except NameTaken:
            raise Problem(409, "name_taken", f"the name {body.name!r} is taken") from None
        await self.enqueue_build(app.id)
        return app

    async def enqueue_build(self, app_id: str) -> int:
        build = await self.p.builds.new_build(app_id)
        await self.p.queue.enqueue(BuildJob(id=build.id, app_id=app_id, attempt=0))
        return build.number

    async def update(self, who: Principal, app_id: str, body: AppUpdate) -> Application:
        app = await self.get(who, app_id)
        columns, changed, new_envs = self._changes(app, body)
        if "repo" in changed:
            await check_repo_url(self.p, who, body.repo or app.repo)
        action = action_for(changed)
        if new_envs is not None and _build_envs_changed(self.p, app, new_envs):
            action = Action.REBUILD
        if action >= Action.RESTART and app.current_release is None:
            # Nothing deployed yet: a failed app rebuilds, a busy one picks it up as it goes.
            action = Action.REBUILD if app.state == State.FAILED else Action.NONE
        if columns:
            try:
                await self.p.apps.set_fields(app_id, **columns)
            except NameTaken:
                raise Problem(409, "name_taken", f"the name {columns['name']!r} is taken") from None
        from ipaas.apps import operations

        await operations.apply_update(self.p, app, action)
        return await self.p.apps.get(app_id)

    def _check_env_count(self, envs: list[EnvVar]) -> None:
        limit = self.p.settings.max_envs
        if len(envs) > limit:
            raise Problem(422, "too_many_envs", f"at most {limit} environment variables per app")

    def _changes(
        self, app: Application, body: AppUpdate
    ) -> tuple[dict[str, Any], set[str], list[EnvVar] | None]:
        """The columns to write, the API field names that changed, and the new envs."""
        columns: dict[str, Any] = {}
        new_envs: list[EnvVar] | None = None
        for key, value in body.model_dump(exclude_unset=True).items():
            if key == "envs":
                new_envs = [EnvVar(**e) for e in value or []]
                self._check_env_count(new_envs)
                columns["envs_encrypted"] = encode_envs(self.p.cipher, new_envs)
                continue
            if key == "repo":
                repo = repo_columns(self.p.cipher, value, app.repo, app.repo_credentials_encrypted)
                columns.update({k: v for k, v in repo.items() if getattr(app, k) != v})
                continue
            if key == "resources":
                value = {k: v for k, v in (value or {}).items() if v is not None}
            if key == "commit":
                value = value or None
            if value is None and key not in ("commit", "port", "branch"):
                continue
            if getattr(app, key) != value:
                columns[key] = value
        changed = {_FIELD_OF_COLUMN.get(k, k) for k in columns}
        return columns, changed, new_envs

    async def check_repo(self, who: Principal, repo: str) -> Any:
        await check_repo_url(self.p, who, repo)
        clean, credentials = split_credentials(repo)
        try:
            return await self.p.git.inspect(
                clean,
                allow_local=is_local_repo(repo),
                check_host=not who.is_admin,
                credentials=credentials,
            )
        except RepoError as exc:
            raise Problem(422, exc.code, exc.detail) from None


_FIELD_OF_COLUMN = {"envs_encrypted": "envs", "repo_credentials_encrypted": "repo"}


def _build_envs_changed(p: Platform, app: Application, new: list[EnvVar]) -> bool:
    old = {e.key: e.value for e in env_vars(p.cipher, app.envs_encrypted) if e.build}
    return old != {e.key: e.value for e in new if e.build}
