"""Stored responses for ``Idempotency-Key`` requests, per organisation."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import IdempotencyKeyReused
from app.store.models import IdempotencyKey


def request_fingerprint(method: str, path: str, canonical_body: str) -> str:
    """SHA-256 over what makes two requests "the same request"."""
    digest = hashlib.sha256()
    for part in (method.upper(), path, canonical_body):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def find_replay(session: Session, org_id: int, key: str, fingerprint: str) -> IdempotencyKey | None:
    """The stored response for ``key`` if the request matches it; None if the key is new.

    Raises :class:`IdempotencyKeyReused` when the key was used for a different request.
    """
    stmt = select(IdempotencyKey).where(IdempotencyKey.org_id == org_id, IdempotencyKey.key == key)
    stored = session.scalars(stmt).first()
    if stored is None:
        return None
    if stored.request_hash != fingerprint:
        msg = "this Idempotency-Key was already used with a different request"
        raise IdempotencyKeyReused(msg)
    return stored


def remember(
    session: Session,
    org_id: int,
    key: str,
    *,
    method: str,
    path: str,
    fingerprint: str,
    status: int,
    body: dict[str, Any],
) -> None:
    """Store the response of a request made with ``key`` (flushes; the request commits)."""
    session.add(
        IdempotencyKey(
            org_id=org_id,
            key=key,
            method=method.upper(),
            path=path,
            request_hash=fingerprint,
            response_status=status,
            response_body=body,
        )
    )
    session.flush()
