"""Manual steering through the API on the demo day: the offline road map, moves (preview,
refusal, commit, pin kept by a later re-plan), recommendations, comparisons and the live stream.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.api.app import create_app
from app.routing import Region
from app.settings import Settings
from app.store import seed
from app.store.models import Plan

DAY = dt.date(2026, 12, 1)


@pytest.fixture
def settings(db: Engine, database_url: str, tmp_path: Path) -> Settings:
    """The service's settings, short solver budgets, the demo's files in a temporary dir."""
    return Settings(
        database_url=database_url,
        dev_mode=True,
        data_dir=tmp_path,
        region_warmup=False,
        replan_time_limit_s=1,
        solver_time_limit_s=2,
    )


@pytest.fixture
def demo(settings: Settings, region: Region) -> Iterator[tuple[TestClient, dict[str, str], int]]:
    """The demo day planned, and a client with the demo admin key."""
    result = seed.seed_demo(settings, day=DAY)
    assert result.plan_id is not None, result.summary
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client, {"X-API-Key": result.api_key}, result.plan_id


def _stops(plan: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(r["staff"], s) for r in plan["routes"] for s in r["stops"] if s["kind"] == "visit"]


def _movable(client: TestClient, h: dict[str, str], plan: dict[str, Any]) -> tuple[str, Any]:
    """A planned visit with a recommended place on another carer's route."""
    for staff, stop in _stops(plan):
        r = client.get(f"/v1/plans/{plan['id']}/recommendations?visit={stop['visit']}", headers=h)
        assert r.status_code == 200, r.text
        others = [it for it in r.json()["items"] if it["staff"] != staff]
        if others:
            return stop["visit"], others[0]
    raise AssertionError("no visit has a valid place with another carer")


def test_region_roads_are_simplified_polylines(demo: Any) -> None:
    client, h, _plan_id = demo
    r = client.get("/v1/region/roads", headers=h)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["mode"] == "drive"
    assert len(body["lines"]) == len(body["main"]) > 500
    assert all(len(line) >= 2 for line in body["lines"])
    x0, y0, x1, y1 = body["bbox"]
    assert all(x0 <= x <= x1 and y0 <= y <= y1 for line in body["lines"] for x, y in line)
    assert len(r.content) < 1_000_000  # a base map, not the graph


def test_a_move_is_previewed_refused_committed_and_its_pin_survives_a_replan(
    demo: Any, db: Engine
) -> None:
    client, h, plan_id = demo
    plan = client.get(f"/v1/plans/{plan_id}", headers=h).json()
    visit, place = _movable(client, h, plan)
    shifts = client.get(f"/v1/shifts?district=demo&date={DAY}", headers=h).json()["items"]
    late = max(shifts, key=lambda s: s["start"])
    url = f"/v1/plans/{plan_id}/moves"
    # Refused: at 06:00 with the carer whose shift starts last; nothing stored.
    r = client.post(url, json={"visit": visit, "staff": late["staff"], "start": "06:00"}, headers=h)
    assert r.status_code == 200, r.text
    refused = r.json()
    assert refused["valid"] is False
    assert {v["rule"] for v in refused["violations"]} & {"time_window", "shift_bounds"}
    assert all(v["message"] for v in refused["violations"])
    assert refused["plan"] is None
    # A commit without a base version is refused with 428, an invalid one with 422.
    move = {"visit": visit, "staff": place["staff"], "start": place["start"], "pin": True}
    r = client.post(url, json={**move, "preview": False}, headers=h)
    assert r.status_code == 428, r.text
    bad = {"visit": visit, "staff": late["staff"], "start": "06:00", "preview": False}
    r = client.post(url, json=bad, headers={**h, "If-Match": f'"{plan["version"]}"'})
    assert r.status_code == 422, r.text
    # The recommended place previews valid, then commits as the next version.
    r = client.post(url, json=move, headers=h)
    preview = r.json()
    assert preview["valid"] is True, preview
    assert preview["travel_delta_s"] == place["travel_delta_s"]
    assert preview["continuity"]["after_preferred"] == place["preferred"]
    r = client.post(
        url, json={**move, "preview": False}, headers={**h, "If-Match": f'"{plan["version"]}"'}
    )
    assert r.status_code == 200, r.text
    new = r.json()["plan"]
    assert new["version"] == plan["version"] + 1
    assert r.headers["ETag"] == f'"{new["version"]}"'
    moved = client.get(f"/v1/plans/{new['id']}", headers=h).json()
    assert [s for s, st in _stops(moved) if st["visit"] == visit] == [place["staff"]]
    assert moved["diff"]["manual_move"] == {"visit": visit, "staff": place["staff"], "pin": True}
    # The old version is stale now.
    r = client.post(
        url, json={**move, "preview": False}, headers={**h, "If-Match": f'"{plan["version"]}"'}
    )
    assert r.status_code == 409, r.text
    # A later re-plan (the carer the visit came from is off sick) keeps the pinned visit.
    others = [s for s, st in _stops(moved) if s != place["staff"]]
    r = client.post(
        f"/v1/plans/{new['id']}/events",
        json={"events": [{"kind": "carer_absent", "staff": others[0]}], "now": "06:00"},
        headers={**h, "If-Match": f'"{new["version"]}"'},
    )
    assert r.status_code == 201, r.text
    assert [s for s, st in _stops(r.json()) if st["visit"] == visit] == [place["staff"]]
    # The pin travels with the day's problem into the re-planned version.
    with Session(db) as session:
        problem = session.scalar(select(Plan.problem).where(Plan.id == r.json()["id"]))
    pinned = {v["id"]: v["pinned_staff"] for v in problem["visits"]}
    assert pinned[visit] == place["staff"]


def test_recommendations_compare_and_the_live_stream(demo: Any) -> None:
    client, h, plan_id = demo
    plan = client.get(f"/v1/plans/{plan_id}", headers=h).json()
    visit, place = _movable(client, h, plan)
    recs = client.get(f"/v1/plans/{plan_id}/recommendations?visit={visit}", headers=h).json()
    assert 1 <= len(recs["items"]) <= 5
    assert len({it["staff"] for it in recs["items"]}) == len(recs["items"])
    r = client.get(f"/v1/plans/{plan_id}/recommendations?visit=nope", headers=h)
    assert r.status_code == 422
    # A new visit to a client of the day, described in the query.
    some_client = _stops(plan)[0][1]["client"]
    new_visit = {
        "client": some_client,
        "duration_minutes": 15,
        "window_start": "08:00",
        "window_end": "18:00",
    }
    r = client.get(f"/v1/plans/{plan_id}/recommendations", params=new_visit, headers=h)
    assert r.status_code == 200, r.text
    fresh = r.json()
    assert fresh["visit"] is None
    assert fresh["client"] == some_client
    assert 1 <= len(fresh["items"]) <= 5
    assert all("08:00" <= it["start"] <= "17:45" for it in fresh["items"])
    r = client.get(
        f"/v1/plans/{plan_id}/recommendations",
        params={**new_visit, "visit": visit},
        headers=h,
    )
    assert r.status_code == 422
    r = client.post(
        f"/v1/plans/{plan_id}/moves",
        json={"visit": visit, "staff": place["staff"], "start": place["start"], "preview": False},
        headers={**h, "If-Match": f'"{plan["version"]}"'},
    )
    assert r.status_code == 200, r.text
    new = r.json()["plan"]
    r = client.get(f"/v1/plans/compare?from={plan_id}&to={new['id']}", headers=h)
    assert r.status_code == 200, r.text
    cmp = r.json()
    assert cmp["summary"].startswith(f"Version 1 to version {new['version']}:")
    by = {c["staff"]: c for c in cmp["carers"]}
    assert visit in by[place["staff"]]["added"]
    assert any(visit in line and "taken over from" in line for line in by[place["staff"]]["lines"])
    assert any(visit in c["removed"] for c in cmp["carers"] if c["staff"] != place["staff"])
    same = client.get(f"/v1/plans/compare?from={new['id']}&to={new['id']}", headers=h).json()
    assert same["carers"] == []
    # The stream answers at once with the current version, or when asked after it, ends quietly.
    r = client.get(f"/v1/districts/demo/plans/stream?date={DAY}", headers=h)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert f'"version": {new["version"]}' in r.text
    r = client.get(
        f"/v1/districts/demo/plans/stream?date={DAY}&after={new['version']}&wait=0", headers=h
    )
    assert "event: plan" not in r.text
