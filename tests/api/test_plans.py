"""Plans through the API: create with wait, versions, validation, reasons, GeoJSON, isolation."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.planning import versions
from app.routing import Region
from app.scheduling import validate
from app.settings import Settings
from app.store.db import make_sessionmaker
from tests.conftest import Tenant
from tests.planning.district import DISTRICT, district_batch

DAY = dt.date(2026, 12, 1)


@pytest.fixture
def settings(db: Engine, database_url: str) -> Settings:
    """Small solver budget and a fast heartbeat, so plans take about a second."""
    return Settings(
        database_url=database_url,
        dev_mode=True,
        solver_time_limit_s=1,
        job_heartbeat_s=0.2,
    )


def load(client: TestClient, tenant: Tenant, batch: dict[str, Any]) -> None:
    """Import ``batch`` for ``tenant`` (must succeed)."""
    r = client.post("/v1/import", json=batch, headers=tenant.headers)
    assert r.status_code == 200, r.text


def plan_now(client: TestClient, tenant: Tenant) -> dict[str, Any]:
    """POST a plan with wait; it must come back as a stored plan."""
    r = client.post(
        "/v1/plans?wait=60",
        json={"district": DISTRICT, "date": DAY.isoformat()},
        headers=tenant.headers,
    )
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"/v1/plans/{r.json()['id']}"
    body: dict[str, Any] = r.json()
    return body


@pytest.fixture
def loaded(client: TestClient, tenant: Tenant, region: Region) -> dict[str, Any]:
    """The tenant's sample district is imported."""
    batch = district_batch(region, DAY)
    load(client, tenant, batch)
    return batch


def test_plan_with_wait_is_version_1_then_2_supersedes_it(
    client: TestClient, tenant: Tenant, loaded: dict[str, Any], db: Engine, region: Region
) -> None:
    first = plan_now(client, tenant)
    assert (first["version"], first["status"], first["district"]) == (1, "published", DISTRICT)
    visits = {v["external_id"] for v in loaded["visits"]}
    planned = [s["visit"] for r in first["routes"] for s in r["stops"] if s["kind"] == "visit"]
    left = [u["visit"] for u in first["unassigned"]]
    # Every visit is accounted for: planned (double visits twice) or unassigned with a reason.
    assert set(planned) | set(left) == visits
    assert not set(planned) & set(left)
    assert first["kpis"]["visits_planned"] == len(set(planned))
    assert all(u["reason"] and u["detail"] for u in first["unassigned"])

    second = plan_now(client, tenant)
    assert second["version"] == 2
    old = client.get(f"/v1/plans/{first['id']}", headers=tenant.headers).json()
    assert old["status"] == "superseded"
    current = client.get(
        f"/v1/districts/{DISTRICT}/plans/current?date={DAY}", headers=tenant.headers
    )
    assert current.status_code == 200
    assert (current.json()["id"], current.json()["version"]) == (second["id"], 2)

    # The independent validator finds nothing wrong with the stored plan.
    with make_sessionmaker(db)() as session:
        problem, plan = versions.load_plan_state(session, tenant.org_id, second["id"], region)
    assert validate(problem, plan) == []
    assert len(plan.routes) == len(second["routes"])


def test_competence_nobody_on_shift_has_is_unassigned_with_that_reason(
    client: TestClient, tenant: Tenant, region: Region
) -> None:
    batch = district_batch(region, DAY)
    special = dict(batch["visits"][0])
    special.update(external_id=f"palliative@{DAY}", competences=["palliative"], depends_on=None)
    batch["visits"].append(special)
    load(client, tenant, batch)
    plan = plan_now(client, tenant)
    r = client.get(f"/v1/plans/{plan['id']}/unassigned", headers=tenant.headers)
    assert r.status_code == 200
    items = {u["visit"]: u for u in r.json()["items"]}
    assert r.json()["total"] == len(items)
    assert items[f"palliative@{DAY}"]["reason"] == "no_qualified_staff"
    assert items[f"palliative@{DAY}"]["client"] == special["client"]
    assert "palliative" in items[f"palliative@{DAY}"]["detail"]


def test_ungeocoded_and_off_road_clients_are_unassigned_with_reasons(
    client: TestClient, tenant: Tenant, region: Region
) -> None:
    batch = district_batch(region, DAY)
    template = batch["visits"][0]
    extra_clients = [
        # No coordinates and an address the extract does not know.
        {"external_id": "nowhere", "street": "Nirgendweg", "housenumber": "99", "city": "Atlantis"},
        # Coordinates in Lake Constance's hinterland, kilometres from any road of the region.
        {
            "external_id": "offroad",
            "street": "Feld",
            "housenumber": "1",
            "coordinates": {"lat": 47.02, "lon": 9.62},
        },
    ]
    for c in extra_clients:
        batch["clients"].append({"district": DISTRICT, **c})
        visit = dict(template)
        visit.update(
            external_id=f"{c['external_id']}-visit@{DAY}",
            client=c["external_id"],
            competences=["level2"],
            depends_on=None,
            carers_required=1,
            windows=[{"start": "09:00", "end": "12:00"}],
        )
        batch["visits"].append(visit)
    load(client, tenant, batch)
    plan = plan_now(client, tenant)
    reasons = {u["visit"]: u for u in plan["unassigned"]}
    assert reasons[f"nowhere-visit@{DAY}"]["reason"] == "not_geocoded"
    assert reasons[f"offroad-visit@{DAY}"]["reason"] == "unreachable"
    assert "offroad" in reasons[f"offroad-visit@{DAY}"]["detail"]
    assert plan["kpis"]["unassigned_not_geocoded"] == 1


def test_geojson_has_a_road_line_per_route_and_a_point_per_stop_without_addresses(
    client: TestClient, tenant: Tenant, loaded: dict[str, Any]
) -> None:
    plan = plan_now(client, tenant)
    r = client.get(f"/v1/plans/{plan['id']}/geojson", headers=tenant.headers)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/geo+json")
    doc = r.json()
    assert doc["type"] == "FeatureCollection"
    lines = [f for f in doc["features"] if f["geometry"]["type"] == "LineString"]
    points = [f for f in doc["features"] if f["geometry"]["type"] == "Point"]
    assert len(lines) == len(plan["routes"])
    stops = sum(1 for route in plan["routes"] for s in route["stops"] if s["location"])
    assert len(points) == stops
    for line in lines:
        assert line["properties"]["along_roads"] is True
        # Along the roads: many more vertices than stops.
        route = next(x for x in plan["routes"] if x["shift"] == line["properties"]["shift"])
        assert len(line["geometry"]["coordinates"]) > len(route["stops"])
        for lon, lat in line["geometry"]["coordinates"]:
            assert 9.4 < lon < 9.7
            assert 47.0 < lat < 47.3
    text = r.text
    streets = {c["street"] for c in loaded["clients"]}
    assert not any(street in text for street in streets)


def test_unknown_district_is_404_and_bad_wait_is_422(client: TestClient, tenant: Tenant) -> None:
    body = {"district": "nope", "date": DAY.isoformat()}
    r = client.post("/v1/plans", json=body, headers=tenant.headers)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"
    r = client.post("/v1/plans?wait=-1", json=body, headers=tenant.headers)
    assert r.status_code == 422
    r = client.post(
        "/v1/plans", json={**body, "options": {"time_limit_s": 0}}, headers=tenant.headers
    )
    assert r.status_code == 422


def test_another_tenant_sees_none_of_the_plan_endpoints(
    client: TestClient, tenant: Tenant, other_tenant: Tenant, loaded: dict[str, Any]
) -> None:
    plan = plan_now(client, tenant)
    staff = loaded["staff"][0]["external_id"]
    jobs = client.get(f"/v1/plans/{plan['id']}", headers=tenant.headers)
    assert jobs.status_code == 200
    h = other_tenant.headers
    for path in (
        f"/v1/plans/{plan['id']}",
        f"/v1/plans/{plan['id']}/geojson",
        f"/v1/plans/{plan['id']}/unassigned",
        f"/v1/districts/{DISTRICT}/plans/current?date={DAY}",
        f"/v1/staff/{staff}/route?date={DAY}",
    ):
        r = client.get(path, headers=h)
        assert r.status_code == 404, path
        assert set(r.json()) == {"error"}
    r = client.post("/v1/plans", json={"district": DISTRICT, "date": DAY.isoformat()}, headers=h)
    assert r.status_code == 404
    listed = client.get("/v1/plans", headers=h)
    assert listed.json()["total"] == 0
