"""The audit log: who changed what. Details hold counts and ids, never health data."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.store.models import AuditEntry


def record(
    session: Session,
    org_id: int,
    *,
    actor: str,
    action: str,
    target_type: str,
    target_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Add one audit entry (flushes, never commits)."""
    entry = AuditEntry(
        org_id=org_id,
        actor=actor,
        action=action,
        target_type=target_type,
        target_id=target_id,
        details=details or {},
    )
    session.add(entry)
    session.flush()
    return entry
