"""The warden's decisions: compare what should run (the store) with what runs (the engine)
and say what to do. Pure; `warden.Warden` carries the actions out."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from ipaas.domain.states import State
from ipaas.domain.statuses import LIVE_CONTAINERS, ContainerState
from ipaas.domain.views import AppView, ContainerView

# The prefix of a crash reason after which the warden stops restarting an app by itself.
GAVE_UP = "crash loop:"


class Do(StrEnum):
    REMOVE_STRAY = "remove_stray"  # a container of no app we know
    REMOVE_EXPIRED = "remove_expired"  # a retired container past log retention
    REPORT_CRASH = "report_crash"  # an app marked running has no serving container
    RESTART = "restart"  # a crashed app with no restart scheduled
    RETIRE_EXTRA = "retire_extra"  # a settled app has live containers besides its current one


@dataclass(frozen=True)
class Action:
    do: Do
    app_id: str
    container_id: str | None = None


def reconcile_actions(
    apps: Mapping[str, AppView],
    containers: Sequence[ContainerView],
    restarting: Collection[str],
    now: datetime,
    log_max_age_s: float,
    store_id: str,
) -> list[Action]:
    """Containers first (strays, expired), then one action per app that needs one. A stray
    is a container this store started (it carries the store's id) for an app it no longer
    has: a container of another store, or of none, is never removed."""
    actions = [
        Action(Do.REMOVE_STRAY, c.app_id, c.id)
        for c in containers
        if c.app_id not in apps and store_id and c.store_id == store_id
    ]
    actions += _expired(apps, containers, now, log_max_age_s)
    actions += _extra(apps, containers, restarting)
    by_id = {c.id: c for c in containers}
    for app in apps.values():
        action = _app_action(app, by_id, restarting)
        if action is not None:
            actions.append(action)
    return actions


def _expired(
    apps: Mapping[str, AppView],
    containers: Sequence[ContainerView],
    now: datetime,
    log_max_age_s: float,
) -> list[Action]:
    """Log retention by age: a retired container stopped longer ago than the maximum log age
    goes, its log with it; the app's current container always stays."""
    if not log_max_age_s:
        return []
    cutoff = now - timedelta(seconds=log_max_age_s)
    return [
        Action(Do.REMOVE_EXPIRED, c.app_id, c.id)
        for c in containers
        if _retired(apps, c) and c.finished_at is not None and c.finished_at < cutoff
    ]


def _retired(apps: Mapping[str, AppView], c: ContainerView) -> bool:
    """A stopped container of a known app that is not the app's current one."""
    app = apps.get(c.app_id)
    stopped = (ContainerState.EXITED, ContainerState.DEAD)
    return app is not None and c.id != app.container_id and c.state in stopped


def finish_times_needed(
    apps: Mapping[str, AppView],
    containers: Sequence[ContainerView],
    now: datetime,
    log_max_age_s: float,
) -> list[str]:
    """The containers whose stop time decides their expiry and is not known yet (a cheap
    listing does not give it; an inspect per container does). One created after the cutoff
    cannot have stopped before it, so only older ones are asked about."""
    if not log_max_age_s:
        return []
    cutoff = now - timedelta(seconds=log_max_age_s)
    return [
        c.id
        for c in containers
        if _retired(apps, c)
        and c.finished_at is None
        and (c.created_at is None or c.created_at < cutoff)
    ]


# States in which nothing is bringing a container up: any live container but the current one
# was left by a process killed mid-rollout (or mid-start) and only holds memory.
SETTLED = (State.RUNNING, State.CRASHED, State.STOPPED, State.FAILED)


def _extra(
    apps: Mapping[str, AppView], containers: Sequence[ContainerView], restarting: Collection[str]
) -> list[Action]:
    """Settled apps with live containers other than their current one: those get retired
    (stopped, kept for their logs). Apps the warden is restarting are left alone."""
    extra = {
        c.app_id
        for c in containers
        if (app := apps.get(c.app_id)) is not None
        and app.state in SETTLED
        and app.id not in restarting
        and c.id != app.container_id
        and c.state in LIVE_CONTAINERS
    }
    return [Action(Do.RETIRE_EXTRA, app_id) for app_id in sorted(extra)]


def _app_action(
    app: AppView, containers: Mapping[str, ContainerView], restarting: Collection[str]
) -> Action | None:
    if app.state == State.RUNNING:
        current = containers.get(app.container_id or "")
        if current is None or current.state not in LIVE_CONTAINERS:
            return Action(Do.REPORT_CRASH, app.id, current.id if current else None)
    elif (
        app.state == State.CRASHED
        and app.id not in restarting
        and not (app.state_reason or "").startswith(GAVE_UP)
    ):
        return Action(Do.RESTART, app.id)
    return None


def moved_addresses(
    apps: Mapping[str, AppView], containers: Sequence[ContainerView]
) -> dict[str, str]:
    """Running apps whose current container answers elsewhere than their route says (a Swarm
    service whose nodes came or went): app id -> the address to route to. A container with
    nowhere to answer (all its nodes gone) leaves the route as it is."""
    moved = {}
    for c in containers:
        app = apps.get(c.app_id)
        if app is None or app.state != State.RUNNING or c.id != app.container_id:
            continue
        address = ",".join(c.upstreams)
        if address and address != app.address:
            moved[app.id] = address
    return moved
