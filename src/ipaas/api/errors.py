"""RFC 9457 problem details with a stable machine-readable `code`, for every error."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ipaas.domain.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    IpaasError,
    LimitReached,
    NotFoundError,
    Throttled,
    Unauthenticated,
    Unavailable,
)

PROBLEM_TYPE = "application/problem+json"

_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    411: "length_required",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
}


# The application's errors as HTTP statuses; the most specific class listed first wins.
_ERROR_STATUS: tuple[tuple[type[IpaasError], int], ...] = (
    (NotFoundError, 404),
    (InvalidInput, 422),
    (Forbidden, 403),
    (Conflict, 409),
    (LimitReached, 409),
    (Unauthenticated, 401),
    (Throttled, 429),
    (Unavailable, 503),
)


def status_of(exc: IpaasError) -> int:
    return next((status for kind, status in _ERROR_STATUS if isinstance(exc, kind)), 400)


class Problem(Exception):
    """An error only the HTTP edge can have (a bad header, a bad query parameter)."""

    def __init__(self, status: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.extra = extra


def problem_response(
    status: int, code: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {"type": "about:blank", "title": code.replace("_", " "), "status": status}
    body.update(code=code, detail=detail, **extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_TYPE, headers=headers)


async def _problem(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return problem_response(exc.status, exc.code, exc.detail, headers, **exc.extra)


async def _app_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, IpaasError)
    status = status_of(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if "retry_after" in exc.extra:
        headers = {"Retry-After": str(exc.extra["retry_after"])}
    return problem_response(status, exc.code, exc.detail, headers, **exc.extra)


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg")), "type": str(e.get("type"))}
        for e in exc.errors()
    ]
    return problem_response(422, "validation_error", "the request is not valid", errors=errors)


async def _http(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _STATUS_CODES.get(exc.status_code, "error")
    return problem_response(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))


def install(app: FastAPI) -> None:
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(IpaasError, _app_error)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
