"""The SMTP mailer against a real SMTP server on loopback, in each connection mode."""

from __future__ import annotations

import pytest

from ipaas.config import SmtpSettings
from ipaas.notify.base import Mail
from ipaas.notify.smtp import SmtpMailer
from tests.mailserver import MailServer, SelfSignedCert
from tests.notify.conftest import tls_settings

MAIL = Mail("ada@example.test", "hello <there>", "plain body\n", "<p>html body</p>")


async def test_plain_delivers_text_and_html(mail_server: MailServer) -> None:
    mailer = SmtpMailer(
        SmtpSettings(
            host="127.0.0.1", port=mail_server.port, mode="plain", sender="ops@paas.example"
        )
    )
    reply = await mailer.send(MAIL)
    assert reply.ok and reply.text.startswith("250")
    got = mail_server.to("ada@example.test")[-1]
    assert got.sender == "ops@paas.example"
    assert got.message["Subject"] == "hello <there>"
    assert got.part("plain") == "plain body\n"
    assert "<p>html body</p>" in got.part("html")
    assert not got.tls


@pytest.mark.parametrize("mode", ["starttls", "tls"])
# aiosmtpd counts only STARTTLS as TLS for AUTH: AUTH over TLS from the first byte warns.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_tls_modes_with_auth(mode: str, certificate: SelfSignedCert) -> None:
    server = MailServer(mode, certificate, credentials=("relay-user", "relay-pass")).start()
    try:
        good = SmtpMailer(
            tls_settings(server, certificate, username="relay-user", password="relay-pass")
        )
        reply = await good.send(MAIL)
        assert reply.ok, reply.text
        got = server.received[-1]
        assert got.tls and got.login == "relay-user"

        wrong = SmtpMailer(
            tls_settings(server, certificate, username="relay-user", password="nope")
        )
        refused = await wrong.send(MAIL)
        assert not refused.ok and not refused.temporary
        assert refused.text.startswith("535")
        assert len(server.received) == 1
    finally:
        server.stop()


async def test_untrusted_certificate_is_not_sent_to(certificate: SelfSignedCert) -> None:
    """Without the operator's CA file the test certificate is not trusted: nothing is sent,
    and the failure is one to retry (the operator may fix the configuration)."""
    server = MailServer("tls", certificate).start()
    try:
        mailer = SmtpMailer(SmtpSettings(host="127.0.0.1", port=server.port, mode="tls"))
        reply = await mailer.send(MAIL)
        assert not reply.ok and reply.temporary
        assert server.received == []
    finally:
        server.stop()


async def test_refused_connection_is_temporary() -> None:
    server = MailServer()  # never started: nothing listens on its port
    reply = await SmtpMailer(
        SmtpSettings(host="127.0.0.1", port=server.port, mode="plain", timeout_s=5)
    ).send(MAIL)
    assert not reply.ok and reply.temporary


async def test_server_replies_are_kept_and_classified(mail_server: MailServer) -> None:
    mailer = SmtpMailer(SmtpSettings(host="127.0.0.1", port=mail_server.port, mode="plain"))
    mail_server.script.data_replies = [
        "451 4.3.0 greylisted, try later",
        "550 5.1.1 mailbox unknown",
    ]
    later = await mailer.send(MAIL)
    assert (later.ok, later.temporary, later.text) == (
        False,
        True,
        "451 4.3.0 greylisted, try later",
    )
    never = await mailer.send(MAIL)
    assert (never.ok, never.temporary, never.text) == (False, False, "550 5.1.1 mailbox unknown")
