"""Errors -> HTTP responses. The only module that knows HTTP status codes.

Every error body has one shape, :class:`scheduler.api.schemas.ErrorPublic`::

    {"code": "not_found", "detail": "job 'j-1' not found"}
    {"code": "validation_error", "detail": [{"loc": ["body", "name"], "msg": ..., "type": ...}]}

``detail`` is a human string, or for 422 a list in FastAPI's validation shape, so clients parse
one format for both schema errors and domain spec errors. A 422 never echoes the input it
refused (it may be NaN, a lone surrogate or megabytes), and every text in an error body is made
printable UTF-8 first, so rendering an error can never fail. A database that cannot be reached
is a 503 with ``Retry-After``, not a 500: clients can tell an outage from a bug.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from scheduler.domain import (
    Forbidden,
    ForecastUnavailable,
    GreenlightError,
    InvalidJobSpec,
    InvalidJobSpecs,
    InvalidTransition,
    JobNotFound,
    ProviderError,
    RegionNotFound,
    Unauthorized,
)
from scheduler.domain.deployments import EndpointConflict
from scheduler.domain.energy import EnergyConflict
from scheduler.domain.progress import ProgressConflict
from scheduler.domain.tokens import TokenNotFound

logger = logging.getLogger(__name__)

HTTP_CREATED = 201
# How long a client should wait before retrying while the database is unreachable.
DATABASE_RETRY_AFTER_S = 5
MAX_MESSAGE_CHARS = 500

# First match wins (isinstance), so subclasses come before their parents.
_STATUS_BY_ERROR: tuple[tuple[type[GreenlightError], int, str], ...] = (
    (InvalidJobSpec, 422, "invalid_request"),
    (JobNotFound, 404, "not_found"),
    (RegionNotFound, 404, "not_found"),
    (TokenNotFound, 404, "not_found"),
    (InvalidTransition, 409, "conflict"),
    (EnergyConflict, 409, "conflict"),
    (ProgressConflict, 409, "conflict"),
    (EndpointConflict, 409, "conflict"),
    (Unauthorized, 401, "unauthorized"),
    (Forbidden, 403, "forbidden"),
    (ProviderError, 503, "unavailable"),
    (ForecastUnavailable, 503, "unavailable"),
    (GreenlightError, 400, "bad_request"),
)
_CODE_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "validation_error",
    500: "internal",
    503: "unavailable",
}
_DESCRIPTIONS = {
    401: "Missing, unknown, revoked or expired token",
    403: "The token may not do this (another tenant, admin only, a worker token)",
    404: "No such job, region or token (another tenant's job reads as not found)",
    409: "Conflicts with the current state (a finished job, a conflicting energy report)",
    413: "Request body over the configured size limit",
    422: "A field breaks a rule; `detail` names each (`loc`) and says why",
    503: "Database or carbon-intensity provider unreachable; retry after `Retry-After` s",
}

# Exceptions that mean the database could not be reached or answered in time, not a bug.
_DATABASE_DOWN = (
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.TimeoutError,
    sqlalchemy.exc.DisconnectionError,
)


def status_for(error: GreenlightError) -> int:
    """The HTTP status a domain error maps to."""
    return next(code for kind, code, _ in _STATUS_BY_ERROR if isinstance(error, kind))


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses=`` documenting ``codes`` with the shared error body."""
    from scheduler.api.schemas import ErrorPublic

    return {code: {"model": ErrorPublic, "description": _DESCRIPTIONS[code]} for code in codes}


def health_status(status: str) -> int:
    """503 only when the replica cannot serve (database down). Stale forecasts leave it
    ``degraded`` but serving: planning falls back, so taking it out would help nobody."""
    return 503 if status == "down" else 200


def safe_text(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` as printable UTF-8 of at most ``limit`` characters: NULs and unpaired
    surrogates are replaced, so an error about bad text can itself be rendered."""
    clean = text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\\x00")
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def error_response(
    status: int, detail: str | list[dict[str, Any]], headers: dict[str, str] | None = None
) -> JSONResponse:
    """The one error body: ``{"code", "detail"}``."""
    body = {"code": _CODE_BY_STATUS.get(status, "error"), "detail": detail}
    return JSONResponse(body, status_code=status, headers=headers)


def error_body_bytes(status: int, detail: str) -> bytes:
    """The error body for middleware that answers before any route runs."""
    body = {"code": _CODE_BY_STATUS.get(status, "error"), "detail": safe_text(detail)}
    return json.dumps(body).encode()


def _validation_items(errors: Iterable[Any]) -> list[dict[str, Any]]:
    """FastAPI's errors without ``input``/``ctx`` (never echoed) and with printable text."""
    items: list[dict[str, Any]] = []
    for error in errors:
        loc: Sequence[Any] = error.get("loc", ())
        items.append(
            {
                "loc": [p if isinstance(p, int) else safe_text(str(p), 200) for p in loc],
                "msg": safe_text(str(error.get("msg", "invalid"))),
                "type": safe_text(str(error.get("type", "value_error")), 100),
            }
        )
        if len(loc) > 2 and tuple(loc[:2]) == ("body", "jobs") and isinstance(loc[2], int):
            # A batch's errors also say which job by position: {index, field, message}.
            field = ".".join(str(p) for p in loc[3:]) or "jobs"
            items[-1].update(index=loc[2], field=safe_text(field, 200), message=items[-1]["msg"])
    return items


def _request_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return error_response(422, _validation_items(errors) or [])


def _greenlight_error(request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, GreenlightError):
        return _unexpected_error(request, exc)
    code = status_for(exc)
    if isinstance(exc, InvalidJobSpecs):
        batch = [
            {"loc": ["body", "jobs", i, *f.split(".")], "msg": m, "type": "invalid_job_spec"}
            for i, f, m in exc.errors
        ]
        return error_response(code, _validation_items(batch))
    if isinstance(exc, InvalidJobSpec):
        loc = ["body", *exc.field.split(".")] if exc.field else ["body"]
        item = {"loc": loc, "msg": exc.message, "type": "invalid_job_spec"}
        return error_response(code, _validation_items([item]))
    headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
    if code == 503:
        headers = {"Retry-After": str(DATABASE_RETRY_AFTER_S)}
    return error_response(code, safe_text(str(exc) or type(exc).__name__), headers)


def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, StarletteHTTPException):
        return _unexpected_error(_request, exc)
    if exc.status_code == 400:
        # FastAPI's only 400: a body it cannot decode (not UTF-8, not JSON). Our routes never
        # raise HTTPException, so this is an invalid request body like any other: a 422.
        item = {"loc": ["body"], "msg": "the body is not valid UTF-8 JSON", "type": "json_invalid"}
        return error_response(422, _validation_items([item]))
    detail = exc.detail if isinstance(exc.detail, str) else "request refused"
    return error_response(exc.status_code, safe_text(detail), dict(exc.headers or {}) or None)


def _database_down(request: Request, exc: Exception) -> JSONResponse:
    # One line, no traceback: an outage is not a bug, and a storm of tracebacks hides the end.
    logger.warning(
        "database unreachable on %s %s: %s",
        request.method,
        request.url.path,
        type(exc).__name__,
    )
    return error_response(
        503,
        "the database is unreachable; retry shortly",
        {"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )


def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, _DATABASE_DOWN) or (
        isinstance(exc, sqlalchemy.exc.DBAPIError) and exc.connection_invalidated
    ):
        return _database_down(request, exc)
    # The shell is the one place a broad catch belongs: log it whole, tell the caller little.
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal server error (see the service log)")


def install_error_handlers(app: FastAPI) -> None:
    """Map every domain error, refused request, database outage (and any bug) onto the one
    JSON error body."""
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(GreenlightError, _greenlight_error)
    for kind in _DATABASE_DOWN:
        app.add_exception_handler(kind, _database_down)
    app.add_exception_handler(Exception, _unexpected_error)
