"""Domain errors -> HTTP responses. The only module that knows HTTP status codes.

Every error body has a human ``detail``: a string, or for 422 a list in FastAPI's own validation
shape (``[{"loc": [...], "msg": ..., "type": ...}]``) so clients parse one format for both
schema errors and domain spec errors.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from scheduler.domain import (
    Forbidden,
    ForecastUnavailable,
    GreenlightError,
    InvalidJobSpec,
    InvalidTransition,
    JobNotFound,
    ProviderError,
    RegionNotFound,
    Unauthorized,
)

logger = logging.getLogger(__name__)

HTTP_CREATED = 201

# First match wins (isinstance), so subclasses come before their parents.
_STATUS_BY_ERROR: tuple[tuple[type[GreenlightError], int], ...] = (
    (InvalidJobSpec, 422),
    (JobNotFound, 404),
    (RegionNotFound, 404),
    (InvalidTransition, 409),
    (Unauthorized, 401),
    (Forbidden, 403),
    (ProviderError, 503),
    (ForecastUnavailable, 503),
    (GreenlightError, 400),
)


def status_for(error: GreenlightError) -> int:
    """The HTTP status a domain error maps to."""
    return next(code for kind, code in _STATUS_BY_ERROR if isinstance(error, kind))


def health_status(status: str) -> int:
    """503 only when the replica cannot serve (database down). Stale forecasts leave it
    ``degraded`` but serving: planning falls back, so taking it out would help nobody."""
    return 503 if status == "down" else 200


def _greenlight_error(_request: Request, exc: Exception) -> JSONResponse:
    if not isinstance(exc, GreenlightError):
        return _unexpected_error(_request, exc)
    code = status_for(exc)
    if isinstance(exc, InvalidJobSpec):
        detail = [{"loc": ["body", exc.field], "msg": exc.message, "type": "invalid_job_spec"}]
        return JSONResponse({"detail": detail}, status_code=code)
    headers = {"WWW-Authenticate": "Bearer"} if code == 401 else None
    message = str(exc) or type(exc).__name__
    return JSONResponse({"detail": message}, status_code=code, headers=headers)


def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # The shell is the one place a broad catch belongs: log it whole, tell the caller little.
    logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse({"detail": "internal server error (see the service log)"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Map every domain error (and any bug) onto a JSON error response."""
    app.add_exception_handler(GreenlightError, _greenlight_error)
    app.add_exception_handler(Exception, _unexpected_error)
