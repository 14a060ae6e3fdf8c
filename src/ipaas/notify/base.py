"""The seams of notices: a mailer and a webhook poster, and the answer each gives."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Reply:
    """What the other side answered (or why nothing answered), and whether to try again."""

    ok: bool
    temporary: bool
    text: str  # "250 2.0.0 Ok", "HTTP 204", "connection refused: ..."

    @classmethod
    def sent(cls, text: str) -> Reply:
        return cls(True, False, text)

    @classmethod
    def later(cls, text: str) -> Reply:
        return cls(False, True, text)

    @classmethod
    def refused(cls, text: str) -> Reply:
        return cls(False, False, text)


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str
    html: str | None = None


class Mailer(Protocol):
    async def send(self, mail: Mail) -> Reply:
        """Hand the mail to the SMTP server; never raises for what the server or the network
        did (that is the Reply)."""
        ...


class WebhookPoster(Protocol):
    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Reply:
        """POST the body; never raises for what the receiver or the network did."""
        ...
