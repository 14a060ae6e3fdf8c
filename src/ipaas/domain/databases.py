"""Databases (SPEC §4), the pure part: engines and versions, states, the connection URL, the
engine's memory settings sized to its container, and which backups are good. No I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from urllib.parse import quote

from ipaas.domain.cron import next_run, shortest_gap
from ipaas.domain.errors import Conflict, InvalidInput

DB_IMAGE_REPOSITORY = "ipaas-db"
LABEL_DATABASE = "org.ipaas.database"
LABEL_DB_PACKAGES = "org.ipaas.db.packages"  # the Debian packages (and versions) in an image
MOUNT_PATH = "/var/lib/ipaas-db"  # where the named volume sits in the container
MIN_MEMORY_MB = 64
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]{0,63}$")


class Engine(StrEnum):
    POSTGRES = "postgres"
    MARIADB = "mariadb"
    REDIS = "redis"


@dataclass(frozen=True)
class EngineInfo:
    versions: tuple[str, ...]  # named by major version, newest first
    packages: tuple[str, ...]  # Debian packages of the image
    port: int
    url_scheme: str
    env_name: str  # what an attached app gets by default


ENGINES: dict[Engine, EngineInfo] = {
    Engine.POSTGRES: EngineInfo(("15",), ("postgresql-15",), 5432, "postgres", "DATABASE_URL"),
    Engine.MARIADB: EngineInfo(
        ("10.11",), ("mariadb-server", "mariadb-client"), 3306, "mysql", "DATABASE_URL"
    ),
    Engine.REDIS: EngineInfo(("7",), ("redis-server",), 6379, "redis", "REDIS_URL"),
}


def engine_info(engine: str, version: str | None) -> tuple[Engine, str]:
    """(engine, version) for a request; unknown ones are refused with what exists."""
    try:
        known = Engine(engine)
    except ValueError:
        raise InvalidInput(
            f"unknown engine {engine!r}; choose one of {', '.join(e.value for e in Engine)}",
            code="unknown_engine",
        ) from None
    versions = ENGINES[known].versions
    chosen = version or versions[0]
    if chosen not in versions:
        raise InvalidInput(
            f"{known.value} {chosen} is not offered; versions: {', '.join(versions)}",
            code="unknown_engine_version",
        )
    return known, chosen


def image_tag(engine: str, version: str) -> str:
    return f"{DB_IMAGE_REPOSITORY}/{engine}:{version}"


def env_name_problem(name: str) -> str | None:
    if name == "PORT":
        return "PORT is the platform's"
    if not _ENV_NAME.match(name):
        return (
            "an upper-case environment variable name: A-Z, 0-9 and '_', not starting with a digit"
        )
    return None


class DbState(StrEnum):
    CREATING = "creating"
    RUNNING = "running"
    FAILED = "failed"
    RESTARTING = "restarting"
    DELETING = "deleting"


D = DbState
DB_TRANSITIONS: dict[DbState, frozenset[DbState]] = {
    D.CREATING: frozenset({D.RUNNING, D.FAILED, D.DELETING}),
    D.RUNNING: frozenset({D.RESTARTING, D.DELETING}),
    D.FAILED: frozenset({D.CREATING, D.RESTARTING, D.DELETING}),
    D.RESTARTING: frozenset({D.RUNNING, D.FAILED, D.DELETING}),
    D.DELETING: frozenset({D.FAILED}),  # a final backup that failed keeps the database
}
DB_BUSY = frozenset({D.CREATING, D.RESTARTING, D.DELETING})


class IllegalDbTransition(Conflict):
    code = "invalid_state"

    def __init__(self, current: DbState, target: DbState) -> None:
        super().__init__(
            f"not possible while the database is {current.value}",
            state=current.value,
            requested=target.value,
        )


def check_db_transition(current: str, target: DbState) -> DbState:
    if target not in DB_TRANSITIONS[DbState(current)]:
        raise IllegalDbTransition(DbState(current), target)
    return target


def db_sources_of(target: DbState) -> frozenset[DbState]:
    return frozenset(s for s, targets in DB_TRANSITIONS.items() if target in targets)


class BackupStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"  # dumped, and restored into a scratch container that checked out
    FAILED = "failed"


@dataclass(frozen=True)
class BackupPlan:
    """A database's backup schedule: a cron expression (UTC), else an interval in seconds
    (0: no scheduled backups). A backup is due once the schedule's next run after the last
    attempt has come; it is overdue (a `backup_overdue` event) when the run the schedule asked
    for after the last good backup has come and `window_s` more passed without a good one."""

    cron: str | None = None
    interval_s: int = 0

    @property
    def enabled(self) -> bool:
        return self.cron is not None or self.interval_s > 0

    def next_after(self, moment: datetime) -> datetime | None:
        if self.cron is not None:
            try:
                return next_run(self.cron, moment)
            except ValueError:
                return None  # checked when it was set: only a date that never comes
        return moment + timedelta(seconds=self.interval_s) if self.interval_s > 0 else None

    def due(self, now: datetime, last_attempt: datetime) -> bool:
        run = self.next_after(last_attempt)
        return run is not None and now >= run

    def overdue(self, now: datetime, window_s: float, last_good: datetime) -> bool:
        run = self.next_after(last_good)
        return run is not None and now > run + timedelta(seconds=window_s)

    def describe(self) -> str:
        if self.cron is not None:
            return f"cron {self.cron!r} (UTC)"
        return f"every {self.interval_s} s" if self.interval_s > 0 else "none"

    def check_spacing(self, min_interval_s: int) -> None:
        """ScheduleTooFrequent when any two consecutive backups would come less than
        `min_interval_s` apart: each one dumps the whole database and restores it to verify,
        so a tight schedule keeps the host's disks and CPUs busy for one tenant."""
        if self.cron is not None:
            gap = shortest_gap(self.cron)
            if gap is not None and gap.seconds < min_interval_s:
                raise ScheduleTooFrequent(
                    f"{self.cron!r} runs twice within {gap.seconds} s ({gap.describe()}); "
                    f"backups may be at most one per {min_interval_s} s",
                    field="cron", min_interval_s=min_interval_s, shortest_gap_s=gap.seconds,
                )  # fmt: skip
        elif 0 < self.interval_s < min_interval_s:
            raise ScheduleTooFrequent(
                f"every {self.interval_s} s is too often: backups may be at most one per "
                f"{min_interval_s} s (0: no scheduled backups)",
                field="interval_s", min_interval_s=min_interval_s, shortest_gap_s=self.interval_s,
            )  # fmt: skip


class ScheduleTooFrequent(InvalidInput):
    code = "schedule_too_frequent"


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    database: str  # the SQL database; Redis: "0"


def connection_url(engine: str, creds: Credentials, host: str) -> str:
    """The one home of a database's URL (what DATABASE_URL / REDIS_URL carry)."""
    info = ENGINES[Engine(engine)]
    user, password = quote(creds.username, safe=""), quote(creds.password, safe="")
    return f"{info.url_scheme}://{user}:{password}@{host}:{info.port}/{creds.database}"


def server_args(engine: str, memory_mb: int) -> list[str]:
    """The engine's memory settings for a container limited to `memory_mb`: caches take a
    share of it and connections are bounded, so a busy database is slow, not OOM-killed."""
    mb = max(memory_mb, MIN_MEMORY_MB)
    if engine == Engine.POSTGRES:
        return [
            "-c", f"shared_buffers={max(mb // 4, 16)}MB",
            "-c", f"effective_cache_size={max(mb * 3 // 4, 32)}MB",
            "-c", f"work_mem={max(mb // 64, 1)}MB",
            "-c", f"maintenance_work_mem={max(mb // 16, 8)}MB",
            "-c", f"max_connections={min(max(mb // 4, 20), 200)}",
        ]  # fmt: skip
    if engine == Engine.MARIADB:
        return [
            f"--innodb-buffer-pool-size={max(mb * 2 // 5, 16)}M",
            f"--key-buffer-size={max(mb // 64, 1)}M",
            f"--max-connections={min(max(mb // 4, 20), 200)}",
            "--innodb-log-buffer-size=8M",
        ]
    # Redis: data lives in memory; room is left for the fork that writes snapshots.
    return ["--maxmemory", f"{max(mb * 3 // 5, 16)}mb", "--maxmemory-policy", "noeviction"]


def database_name(name: str) -> str:
    """The SQL database (and user) name for a database resource: its name, '-' as '_'."""
    return name.replace("-", "_")


# Where `ipaas db shell` runs the engine's client: inside the database's container, as an OS
# user that can read nothing of the volume, logged in over the container's loopback as the
# database's own login. The password goes in the environment variable the client reads.
SHELL_OS_USER = "nobody"
SHELL_PASSWORD_ENV = {
    Engine.POSTGRES: "PGPASSWORD",
    Engine.MARIADB: "MYSQL_PWD",
    Engine.REDIS: "REDISCLI_AUTH",
}


def shell_argv(engine: str, version: str, creds: Credentials) -> list[str]:
    """The client's command line for an interactive session (no password in it)."""
    if engine == Engine.POSTGRES:
        psql = f"/usr/lib/postgresql/{version}/bin/psql"
        return [psql, "-h", "127.0.0.1", "-U", creds.username, "-d", creds.database]
    if engine == Engine.MARIADB:
        return ["mariadb", "-h", "127.0.0.1", "-u", creds.username, creds.database]
    return ["redis-cli", "-h", "127.0.0.1", "--no-auth-warning", "--user", creds.username]


def shell_command_args(engine: str, command: str) -> list[str]:
    """What runs one command instead of a prompt: psql -c, mariadb -e, redis-cli's words."""
    if engine == Engine.POSTGRES:
        return ["-c", command]
    if engine == Engine.MARIADB:
        return ["-e", command]
    import shlex  # only a Redis command needs splitting into words

    return shlex.split(command)


def provision_argv(engine: str) -> list[str]:
    if engine == Engine.POSTGRES:
        return ["ipaas-db", "admin", "-d", "postgres"]
    return ["ipaas-db", "admin"]
