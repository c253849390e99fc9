"""The one place where errors become HTTP responses.

Every error body has the same shape::

    {"error": {"code": "invalid_input", "message": "...",
               "details": [{"loc": ["visits", 3, "windows", 0, "end"],
                            "path": "visits[3].windows[0].end",
                            "code": "window_end_before_start", "msg": "..."}]}}

Domain errors (app.errors) map to a status here; request validation errors keep Pydantic's error
type as ``code``. Input values are never echoed back or logged: they may be health data.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route, compile_path

from app import errors as e
from app.api import metrics

log = logging.getLogger(__name__)

STATUS: dict[type[e.DomainError], int] = {
    e.InvalidInput: 422,
    e.NotFound: 404,
    e.Conflict: 409,
    e.PlanConflict: 409,
    e.IdempotencyKeyReused: 422,
    e.Unauthenticated: 401,
    e.Forbidden: 403,
    e.GeocodingFailed: 422,
    e.Unroutable: 422,
    e.InfeasibleVisit: 422,
    e.RegionUnavailable: 503,
    e.SolverUnavailable: 503,
}

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "too_many_requests",
}


PAYLOAD_TOO_LARGE = "the request body is larger than the limit (MAX_BODY_BYTES)"


class ErrorDetailOut(BaseModel):
    """One problem with one field."""

    loc: list[str | int] = Field(examples=[["visits", 3, "windows", 0, "end"]])
    path: str = Field(examples=["visits[3].windows[0].end"])
    code: str = Field(examples=["window_end_before_start"])
    msg: str = Field(examples=["the window must end after it starts"])
    ctx: dict[str, Any] | None = Field(
        default=None,
        description="Machine-readable facts about the problem, e.g. the allowed codes of "
        "`unknown_competence`; left out when there are none.",
        examples=[{"allowed": ["insulin", "level2", "level3"]}],
    )


class ErrorOut(BaseModel):
    """What went wrong."""

    code: str = Field(examples=["invalid_input"])
    message: str
    details: list[ErrorDetailOut] = Field(default_factory=list)


class ErrorBody(BaseModel):
    """The body of every 4xx/5xx response."""

    error: ErrorOut


def status_of(exc: e.DomainError) -> int:
    """The HTTP status for a domain error (the most specific class wins)."""
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 400


def error_response(
    status: int,
    code: str,
    message: str,
    details: Iterable[e.ErrorDetail] = (),
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Build the common error body."""
    body = ErrorBody(
        error=ErrorOut(
            code=code,
            message=message,
            details=[
                ErrorDetailOut(
                    loc=list(d.loc),
                    path=d.path,
                    code=d.code,
                    msg=d.msg,
                    ctx=None if d.ctx is None else dict(d.ctx),
                )
                for d in details
            ],
        )
    )
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


def _loc(raw: Sequence[Any]) -> tuple[str | int, ...]:
    loc = tuple(p if isinstance(p, int) else str(p) for p in raw)
    # Body fields read best without the "body" prefix; query/path/header keep theirs.
    return loc[1:] if loc[:1] == ("body",) and len(loc) > 1 else loc


def validation_details(errors: Sequence[Any]) -> list[e.ErrorDetail]:
    """Turn Pydantic/FastAPI validation errors into error details (without the input values)."""
    out = []
    for err in errors:
        code = str(err.get("type", "invalid"))
        msg = str(err.get("msg", "invalid value"))
        if code == "json_invalid":
            ctx = err.get("ctx") or {}
            msg = f"the body is not valid JSON: {ctx.get('error', 'parse error')}"
        out.append(e.ErrorDetail(_loc(err.get("loc", ())), code, msg))
    return out


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, e.DomainError)
    status = status_of(exc)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return error_response(status, exc.code, exc.message, exc.details, headers)


async def _request_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = validation_details(exc.errors())
    n = len(details)
    return error_response(
        422, "invalid_input", f"{n} invalid field(s); nothing was stored", details
    )


_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _method_table(app: FastAPI) -> list[tuple[re.Pattern[str], frozenset[str]]]:
    """Path pattern and methods of every operation (OpenAPI) and plain route, built once."""
    table: list[tuple[re.Pattern[str], frozenset[str]]] | None = getattr(
        app.state, "allow_table", None
    )
    if table is None:
        table = []
        for path, item in app.openapi().get("paths", {}).items():
            methods = frozenset(m.upper() for m in item) & _HTTP_METHODS
            table.append((compile_path(path)[0], methods))
        for route in app.routes:
            if isinstance(route, Route) and route.methods:
                table.append((route.path_regex, frozenset(route.methods)))
        app.state.allow_table = table
    return table


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers on the request's path.

    Starlette's 405 names only the methods of the first route that matched the path, while
    several routes (GET, PUT and DELETE of one resource) often share it.
    """
    path = request.scope.get("path", "")
    methods: set[str] = set()
    for pattern, route_methods in _method_table(request.app):
        if pattern.match(path):
            methods.update(route_methods)
    return sorted(methods)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
    headers = dict(exc.headers or {})
    if exc.status_code == 413:
        message = PAYLOAD_TOO_LARGE
    if exc.status_code == 405:
        allowed = allowed_methods(request)
        if allowed:
            headers["Allow"] = ", ".join(allowed)
    return error_response(exc.status_code, code, message, headers=headers)


async def _integrity_error(_request: Request, exc: Exception) -> JSONResponse:
    # A race between two writers (the batch was validated, then someone else wrote first).
    log.warning("integrity error mapped to 409: %s", type(exc).__name__)
    return error_response(409, "conflict", "the change conflicts with a concurrent change; retry")


async def _data_error(_request: Request, exc: Exception) -> JSONResponse:
    # The database refused a value the schema let through (a NUL character in a text, a number
    # beyond the column's range): the caller's input, so a 422, never a 500.
    log.warning("data error mapped to 422: %s", type(exc).__name__)
    return error_response(
        422, "invalid_input", "a value cannot be stored (out of range or a NUL character)"
    )


async def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    log.error("database error: %s", type(exc).__name__)
    return error_response(
        503,
        "database_unavailable",
        "the database is unavailable; retry",
        headers={"Retry-After": "5"},
    )


async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
    # The formatter adds the message of the service's own exceptions and their violations.
    log.error("unhandled %s", type(exc).__name__, exc_info=exc)
    violations = getattr(exc, "violations", None)
    if violations:
        metrics.count_validation_failures(violations, kind="request", outcome="refused")
    return error_response(500, "internal_error", "internal error")


def install(app: FastAPI) -> None:
    """Register every handler on ``app``."""
    app.add_exception_handler(e.DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(IntegrityError, _integrity_error)
    app.add_exception_handler(DataError, _data_error)
    app.add_exception_handler(OperationalError, _database_unavailable)
    app.add_exception_handler(Exception, _unexpected)
