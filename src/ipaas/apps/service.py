"""Application use cases as a user sees them; the API (and later the dashboard) is a thin
layer over this. Every refusal is a `domain.errors` error with a stable code."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ipaas.apps.bus import ChangeBus
from ipaas.apps.deployer import Deployer
from ipaas.apps.envs import encode_envs, env_vars, shown_envs
from ipaas.apps.scheduler import BuildScheduler
from ipaas.apps.sources import GITHUB, Sources, user_error
from ipaas.auth.keys import Cipher
from ipaas.builds.base import BuildFailed
from ipaas.builds.repo_guard import RepoGuard
from ipaas.domain.errors import Conflict, Forbidden, InvalidInput, NotFoundError
from ipaas.domain.github import full_name_problem, looks_like_full_name
from ipaas.domain.hosts import HostNames
from ipaas.domain.names import DEFAULT_RESERVED, is_reserved, name_problem
from ipaas.domain.repo_access import decode_credentials, repo_columns, split_credentials
from ipaas.domain.repos import DEFAULT_SCHEMES, is_local_repo, repo_url_problem
from ipaas.domain.specs import AppCreate, AppUpdate, EnvVar
from ipaas.domain.states import IllegalTransition, State
from ipaas.domain.statuses import BuildStatus
from ipaas.domain.updates import Action, action_for, change_note
from ipaas.providers.base import (
    Branch,
    GitProvider,
    Page,
    ProviderError,
    RepoError,
    RepoInfo,
    branch_listing,
    paged,
)
from ipaas.runtime.base import ContainerInfo, ContainerStats
from ipaas.store.apps import AppStore, NameTaken, NotFound, StatusRow
from ipaas.store.builds import BuildStore
from ipaas.store.models import Application, Build, Event, Release, new_id
from ipaas.store.quotas import QuotaStore

S = State
# States from which a rebuild request starts a rollout (otherwise the app is busy already).
REBUILD_STARTS = frozenset({S.RUNNING, S.FAILED, S.CRASHED, S.STOPPED})
SERVES = frozenset({S.RUNNING, S.CRASHED})
# Columns that stand for an API field of another name.
_FIELD_OF_COLUMN = {"envs_encrypted": "envs", "repo_credentials_encrypted": "repo"}


@dataclass(frozen=True)
class Principal:
    user_id: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class AppPolicy:
    """The operator's limits on what users may ask for."""

    allowed_repo_schemes: Sequence[str] = DEFAULT_SCHEMES
    max_envs: int = 100
    max_replicas: int = 1
    reserved_names: frozenset[str] = field(default=DEFAULT_RESERVED)


async def check_repo_url(policy: AppPolicy, guard: RepoGuard, who: Principal, repo: str) -> None:
    """The one repository rule (`domain.repos`); local paths only for admins; for everyone
    else, no host that is or resolves to an internal address (`builds.repo_guard`)."""
    problem = repo_url_problem(
        repo, allow_local=who.is_admin, allowed_schemes=policy.allowed_repo_schemes
    )
    if problem is not None:
        if problem.local:
            raise Forbidden(problem.why, code=problem.code)
        raise InvalidInput(f"the repository URL is not valid: {problem.why}", code=problem.code)
    if not who.is_admin:
        try:
            await guard.check(repo)
        except BuildFailed as exc:  # only user faults: a slow resolver lets the clone decide
            raise InvalidInput(exc.reason, code=exc.code) from None


class AppService:
    def __init__(
        self,
        apps: AppStore,
        builds: BuildStore,
        scheduler: BuildScheduler,
        git: GitProvider,
        cipher: Cipher,
        deployer: Deployer,
        policy: AppPolicy,
        bus: ChangeBus,
        hosts: HostNames,
        quotas: QuotaStore,
        repo_guard: RepoGuard,
        sources: Sources,
    ) -> None:
        self.apps = apps
        self.builds = builds
        self.scheduler = scheduler
        self.git = git
        self.cipher = cipher
        self.deployer = deployer
        self.policy = policy
        self.bus = bus
        self.hosts = hosts
        self.quotas = quotas
        self.repo_guard = repo_guard
        self.sources = sources

    # --- reading ------------------------------------------------------------------------------
    async def get(self, who: Principal, app_id: str) -> Application:
        """The caller's app; another user's looks exactly like a missing one."""
        try:
            return await self.apps.get(app_id, who.user_id)
        except NotFound:
            raise NotFoundError.of("application") from None

    async def list_apps(
        self, who: Principal, kind: str | None, state: str | None, limit: int, offset: int
    ) -> tuple[Sequence[Application], int]:
        return await self.apps.list(who.user_id, kind=kind, state=state, limit=limit, offset=offset)

    async def last_deploys(self, apps: Sequence[Application]) -> dict[str, datetime]:
        """When each app's newest release was made (one query for the whole list)."""
        return await self.builds.last_release_times([a.id for a in apps])

    async def status(self, who: Principal, app_id: str) -> StatusRow:
        """The cheap status row (served from a short cache); another user's app is missing."""
        try:
            return await self.apps.status(app_id, who.user_id)
        except NotFound:
            raise NotFoundError.of("application") from None

    async def wait_for_change(self, app_id: str, timeout_s: float) -> None:
        """Return when this process changes the app, or after `timeout_s`."""
        await self.bus.wait(app_id, timeout_s)

    async def current_state(self, app_id: str) -> str:
        return (await self.apps.status(app_id, None)).state

    def shown_envs(self, app: Application, reveal: bool) -> list[dict[str, Any]]:
        return shown_envs(self.cipher, app.envs_encrypted, reveal)

    async def releases(self, app: Application) -> Sequence[Release]:
        return await self.builds.releases(app.id)

    async def builds_of(self, app: Application) -> Sequence[Build]:
        return await self.builds.of_app(app.id)

    async def observe(self, app: Application) -> tuple[ContainerInfo | None, ContainerStats | None]:
        """The serving container as the engine sees it, with its memory and CPU use."""
        return await self.deployer.observe(app.container_id)

    async def crash_count(self, app: Application) -> int:
        events = await self.apps.events(app.id, limit=1000)
        # Notes (settings changes, start attempts) keep the state: only entries count.
        return sum(1 for e in events if e.to_state == S.CRASHED and e.from_state != S.CRASHED)

    async def events(self, app: Application, after: int, limit: int) -> Sequence[Event]:
        return await self.apps.events(app.id, limit=limit, after=after)

    async def release(self, app: Application, number: int) -> Release:
        release = await self.builds.release(app.id, number)
        if release is None:
            raise NotFoundError.of("release")
        return release

    async def build(self, app: Application, number: int) -> Build:
        build = await self.builds.get(app.id, number)
        if build is None:
            raise NotFoundError.of("build")
        return build

    def name_problem(self, name: str) -> str | None:
        return name_problem(name, self.policy.reserved_names)

    async def name_taken(self, name: str) -> bool:
        return await self.apps.names_exist(name)

    async def check_repo(self, who: Principal, repo: str) -> RepoInfo:
        if looks_like_full_name(repo):
            return await self._github_info(who, repo)
        await check_repo_url(self.policy, self.repo_guard, who, repo)
        clean, credentials = split_credentials(repo)
        try:
            return await self.git.inspect(
                clean,
                allow_local=is_local_repo(repo),
                check_host=not who.is_admin,
                credentials=credentials,
            )
        except RepoError as exc:
            raise InvalidInput(exc.detail, code=exc.code) from None

    async def url_branches(
        self, who: Principal, repo: str, *, page: int, per_page: int
    ) -> Page[Branch]:
        """The branches of any git URL the caller may deploy from (the rules and host checks
        of `check_repo`, through `git ls-remote` with the clone timeout)."""
        if looks_like_full_name(repo):
            raise InvalidInput(
                "owner/repo is a GitHub repository: list its branches with "
                "/api/v1/providers/github/repos/{owner}/{repo}/branches",
                code="not_a_url",
            )
        info = await self.check_repo(who, repo)
        return paged(branch_listing(info.default_branch, info.heads or {}), page, per_page)

    async def app_branches(
        self, who: Principal, app: Application, *, page: int, per_page: int
    ) -> Page[Branch]:
        """The branches of an app's repository: from GitHub with the caller's token (by last
        commit), else with the credentials kept for the app (by name)."""
        try:
            if app.provider == GITHUB:
                github = await self.sources.provider(GITHUB)
                token = await self.sources.require_token(who.user_id)
                return await github.branches(token, app.repo, page=page, per_page=per_page)
            source = await self.sources.of_app(app)
            info = await self.git.inspect(
                source.url,
                allow_local=source.allow_local and who.is_admin,
                check_host=not who.is_admin,
                credentials=source.credentials,
            )
        except ProviderError as exc:
            raise user_error(exc) from None
        except RepoError as exc:
            raise InvalidInput(exc.detail, code=exc.code) from None
        return paged(branch_listing(info.default_branch, info.heads or {}), page, per_page)

    async def _github_info(self, who: Principal, full_name: str) -> RepoInfo:
        """The repository as the caller's GitHub token sees it (422 when it cannot)."""
        problem = full_name_problem(full_name)
        if problem is not None:
            raise InvalidInput(f"the repository is not valid: {problem}", code="invalid_repo")
        github = await self.sources.provider(GITHUB)
        token = await self.sources.require_token(who.user_id)
        try:
            found = await github.repo(token, full_name)
            page = await github.branches(token, full_name, page=1, per_page=100)
        except ProviderError as exc:
            if exc.code == "repo_not_found":
                raise InvalidInput(exc.detail, code=exc.code) from None
            raise user_error(exc) from None
        heads = {b.name: b.commit for b in page.items}
        return RepoInfo(full_name, found.default_branch, list(heads), heads)

    async def _repo_columns(self, who: Principal, body: AppCreate) -> dict[str, Any]:
        """`repo`, its credentials and its provider: a URL as given, or owner/repo of GitHub
        (checked with the caller's token; its clone credentials are minted at each fetch)."""
        provider = body.provider or ("github" if looks_like_full_name(body.repo) else "git")
        if provider == GITHUB:
            await self._github_info(who, body.repo)
            return {"repo": body.repo, "repo_credentials_encrypted": None, "provider": GITHUB}
        await check_repo_url(self.policy, self.repo_guard, who, body.repo)
        return repo_columns(self.cipher, body.repo)

    # --- create and update --------------------------------------------------------------------
    async def create(self, who: Principal, body: AppCreate) -> Application:
        repo = await self._repo_columns(who, body)
        self._check_name(body.name)
        self._check_env_count(body.envs)
        self._check_replicas(body.replicas)
        app = Application(
            id=new_id(),
            name=body.name,
            name_scope="",
            kind=body.kind,
            owner_id=who.user_id,
            **repo,  # credentials split off, encrypted
            branch=body.branch,
            commit=body.commit,
            root_directory=body.root_directory,
            port=body.port,
            envs_encrypted=encode_envs(self.cipher, body.envs),
            build=body.build.model_dump(),
            health_check=body.health_check,
            volumes=[v.model_dump() for v in body.volumes],
            resources=body.resources.model_dump(exclude_none=True),
            replicas=body.replicas,
            visibility=body.visibility,
            previews=body.previews,
            state=State.PENDING.value,
            version=1,
        )
        try:
            # The quota is checked in the insert's own transaction: two creates at once cannot
            # both pass it.
            await self.apps.create(app, guard=self.quotas.create_guard(app))
        except NameTaken:
            raise Conflict(f"the name {body.name!r} is taken", code="name_taken") from None
        await self.scheduler.enqueue(app.id)
        return app

    async def update(self, who: Principal, app: Application, body: AppUpdate) -> Application:
        columns, changed, new_envs = self._changes(app, body)
        if "repo" in changed and app.provider == GITHUB:
            await self._github_info(who, columns["repo"])
            columns["repo_credentials_encrypted"] = None
        elif "repo" in changed:
            await check_repo_url(self.policy, self.repo_guard, who, body.repo or app.repo)
        if "name" in changed:
            self._check_name(columns["name"])
        if "replicas" in changed:
            self._check_replicas(columns["replicas"])
        action = action_for(changed)
        if new_envs is not None and self._build_envs_changed(app, new_envs):
            action = Action.REBUILD
        if action == Action.RESTART and app.current_release is None:
            # Nothing deployed yet: a failed app rebuilds, a busy one picks it up as it goes.
            action = Action.REBUILD if app.state == State.FAILED else Action.NONE
        if columns:
            guard = self.quotas.update_guard(app, columns)
            try:
                await self.apps.set_fields(app.id, guard=guard, **columns)
            except NameTaken:
                raise Conflict(
                    f"the name {columns['name']!r} is taken", code="name_taken"
                ) from None
            await self._apply(app, changed, action)
        return await self.apps.get(app.id)

    async def _apply(self, app: Application, changed: set[str], action: Action) -> None:
        """Carry the stored change out; the app's events say what changed and what it took."""
        if action == Action.REBUILD:
            await self._rebuild_for(app.id, changed)
        elif action == Action.RESTART:
            await self._restart_for(app.id, changed)
        else:
            if action == Action.REROUTE:
                await self.deployer.reroute(app.id, app.name)
            when = "" if action == Action.REROUTE else "taken up by the start to come"
            await self.apps.note(app.id, change_note(changed, action, when))

    async def _rebuild_for(self, app_id: str, changed: set[str]) -> None:
        state = await self.current_state(app_id)
        note = change_note(changed, Action.REBUILD)
        await self.rebuild(app_id, note)
        if state not in REBUILD_STARTS:  # no transition said it: already busy
            await self.apps.note(app_id, change_note(changed, Action.REBUILD, f"queued: {state}"))

    async def _restart_for(self, app_id: str, changed: set[str]) -> None:
        """Restart the serving release with the new settings; while the app is busy, queue
        the change behind what is in flight (never lost: the newest settings win)."""
        note = change_note(changed, Action.RESTART)
        for _ in range(5):  # the state may move under us: decide again on what it became
            app = await self.apps.get(app_id)
            state = State(app.state)
            try:
                if state in SERVES or (state == S.FAILED and app.current_release is not None):
                    await self.deployer.redeploy(app_id, None, note)
                    return
            except IllegalTransition:
                continue
            if state == S.ROLLING_OUT and await self.builds.active_for(app_id) is not None:
                # Should the build not end in a release, the serving one restarts with it.
                if not await self.apps.queue_redeploy(app_id):
                    continue
                when = "after the build in progress"
            elif state in (S.STARTING, S.ROLLING_OUT):
                when = "after the start in progress"  # the deployer looks again when done
            else:
                when = "taken up by the next start"
            await self.apps.note(app_id, change_note(changed, Action.RESTART, when))
            return

    def _check_name(self, name: str) -> None:
        if is_reserved(name, self.policy.reserved_names):
            raise InvalidInput(f"the name {name!r} is reserved", code="name_reserved")

    def _check_replicas(self, replicas: int | None) -> None:
        limit = self.policy.max_replicas
        if replicas is not None and replicas > limit:
            raise InvalidInput(
                f"at most {limit} replicas per app on this platform", code="too_many_replicas"
            )

    def _check_env_count(self, envs: list[EnvVar]) -> None:
        limit = self.policy.max_envs
        if len(envs) > limit:
            raise InvalidInput(
                f"at most {limit} environment variables per app", code="too_many_envs"
            )

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
                columns["envs_encrypted"] = encode_envs(self.cipher, new_envs)
                continue
            if key == "repo":
                if value is None:
                    continue  # `"repo": null` changes nothing, as for the other fields
                if app.provider == GITHUB:
                    if value != app.repo:
                        columns["repo"] = value
                    continue
                repo = repo_columns(self.cipher, value, app.repo, app.repo_credentials_encrypted)
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

    def _build_envs_changed(self, app: Application, new: list[EnvVar]) -> bool:
        old = {e.key: e.value for e in env_vars(self.cipher, app.envs_encrypted) if e.build}
        return old != {e.key: e.value for e in new if e.build}

    # --- lifecycle ----------------------------------------------------------------------------
    async def rebuild(self, app_id: str, reason: str, commit: str | None = None) -> int:
        """A new build (of `commit` when given, else of the app's commit or branch head)."""
        app = await self.apps.get(app_id)
        if app.state == S.DELETING:
            raise IllegalTransition(S.DELETING, S.ROLLING_OUT)
        if app.state not in REBUILD_STARTS:
            return await self.scheduler.enqueue(app_id, commit=commit)

        async def roll_out() -> None:
            # Once the build exists: a rolling-out app without one is a restart to finish.
            # Moved on meanwhile? The build is queued all the same; its builder decides.
            with contextlib.suppress(IllegalTransition):
                await self.apps.transition(app_id, S.ROLLING_OUT, reason, expected=State(app.state))

        return await self.scheduler.enqueue(app_id, before_queue=roll_out, commit=commit)

    async def rollout(self, who: Principal, app: Application) -> int:
        """Rebuild the branch head, but only when it differs from what is built."""
        if app.commit is None and app.built_commit and app.provider != GITHUB:
            try:
                info = await self.git.inspect(
                    app.repo,
                    allow_local=is_local_repo(app.repo),
                    check_host=not who.is_admin,
                    credentials=decode_credentials(self.cipher, app.repo_credentials_encrypted),
                )
            except RepoError as exc:
                raise InvalidInput(exc.detail, code=exc.code) from None
            head = info.heads.get(app.branch or info.default_branch or "") if info.heads else None
            if head == app.built_commit:
                raise Conflict(f"{app.built_commit[:12]} is already deployed", code="up_to_date")
        return await self.rebuild(app.id, "rollout")

    async def rollback(self, app: Application, number: int) -> None:
        if await self.builds.release(app.id, number) is None:
            raise NotFoundError(f"no release {number}")
        await self.deployer.redeploy(app.id, number, f"rollback to release {number}")

    async def restart(self, app: Application) -> None:
        await self.deployer.redeploy(app.id, None, "restart requested")

    async def stop(self, app: Application) -> None:
        await self.deployer.stop(app.id)

    async def start(self, app: Application) -> None:
        await self.deployer.start(app.id)

    async def delete(self, app: Application, volumes: bool) -> None:
        await self.deployer.delete(app.id, volumes)

    async def cancel_build(self, app: Application, number: int) -> Build:
        build = await self.builds.request_cancel(app.id, number)
        if build is None:
            raise Conflict("the build is not queued or running", code="not_cancellable")
        if build.status == BuildStatus.CANCELLED:
            await self._build_cancelled(app)
        return build

    async def _build_cancelled(self, app: Application) -> None:
        """A queued build was cancelled before any builder took it."""
        if app.state in (S.PENDING, S.BUILDING, S.ROLLING_OUT):
            with contextlib.suppress(IllegalTransition, NotFound):
                await self.apps.transition(app.id, S.FAILED, "build cancelled")
