"""The composition root: every part is built here, once, and handed to the parts that use it.

One function per process says what that process owns:
- `api_process`: `ipaas up` — the API, the deployer, the warden, and (by default) a builder;
- `builder_process`: `ipaas worker build` — only a builder and its queue; the control plane
  starts and routes what it builds;
- `admin_process`: one-off commands — the stores alone.
Tests call `control_plane` with the adapters they choose (in-memory fakes for the fast tier).
Concrete adapters are imported where they are chosen: a process loads only what it runs.
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from ipaas.admin.github_app import GitHubAppSetup, stored_registration
from ipaas.admin.health import HealthLimits, PlatformHealth
from ipaas.admin.removal import AccountRemoval
from ipaas.apps.background import Background
from ipaas.apps.bus import ChangeBus
from ipaas.apps.deployer import Deployer
from ipaas.apps.domains import DomainService
from ipaas.apps.gate import AppGate
from ipaas.apps.handoff import Handoff, ToControlPlane
from ipaas.apps.previews import Previews
from ipaas.apps.pushes import PushHooks
from ipaas.apps.scheduler import BuildScheduler
from ipaas.apps.service import AppPolicy, AppService
from ipaas.apps.signin import GitHubSignIn
from ipaas.apps.sources import Sources
from ipaas.apps.worker import BuildWorker
from ipaas.auth.keys import Cipher, load_or_create_keys, private_dir
from ipaas.auth.sessions import WebSessions
from ipaas.auth.tokens import AccessTokens, AppPasses, SignedStates
from ipaas.builds.base import ImageBuilder
from ipaas.builds.repo_guard import RepoGuard
from ipaas.checkpoints import Checkpoints, checkpoints
from ipaas.config import Settings
from ipaas.databases.backups import BackupService
from ipaas.databases.links import DatabaseLinks
from ipaas.databases.recovery import DatabaseRecovery
from ipaas.databases.rotation import CredentialRotation
from ipaas.databases.schedule import BackupSchedule
from ipaas.databases.service import DatabaseService
from ipaas.databases.viewer import DataViewer
from ipaas.dnslookup.base import DnsLookup
from ipaas.dnslookup.resolver import DnsResolver
from ipaas.domain.hosts import HostNames
from ipaas.logs.service import LogService
from ipaas.notify.accounts import AccountMail
from ipaas.notify.sender import Links, NoticeSender
from ipaas.notify.templates import Renderer
from ipaas.notify.webhooks import HttpWebhookPoster, WebhookGuard
from ipaas.providers.base import GitProvider
from ipaas.providers.github import GitHubProvider
from ipaas.queue.base import BuildQueue
from ipaas.router.base import Router
from ipaas.runtime.base import Nodes, Runtime
from ipaas.runtime.databases import DatabaseRuntime
from ipaas.store.apps import AppStore
from ipaas.store.builds import BuildStore
from ipaas.store.databases import DatabaseStore
from ipaas.store.db import holds_encrypted_data, make_engine, make_sessionmaker
from ipaas.store.deliveries import DeliveryStore
from ipaas.store.domains import DomainStore
from ipaas.store.github_apps import GitHubAppStore
from ipaas.store.identities import IdentityStore
from ipaas.store.identity import StoreIdentity
from ipaas.store.models import utcnow
from ipaas.store.notices import NoticeStore
from ipaas.store.quotas import QuotaStore
from ipaas.store.users import UserStore
from ipaas.warden.warden import Warden

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from ipaas.runtime.docker import DockerRuntime
    from ipaas.runtime.swarm import Drain, SwarmRuntime

Step = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Stores:
    """The state store and the secrets: what every process of the platform shares."""

    engine: AsyncEngine
    apps: AppStore
    users: UserStore
    builds: BuildStore
    cipher: Cipher
    access_tokens: AccessTokens
    app_passes: AppPasses
    bus: ChangeBus
    quotas: QuotaStore
    identity: StoreIdentity
    databases: DatabaseStore
    notices: NoticeStore
    identities: IdentityStore
    deliveries: DeliveryStore
    states: SignedStates
    web_sessions: WebSessions
    domains: DomainStore
    github_apps: GitHubAppStore


@dataclass(frozen=True)
class Adapters:
    """The outside systems one process talks to, one adapter each."""

    runtime: Runtime
    databases: DatabaseRuntime
    router: Router
    builder: ImageBuilder
    queue: BuildQueue
    git: GitProvider
    dns: DnsLookup
    github: GitHubProvider | None = None  # None: no GitHub at all (not even a manifest flow)
    nodes: Nodes | None = None  # None: one engine, no nodes (runtime.kind docker)


@dataclass
class Lifecycle:
    """What a process starts (in the order added) and stops (in reverse) around its work."""

    starts: list[Step] = field(default_factory=list)
    stops: list[Step] = field(default_factory=list)

    def add(self, start: Step, stop: Step) -> None:
        self.starts.append(start)
        self.stops.insert(0, stop)

    async def start(self) -> None:
        for step in self.starts:
            await step()

    async def close(self) -> None:
        for step in self.stops:
            await step()


@dataclass(frozen=True)
class ControlPlane:
    """The parts of an API process. The API takes the few it serves; tests may reach any."""

    settings: Settings
    stores: Stores
    adapters: Adapters
    deployer: Deployer
    app_service: AppService
    app_gate: AppGate
    log_service: LogService
    warden: Warden
    worker: BuildWorker
    notice_sender: NoticeSender
    account_mail: AccountMail
    lifecycle: Lifecycle
    database_service: DatabaseService
    backup_service: BackupService
    account_removal: AccountRemoval
    rotation: CredentialRotation
    data_viewer: DataViewer
    push_hooks: PushHooks
    sources: Sources
    github_signin: GitHubSignIn | None
    domain_service: DomainService
    github_app: GitHubAppSetup | None
    health: PlatformHealth


def open_stores(settings: Settings) -> Stores:
    """Raises SecretsMissing when the store holds encrypted data but the key file is gone."""
    private_dir(settings.data_dir)
    url = settings.effective_database_url
    keys = load_or_create_keys(settings.effective_secrets_file, lambda: holds_encrypted_data(url))
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    bus = ChangeBus()
    users = UserStore(sessions)
    return Stores(
        engine=engine,
        apps=AppStore(sessions, bus.notify, settings.status_cache_ttl_s),
        users=users,
        builds=BuildStore(sessions),
        cipher=Cipher(keys.fernet_key),
        access_tokens=AccessTokens(keys.jwt_key, settings.auth.access_token_ttl_s),
        app_passes=AppPasses(keys.jwt_key, settings.auth.app_pass_ttl_s),
        bus=bus,
        quotas=QuotaStore(sessions, settings),
        identity=StoreIdentity(sessions),
        databases=DatabaseStore(sessions),
        notices=NoticeStore(sessions),
        identities=IdentityStore(sessions),
        deliveries=DeliveryStore(sessions),
        states=SignedStates(keys.jwt_key, settings.github.state_ttl_s),
        web_sessions=WebSessions(users, keys.jwt_key, settings.auth.web_session_ttl_s),
        domains=DomainStore(sessions),
        github_apps=GitHubAppStore(sessions),
    )


def default_adapters(settings: Settings, stores: Stores) -> Adapters:
    """The embedded defaults: Docker, Caddy (or the transparent router), git, and the job
    table in the store (or RabbitMQ when `queue_url` is amqp://)."""
    from ipaas.builds.docker_builder import DockerImageBuilder
    from ipaas.providers.git import GitCliProvider
    from ipaas.runtime.docker import DockerRuntime
    from ipaas.runtime.docker_databases import DockerDatabases

    marks = _checkpoints(settings)
    local = DockerRuntime(settings.runtime, checkpoints=marks)
    router = _router(settings)
    swarm = _swarm_runtime(settings, local, router) if settings.runtime.kind == "swarm" else None
    return Adapters(
        runtime=swarm or local,
        nodes=swarm,
        databases=DockerDatabases(
            settings.databases, settings.runtime.instance, local.ensure_network
        ),
        router=router,
        builder=_builder(settings, DockerImageBuilder(settings, checkpoints=marks)),
        queue=_queue(settings, stores.builds),
        git=GitCliProvider(settings),
        github=github_provider(settings, stores),
        dns=DnsResolver(settings.domains),
    )


def github_provider(settings: Settings, stores: Stores) -> GitHubProvider:
    """GitHub: the App the settings name, else the one made with the manifest flow (none
    until an admin makes one: then every GitHub endpoint answers `no_provider`)."""
    stored = stored_registration(stores.github_apps, stores.cipher, settings.github.web_url)
    return GitHubProvider(settings.github, None, stored)


def _swarm_runtime(settings: Settings, local: DockerRuntime, router: Router) -> SwarmRuntime:
    """Apps on a Swarm; an app's images go with it, from the build engine and the registry,
    and old releases' from the registry after each deploy; while a start changes an app's
    tasks, the router drains the nodes that cannot serve."""
    from ipaas.runtime.registry import RegistryImages
    from ipaas.runtime.swarm import SwarmRuntime

    return SwarmRuntime(
        settings.runtime, settings.swarm, settings.warden, local.remove_app_images,
        RegistryImages(settings.swarm.registry), _route_drain(router, settings),
    )  # fmt: skip


def _route_drain(router: Router, settings: Settings) -> Drain:
    """The runtime names the app; its route is the router's, by the app's host name."""
    hosts = HostNames(settings.base_domain)

    async def drain(app_name: str, upstreams: Sequence[str]) -> None:
        await router.drain(hosts.host(app_name), upstreams)

    return drain


def _builder(settings: Settings, inner: ImageBuilder) -> ImageBuilder:
    """On a Swarm, every image goes to the registry the nodes pull from."""
    if settings.runtime.kind != "swarm":
        return inner
    from ipaas.builds.publish import PublishingBuilder
    from ipaas.runtime.registry import ImagePublisher

    return PublishingBuilder(inner, ImagePublisher(settings.swarm.registry))


def _registry(settings: Settings) -> tuple[Step, Step]:
    """Start and stop of the registry ipaas serves itself (`swarm.registry.serve`)."""
    if settings.runtime.kind != "swarm" or not settings.swarm.registry.serve:
        return _nothing, _nothing
    from ipaas.runtime.registry import LocalRegistry

    registry = LocalRegistry(settings.swarm.registry, settings.data_dir)
    return registry.start, registry.close


def _checkpoints(settings: Settings) -> Checkpoints:
    return checkpoints(settings.pause_at, settings.data_dir)


def _router(settings: Settings) -> Router:
    if settings.router.kind == "caddy":
        from ipaas.router.caddy import CaddyRouter

        return CaddyRouter(
            settings.router, settings.base_domain, settings.data_dir, gate_dial=_api_dial(settings)
        )
    from ipaas.router.transparent import TransparentRouter

    return TransparentRouter()


def _api_dial(settings: Settings) -> str:
    """Where Caddy (on this machine) reaches the API to check requests to private apps."""
    host = settings.host
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1"
    return f"[{host}]:{settings.port}" if ":" in host else f"{host}:{settings.port}"


def _queue(settings: Settings, builds: BuildStore) -> BuildQueue:
    if settings.queue_url.startswith("amqp"):
        from ipaas.queue.rabbitmq import RabbitQueue

        return RabbitQueue(
            settings.queue_url,
            builds=builds,
            max_attempts=settings.build.max_attempts,
            prefetch=settings.build.concurrency,
            lease_s=settings.build.lease_s,
        )
    from ipaas.queue.jobtable import JobTableQueue

    return JobTableQueue(builds, settings.build.lease_s)


def _worker_id() -> str:
    return f"{socket.gethostname()}-{id(object())}"


def _deployer(settings: Settings, stores: Stores, adapters: Adapters, bg: Background) -> Deployer:
    return Deployer(
        apps=stores.apps,
        builds=stores.builds,
        runtime=adapters.runtime,
        router=adapters.router,
        cipher=stores.cipher,
        settings=settings.runtime,
        hosts=HostNames(settings.base_domain),
        background=bg,
        identity=stores.identity,
        checkpoints=_checkpoints(settings),
        links=DatabaseLinks(stores.databases, stores.cipher),
        domains=stores.domains,
    )


def _worker(
    settings: Settings,
    stores: Stores,
    builder: ImageBuilder,
    queue: BuildQueue,
    handoff: Handoff,
    bg: Background,
    sources: Sources,
) -> BuildWorker:
    return BuildWorker(
        apps=stores.apps,
        builds=stores.builds,
        users=stores.users,
        queue=queue,
        builder=builder,
        cipher=stores.cipher,
        handoff=handoff,
        settings=settings.build,
        background=bg,
        worker_id=_worker_id(),
        sources=sources,
    )


def _policy(settings: Settings) -> AppPolicy:
    return AppPolicy(
        allowed_repo_schemes=tuple(settings.allowed_repo_schemes),
        reserved_names=frozenset(settings.reserved_names),
        max_envs=settings.max_envs,
        max_replicas=settings.runtime.max_replicas,
    )


def control_plane(
    settings: Settings,
    stores: Stores,
    adapters: Adapters,
    *,
    run_builder: bool,
    run_warden: bool = True,
) -> ControlPlane:
    """An API process from the given parts; `run_*` say which loops it starts."""
    bg = Background()
    deployer = _deployer(settings, stores, adapters, bg)
    scheduler = BuildScheduler(stores.builds, adapters.queue)
    sources = Sources(stores.cipher, stores.identities, adapters.github)
    worker = _worker(settings, stores, adapters.builder, adapters.queue, deployer, bg, sources)
    warden = Warden(
        apps=stores.apps,
        builds=stores.builds,
        runtime=adapters.runtime,
        deployer=deployer,
        scheduler=scheduler,
        settings=settings.warden,
        log_max_age_s=settings.runtime.log_max_age_s,
        no_builder_s=settings.build.no_builder_s,
        deploy_deadline_s=settings.runtime.deploy_deadline_s,
        identity=stores.identity,
    )
    sender = notice_sender(settings, stores)
    lifecycle = _base_lifecycle(stores, adapters, bg)
    if adapters.github is not None:
        lifecycle.add(_nothing, adapters.github.close)
    lifecycle.add(*_registry(settings))
    lifecycle.add(lambda: _recall_ended_sessions(settings, stores), _nothing)
    if run_builder:
        lifecycle.add(worker.start, worker.stop)
    if run_warden:
        lifecycle.add(warden.start, warden.stop)
        lifecycle.add(sender.start, sender.stop)
    service = AppService(
        stores.apps, stores.builds, scheduler, adapters.git, stores.cipher, deployer,
        _policy(settings), stores.bus, HostNames(settings.base_domain), stores.quotas,
        RepoGuard.from_settings(settings), sources,
    )  # fmt: skip
    hooks = PushHooks(
        stores.apps, stores.deliveries, stores.cipher, service,
        Previews(stores.apps, service, settings.github.max_previews),
        adapters.github.webhook_secret if adapters.github else None,
    )  # fmt: skip
    logs = LogService(adapters.runtime, stores.builds, settings.runtime.log_max_age_s)
    gate = AppGate(stores.apps, stores.app_passes, HostNames(settings.base_domain), stores.domains)
    domains = DomainService(
        stores.domains, stores.apps, deployer, adapters.router, adapters.dns, settings.domains,
        settings.base_domain, settings.router.kind == "caddy" and settings.router.tls,
    )  # fmt: skip
    if run_warden:
        lifecycle.add(domains.start, domains.stop)
    backups = BackupService(
        stores.databases, stores.cipher, adapters.databases, settings.databases,
        settings.effective_backups_dir, bg,
    )  # fmt: skip
    databases = DatabaseService(
        stores.databases, stores.apps, stores.quotas, stores.cipher, adapters.databases,
        deployer, settings.databases, bg, backups,
    )  # fmt: skip
    rotation = CredentialRotation(
        stores.databases, stores.apps, stores.cipher, adapters.databases, deployer,
        settings.databases, bg,
    )  # fmt: skip
    viewer = DataViewer(adapters.databases, stores.cipher, settings.databases)
    lifecycle.add(_nothing, viewer.sessions.close)
    if run_warden:
        schedule = BackupSchedule(stores.databases, backups, settings.databases)
        recovery = DatabaseRecovery(
            databases, backups, schedule, settings.databases.recover_interval_s
        )
        lifecycle.add(recovery.start, recovery.stop)
    return ControlPlane(
        settings, stores, adapters, deployer, service, gate, logs, warden, worker, sender,
        AccountMail(stores.users, sender.renderer, settings.auth, settings.api_url), lifecycle,
        databases, backups, AccountRemoval(stores.users, stores.apps, deployer, databases),
        rotation, viewer, hooks, sources, _signin(settings, stores, adapters.github),
        domains, _app_setup(settings, stores, adapters.github), _health(settings, stores, adapters),
    )  # fmt: skip


def _health(settings: Settings, stores: Stores, adapters: Adapters) -> PlatformHealth:
    disks = {"data": settings.data_dir, "backups": settings.effective_backups_dir}
    limits = HealthLimits(settings.build.no_builder_s, settings.build.embedded_worker)
    return PlatformHealth(
        stores.apps, stores.builds, adapters.runtime, adapters.router, disks, limits
    )


def _signin(
    settings: Settings, stores: Stores, github: GitHubProvider | None
) -> GitHubSignIn | None:
    if github is None:
        return None
    redirect = f"{settings.api_url.rstrip('/')}/api/v1/auth/github/callback"
    return GitHubSignIn(
        github, stores.identities, stores.users, stores.cipher, stores.states, settings.github,
        redirect,
    )  # fmt: skip


def _app_setup(
    settings: Settings, stores: Stores, github: GitHubProvider | None
) -> GitHubAppSetup | None:
    if github is None:
        return None
    return GitHubAppSetup(
        github, stores.github_apps, stores.users, stores.cipher, stores.states, settings
    )


async def _recall_ended_sessions(settings: Settings, stores: Stores) -> None:
    """Sessions ended shortly before this process started: their access tokens may still
    be unexpired, and must keep failing."""
    since = utcnow() - timedelta(seconds=settings.auth.access_token_ttl_s)
    for user_id, at in (await stores.users.sessions_ended_since(since)).items():
        stores.access_tokens.end_sessions(user_id, at.timestamp())


def notice_sender(settings: Settings, stores: Stores) -> NoticeSender:
    """The outbox's sender: SMTP when a server is configured (else e-mail waits), webhooks."""
    mailer = None
    if settings.smtp.host:
        from ipaas.notify.smtp import SmtpMailer

        mailer = SmtpMailer(settings.smtp)
    n = settings.notify
    guard = WebhookGuard(n)
    return NoticeSender(
        notices=stores.notices,
        mailer=mailer,
        poster=HttpWebhookPoster(guard, n.webhook_timeout_s),
        guard=guard,
        renderer=Renderer(),
        cipher=stores.cipher,
        settings=n,
        links=Links(settings.api_url),
    )


async def _nothing() -> None:
    return None


def _base_lifecycle(stores: Stores, adapters: Adapters, bg: Background) -> Lifecycle:
    """Stopped last, in this order: background operations, router, queue, store."""
    lifecycle = Lifecycle()
    lifecycle.add(_nothing, stores.engine.dispose)
    lifecycle.add(_nothing, adapters.queue.close)
    # The host firewall first: a host where it cannot be applied fails here, not at a deploy.
    lifecycle.add(adapters.runtime.prepare, _nothing)
    lifecycle.add(adapters.router.start, adapters.router.close)
    lifecycle.add(_nothing, bg.close)
    return lifecycle


def api_process(settings: Settings) -> ControlPlane:
    """`ipaas up`: the API with the warden, and a builder unless builds run elsewhere."""
    stores = open_stores(settings)
    adapters = default_adapters(settings, stores)
    return control_plane(settings, stores, adapters, run_builder=settings.build.embedded_worker)


@dataclass(frozen=True)
class BuilderProcess:
    """`ipaas worker build`: takes jobs, builds, and starts the releases it built."""

    worker: BuildWorker
    lifecycle: Lifecycle


def builder_process(settings: Settings) -> BuilderProcess:
    """Only a builder and its queue: it records each release in the store, and the control
    plane (its warden) starts and routes it. No runtime, no router here."""
    from ipaas.builds.docker_builder import DockerImageBuilder

    stores = open_stores(settings)
    queue = _queue(settings, stores.builds)
    bg = Background()
    handoff = ToControlPlane(stores.apps)
    builder = _builder(settings, DockerImageBuilder(settings, checkpoints=_checkpoints(settings)))
    github = github_provider(settings, stores)
    sources = Sources(stores.cipher, stores.identities, github)
    worker = _worker(settings, stores, builder, queue, handoff, bg, sources)
    lifecycle = Lifecycle()
    lifecycle.add(_nothing, github.close)
    lifecycle.add(_nothing, stores.engine.dispose)
    lifecycle.add(_nothing, queue.close)
    lifecycle.add(_nothing, bg.close)
    lifecycle.add(worker.start, worker.stop)
    return BuilderProcess(worker, lifecycle)


def admin_process(settings: Settings) -> Stores:
    """One-off commands (create a user, the first admin): the stores alone."""
    return open_stores(settings)


__all__ = ["ControlPlane", "api_process", "builder_process", "control_plane"]
