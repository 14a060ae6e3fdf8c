"""The errors the application raises: what failed, whose fault, and a stable `code`.

Only the HTTP edge (`api/errors.py`) turns them into problem details; everything below it
raises these and knows nothing of status codes.
"""

from __future__ import annotations

from typing import Any


class IpaasError(Exception):
    """Base of every error a user is meant to see. `extra` goes into the problem body."""

    code = "error"

    def __init__(self, detail: str, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.extra = extra


class NotFoundError(IpaasError):
    """No such resource, or not the caller's (both look the same from outside)."""

    code = "not_found"

    @classmethod
    def of(cls, what: str) -> NotFoundError:
        return cls(f"no such {what}")


class InvalidInput(IpaasError):
    """The request is well-formed but its content cannot be used."""

    code = "validation_error"


class Forbidden(IpaasError):
    """The caller may not do this, whoever owns the resource."""

    code = "forbidden"


class Conflict(IpaasError):
    """The request clashes with the current state (a taken name, an up-to-date app)."""

    code = "conflict"


class LimitReached(IpaasError):
    """A count or size limit (quota) would be exceeded."""

    code = "quota_exceeded"


class Unauthenticated(IpaasError):
    """No valid credentials."""

    code = "unauthorized"


class Throttled(IpaasError):
    """An outside service (GitHub) asks us to wait; `retry_after` says how long."""

    code = "too_many_requests"


class Unavailable(IpaasError):
    """An outside service the request needs did not answer; trying again later may work."""

    code = "unavailable"
