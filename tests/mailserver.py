"""A real SMTP server on loopback for tests: aiosmtpd over TCP, in its own thread, with
STARTTLS or TLS from the first byte (a test certificate made here), AUTH, and replies a test
can script (451 first, 550 ...). Also a real HTTP receiver for webhooks that checks their
signatures."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import hashlib
import hmac
import ipaddress
import json
import ssl
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from tests.support import free_port


@dataclass(frozen=True)
class SelfSignedCert:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


def make_certificate(folder: Path) -> SelfSignedCert:
    """A self-signed certificate for 127.0.0.1 and localhost (it is its own CA: clients
    trust it through `smtp.ca_file`)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ipaas test SMTP")])
    now = dt.datetime.now(dt.UTC)
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    paths = SelfSignedCert(folder / "smtp-cert.pem", folder / "smtp-key.pem")
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage
    tls: bool
    login: str | None

    def part(self, subtype: str) -> str:
        """The text of the message's text/<subtype> part."""
        for part in self.message.walk():
            if part.get_content_type() == f"text/{subtype}":
                return str(part.get_content()).replace("\r\n", "\n")
        raise AssertionError(f"no text/{subtype} part")


@dataclass
class Script:
    """Replies the server gives instead of accepting: one per DATA, in order."""

    data_replies: list[str] = field(default_factory=list)


class MailServer:
    """aiosmtpd's Controller listening on 127.0.0.1:<port>; stop and start again on the same
    port to play an outage."""

    def __init__(
        self,
        mode: str = "plain",
        certificate: SelfSignedCert | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.mode = mode
        self.certificate = certificate
        self.credentials = credentials
        self.port = free_port()
        self.received: list[Received] = []
        self.script = Script()
        self._controller: Any = None
        self._lock = threading.Lock()

    def start(self) -> MailServer:
        from aiosmtpd.controller import Controller

        kwargs: dict[str, Any] = {"hostname": "127.0.0.1", "port": self.port}
        if self.mode == "starttls":
            assert self.certificate is not None
            kwargs.update(tls_context=self.certificate.server_context(), require_starttls=True)
        if self.mode == "tls":
            assert self.certificate is not None
            kwargs["ssl_context"] = self.certificate.server_context()
        if self.credentials is not None:
            kwargs.update(
                authenticator=self._authenticate,
                auth_required=True,
                # aiosmtpd counts only STARTTLS as TLS here; the other TLS mode is TLS throughout.
                auth_require_tls=self.mode == "starttls",
            )
        self._controller = Controller(_Handler(self), **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = isinstance(data, LoginPassword) and self.credentials == (
            data.login.decode(),
            data.password.decode(),
        )
        return AuthResult(success=ok, handled=False, auth_data=data.login.decode() if ok else None)

    def next_reply(self) -> str | None:
        with self._lock:
            return self.script.data_replies.pop(0) if self.script.data_replies else None

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address in r.recipients]


class _Handler:
    def __init__(self, server: MailServer) -> None:
        self.server = server

    async def handle_DATA(self, smtp: Any, session: Any, envelope: Any) -> str:
        scripted = self.server.next_reply()
        if scripted is not None:
            return scripted
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.server.received.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                message,
                tls=session.ssl is not None or _tls_transport(smtp),
                login=session.auth_data,
            )
        )
        return "250 2.0.0 queued as test"


def _tls_transport(smtp: Any) -> bool:
    """TLS from the first byte (aiosmtpd fills `session.ssl` only after STARTTLS)."""
    return smtp.transport.get_extra_info("ssl_object") is not None


# --- webhooks ---------------------------------------------------------------------------
@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes
    signature_ok: bool

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    """A real HTTP server on loopback that checks each POST's HMAC with the shared secret,
    records it, and answers with the statuses a test scripts (then 204)."""

    def __init__(self, secret: str = "") -> None:
        self.secret = secret
        self.deliveries: list[Delivery] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the standard library's name
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {k.lower(): v for k, v in self.headers.items()}
                ok = receiver.verify(headers.get("x-ipaas-signature", ""), body)
                receiver.deliveries.append(Delivery(headers, body, ok))
                status = receiver.statuses.pop(0) if receiver.statuses else 204
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def verify(self, header: str, body: bytes) -> bool:
        """What a receiver does: recompute HMAC-SHA256("<t>." + body) with the secret."""
        fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
        if "t" not in fields or "v1" not in fields:
            return False
        mac = hmac.new(self.secret.encode(), f"{fields['t']}.".encode() + body, hashlib.sha256)
        return hmac.compare_digest(mac.hexdigest(), fields["v1"])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
