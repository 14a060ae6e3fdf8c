"""Builds (which double as the durable job table), their log lines, and releases."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum

from sqlalchemy import and_, case, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ipaas.domain.statuses import ACTIVE_BUILDS, LEASED_BUILDS, BuildStatus
from ipaas.store.models import Build, BuildLogLine, Release, new_id, utcnow

ACTIVE = ACTIVE_BUILDS


class Claim(Enum):
    """What a builder's claim on a job delivered by a broker came to."""

    OK = "ok"
    STALE = "stale"  # the row is gone or finished: drop the message
    BUSY = "busy"  # another builder holds a live lease: look again when it expires


@dataclass(frozen=True)
class BuildActivity:
    queued: int
    oldest_queued_at: datetime | None
    running: int
    builders: list[str]  # the workers holding a live lease now


class BuildStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def new_build(self, app_id: str, commit: str | None = None, held_s: float = 0.0) -> Build:
        """Record a queued build with the next number (of `commit` when given, else of the
        app's commit or branch head); a still-queued older one is superseded. A held build is
        not due for `held_s` seconds, or until `make_due`."""
        for _ in range(5):
            async with self.sessions() as s:
                last = (
                    await s.execute(select(func.max(Build.number)).where(Build.app_id == app_id))
                ).scalar_one()
                await s.execute(
                    update(Build)
                    .where(Build.app_id == app_id, Build.status == BuildStatus.QUEUED)
                    .values(status=BuildStatus.SUPERSEDED, finished_at=utcnow())
                )
                build = Build(
                    id=new_id(),
                    app_id=app_id,
                    number=(last or 0) + 1,
                    requested_commit=commit,
                    not_before=utcnow() + timedelta(seconds=held_s),
                )
                s.add(build)
                try:
                    await s.commit()
                    return build
                except IntegrityError:
                    await s.rollback()
        raise RuntimeError("could not allocate a build number")

    async def make_due(self, build_id: str) -> None:
        """A held build, still queued, is due now."""
        async with self.sessions() as s:
            await s.execute(
                update(Build)
                .where(Build.id == build_id, Build.status == BuildStatus.QUEUED)
                .values(not_before=utcnow())
            )
            await s.commit()

    async def by_id(self, build_id: str) -> Build | None:
        async with self.sessions() as s:
            return await s.get(Build, build_id)

    async def get(self, app_id: str, number: int) -> Build | None:
        stmt = select(Build).where(Build.app_id == app_id, Build.number == number)
        async with self.sessions() as s:
            return (await s.execute(stmt)).scalar_one_or_none()

    async def of_app(self, app_id: str, limit: int = 50) -> Sequence[Build]:
        stmt = select(Build).where(Build.app_id == app_id).order_by(Build.number.desc())
        async with self.sessions() as s:
            return (await s.execute(stmt.limit(limit))).scalars().all()

    async def active_for(self, app_id: str) -> Build | None:
        stmt = select(Build).where(Build.app_id == app_id, Build.status.in_(ACTIVE))
        async with self.sessions() as s:
            return (
                await s.execute(stmt.order_by(Build.number.desc()).limit(1))
            ).scalar_one_or_none()

    async def queued(self) -> Sequence[Build]:
        async with self.sessions() as s:
            return (
                (await s.execute(select(Build).where(Build.status == BuildStatus.QUEUED)))
                .scalars()
                .all()
            )

    async def activity(self) -> BuildActivity:
        """The queue as the admin page shows it: builds waiting (and since when), builds
        under a live lease, and the builders holding them."""
        now = utcnow()
        waiting = select(func.count(), func.min(Build.created_at)).where(
            Build.status == BuildStatus.QUEUED
        )
        leased = select(Build.lease_owner).where(
            Build.status.in_(LEASED_BUILDS), Build.lease_until >= now
        )
        async with self.sessions() as s:
            queued, oldest = (await s.execute(waiting)).one()
            owners = (await s.execute(leased)).scalars().all()
        return BuildActivity(int(queued), oldest, len(owners), sorted({o for o in owners if o}))

    # --- the job table ------------------------------------------------------------------------
    async def lease(self, worker: str, lease_s: float) -> Build | None:
        """Claim the oldest due job: queued, or running under an expired lease (dead builder)."""
        now = utcnow()
        due = or_(
            and_(Build.status == BuildStatus.QUEUED, Build.not_before <= now),
            and_(
                Build.status.in_((BuildStatus.RUNNING, BuildStatus.CANCELLING)),
                Build.lease_until < now,
            ),
        )
        async with self.sessions() as s:
            candidates = (
                (await s.execute(select(Build).where(due).order_by(Build.not_before).limit(5)))
                .scalars()
                .all()
            )
            for job in candidates:
                claimed = await s.execute(
                    update(Build)
                    .where(Build.id == job.id, Build.status == job.status)
                    .where(or_(Build.lease_until.is_(None), Build.lease_until == job.lease_until))
                    .values(
                        status=BuildStatus.CANCELLING
                        if job.status == BuildStatus.CANCELLING
                        else BuildStatus.RUNNING,
                        lease_owner=worker,
                        lease_until=now + timedelta(seconds=lease_s),
                        attempt=Build.attempt + 1,
                        started_at=now,
                    )
                )
                if claimed.rowcount == 1:  # type: ignore[attr-defined]
                    await s.commit()
                    return await s.get(Build, job.id, populate_existing=True)
            return None

    async def claim(
        self, build_id: str, attempt: int, worker: str, lease_s: float
    ) -> tuple[Claim, float, int]:
        """Mark a job a broker delivered as running for `worker`: the claim, how long to wait
        before looking again when BUSY, and the attempt it counts as.

        A row still leased by another builder is BUSY (its connection may just have blipped);
        once that lease expired the builder is dead, and taking over counts as a new attempt.
        """
        now = utcnow()
        async with self.sessions() as s:
            row = await s.get(Build, build_id)
            if row is None or row.status not in ACTIVE_BUILDS:
                return Claim.STALE, 0.0, attempt
            if row.status != BuildStatus.QUEUED and row.lease_until and row.lease_until > now:
                return Claim.BUSY, (row.lease_until - now).total_seconds() + 0.5, attempt
            if row.status != BuildStatus.QUEUED:
                attempt = max(attempt, row.attempt + 1)
            claimed = await s.execute(
                update(Build)
                .where(Build.id == build_id, Build.status == row.status)
                .where(or_(Build.lease_until.is_(None), Build.lease_until == row.lease_until))
                .values(
                    status=case(
                        (Build.status == BuildStatus.CANCELLING, BuildStatus.CANCELLING.value),
                        else_=BuildStatus.RUNNING.value,
                    ),
                    lease_owner=worker,
                    lease_until=now + timedelta(seconds=lease_s),
                    attempt=attempt,
                    started_at=now,
                )
            )
            if claimed.rowcount != 1:  # type: ignore[attr-defined]
                return Claim.BUSY, 1.0, attempt  # raced with a cancel: look again soon
            await s.commit()
        return Claim.OK, 0.0, attempt

    async def renew(self, build_id: str, worker: str, lease_s: float) -> str | None:
        """Extend the lease; returns the job's status (so the builder sees `cancelling`)."""
        async with self.sessions() as s:
            await s.execute(
                update(Build)
                .where(Build.id == build_id, Build.lease_owner == worker)
                .where(Build.status.in_((BuildStatus.RUNNING, BuildStatus.CANCELLING)))
                .values(lease_until=utcnow() + timedelta(seconds=lease_s))
            )
            await s.commit()
            status = (
                await s.execute(select(Build.status).where(Build.id == build_id))
            ).scalar_one_or_none()
        return status

    async def requeue(self, build_id: str, delay_s: float, error: str) -> None:
        async with self.sessions() as s:
            await s.execute(
                update(Build)
                .where(Build.id == build_id)
                .values(
                    status=BuildStatus.QUEUED,
                    not_before=utcnow() + timedelta(seconds=delay_s),
                    lease_owner=None,
                    lease_until=None,
                    error=error,
                )
            )
            await s.commit()

    async def finish(
        self,
        build_id: str,
        status: str,
        *,
        error: str | None = None,
        error_code: str | None = None,
        commit: str | None = None,
    ) -> None:
        async with self.sessions() as s:
            await s.execute(
                update(Build)
                .where(Build.id == build_id)
                .values(
                    status=status,
                    error=error,
                    error_code=error_code,
                    commit=commit,
                    finished_at=utcnow(),
                    lease_until=None,
                )
            )
            await s.commit()

    async def newer_active(self, app_id: str, number: int) -> bool:
        """Is a later build of the app queued or running?"""
        stmt = select(Build.id).where(
            Build.app_id == app_id, Build.number > number, Build.status.in_(ACTIVE_BUILDS)
        )
        async with self.sessions() as s:
            return (await s.execute(stmt.limit(1))).first() is not None

    async def overdue(self, cutoff: datetime) -> Sequence[Build]:
        """Builds that may have waited too long for a builder: queued before `cutoff`, or
        leased by a builder whose lease ran out before it."""
        stmt = select(Build).where(
            or_(
                and_(Build.status == BuildStatus.QUEUED, Build.not_before < cutoff),
                and_(Build.status.in_(LEASED_BUILDS), Build.lease_until < cutoff),
            )
        )
        async with self.sessions() as s:
            return (await s.execute(stmt)).scalars().all()

    async def fail_if_still(self, build: Build, error: str, error_code: str) -> bool:
        """Fail the build unless it moved on meanwhile (a builder took or finished it)."""
        same_lease = (
            Build.lease_until.is_(None)
            if build.lease_until is None
            else Build.lease_until == build.lease_until
        )
        async with self.sessions() as s:
            done = await s.execute(
                update(Build)
                .where(Build.id == build.id, Build.status == build.status, same_lease)
                .values(
                    status=BuildStatus.FAILED,
                    error=error,
                    error_code=error_code,
                    finished_at=utcnow(),
                    lease_until=None,
                )
            )
            await s.commit()
        return bool(done.rowcount == 1)  # type: ignore[attr-defined]

    async def request_cancel(self, app_id: str, number: int | None = None) -> Build | None:
        """Queued → cancelled at once; running → cancelling (its builder stops it)."""
        build = await (self.get(app_id, number) if number else self.active_for(app_id))
        if build is None or build.status not in ACTIVE:
            return None
        target = (
            BuildStatus.CANCELLED if build.status == BuildStatus.QUEUED else BuildStatus.CANCELLING
        )
        async with self.sessions() as s:
            await s.execute(
                update(Build)
                .where(Build.id == build.id, Build.status == build.status)
                .values(
                    status=target, finished_at=utcnow() if target == BuildStatus.CANCELLED else None
                )
            )
            await s.commit()
        build.status = target
        return build

    # --- build logs ---------------------------------------------------------------------------
    async def append_log(self, build_id: str, first_seq: int, lines: list[tuple[int, str]]) -> None:
        async with self.sessions() as s:
            s.add_all(
                BuildLogLine(build_id=build_id, seq=first_seq + i, ts_ns=ts, line=line)
                for i, (ts, line) in enumerate(lines)
            )
            await s.commit()

    async def next_log_seq(self, build_id: str) -> int:
        async with self.sessions() as s:
            last = (
                await s.execute(
                    select(func.max(BuildLogLine.seq)).where(BuildLogLine.build_id == build_id)
                )
            ).scalar_one()
        return 0 if last is None else last + 1

    async def log_page(
        self, build_id: str, after_seq: int = -1, limit: int = 1000
    ) -> Sequence[BuildLogLine]:
        stmt = (
            select(BuildLogLine)
            .where(BuildLogLine.build_id == build_id, BuildLogLine.seq > after_seq)
            .order_by(BuildLogLine.seq)
            .limit(limit)
        )
        async with self.sessions() as s:
            return (await s.execute(stmt)).scalars().all()

    async def log_window(
        self, build_id: str, after_ns: int, to_ns: int | None, limit: int
    ) -> tuple[list[BuildLogLine], bool]:
        """Up to `limit` lines after `after_ns` (and up to `to_ns`), finishing the last
        timestamp group; True when more lines follow."""
        where = [BuildLogLine.build_id == build_id, BuildLogLine.ts_ns > after_ns]
        if to_ns is not None:
            where.append(BuildLogLine.ts_ns <= to_ns)
        stmt = select(BuildLogLine).where(*where).order_by(BuildLogLine.seq).limit(limit + 1)
        async with self.sessions() as s:
            rows = list((await s.execute(stmt)).scalars().all())
            cut = len(rows) > limit
            if cut:
                rows = rows[:limit]
                rest = select(BuildLogLine).where(
                    BuildLogLine.build_id == build_id,
                    BuildLogLine.ts_ns == rows[-1].ts_ns,
                    BuildLogLine.seq > rows[-1].seq,
                )
                rows += list((await s.execute(rest.order_by(BuildLogLine.seq))).scalars().all())
        return rows, cut

    async def status_of(self, build_id: str) -> str | None:
        async with self.sessions() as s:
            return (await s.execute(select(Build.status).where(Build.id == build_id))).scalar()

    async def log_tail(self, build_id: str, lines: int = 20) -> list[str]:
        stmt = (
            select(BuildLogLine.line)
            .where(BuildLogLine.build_id == build_id)
            .order_by(BuildLogLine.seq.desc())
            .limit(lines)
        )
        async with self.sessions() as s:
            return list(reversed((await s.execute(stmt)).scalars().all()))

    # --- releases -----------------------------------------------------------------------------
    async def add_release(self, release: Release) -> Release:
        async with self.sessions() as s:
            s.add(release)
            await s.commit()
        return release

    async def release(self, app_id: str, number: int) -> Release | None:
        stmt = select(Release).where(Release.app_id == app_id, Release.number == number)
        async with self.sessions() as s:
            return (await s.execute(stmt)).scalar_one_or_none()

    async def last_release_times(self, app_ids: Sequence[str]) -> dict[str, datetime]:
        """When each app's newest release was made (apps without one are left out)."""
        if not app_ids:
            return {}
        stmt = (
            select(Release.app_id, func.max(Release.created_at))
            .where(Release.app_id.in_(list(app_ids)))
            .group_by(Release.app_id)
        )
        async with self.sessions() as s:
            return {app_id: at for app_id, at in await s.execute(stmt)}

    async def releases(self, app_id: str, limit: int = 50) -> Sequence[Release]:
        stmt = select(Release).where(Release.app_id == app_id).order_by(Release.number.desc())
        async with self.sessions() as s:
            return (await s.execute(stmt.limit(limit))).scalars().all()
