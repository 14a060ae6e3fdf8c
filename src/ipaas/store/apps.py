"""Queries on applications and their events. State changes are single conditional UPDATEs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ipaas.domain.states import IllegalTransition, State, check_transition
from ipaas.store.models import Application, Event, utcnow
from ipaas.store.notices import record_transition_notice


class NameTaken(Exception):
    pass


class NotFound(Exception):
    pass


@dataclass(frozen=True)
class StatusRow:
    id: str
    name: str
    state: str
    state_reason: str | None
    version: int
    url: str | None
    address: str | None
    current_release: int | None
    updated_at: datetime


_STATUS_COLUMNS = (
    Application.id,
    Application.name,
    Application.state,
    Application.state_reason,
    Application.version,
    Application.url,
    Application.address,
    Application.current_release,
    Application.updated_at,
)


Guard = Callable[[AsyncSession], Awaitable[None]]
StatusQuery = Callable[[], Awaitable["tuple[StatusRow, str] | None"]]


class StatusCache:
    """The seed's cache layer for the status hot path.

    Every change made through this process evicts its entry at once; changes written by other
    processes (remote builders) show within `ttl_s`.
    """

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._rows: dict[str, tuple[StatusRow, str, float]] = {}
        # One query per app at a time: when an entry expires under load, every poller of that
        # app would otherwise query at once, queueing behind each other (a p99 of ~60 ms).
        self._loading: dict[str, asyncio.Task[tuple[StatusRow, str] | None]] = {}
        self._evictions = 0

    def get(self, app_id: str) -> tuple[StatusRow, str] | None:
        entry = self._rows.get(app_id)
        if entry is None or time.monotonic() - entry[2] > self.ttl_s:
            return None
        return entry[0], entry[1]

    async def load(self, app_id: str, query: StatusQuery) -> tuple[StatusRow, str] | None:
        """The entry, from `query` run once however many callers miss together (in a task of
        its own, so one caller going away does not cancel it for the others)."""
        task = self._loading.get(app_id)
        if task is None:
            task = asyncio.ensure_future(self._fill(query))
            self._loading[app_id] = task
            task.add_done_callback(lambda t: self._loaded(app_id, t))
        return await asyncio.shield(task)

    async def _fill(self, query: StatusQuery) -> tuple[StatusRow, str] | None:
        evictions = self._evictions
        found = await query()
        if found is not None and evictions == self._evictions:  # no change raced the read
            self.put(*found)
        return found

    def _loaded(self, app_id: str, task: asyncio.Task[tuple[StatusRow, str] | None]) -> None:
        if self._loading.get(app_id) is task:
            del self._loading[app_id]
        if not task.cancelled():
            task.exception()  # retrieved, even when every caller has gone

    def put(self, row: StatusRow, owner_id: str) -> None:
        if len(self._rows) > 50_000:
            self._rows.clear()
        self._rows[row.id] = (row, owner_id, time.monotonic())

    def evict(self, app_id: str) -> None:
        self._evictions += 1
        self._rows.pop(app_id, None)


class AppStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        on_change: Callable[[str], None] = lambda _app_id: None,
        status_cache_ttl_s: float = 1.0,
    ) -> None:
        self.sessions = sessions
        self._notify = on_change
        self.cache = StatusCache(status_cache_ttl_s)

    def on_change(self, app_id: str) -> None:
        self.cache.evict(app_id)
        self._notify(app_id)

    async def create(self, app: Application, guard: Guard | None = None) -> Application:
        """Insert the app; `guard` (a quota check) runs first in the same transaction."""
        async with self.sessions() as s:
            if guard is not None:
                await guard(s)
            s.add(app)
            s.add(Event(app_id=app.id, from_state=None, to_state=app.state, reason="created"))
            try:
                await s.commit()
            except IntegrityError as exc:
                raise NameTaken(app.name) from exc
        return app

    async def get(self, app_id: str, owner_id: str | None = None) -> Application:
        """The app, if it exists and (when owner_id is given) belongs to that owner."""
        stmt = select(Application).where(Application.id == app_id)
        if owner_id is not None:
            stmt = stmt.where(Application.owner_id == owner_id)
        async with self.sessions() as s:
            app = (await s.execute(stmt)).scalar_one_or_none()
        if app is None:
            raise NotFound(app_id)
        return app

    async def previews_of(self, app_id: str) -> Sequence[Application]:
        """The pull-request previews of an app, by pull-request number."""
        stmt = (
            select(Application)
            .where(Application.preview_of == app_id)
            .order_by(Application.preview_number)
        )
        async with self.sessions() as s:
            return (await s.execute(stmt)).scalars().all()

    async def of_github_repo(self, full_name: str) -> Sequence[Application]:
        """The apps (not previews) deployed from a GitHub repository (its name in any case, as
        GitHub's names are)."""
        stmt = (
            select(Application)
            .where(
                Application.provider == "github",
                func.lower(Application.repo) == full_name.lower(),
                Application.preview_of.is_(None),
            )
            .order_by(Application.created_at)
        )
        async with self.sessions() as s:
            return (await s.execute(stmt)).scalars().all()

    async def status(self, app_id: str, owner_id: str | None, fresh: bool = False) -> StatusRow:
        """The hot path of status polling: the cache, else one indexed query of a few columns."""
        cached = None if fresh else self.cache.get(app_id)
        if cached is None:
            cached = await self.cache.load(app_id, lambda: self._status_row(app_id))
            if cached is None:
                raise NotFound(app_id)
        row, owner = cached
        if owner_id is not None and owner != owner_id:
            raise NotFound(app_id)
        return row

    async def _status_row(self, app_id: str) -> tuple[StatusRow, str] | None:
        stmt = select(*_STATUS_COLUMNS, Application.owner_id).where(Application.id == app_id)
        async with self.sessions() as s:
            found = (await s.execute(stmt)).one_or_none()
        return None if found is None else (StatusRow(*found[:-1]), found[-1])  # type: ignore[arg-type]

    async def list(
        self,
        owner_id: str | None,
        *,
        kind: str | None = None,
        state: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[Sequence[Application], int]:
        where = []
        if owner_id is not None:
            where.append(Application.owner_id == owner_id)
        if kind:
            where.append(Application.kind == kind)
        if state:
            where.append(Application.state == state)
        stmt = (
            select(Application)
            .where(*where)
            .order_by(Application.created_at.desc(), Application.id)
            .limit(limit)
            .offset(offset)
        )
        count = select(func.count()).select_from(Application).where(*where)
        async with self.sessions() as s:
            rows = (await s.execute(stmt)).scalars().all()
            total = (await s.execute(count)).scalar_one()
        return rows, total

    async def by_name(self, name: str, scope: str = "") -> Application | None:
        stmt = select(Application).where(Application.name == name, Application.name_scope == scope)
        async with self.sessions() as s:
            return (await s.execute(stmt.limit(1))).scalar_one_or_none()

    async def names_exist(self, name: str, scope: str = "") -> bool:
        stmt = select(Application.id).where(
            Application.name == name, Application.name_scope == scope
        )
        async with self.sessions() as s:
            return (await s.execute(stmt.limit(1))).first() is not None

    async def transition(
        self,
        app_id: str,
        target: State,
        reason: str | None = None,
        *,
        expected: State | Sequence[State] | None = None,
        **fields: Any,
    ) -> State:
        """Move the app to `target` (and set `fields`) in one conditional UPDATE + an event.

        The UPDATE only matches when the current state is one from which `target` is legal (and
        one of `expected`, if given), so concurrent writers cannot skip the state machine.
        Returns the state the app was in.
        """
        async with self.sessions() as s:
            current = (
                await s.execute(select(Application.state).where(Application.id == app_id))
            ).scalar_one_or_none()
            if current is None:
                raise NotFound(app_id)
            allowed = _as_set(expected)
            if allowed is not None and State(current) not in allowed:
                raise IllegalTransition(State(current), target)
            check_transition(current, target)
            values = {
                "state": target.value,
                "state_reason": reason,
                "version": Application.version + 1,
                "updated_at": utcnow(),
                **fields,
            }
            result = await s.execute(
                update(Application)
                .where(Application.id == app_id, Application.state == current)
                .values(**values)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                await s.rollback()
                return await self.transition(app_id, target, reason, expected=expected, **fields)
            await s.execute(
                insert(Event).values(
                    app_id=app_id, from_state=current, to_state=target.value, reason=reason
                )
            )
            await record_transition_notice(s, app_id, current, target.value, reason)
            await s.commit()
        self.on_change(app_id)
        return State(current)

    async def set_fields(self, app_id: str, *, guard: Guard | None = None, **fields: Any) -> None:
        """A granular UPDATE of some columns; bumps the version (the status ETag). `guard` (a
        quota check) runs first in the same transaction."""
        values = {"version": Application.version + 1, "updated_at": utcnow(), **fields}
        async with self.sessions() as s:
            if guard is not None:
                await guard(s)
            try:
                result = await s.execute(
                    update(Application).where(Application.id == app_id).values(**values)
                )
                await s.commit()
            except IntegrityError as exc:
                raise NameTaken(str(fields.get("name"))) from exc
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise NotFound(app_id)
        self.on_change(app_id)

    async def note(self, app_id: str, reason: str) -> None:
        """An event that is no state change (a settings change, a failed start attempt): from
        and to are the state the app is in. Nothing when the app is gone."""
        async with self.sessions() as s:
            state = (
                await s.execute(select(Application.state).where(Application.id == app_id))
            ).scalar_one_or_none()
            if state is None:
                return
            s.add(Event(app_id=app_id, from_state=state, to_state=state, reason=reason))
            await s.commit()

    async def queue_redeploy(self, app_id: str) -> bool:
        """While a rollout's build runs: ask for the serving release to be started again
        (with settings changed meanwhile) should the build not end in a release. True when
        asked; False when the app is no longer rolling out or its build already has a target."""
        stmt = (
            update(Application)
            .where(
                Application.id == app_id,
                Application.state == State.ROLLING_OUT.value,
                Application.current_release.is_not(None),
                or_(
                    Application.target_release.is_(None),
                    Application.target_release == Application.current_release,
                ),
            )
            .values(target_release=Application.current_release)
        )
        async with self.sessions() as s:
            result = await s.execute(stmt)
            await s.commit()
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]

    async def events(self, app_id: str, limit: int = 100, after: int = 0) -> Sequence[Event]:
        stmt = (
            select(Event)
            .where(Event.app_id == app_id, Event.id > after)
            .order_by(Event.id)
            .limit(limit)
        )
        async with self.sessions() as s:
            return (await s.execute(stmt)).scalars().all()

    async def delete(self, app_id: str) -> None:
        async with self.sessions() as s:
            await s.execute(delete(Application).where(Application.id == app_id))
            await s.commit()
        self.on_change(app_id)

    async def all_in_states(self, states: Sequence[State]) -> Sequence[Application]:
        stmt = select(Application).where(Application.state.in_([st.value for st in states]))
        async with self.sessions() as s:
            return (await s.execute(stmt)).scalars().all()

    async def in_state_since_before(
        self, states: Sequence[State], cutoff: datetime
    ) -> Sequence[Application]:
        """Apps in one of `states` that entered it before `cutoff` (by their last event)."""
        entered = select(func.max(Event.at)).where(Event.app_id == Application.id).scalar_subquery()
        stmt = select(Application).where(
            Application.state.in_([st.value for st in states]), entered < cutoff
        )
        async with self.sessions() as s:
            return (await s.execute(stmt)).scalars().all()


def _as_set(expected: State | Sequence[State] | None) -> set[State] | None:
    if expected is None:
        return None
    if isinstance(expected, State):
        return {expected}
    return set(expected)
