"""``Idempotency-Key`` support for POST endpoints: same key + same body -> the stored response."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session

from app.api.deps import Principal
from app.store import idempotency

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description=(
            "Any unique string (a UUID). Repeating a request with the same key and body returns "
            "the first response without doing the work again; the same key with a different "
            "body is refused with 422."
        ),
    ),
]

REPLAY_HEADER = "Idempotent-Replayed"
T = TypeVar("T", bound=BaseModel)


def run_idempotent(
    request: Request,
    session: Session,
    principal: Principal,
    key: str | None,
    payload: BaseModel,
    work: Callable[[], T],
    *,
    status: int = 200,
) -> T | JSONResponse:
    """Run ``work`` once per (organisation, key); replay its stored response afterwards."""
    if key is None:
        return work()
    fingerprint = idempotency.request_fingerprint(
        request.method, request.url.path, payload.model_dump_json()
    )
    stored = idempotency.find_replay(session, principal.org_id, key, fingerprint)
    if stored is not None:
        return JSONResponse(
            stored.response_body,
            status_code=stored.response_status,
            headers={REPLAY_HEADER: "true"},
        )
    result = work()
    idempotency.remember(
        session,
        principal.org_id,
        key,
        method=request.method,
        path=request.url.path,
        fingerprint=fingerprint,
        status=status,
        body=result.model_dump(mode="json"),
    )
    return result
