"""A populated tenant with people of every role, and a second tenant, for the security tests.

Tenant 1 has two districts, A and B, each with a team, two staff, a client, a template, a visit,
a shift, a plan and a solve job. Every free-text field of tenant 1 carries a marker
(``T1LEAK-A`` / ``T1LEAK-B``), so a response leaking tenant 1's data, or district B's data to a
planner of district A, is found by a substring search.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from app.api import security
from app.settings import Settings
from app.store import tenants, users
from app.store.db import make_sessionmaker
from app.store.models import Base, District, Plan, PlanStatus, Role, SolveJob, Staff, User
from tests.conftest import Tenant, make_tenant

PASSWORD = "correct horse battery staple"
DAY = "2025-03-03"


def district_batch(d: str) -> dict[str, Any]:
    """Care data of one district ``d`` ("A" or "B") with the leak marker in every text field."""
    mark = f"T1LEAK-{d}"
    return {
        "districts": [{"external_id": f"d{d}", "name": f"{mark} district"}],
        "teams": [{"external_id": f"team-{d}", "name": f"{mark} team", "district": f"d{d}"}],
        "staff": [
            {
                "external_id": f"S-{d}{n}",
                "name": f"{mark} carer {n}",
                "district": f"d{d}",
                "team": f"team-{d}",
                "competences": ["level3", "insulin"],
                "travel_mode": "drive",
                "start": {"lat": 47.141, "lon": 9.521},
            }
            for n in (1, 2)
        ],
        "clients": [
            {
                "external_id": f"C-{d}",
                "district": f"d{d}",
                "street": f"{mark} street",
                "housenumber": "5",
                "city": f"{mark} city",
                "coordinates": {"lat": 47.1398, "lon": 9.5215},
                "notes": f"{mark} notes",
            }
        ],
        "templates": [
            {
                "external_id": f"T-{d}",
                "client": f"C-{d}",
                "weekdays": [1],
                "windows": [{"start": "07:30", "end": "08:30"}],
                "duration_minutes": 15,
                "competences": ["insulin"],
                "valid_from": "2025-03-01",
            }
        ],
        "visits": [
            {
                "external_id": f"V-{d}",
                "client": f"C-{d}",
                "date": DAY,
                "windows": [{"start": "07:30", "end": "08:30"}],
                "duration_minutes": 15,
                "competences": ["insulin"],
            }
        ],
        "shifts": [
            {
                "external_id": f"SH-{d}",
                "staff": f"S-{d}1",
                "date": DAY,
                "start": "07:00",
                "end": "15:00",
            }
        ],
    }


@dataclass
class Person:
    """A signed-in user and their bearer token."""

    user_id: int
    email: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        """Authorization header with the token."""
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class World:
    """Everything the security tests act on."""

    t1: Tenant
    t2: Tenant
    admin: Person
    planner_a: Person
    nurse_a: Person
    other_admin: Person
    #: Per district ("A"/"B"): ids the path parameters are built from.
    ids: dict[str, dict[str, Any]] = field(default_factory=dict)
    spare_key_id: int = 0


def _person(session: Any, settings: Settings, user: User) -> Person:
    token, _ = security.issue_token(settings, user)
    return Person(user_id=user.id, email=user.email, token=token)


def build_world(client: TestClient, engine: Engine, settings: Settings) -> World:
    """Tenant 1 with districts A and B and people of each role; tenant 2 with its own admin."""
    t1 = make_tenant(engine, "T1LEAK-A organisation")
    t2 = make_tenant(engine, "Other Care")
    for d in ("A", "B"):
        response = client.post("/v1/import", json=district_batch(d), headers=t1.headers)
        assert response.status_code == 200, response.text
    with make_sessionmaker(engine).begin() as session:
        ids: dict[str, dict[str, Any]] = {}
        for d in ("A", "B"):
            district = session.scalars(
                select(District).where(
                    District.org_id == t1.org_id, District.external_id == f"d{d}"
                )
            ).one()
            plan = Plan(
                org_id=t1.org_id,
                district_id=district.id,
                date=dt.date.fromisoformat(DAY),
                version=1,
                status=PlanStatus.PUBLISHED,
                routes=[],
                unassigned=[],
                kpis={},
                created_by=f"T1LEAK-{d} planner",
            )
            session.add(plan)
            session.flush()
            job = SolveJob(
                id=f"00000000-0000-4000-8000-00000000000{1 if d == 'A' else 2}",
                org_id=t1.org_id,
                kind="plan",
                params={"district_id": district.id, "date": DAY},
                created_by=f"T1LEAK-{d}",
            )
            session.add(job)
            session.flush()
            ids[d] = {
                "district": f"d{d}",
                "district_id": district.id,
                "plan_id": plan.id,
                "job_id": job.id,
                "staff": f"S-{d}1",
                "other_staff": f"S-{d}2",
            }
        spare = tenants.create_api_key(session, t1.org_id, name="T1LEAK-A spare", role=Role.PLANNER)
        admin = users.create_user(
            session, t1.org_id, email="admin@t1.example", role=Role.ADMIN, password=PASSWORD
        )
        planner = users.create_user(
            session,
            t1.org_id,
            email="planner-a@t1.example",
            role=Role.PLANNER,
            password=PASSWORD,
            districts=["dA"],
        )
        nurse = users.create_user(
            session,
            t1.org_id,
            email="nurse-a@t1.example",
            role=Role.NURSE,
            password=PASSWORD,
            staff="S-A1",
        )
        other = users.create_user(
            session, t2.org_id, email="admin@t2.example", role=Role.ADMIN, password=PASSWORD
        )
        assert session.scalar(select(Staff.id).where(Staff.external_id == "S-A1")) is not None
        world = World(
            t1=t1,
            t2=t2,
            admin=_person(session, settings, admin),
            planner_a=_person(session, settings, planner),
            nurse_a=_person(session, settings, nurse),
            other_admin=_person(session, settings, other),
            ids=ids,
            spare_key_id=spare.record.id,
        )
        ids["A"]["user_id"] = planner.id
        ids["B"]["user_id"] = planner.id
    if "/v1/webhooks" in client.app.openapi()["paths"]:  # type: ignore[attr-defined]
        hook = client.post(
            "/v1/webhooks", json={"url": "https://t1leak-a.example/hook"}, headers=t1.headers
        )
        assert hook.status_code == 201, hook.text
        for d in ("A", "B"):
            ids[d]["subscription_id"] = hook.json()["id"]
    return world


@pytest.fixture
def world(client: TestClient, db: Engine, settings: Settings) -> World:
    """The populated tenants (see the module docstring)."""
    return build_world(client, db, settings)


def tenant_fingerprint(engine: Engine, org_id: int) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every tenant-owned table of ``org_id`` (to prove a request changed nothing)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if "org_id" not in table.c:
                continue
            cols = [c for c in table.c if c.name not in {"last_used_at", "heartbeat_at"}]
            stmt = select(*cols).where(table.c.org_id == org_id).order_by(*table.primary_key)
            out[table.name] = [tuple(r) for r in conn.execute(stmt)]
    return out
