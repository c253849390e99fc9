"""Every change leaves an audit entry: who, what, which row; never health data."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from app.store.db import make_sessionmaker
from app.store.models import AuditEntry
from tests.security.conftest import World
from tests.security.test_isolation import PUBLIC, _call, build_request, operations

#: Writes not exercised here, and why: they start real solves or load the OSM region (their
#: audit entries, plan.requested / plan.published / replan, are tested with the planning code).
HEAVY = {
    ("POST", "/v1/plans"),
    ("POST", "/v1/plans/{plan_id}/events"),
    ("POST", "/v1/clients/geocode"),
}


def _entries(engine: Engine) -> list[AuditEntry]:
    with make_sessionmaker(engine)() as session:
        return list(session.scalars(select(AuditEntry).order_by(AuditEntry.id)))


def test_every_successful_write_is_audited_without_health_data(
    client: TestClient, app: FastAPI, world: World, db: Engine
) -> None:
    writes = [
        op
        for op in operations(app)
        if op.method != "GET" and (op.method, op.path) not in PUBLIC | HEAVY
    ]
    # Deletions last, so the rows the other writes name still exist.
    writes.sort(key=lambda op: op.method == "DELETE")
    missing = []
    succeeded = 0
    for op in writes:
        before = len(_entries(db))
        response = _call(client, build_request(op, world, "A"), world.admin.headers)
        if response.status_code >= 300:
            continue  # e.g. 409 for a row still referred to: nothing changed, nothing to audit
        succeeded += 1
        if len(_entries(db)) <= before:
            missing.append(f"{op.method} {op.path}")
    assert succeeded >= 10
    assert missing == []
    entries = _entries(db)
    assert all(e.actor == f"user:{world.admin.user_id}" for e in entries[-succeeded:])
    text = " ".join(f"{e.target_id} {e.details}" for e in entries).lower()
    assert "t1leak" not in text
    assert "neutral street" not in text


def test_refused_requests_leave_no_audit_entry(
    client: TestClient, world: World, db: Engine
) -> None:
    with make_sessionmaker(db)() as session:
        before = session.scalar(select(func.count()).select_from(AuditEntry))
    client.post("/v1/import", json={"districts": []}, headers=world.nurse_a.headers)
    client.post(f"/v1/users/{world.admin.user_id}/disable", headers=world.planner_a.headers)
    with make_sessionmaker(db)() as session:
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == before
