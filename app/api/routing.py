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


def _find_non_finite(node: Any, loc: tuple[str | int, ...]) -> list[dict[str, Any]]:
    if isinstance(node, _NonFinite):
        return [
            {
                "type": "non_finite_number",
                "loc": loc,
                "msg": f"{node.literal} is not a valid JSON number",
                "input": node.literal,
            }
        ]
    if isinstance(node, dict):
        return [e for k, v in node.items() for e in _find_non_finite(v, (*loc, k))]
    if isinstance(node, list):
        return [e for i, v in enumerate(node) for e in _find_non_finite(v, (*loc, i))]
    return []


def parse_strict_json(body: bytes) -> Any:
    """Parse ``body`` as JSON, refusing NaN/Infinity with a field path for each occurrence."""
    doc = json.loads(body, parse_constant=_NonFinite)
    errors = _find_non_finite(doc, ("body",))
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
