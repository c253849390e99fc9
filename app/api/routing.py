"""Route class shared by every router: JSON bodies must be strict JSON.

Python's ``json`` module accepts ``NaN``, ``Infinity`` and ``-Infinity``, which are not JSON and
would slip into float fields. They are turned into a 422 that names every place they occur.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute


class _NonFinite:
    """Stands in for a NaN/Infinity literal until the whole document has been read."""

    __slots__ = ("literal",)

    def __init__(self, literal: str) -> None:
        self.literal = literal


#: Deepest nesting of arrays and objects a body may have; real requests nest about six deep.
MAX_DEPTH = 64


def _body_error(kind: str, msg: str) -> RequestValidationError:
    return RequestValidationError([{"type": kind, "loc": ("body",), "msg": msg, "input": None}])


def _check_document(doc: Any) -> list[dict[str, Any]]:
    """Non-finite numbers (with their paths) in ``doc``; raises when it nests too deep.

    Iterative, so a document nested as deep as the parser allowed cannot exhaust the stack here.
    """
    errors: list[dict[str, Any]] = []
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(doc, ("body",))]
    while stack:
        node, loc = stack.pop()
        if isinstance(node, _NonFinite):
            errors.append(
                {
                    "type": "non_finite_number",
                    "loc": loc,
                    "msg": f"{node.literal} is not a valid JSON number",
                    "input": node.literal,
                }
            )
            continue
        if not isinstance(node, dict | list):
            continue
        if len(loc) > MAX_DEPTH:
            msg = f"the body nests arrays and objects deeper than {MAX_DEPTH} levels"
            raise _body_error("too_deeply_nested", msg)
        items = node.items() if isinstance(node, dict) else enumerate(node)
        # Reversed, so errors come out in document order.
        stack.extend((v, (*loc, k)) for k, v in reversed(list(items)))
    return errors


def parse_strict_json(body: bytes) -> Any:
    """Parse ``body`` as JSON, refusing NaN/Infinity with a field path for each occurrence.

    Invalid UTF-8 (code ``invalid_utf8``) and nesting deeper than :data:`MAX_DEPTH`
    (``too_deeply_nested``) are a :class:`RequestValidationError` on ``body`` (422).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        msg = f"the body is not valid UTF-8 (byte {exc.start})"
        raise _body_error("invalid_utf8", msg) from None
    try:
        doc = json.loads(text, parse_constant=_NonFinite)
    except RecursionError:
        msg = f"the body nests arrays and objects deeper than {MAX_DEPTH} levels"
        raise _body_error("too_deeply_nested", msg) from None
    errors = _check_document(doc)
    if errors:
        raise RequestValidationError(errors)
    return doc


class StrictJSONRequest(Request):
    """A request whose ``json()`` is :func:`parse_strict_json`."""

    async def json(self) -> Any:
        """The parsed body (cached)."""
        if not hasattr(self, "_json"):
            self._json = parse_strict_json(await self.body())
        return self._json


def _is_json(request: Request) -> bool:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type == "application/json" or content_type.endswith("+json")


class StrictJSONRoute(APIRoute):
    """An APIRoute that parses bodies with :class:`StrictJSONRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap the default handler so it sees the strict request."""
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            strict = StrictJSONRequest(request.scope, request.receive)
            if _is_json(strict):
                # Parse here, outside FastAPI's body handling, which would turn the validation
                # error into a bare 400; a syntax error is left for FastAPI to report as 422.
                with contextlib.suppress(json.JSONDecodeError):
                    await strict.json()
            return await handler(strict)

        return strict_handler
