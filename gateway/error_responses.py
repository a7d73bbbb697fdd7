"""The one place where exceptions become HTTP responses with OpenAI's error envelope.

Handlers are registered in three layers:

1. framework: malformed JSON and schema violations (400, naming the ``param``), and Starlette's
   own HTTP errors (404 for unknown routes, 405, ...);
2. domain: gateway and registry exceptions, each mapped to a status, a ``type`` and a ``code``;
3. last resort: anything else becomes a 500 whose message carries no traceback or path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from adapters.exceptions import AdapterConflict, AdapterNotFound, ArtifactCorrupt, InvalidAdapter
from gateway.exceptions import (
    AuthenticationFailed,
    ClientDisconnected,
    ContextLengthExceeded,
    EngineDead,
    EngineUnavailable,
    InvalidRequest,
    ModelNotFound,
    PermissionDenied,
    QueueFull,
    ResourceNotFound,
    ServiceUnavailable,
)
from switchyard.db import is_connection_error
from switchyard.exceptions import SwitchyardError
from tuner.exceptions import InvalidJob, InvalidPolicy, InvalidTrainingFile, JobConflict, TuningResourceNotFound

logger = logging.getLogger(__name__)
MAX_REPORTED_ERRORS = 3


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


@dataclass(frozen=True)
class ErrorKind:
    status: int
    type: str
    code: str
    message: str | None = None
    """A fixed message, for exceptions whose own text must not reach clients (it may hold a DSN)."""


CLIENT_CLOSED = 499
"""nginx's status for "the client went away before the response ended"."""

# Most specific class first: the first isinstance match wins.
DOMAIN_ERRORS: tuple[tuple[type[Exception], ErrorKind], ...] = (
    (ContextLengthExceeded, ErrorKind(400, "invalid_request_error", "context_length_exceeded")),
    (InvalidRequest, ErrorKind(400, "invalid_request_error", "invalid_value")),
    (InvalidAdapter, ErrorKind(400, "invalid_request_error", "invalid_adapter")),
    (InvalidTrainingFile, ErrorKind(400, "invalid_request_error", "invalid_training_file")),
    (InvalidJob, ErrorKind(400, "invalid_request_error", "invalid_value")),
    (InvalidPolicy, ErrorKind(400, "invalid_request_error", "invalid_value")),
    (AuthenticationFailed, ErrorKind(401, "authentication_error", "invalid_api_key")),
    (PermissionDenied, ErrorKind(403, "permission_error", "insufficient_permissions")),
    (ModelNotFound, ErrorKind(404, "invalid_request_error", "model_not_found")),
    (AdapterNotFound, ErrorKind(404, "invalid_request_error", "model_not_found")),
    (ResourceNotFound, ErrorKind(404, "invalid_request_error", "not_found")),
    (TuningResourceNotFound, ErrorKind(404, "invalid_request_error", "not_found")),
    (AdapterConflict, ErrorKind(409, "invalid_request_error", "conflict")),
    (JobConflict, ErrorKind(409, "invalid_request_error", "conflict")),
    (QueueFull, ErrorKind(429, "rate_limit_error", "queue_full")),
    (ClientDisconnected, ErrorKind(CLIENT_CLOSED, "invalid_request_error", "client_closed_request")),
    (ArtifactCorrupt, ErrorKind(503, "service_unavailable_error", "artifact_corrupt")),
    (EngineDead, ErrorKind(503, "service_unavailable_error", "engine_dead")),
    (EngineUnavailable, ErrorKind(503, "service_unavailable_error", "engine_unavailable")),
    (ServiceUnavailable, ErrorKind(503, "service_unavailable_error", "service_unavailable")),
)
INTERNAL = ErrorKind(500, "server_error", "internal_error")
DATABASE_UNAVAILABLE = ErrorKind(
    503, "service_unavailable_error", "database_unavailable", "The database is unavailable; retry shortly."
)

# Declared on every route so the OpenAPI contract lists the error shape.
ERROR_RESPONSES: dict[int | str, dict] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (400, "Invalid request"),
        (401, "Missing or invalid API key"),
        (404, "Not found"),
        (500, "Internal error"),
    )
}
ADMIN_ERROR_RESPONSES: dict[int | str, dict] = {
    **ERROR_RESPONSES,
    403: {"model": ErrorResponse, "description": "Admin key required"},
}
REGISTRY_ERROR_RESPONSES: dict[int | str, dict] = {
    **ADMIN_ERROR_RESPONSES,
    409: {"model": ErrorResponse, "description": "Conflicts with the registry's state"},
    503: {"model": ErrorResponse, "description": "The engine could not load the version"},
}
GENERATION_ERROR_RESPONSES: dict[int | str, dict] = {
    **ERROR_RESPONSES,
    429: {"model": ErrorResponse, "description": "Queue full; retry after Retry-After seconds"},
    503: {"model": ErrorResponse, "description": "Engine unavailable"},
}


def error_kind(exc: Exception) -> ErrorKind:
    for cls, kind in DOMAIN_ERRORS:
        if isinstance(exc, cls):
            return kind
    # Only a database that cannot be reached is an outage; one that refused what it was sent
    # is a bug here, and must not look like the database being down.
    if isinstance(exc, DBAPIError) and is_connection_error(exc):
        return DATABASE_UNAVAILABLE
    return INTERNAL


def error_body(message: str, kind: ErrorKind, param: str | None = None) -> dict:
    return {"error": {"message": message, "type": kind.type, "param": param, "code": kind.code}}


def error_payload(exc: Exception) -> tuple[int, dict]:
    """Status and envelope for a domain exception (also used inside SSE streams)."""
    kind = error_kind(exc)
    if kind is INTERNAL:
        return kind.status, error_body("The server had an error while processing your request.", kind)
    if kind.message is not None:
        return kind.status, error_body(kind.message, kind)
    message = getattr(exc, "message", str(exc))
    return kind.status, error_body(message, kind, getattr(exc, "param", None))


def _domain_handler(request: Request, exc: Exception) -> JSONResponse:
    status, body = error_payload(exc)
    if status >= 500 and error_kind(exc) is INTERNAL:
        logger.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    headers = None
    if isinstance(exc, QueueFull):
        headers = {"Retry-After": str(exc.retry_after_s)}
    elif isinstance(exc, AuthenticationFailed):
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse(body, status_code=status, headers=headers)


def _param_of(loc: tuple) -> str | None:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or None


def _validation_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    kind = ErrorKind(400, "invalid_request_error", "invalid_value")
    if any(e.get("type") == "json_invalid" for e in errors):
        kind = ErrorKind(400, "invalid_request_error", "invalid_json")
        return JSONResponse(error_body("We could not parse the JSON body of your request.", kind), status_code=400)
    if errors and all(e.get("type") == "missing" for e in errors):
        kind = ErrorKind(400, "invalid_request_error", "missing_required_parameter")
    shown = [f"{_param_of(tuple(e.get('loc', ()))) or 'body'}: {e.get('msg', 'invalid')}" for e in errors]
    message = "; ".join(shown[:MAX_REPORTED_ERRORS])
    if len(shown) > MAX_REPORTED_ERRORS:
        message += f" (and {len(shown) - MAX_REPORTED_ERRORS} more)"
    param = _param_of(tuple(errors[0].get("loc", ()))) if errors else None
    return JSONResponse(error_body(message, kind, param), status_code=400)


def _http_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    kind = ErrorKind(exc.status_code, "invalid_request_error", code)
    return JSONResponse(error_body(str(exc.detail), kind), status_code=exc.status_code, headers=exc.headers)


def _last_resort_handler(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    status, body = error_payload(exc)
    return JSONResponse(body, status_code=status)


def register_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(SwitchyardError, _domain_handler)
    app.add_exception_handler(DBAPIError, _domain_handler)
    app.add_exception_handler(Exception, _last_resort_handler)
