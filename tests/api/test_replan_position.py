"""A carer's phone position as an event: the route resumes from there; a nurse reports her own."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from app.settings import Settings
from app.store.db import make_sessionmaker
from app.store.models import PlanEvent
from tests.api.test_replan import planned, post_events, settings
from tests.api.test_replan_nurse import mine, nurse_headers, plan_count, post_as
from tests.conftest import Tenant, count_rows

__all__ = ["mine", "planned", "settings"]  # fixtures reused


def _point(stop: dict[str, Any]) -> tuple[float, float]:
    return stop["location"]["lat"], stop["location"]["lon"]


def _elsewhere(plan: dict[str, Any], staff: str) -> tuple[float, float]:
    """A client's place on another carer's route: somewhere this carer does not start."""
    route = next(r for r in plan["routes"] if r["staff"] == staff)
    home = _point(route["stops"][0])
    for r in plan["routes"]:
        for s in r["stops"]:
            if s["kind"] == "visit" and _point(s) != home:
                return _point(s)
    raise AssertionError("no other place in the plan")


def test_a_carer_not_yet_under_way_starts_where_her_phone_is(
    client: TestClient, tenant: Tenant, planned: dict[str, Any]
) -> None:
    staff = planned["routes"][0]["staff"]
    lat, lon = _elsewhere(planned, staff)
    event = {"kind": "carer_position_reported", "staff": staff, "lat": lat, "lon": lon}
    r = post_events(client, tenant, planned, [{**event, "at": "06:30"}], now="06:30")
    assert r.status_code == 201, r.text
    route = next(x for x in r.json()["routes"] if x["staff"] == staff)
    start = route["stops"][0]
    assert start["kind"] == "start"
    assert _point(start) == pytest.approx((lat, lon), abs=1e-6)
    assert start["start"] >= "06:30"


def test_a_nurse_reports_her_own_position_and_nobody_elses(
    client: TestClient,
    tenant: Tenant,
    planned: dict[str, Any],
    mine: tuple[str, str, str],
    db: Engine,
    settings: Settings,
) -> None:
    staff, _own, _other = mine
    headers = nurse_headers(db, settings, tenant, staff)
    lat, lon = _elsewhere(planned, staff)
    other = next(r["staff"] for r in planned["routes"] if r["staff"] != staff)
    before = count_rows(db)
    event = {"kind": "carer_position_reported", "lat": lat, "lon": lon, "at": "10:00"}
    r = post_as(client, headers, planned, [{**event, "staff": other}])
    assert r.status_code == 404, r.text
    assert count_rows(db) == before
    r = post_as(client, headers, planned, [{**event, "staff": staff}])
    assert r.status_code == 201, r.text
    with make_sessionmaker(db)() as session:
        kinds = [e.kind for e in session.scalars(select(PlanEvent))]
    assert kinds == ["carer_position_reported"]


@pytest.mark.parametrize(
    ("change", "field", "status"),
    [
        ({"lat": 91.0}, "lat", 422),
        ({"lon": -181.0}, "lon", 422),
        ({"at": "25:00"}, "at", 422),
        ({"lat": 0.0, "lon": 0.0}, None, 422),  # in the sea, far outside the region
        ({"staff": "nobody"}, "staff", 422),
    ],
    ids=["lat", "lon", "at", "off_region", "unknown_staff"],
)
def test_a_bad_position_names_its_field_and_stores_nothing(
    client: TestClient,
    tenant: Tenant,
    planned: dict[str, Any],
    db: Engine,
    change: dict[str, Any],
    field: str | None,
    status: int,
) -> None:
    staff = planned["routes"][0]["staff"]
    lat, lon = _elsewhere(planned, staff)
    event = {"kind": "carer_position_reported", "staff": staff, "lat": lat, "lon": lon}
    before = count_rows(db)
    r = post_events(client, tenant, planned, [{**event, "at": "10:00", **change}])
    assert r.status_code == status, r.text
    body = r.json()["error"]
    if field is not None:
        assert any(d["loc"][-1] == field for d in body["details"]), body
    assert count_rows(db) == before
    assert plan_count(db) == 1
