"""The nurses' route: that carer's stops only, addresses and tasks, ETag and 304."""

from __future__ import annotations

import copy
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.planning import versions
from app.planning.compute import PlanResult
from app.routing import Region
from app.store.db import make_sessionmaker
from tests.api.test_plans import DAY, load, plan_now, settings
from tests.conftest import Tenant
from tests.planning.district import district_batch

__all__ = ["settings"]  # the module's settings fixture (small solver budget)


def _route_of(plan: dict[str, Any], staff: str) -> list[dict[str, Any]]:
    return [s for r in plan["routes"] if r["staff"] == staff for s in r["stops"]]


def test_route_has_exactly_that_carers_stops_and_answers_304_on_its_etag(
    client: TestClient, tenant: Tenant, region: Region
) -> None:
    batch = district_batch(region, DAY)
    load(client, tenant, batch)
    plan = plan_now(client, tenant)
    staff = next(r["staff"] for r in plan["routes"] if len(r["stops"]) > 3)

    r = client.get(f"/v1/staff/{staff}/route?date={DAY}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["staff"], body["plan_id"], body["plan_version"]) == (staff, plan["id"], 1)
    expected = _route_of(plan, staff)
    assert [(s["kind"], s["visit"], s["start"]) for s in body["stops"]] == [
        (s["kind"], s["visit"], s["start"]) for s in expected
    ]
    assert [s["sequence"] for s in body["stops"]] == list(range(1, len(expected) + 1))
    clients = {c["external_id"]: c for c in batch["clients"]}
    visits = {v["external_id"]: v for v in batch["visits"]}
    for stop in body["stops"]:
        if stop["kind"] != "visit":
            continue
        c = clients[stop["client"]]
        assert stop["address"]["street"] == c["street"]
        assert stop["address"]["housenumber"] == c["housenumber"]
        assert stop["task"]["competences"] == sorted(visits[stop["visit"]]["competences"])
        assert stop["navigation"]["osm"].startswith("https://www.openstreetmap.org/directions?")
        assert stop["navigation"]["geo"].startswith("geo:")

    etag = r.headers["etag"]
    assert etag.startswith('"')
    again = client.get(
        f"/v1/staff/{staff}/route?date={DAY}",
        headers={**tenant.headers, "If-None-Match": etag},
    )
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    other = client.get(
        f"/v1/staff/{staff}/route?date={DAY}",
        headers={**tenant.headers, "If-None-Match": '"something-else"'},
    )
    assert other.status_code == 200


def test_etag_survives_a_new_version_that_changes_only_another_carer(
    client: TestClient, tenant: Tenant, region: Region, db: Engine
) -> None:
    load(client, tenant, district_batch(region, DAY))
    plan = plan_now(client, tenant)
    busy = [r["staff"] for r in plan["routes"] if len(r["stops"]) > 3]
    mine, theirs = busy[0], busy[1]
    tag = {
        s: client.get(f"/v1/staff/{s}/route?date={DAY}", headers=tenant.headers).headers["etag"]
        for s in (mine, theirs)
    }

    # A new version in which only the other carer's day changes (their first visit 1 min later).
    with make_sessionmaker(db).begin() as session:
        row = versions.get_plan(session, tenant.org_id, plan["id"], with_problem=True)
        routes = copy.deepcopy(row.routes)
        for route in routes:
            if route["staff"] == theirs:
                stop = next(s for s in route["stops"] if s["kind"] == "visit")
                stop["arrival"] += 60
        new = versions.store_plan_version(
            session,
            org_id=tenant.org_id,
            district_id=row.district_id,
            day=DAY,
            result=PlanResult(
                routes=routes,
                unassigned=row.unassigned,
                kpis=row.kpis,
                problem=row.problem or {},
                geometry=row.geometry or {},
                solve_time_s=0.0,
            ),
            created_by="test",
            based_on_version=row.version,
        )
        new_id = new.id

    for staff, same in ((mine, True), (theirs, False)):
        r = client.get(
            f"/v1/staff/{staff}/route?date={DAY}",
            headers={**tenant.headers, "If-None-Match": tag[staff]},
        )
        if same:
            assert r.status_code == 304
        else:
            assert r.status_code == 200
            assert r.json()["plan_id"] == new_id
            assert r.headers["etag"] != tag[staff]


def test_unknown_staff_or_day_without_plan_is_404(
    client: TestClient, tenant: Tenant, region: Region
) -> None:
    load(client, tenant, district_batch(region, DAY))
    r = client.get(f"/v1/staff/nobody/route?date={DAY}", headers=tenant.headers)
    assert r.status_code == 404
    r = client.get(f"/v1/staff/staff-001/route?date={DAY}", headers=tenant.headers)
    assert r.status_code == 404
    assert "no published plan" in r.json()["error"]["message"]
