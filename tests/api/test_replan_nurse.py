"""A nurse's phone reports actual times of their own visits; nothing else, nobody else's."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from app.api import security
from app.settings import Settings
from app.store import users
from app.store.db import make_sessionmaker
from app.store.models import Plan, PlanEvent, Role
from tests.api.test_replan import TEN, planned, settings, visit_stops
from tests.conftest import Tenant, count_rows

__all__ = ["planned", "settings"]  # fixtures reused from test_replan


def nurse_headers(engine: Engine, settings: Settings, tenant: Tenant, staff: str) -> dict[str, str]:
    """Sign-in token of a new nurse user linked to the staff row ``staff``."""
    with make_sessionmaker(engine).begin() as session:
        user = users.create_user(
            session,
            tenant.org_id,
            email=f"nurse-{staff.lower()}@test.example",
            role=Role.NURSE,
            password="correct horse battery staple",
            staff=staff,
        )
        token, _ = security.issue_token(settings, user)
    return {"Authorization": f"Bearer {token}"}


def post_as(
    client: TestClient, headers: dict[str, str], plan: dict[str, Any], events: list[Any]
) -> Any:
    """POST ``events`` on ``plan`` (based on its own version) with ``headers``."""
    return client.post(
        f"/v1/plans/{plan['id']}/events",
        json={"events": events, "now": "10:00"},
        headers={**headers, "If-Match": f'"{plan["version"]}"'},
    )


def plan_count(engine: Engine) -> int:
    """Plan versions stored."""
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(Plan)) or 0)


@pytest.fixture
def mine(planned: dict[str, Any]) -> tuple[str, str, str]:
    """(nurse's staff, one of their visits, a visit of another carer) of the planned day."""
    stops = visit_stops(planned)
    # A visit of the nurse after the frozen part (now 10:00); reporting one already done is
    # test_a_nurse_reports_a_visit_already_done_to_the_minute.
    own, (staff, _start, _end) = min(
        ((v, s) for v, s in stops.items() if s[1] >= TEN + 3600), key=lambda vs: vs[1][1]
    )
    other = next(v for v, s in stops.items() if s[0] != staff)
    return staff, own, other


def hhmm(seconds: int) -> str:
    """Seconds since midnight -> ``"HH:MM"``."""
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"  # rounds down to the minute


def test_a_nurse_reports_actual_times_of_their_own_visit(
    client: TestClient,
    tenant: Tenant,
    planned: dict[str, Any],
    mine: tuple[str, str, str],
    db: Engine,
    settings: Settings,
) -> None:
    staff, visit, _ = mine
    headers = nurse_headers(db, settings, tenant, staff)
    _, start, end = visit_stops(planned)[visit]
    event = {
        "kind": "actual_times_reported",
        "visit": visit,
        "actual_start": hhmm(start + 59),  # not before the planned start (travel stays valid)
        "actual_end": hhmm(end),
    }
    r = post_as(client, headers, planned, [event])
    assert r.status_code == 201, r.text
    assert (r.json()["version"], r.json()["based_on_version"]) == (2, 1)
    with make_sessionmaker(db)() as session:
        events = session.scalars(select(PlanEvent)).all()
    assert [(e.kind, e.actor.startswith("user:")) for e in events] == [
        ("actual_times_reported", True)
    ]


def test_a_nurse_cannot_report_another_carers_visit(
    client: TestClient,
    tenant: Tenant,
    planned: dict[str, Any],
    mine: tuple[str, str, str],
    db: Engine,
    settings: Settings,
) -> None:
    staff, own, other = mine
    headers = nurse_headers(db, settings, tenant, staff)
    before = count_rows(db)
    for events in (
        [{"kind": "visit_delayed", "visit": other, "actual_start": "10:30"}],
        [
            {"kind": "actual_times_reported", "visit": own, "actual_start": "09:00"},
            {"kind": "actual_times_reported", "visit": other, "actual_start": "09:30"},
        ],
    ):
        r = post_as(client, headers, planned, events)
        assert r.status_code == 404, r.text
        assert r.json()["error"]["code"] == "not_found"
    assert plan_count(db) == 1
    assert count_rows(db) == before


@pytest.mark.parametrize(
    "event",
    [
        {"kind": "carer_absent", "staff": "{staff}", "from_time": "10:00"},
        {"kind": "visit_cancelled", "visit": "{own}"},
    ],
    ids=["carer_absent", "visit_cancelled"],
)
def test_a_nurse_may_not_post_other_events(
    client: TestClient,
    tenant: Tenant,
    planned: dict[str, Any],
    mine: tuple[str, str, str],
    db: Engine,
    settings: Settings,
    event: dict[str, str],
) -> None:
    staff, own, _ = mine
    headers = nurse_headers(db, settings, tenant, staff)
    body = {k: v.format(staff=staff, own=own) for k, v in event.items()}
    before = count_rows(db)
    r = post_as(client, headers, planned, [body])
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "forbidden"
    assert plan_count(db) == 1
    assert count_rows(db) == before


def test_a_nurse_reports_a_visit_already_done_to_the_minute(
    client: TestClient,
    tenant: Tenant,
    planned: dict[str, Any],
    db: Engine,
    settings: Settings,
) -> None:
    """The phone's usual report: a morning visit, done, times to the minute (so possibly a few
    seconds before the planned start, quicker than the matrix): a fact, a new version, no 500."""
    stops = visit_stops(planned)
    visit, (staff, start, end) = min(
        ((v, s) for v, s in stops.items() if s[2] <= TEN - 1800),
        key=lambda vs: vs[1][1],
    )
    headers = nurse_headers(db, settings, tenant, staff)
    event = {
        "kind": "actual_times_reported",
        "visit": visit,
        "actual_start": hhmm(start),  # rounded down: before the planned start
        "actual_end": hhmm(end),
    }
    r = post_as(client, headers, planned, [event])
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 2
    assert plan_count(db) == 2
