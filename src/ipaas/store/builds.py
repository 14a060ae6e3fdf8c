"""Builds (which double as the durable job table), their log lines, and releases."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ipaas.store.models import Build, BuildLogLine, Release, new_id, utcnow

ACTIVE = ("queued", "running", "cancelling")


class BuildStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def new_build(self, app_id: str) -> Build:
        """Record a queued build with the next number; a still-queued older one is superseded."""
        for _ in range(5):
            async with self.sessions() as s:
                last = (
                    await s.execute(select(func.max(Build.number)).where(Build.app_id == app_id))
                ).scalar_one()
                await s.execute(
                    update(Build)
                    .where(Build.app_id == app_id, Build.status == "queued")
                    .values(status="superseded", finished_at=utcnow())
                )
                build = Build(id=new_id(), app_id=app_id, number=(last or 0) + 1)
                s.add(build)
                try:
                    await s.commit()
                    return build
                except IntegrityError:
                    await s.rollback()
        raise RuntimeError("could not allocate a build number")

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
            return (await s.execute(select(Build).where(Build.status == "queued"))).scalars().all()

    # --- the job table ------------------------------------------------------------------------
    async def lease(self, worker: str, lease_s: float) -> Build | None:
        """Claim the oldest due job: queued, or running under an expired lease (dead builder)."""
        now = utcnow()
        due = or_(
            and_(Build.status == "queued", Build.not_before <= now),
            and_(Build.status.in_(("running", "cancelling")), Build.lease_until < now),
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
                        status="cancelling" if job.status == "cancelling" else "running",
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

    async def renew(self, build_id: str, worker: str, lease_s: float) -> str | None:
        """Extend the lease; returns the job's status (so the builder sees `cancelling`)."""
        async with self.sessions() as s:
            await s.execute(
                update(Build)
                .where(Build.id == build_id, Build.lease_owner == worker)
                .where(Build.status.in_(("running", "cancelling")))
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
                    status="queued",
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

    async def request_cancel(self, app_id: str, number: int | None = None) -> Build | None:
        """Queued → cancelled at once; running → cancelling (its builder stops it)."""
        build = await (self.get(app_id, number) if number else self.active_for(app_id))
        if build is None or build.status not in ACTIVE:
            return None
        target = "cancelled" if build.status == "queued" else "cancelling"
        async with self.sessions() as s:
            await s.execute(
                update(Build)
                .where(Build.id == build.id, Build.status == build.status)
                .values(status=target, finished_at=utcnow() if target == "cancelled" else None)
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

    async def releases(self, app_id: str, limit: int = 50) -> Sequence[Release]:
        stmt = select(Release).where(Release.app_id == app_id).order_by(Release.number.desc())
        async with self.sessions() as s:
            return (await s.execute(stmt.limit(limit))).scalars().all()
