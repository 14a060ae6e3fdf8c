"""Notices on a store of the module's own (the sender acts on every notice in its store), a
real SMTP server and a clock the tests move."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from ipaas.api.app import create_app
from ipaas.config import NotifySettings, SmtpSettings
from ipaas.notify.sender import Links, NoticeSender
from ipaas.notify.smtp import SmtpMailer
from ipaas.notify.templates import Renderer
from ipaas.notify.webhooks import HttpWebhookPoster, WebhookGuard
from ipaas.platform import ControlPlane, Stores
from ipaas.store.migrate import upgrade
from ipaas.store.models import User, utcnow
from tests.conftest import hashed, make_settings
from tests.fakes import fake_plane
from tests.mailserver import MailServer, SelfSignedCert, make_certificate


class Clock:
    """The sender's time: real time plus however far a test moved it."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> SelfSignedCert:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def mail_server() -> Iterator[MailServer]:
    server = MailServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
async def plane(
    module_database_url: str, tmp_path_factory: pytest.TempPathFactory, mail_server: MailServer
) -> AsyncIterator[ControlPlane]:
    """An API process whose sender mails through the module's SMTP server and may post to
    webhook receivers on loopback; no loops run (tests call the sender's rounds)."""
    upgrade(module_database_url)
    settings = make_settings(
        tmp_path_factory.mktemp("data"),
        module_database_url,
        router={"kind": "transparent"},
        public_url="https://paas.example",
        smtp={"host": "127.0.0.1", "port": mail_server.port, "mode": "plain"},
        notify={**FAST, "webhook_allowed_networks": ["127.0.0.0/8"]},
    )
    built = fake_plane(settings)
    yield built
    await built.lifecycle.close()


@pytest.fixture(scope="module")
def stores(plane: ControlPlane) -> Stores:
    return plane.stores


@pytest.fixture(scope="module")
async def api(plane: ControlPlane) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(plane, manage_lifecycle=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://ipaas.test") as c:
        yield c


# Fast retries: a test moves the clock instead of waiting.
FAST = {
    "retry_base_s": 10.0,
    "retry_max_s": 80.0,
    "give_up_after_s": 3600.0,
    "poll_interval_s": 0.05,
}

SenderMaker = Callable[..., NoticeSender]


@pytest.fixture
def make_sender(stores: Stores, mail_server: MailServer) -> SenderMaker:
    def make(
        clock: Clock | None = None, smtp: SmtpSettings | None = None, **notify: object
    ) -> NoticeSender:
        settings = NotifySettings(**{**FAST, "webhook_allowed_networks": ["127.0.0.0/8"], **notify})  # type: ignore[arg-type]
        smtp = smtp or SmtpSettings(host="127.0.0.1", port=mail_server.port, mode="plain")
        guard = WebhookGuard(settings)
        return NoticeSender(
            notices=stores.notices,
            mailer=SmtpMailer(smtp),
            poster=HttpWebhookPoster(guard, settings.webhook_timeout_s),
            guard=guard,
            renderer=Renderer(),
            cipher=stores.cipher,
            settings=settings,
            links=Links("https://paas.example"),
            clock=clock or Clock(),
        )

    return make


async def verified_user(stores: Stores) -> User:
    """A user whose e-mail address is confirmed (notices go only to confirmed addresses)."""
    name = f"n{uuid.uuid4().hex[:10]}"
    user = await stores.users.create(name, hashed("pw for notices"), email=f"{name}@example.test")
    await stores.users.set_email(user.id, user.email or "", verified=True)
    return user


def tls_settings(server: MailServer, certificate: SelfSignedCert, **extra: object) -> SmtpSettings:
    return SmtpSettings(
        host="127.0.0.1",
        port=server.port,
        mode=server.mode,  # type: ignore[arg-type]
        ca_file=Path(certificate.cert),
        **extra,  # type: ignore[arg-type]
    )
