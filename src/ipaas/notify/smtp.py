"""E-mail through an SMTP server (aiosmtplib, imported when the first mail goes out): plain,
STARTTLS or TLS from the first byte, with or without AUTH. Every outcome is a Reply: the
server's own code and text, or what went wrong on the way."""

from __future__ import annotations

import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from ipaas.config import SmtpSettings
from ipaas.domain.notices import smtp_temporary
from ipaas.notify.base import Mail, Reply


class SmtpMailer:
    def __init__(self, settings: SmtpSettings) -> None:
        if settings.host is None:
            raise ValueError("no SMTP host configured")
        self.settings = settings
        self._tls: ssl.SSLContext | None = None

    def _connection(self) -> dict[str, Any]:
        st = self.settings
        if self._tls is None and st.mode != "plain":
            self._tls = ssl.create_default_context(cafile=str(st.ca_file) if st.ca_file else None)
        return {
            "hostname": st.host,
            "port": st.port,
            "username": st.username,
            "password": st.password,
            "use_tls": st.mode == "tls",
            "start_tls": st.mode == "starttls",
            "tls_context": self._tls,
            "timeout": st.timeout_s,
        }

    def message(self, mail: Mail) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.settings.sender
        msg["To"] = mail.to
        msg["Subject"] = mail.subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain=self.settings.sender.rpartition("@")[2] or None)
        msg.set_content(mail.text)
        if mail.html:
            msg.add_alternative(mail.html, subtype="html")
        return msg

    async def send(self, mail: Mail) -> Reply:
        import aiosmtplib

        try:
            _, answer = await aiosmtplib.send(self.message(mail), **self._connection())
        except aiosmtplib.SMTPRecipientsRefused as exc:
            first = exc.recipients[0]
            return _coded(first.code, first.message)
        except aiosmtplib.SMTPResponseException as exc:
            return _coded(exc.code, exc.message)
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            # Refused or dropped connections, timeouts, TLS failures: the server may be back
            # (or fixed) later; nothing was accepted.
            return Reply.later(f"{type(exc).__name__}: {exc}")
        return Reply.sent(f"250 {answer}".strip())


def _coded(code: int, message: str) -> Reply:
    text = f"{code} {message}"
    return Reply.later(text) if smtp_temporary(code) else Reply.refused(text)
