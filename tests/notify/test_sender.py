"""The outbox and its sender against a real SMTP server: notices written with the event,
retries with backoff on 4xx and outages, 5xx kept as failed, throttled crash loops."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from ipaas.config import SmtpSettings
from ipaas.domain.databases import DbState
from ipaas.domain.notices import NoticeKind
from ipaas.domain.states import IllegalTransition, State
from ipaas.platform import Stores
from ipaas.store.models import Application, Database, Notice, User
from tests.factories import stored_app
from tests.mailserver import MailServer
from tests.notify.conftest import Clock, SenderMaker, verified_user
from tests.support import unique_name

S = State


async def running(stores: Stores, user: User) -> Application:
    app = await stored_app(stores, user.id)
    await stores.apps.transition(app.id, S.BUILDING, "build 1 started")
    await stores.apps.transition(app.id, S.STARTING, "release 1 built")
    await stores.apps.transition(app.id, S.RUNNING, "release 1 is healthy")
    return app


def smtp_at(server: MailServer) -> SmtpSettings:
    """Settings for `server`'s port, whether or not it is listening."""
    return SmtpSettings(host="127.0.0.1", port=server.port, mode="plain", timeout_s=5)


async def notices_of(stores: Stores, app_id: str) -> list[str]:
    async with stores.notices.sessions() as s:
        stmt = select(Notice.kind).where(Notice.app_id == app_id).order_by(Notice.id)
        return list((await s.execute(stmt)).scalars())


async def crash(stores: Stores, app_id: str, why: str = "exited with 1") -> None:
    await stores.apps.transition(app_id, S.CRASHED, why, expected=S.RUNNING)


async def build_fails(stores: Stores, user: User) -> Application:
    app = await stored_app(stores, user.id)
    await stores.apps.transition(app.id, S.BUILDING, "build 1 started")
    await stores.apps.transition(
        app.id, S.FAILED, "build failed: pip install: no such package 'flask2'"
    )
    return app


async def test_notice_is_written_with_the_state_change(stores: Stores) -> None:
    user = await verified_user(stores)
    app = await running(stores, user)
    assert await notices_of(stores, app.id) == [NoticeKind.DEPLOY_SUCCEEDED]
    with pytest.raises(IllegalTransition):
        await stores.apps.transition(app.id, S.STARTING, "not allowed from running")
    await crash(stores, app.id)
    # The refused change left no notice; the crash made one.
    assert await notices_of(stores, app.id) == [NoticeKind.DEPLOY_SUCCEEDED, NoticeKind.APP_CRASHED]


async def test_build_failed_mail_has_reason_and_link(
    stores: Stores, make_sender: SenderMaker, mail_server: MailServer
) -> None:
    user = await verified_user(stores)
    app = await build_fails(stores, user)
    await make_sender().run_once()
    [got] = mail_server.to(user.email or "")
    assert got.message["Subject"] == f"[ipaas] {app.name}: the build failed"
    link = f"https://paas.example/api/v1/applications/{app.id}/builds"
    assert "no such package 'flask2'" in got.part("plain") and link in got.part("plain")
    html = got.part("html")
    assert "no such package &#39;flask2&#39;" in html and f'href="{link}"' in html


async def test_451_then_250_is_one_delivery(
    stores: Stores, make_sender: SenderMaker, mail_server: MailServer
) -> None:
    user = await verified_user(stores)
    clock = Clock()
    sender = make_sender(clock)
    mail_server.script.data_replies = ["451 4.7.1 greylisted"]
    await build_fails(stores, user)
    await sender.run_once()
    [pending] = await stores.notices.messages_of(user.id)
    assert (pending.status, pending.attempts, pending.last_reply) == (
        "pending",
        1,
        "451 4.7.1 greylisted",
    )
    await sender.run_once()  # not due yet: the backoff holds it
    assert mail_server.to(user.email or "") == []
    clock.advance(10)
    await sender.run_once()
    [sent] = await stores.notices.messages_of(user.id)
    assert (sent.status, sent.attempts) == ("sent", 2) and sent.last_reply.startswith("250")
    clock.advance(1000)
    await sender.run_once()
    assert len(mail_server.to(user.email or "")) == 1


async def test_550_fails_for_good_keeping_the_reply(
    stores: Stores, make_sender: SenderMaker, mail_server: MailServer
) -> None:
    user = await verified_user(stores)
    clock = Clock()
    sender = make_sender(clock)
    mail_server.script.data_replies = ["550 5.1.1 no such mailbox"]
    await build_fails(stores, user)
    await sender.run_once()
    clock.advance(1000)
    await sender.run_once()
    [failed] = await stores.notices.messages_of(user.id)
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert failed.last_reply == failed.error == "550 5.1.1 no such mailbox"
    assert mail_server.to(user.email or "") == []


async def test_smtp_down_for_a_minute_loses_nothing(
    stores: Stores, make_sender: SenderMaker
) -> None:
    user = await verified_user(stores)
    server = MailServer()  # its port is chosen; nothing listens yet
    clock = Clock()
    sender = make_sender(clock, smtp_at(server))
    apps = [await build_fails(stores, user) for _ in range(3)]
    for _ in range(7):  # a minute of the sender's time with the server down
        await sender.run_once()
        clock.advance(10)
    waiting = await stores.notices.messages_of(user.id)
    assert [m.status for m in waiting] == ["pending"] * 3
    assert all(m.attempts >= 2 and "Connect" in (m.last_reply or "") for m in waiting)
    server.start()
    try:
        clock.advance(100)
        await sender.run_once()
        clock.advance(100)
        await sender.run_once()
        subjects = sorted(r.message["Subject"] for r in server.to(user.email or ""))
        assert subjects == sorted(f"[ipaas] {a.name}: the build failed" for a in apps)
    finally:
        server.stop()


async def test_temporary_failures_give_up_in_the_end(
    stores: Stores, make_sender: SenderMaker
) -> None:
    user = await verified_user(stores)
    clock = Clock()
    sender = make_sender(clock, smtp_at(MailServer()), give_up_after_s=300)
    await build_fails(stores, user)
    for _ in range(6):
        await sender.run_once()
        clock.advance(80)
    [message] = await stores.notices.messages_of(user.id)
    assert message.status == "failed" and (message.error or "").startswith("gave up after")


async def test_crash_loop_of_20_sends_two_mails(
    stores: Stores, make_sender: SenderMaker, mail_server: MailServer
) -> None:
    user = await verified_user(stores)
    app = await running(stores, user)
    clock = Clock()
    sender = make_sender(clock, crash_throttle_s=3600, recovered_after_s=300)
    for n in range(20):
        await crash(stores, app.id, f"exited with {n}")
        await sender.run_once()
        clock.advance(20)
        if n < 19:  # the warden restarts it; it crashes again 20 s later
            await stores.apps.transition(app.id, S.RUNNING, "release 1 is healthy")
            await sender.run_once()
        clock.advance(20)
    clock.advance(3600)
    await sender.run_once()
    await sender.run_once()
    mails = mail_server.to(user.email or "")
    assert [m.message["Subject"] for m in mails] == [
        f"[ipaas] {app.name} crashed",
        f"[ipaas] {app.name} crashed 19 more times",
    ]
    assert "exited with 19" in mails[1].part("plain")  # the digest tells the last crash


async def test_recovered_once_the_app_stays_up(
    stores: Stores, make_sender: SenderMaker, mail_server: MailServer
) -> None:
    user = await verified_user(stores)
    app = await running(stores, user)
    clock = Clock()
    sender = make_sender(clock, recovered_after_s=300)
    await crash(stores, app.id)
    await stores.apps.transition(app.id, S.RUNNING, "release 1 is healthy")
    await sender.run_once()
    assert [m.message["Subject"] for m in mail_server.to(user.email or "")] == [
        f"[ipaas] {app.name} crashed"
    ]
    clock.advance(301)
    await sender.run_once()
    await sender.run_once()
    subjects = [m.message["Subject"] for m in mail_server.to(user.email or "")]
    assert subjects == [f"[ipaas] {app.name} crashed", f"[ipaas] {app.name} has recovered"]


async def test_deploy_succeeded_is_off_until_chosen(
    stores: Stores, make_sender: SenderMaker, mail_server: MailServer
) -> None:
    user = await verified_user(stores)
    sender = make_sender()
    await running(stores, user)
    await sender.run_once()
    assert mail_server.to(user.email or "") == []
    await stores.notices.set_preferences(user.id, {"deploy_succeeded": True, "build_failed": False})
    app = await running(stores, user)
    await build_fails(stores, user)
    await sender.run_once()
    assert [m.message["Subject"] for m in mail_server.to(user.email or "")] == [
        f"[ipaas] {app.name} is deployed"
    ]


async def test_no_mail_to_unconfirmed_or_disabled_accounts(
    stores: Stores, make_sender: SenderMaker, mail_server: MailServer
) -> None:
    unconfirmed = await stores.users.create(
        unique_name("unconf"), None, email="unconfirmed@example.test"
    )
    disabled = await verified_user(stores)
    await stores.users.set_disabled(disabled.id, True)
    await build_fails(stores, unconfirmed)
    await build_fails(stores, disabled)
    await make_sender().run_once()
    assert mail_server.to("unconfirmed@example.test") == []
    assert mail_server.to(disabled.email or "") == []


async def test_quota_nearly_used_is_told_once(
    stores: Stores, make_sender: SenderMaker, mail_server: MailServer
) -> None:
    user = await verified_user(stores)
    await stores.quotas.set_overrides(user.id, {"apps": 5})
    for _ in range(5):
        app = Application(**_app_fields(user.id))
        await stores.apps.create(app, guard=stores.quotas.create_guard(app))
    await make_sender().run_once()
    [mail] = mail_server.to(user.email or "")
    assert mail.message["Subject"] == "[ipaas] your quota is nearly used"
    assert "4 of 5 apps" in mail.part("plain")


def _app_fields(owner_id: str) -> dict[str, object]:
    from ipaas.store.models import new_id

    return {
        "id": new_id(),
        "name": unique_name("q"),
        "owner_id": owner_id,
        "repo": "https://x.invalid/r.git",
        "state": "pending",
        "envs_encrypted": "",
        "resources": {},
        "volumes": [],
    }


async def test_old_settled_messages_are_forgotten_pending_ones_kept(
    stores: Stores, make_sender: SenderMaker, mail_server: MailServer
) -> None:
    user = await verified_user(stores)
    clock = Clock()
    await build_fails(stores, user)
    await make_sender(clock).run_once()  # sent
    down = make_sender(
        clock,
        smtp_at(MailServer()),
        give_up_after_s=10**9,
    )
    await build_fails(stores, user)
    await down.run_once()  # pending: nothing listens
    clock.advance(31 * 86400)
    await down.run_once()
    assert [m.status for m in await stores.notices.messages_of(user.id)] == ["pending"]


async def test_database_events_reach_their_owner(
    stores: Stores, make_sender: SenderMaker, mail_server: MailServer
) -> None:
    """Ready, a failed backup, rotated credentials: each mailed with a link to the database;
    no password in the mail."""
    user = await verified_user(stores)
    db = Database(
        name=unique_name("db"), owner_id=user.id, engine="postgres", version="15",
        memory_mb=256, cpus=0.5, credentials_encrypted="", state=DbState.CREATING.value,
    )  # fmt: skip
    async with stores.databases.sessions() as s:
        s.add(db)
        await s.commit()
    await stores.databases.transition(db.id, DbState.RUNNING, "healthy")
    await stores.databases.add_event(db, "backup_failed", "the manual backup failed: disk full")
    await stores.databases.add_event(db, "credentials_rotated", "the password was rotated")
    await stores.databases.add_event(db, "restored", "restored from a backup")  # no notice
    await make_sender().run_once()
    mails = {m.message["Subject"]: m.part("plain") for m in mail_server.to(user.email or "")}
    link = f"https://paas.example/api/v1/databases/{db.id}"
    assert set(mails) == {
        f"[ipaas] database {db.name} is ready",
        f"[ipaas] backup of {db.name} failed",
        f"[ipaas] new credentials for database {db.name}",
    }
    assert f"{link}/credentials" in mails[f"[ipaas] database {db.name} is ready"]
    failed = mails[f"[ipaas] backup of {db.name} failed"]
    assert "disk full" in failed and link in failed
