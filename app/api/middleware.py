"""ASGI middleware: request body size limit (413), request ids and the access log."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import PAYLOAD_TOO_LARGE, error_response
from app.api.metrics import route_template
from app.logging_setup import request_id_var


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes``: early by Content-Length, else while streaming."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    response = error_response(413, "payload_too_large", PAYLOAD_TOO_LARGE)
                    await response(scope, receive, send)
                    return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # Raised inside request.body(): FastAPI re-raises HTTPExceptions as they are.
                    raise HTTPException(413)
            return message

        await self.app(scope, limited_receive, send)


_REQUEST_ID_HEADER = b"x-request-id"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
access_log = logging.getLogger("app.access")


def _request_id(scope: Scope) -> str:
    for name, value in scope.get("headers", []):
        if name == _REQUEST_ID_HEADER:
            candidate: str = value.decode("latin-1")
            # Taken over only when harmless: it is echoed in a header and written to every log line.
            if _SAFE_ID.match(candidate):
                return candidate
            break
    return uuid.uuid4().hex


class RequestContext:
    """Give every request an id (``X-Request-ID`` in, or a new one; echoed out) and log it once.

    The access line holds the method, the route *template* (never the raw path or query, which
    carry external ids and search terms), the status, the duration and, once authenticated, the
    organisation and a non-personal actor label. Bodies are never logged.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _request_id(scope)
        token = request_id_var.set(rid)
        start = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            principal = scope.get("state", {}).get("principal")
            access_log.info(
                "request",
                extra={
                    "request_id": rid,
                    "method": scope["method"],
                    "route": route_template(scope),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - start) * 1000, 2),
                    "org_id": getattr(principal, "org_id", None),
                    "actor": getattr(principal, "actor", None),
                },
            )
            request_id_var.reset(token)
