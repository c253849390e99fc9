"""Events are data (issue 9): what an event said is stored; every later plan of the day keeps it.

Each test reads the result the way a vendor or planner would (``GET /v1/visits/...``, a fresh
``POST /v1/plans``) and checks it against the events sent, not against the service's own code.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from app.planning import replan as service
from app.planning.inputs import PlanOptions
from app.planning.pool import get_region
from app.planning.versions import get_plan
from app.replan.events import CarerAbsent, ClientUnavailable, VisitCancelled
from app.routing import Region
from app.settings import Settings
from app.store.db import make_sessionmaker
from app.store.models import DayFact, Visit
from tests.api.test_plans import DAY, load, plan_now
from tests.api.test_replan import planned, settings
from tests.conftest import Tenant, count_rows
from tests.planning.district import district_batch

__all__ = ["planned", "settings"]  # fixtures shared with test_replan


def secs(hhmm: str) -> int:
    """``"10:30"`` -> seconds since midnight."""
    h, m = hhmm.split(":")
    return int(h) * 3600 + int(m) * 60


def hhmm(seconds: int) -> str:
    """Seconds since midnight -> ``"HH:MM"``."""
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def post(
    client: TestClient,
    tenant: Tenant,
    plan: dict[str, Any],
    events: list[dict[str, Any]],
    now: str,
) -> dict[str, Any]:
    """POST ``events`` on ``plan`` (its own version); it must make the next version."""
    r = client.post(
        f"/v1/plans/{plan['id']}/events",
        json={"events": events, "now": now},
        headers={**tenant.headers, "If-Match": f'"{plan["version"]}"'},
    )
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def stops(plan: dict[str, Any]) -> list[tuple[str, str, int, int]]:
    """(staff, visit, start, end) of every visit stop."""
    return [
        (r["staff"], s["visit"], secs(s["start"]), secs(s["end"]))
        for r in plan["routes"]
        for s in r["stops"]
        if s["kind"] == "visit"
    ]


def visit(client: TestClient, tenant: Tenant, external_id: str) -> Any:
    """``GET /v1/visits/{external_id}``."""
    return client.get(f"/v1/visits/{external_id}", headers=tenant.headers)


def late_visit(plan: dict[str, Any], after: int) -> tuple[str, str]:
    """(visit, staff) of the earliest visit stop starting after ``after``."""
    staff, vid, _s, _e = min((s for s in stops(plan) if s[2] > after), key=lambda s: s[2])
    return vid, staff


def test_cancelled_visit_reads_cancelled_and_urgent_visit_is_a_visit(
    client: TestClient, tenant: Tenant, planned: dict[str, Any]
) -> None:
    cancelled, _staff = late_visit(planned, secs("11:00"))
    assert visit(client, tenant, cancelled).json()["status"] == "planned"
    client_id = planned["batch"]["clients"][1]["external_id"]
    urgent = {
        "kind": "urgent_visit_added",
        "visit": "urgent-7",
        "client": client_id,
        "windows": [{"start": "11:00", "end": "15:30"}],
        "duration_minutes": 25,
        "competences": [],
    }
    new = post(
        client, tenant, planned, [{"kind": "visit_cancelled", "visit": cancelled}, urgent], "10:00"
    )

    assert visit(client, tenant, cancelled).json()["status"] == "cancelled"
    listed = client.get(
        "/v1/visits",
        params={"status": "cancelled", "date": DAY.isoformat()},
        headers=tenant.headers,
    ).json()
    assert [v["external_id"] for v in listed["items"]] == [cancelled]
    r = visit(client, tenant, "urgent-7")
    assert r.status_code == 200, r.text
    got = r.json()
    assert (got["client"], got["date"], got["duration_minutes"], got["status"]) == (
        client_id,
        DAY.isoformat(),
        25,
        "planned",
    )
    assert got["windows"] == [{"start": "11:00", "end": "15:30"}]
    assert (got["priority"], got["carers_required"], got["origin"]) == ("mandatory", 1, "urgent")
    # The nurse's route shows the urgent visit's task like any other (it had none before).
    carer = next(st for st, v, _s, _e in stops(new) if v == "urgent-7")
    route = client.get(
        f"/v1/staff/{carer}/route", params={"date": DAY.isoformat()}, headers=tenant.headers
    ).json()
    stop = next(s for s in route["stops"] if s["visit"] == "urgent-7")
    assert stop["task"]["duration_minutes"] == 25


def test_fresh_plan_of_the_day_keeps_every_fact_of_its_events(
    client: TestClient, tenant: Tenant, planned: dict[str, Any]
) -> None:
    batch = planned["batch"]
    by_staff: dict[str, int] = {}
    for staff, _v, _s, _e in stops(planned):
        by_staff[staff] = by_staff.get(staff, 0) + 1
    sick = max(sorted(by_staff), key=lambda s: by_staff[s])
    cancelled, _ = late_visit(planned, secs("12:00"))
    client_of = {v["external_id"]: v["client"] for v in batch["visits"]}
    blocked_client = next(
        client_of[v]
        for _st, v, s, _e in sorted(stops(planned), key=lambda x: x[2])
        if s >= secs("12:00") and v != cancelled and client_of[v] != client_of[cancelled]
    )
    urgent_client = batch["clients"][0]["external_id"]
    v2 = post(
        client,
        tenant,
        planned,
        [
            {"kind": "carer_absent", "staff": sick},
            {"kind": "visit_cancelled", "visit": cancelled},
            {
                "kind": "urgent_visit_added",
                "visit": "urgent-1",
                "client": urgent_client,
                "windows": [{"start": "09:00", "end": "16:00"}],
                "duration_minutes": 20,
            },
            {
                "kind": "client_unavailable",
                "client": blocked_client,
                "from_time": "12:00",
                "until_time": "15:00",
            },
        ],
        "06:00",
    )
    # A visit of another carer that started before 10:00 is reported done, 7 minutes late.
    staff, done, start, end = min(
        (s for s in stops(v2) if s[2] < secs("10:00") and s[0] != sick), key=lambda s: s[2]
    )
    v3 = post(
        client,
        tenant,
        v2,
        [
            {
                "kind": "actual_times_reported",
                "visit": done,
                "actual_start": hhmm(start + 420),
                "actual_end": hhmm(end + 420),
            }
        ],
        "10:00",
    )
    assert v3["version"] == 3
    fresh = plan_now(client, tenant)
    assert (fresh["version"], fresh["based_on_version"]) == (4, None)
    placed = stops(fresh)
    visits = [v for _st, v, _s, _e in placed] + [u["visit"] for u in fresh["unassigned"]]
    # The cancelled visit stays away, the urgent one is part of the day.
    assert cancelled not in visits
    assert "urgent-1" in visits
    # The sick carer has no work.
    assert all(st != sick for st, _v, _s, _e in placed)
    # The done visit stays with its carer at its reported times.
    assert (staff, done, start + 420, end + 420) in placed
    # No visit of the unavailable client between 12:00 and 15:00.
    for _st, v, s, e in placed:
        if client_of.get(v) == blocked_client:
            assert e <= secs("12:00") or s >= secs("15:00"), (v, hhmm(s), hhmm(e))
    # The care record reads the reported times.
    got = visit(client, tenant, done).json()
    assert (got["status"], got["actual_start"], got["actual_carer"]) == (
        "completed",
        hhmm(start + 420),
        staff,
    )

    # And the fresh version can be re-planned in turn.
    v5 = post(client, tenant, fresh, [{"kind": "visit_cancelled", "visit": "urgent-1"}], "10:30")
    assert v5["version"] == 5
    assert visit(client, tenant, "urgent-1").json()["status"] == "cancelled"


def test_partial_absence_and_extra_hours_shape_a_fresh_plan(
    client: TestClient, tenant: Tenant, planned: dict[str, Any], db: Engine
) -> None:
    shifts = {s["staff"]: s for s in planned["batch"]["shifts"]}
    staff = sorted(shifts)
    away, extra = staff[0], staff[1]
    end = secs(shifts[extra]["end"])
    post(
        client,
        tenant,
        planned,
        [
            {"kind": "carer_absent", "staff": away, "from_time": "13:30", "until_time": "14:30"},
            {
                "kind": "carer_available",
                "staff": extra,
                "from_time": hhmm(end),
                "until_time": hhmm(end + 3600),
            },
        ],
        "07:00",
    )
    fresh = plan_now(client, tenant)
    for st, v, s, e in stops(fresh):
        if st == away:
            assert e <= secs("13:30") or s >= secs("14:30"), (v, hhmm(s), hhmm(e))
    with make_sessionmaker(db)() as session:
        problem = get_plan(session, tenant.org_id, fresh["id"], with_problem=True).problem
    assert problem is not None
    shift_of = {s["staff"]: s for s in problem["shifts"]}
    assert shift_of[extra]["end"] == end + 3600
    gaps = [b for b in shift_of[away]["breaks"] if b["duration"] == 3600]
    assert gaps
    assert gaps[0]["windows"] == [[secs("13:30"), secs("14:30")]]


def test_a_lost_race_stores_no_fact(
    client: TestClient,
    tenant: Tenant,
    planned: dict[str, Any],
    db: Engine,
    settings: Settings,
) -> None:
    cancelled, sick = late_visit(planned, secs("11:00"))
    client_id = planned["batch"]["clients"][2]["external_id"]
    options = PlanOptions(time_limit_s=1, exploration_level=1, threads=1, continuity_penalty_s=0)
    factory = make_sessionmaker(db)
    with factory() as session:
        prepared = service.prepare_replan(
            session,
            tenant.org_id,
            planned["id"],
            based_on_version=1,
            events=[
                VisitCancelled(cancelled),
                CarerAbsent(sick, secs("12:00")),
                ClientUnavailable(client_id, secs("13:00"), secs("14:00")),
            ],
            now_s=secs("10:00"),
            freeze_s=1200,
            start_threshold_s=3600,
            options=options,
        )
    outcome = service.compute_replan(
        get_region(settings.region_file, settings.osm_cache_dir), prepared.job
    )
    # Meanwhile another planner's change made version 2.
    post(
        client,
        tenant,
        planned,
        [{"kind": "carer_absent", "staff": sick, "from_time": "15:00"}],
        "10:00",
    )
    rows = count_rows(db)
    with factory() as session:
        with pytest.raises(service.StalePlanVersion):
            service.store_replan(session, prepared, outcome, actor="test", event_docs=[])
        session.rollback()
    assert count_rows(db) == rows
    with factory() as session:
        status = session.scalar(select(Visit.status).where(Visit.external_id == cancelled))
        facts = session.scalars(select(DayFact)).all()
    assert status == "planned"
    assert [(f.kind, f.from_s) for f in facts] == [("carer_absent", secs("15:00"))]


def test_an_urgent_visit_cannot_take_a_stored_visits_id(
    client: TestClient, tenant: Tenant, planned: dict[str, Any], db: Engine
) -> None:
    cancelled, _staff = late_visit(planned, secs("11:00"))
    post(client, tenant, planned, [{"kind": "visit_cancelled", "visit": cancelled}], "10:00")
    fresh = plan_now(client, tenant)  # the cancelled visit is not part of this version's day
    rows = count_rows(db)
    r = client.post(
        f"/v1/plans/{fresh['id']}/events",
        json={
            "now": "10:30",
            "events": [
                {
                    "kind": "urgent_visit_added",
                    "visit": cancelled,
                    "client": planned["batch"]["clients"][0]["external_id"],
                    "windows": [{"start": "11:00", "end": "15:00"}],
                    "duration_minutes": 15,
                }
            ],
        },
        headers={**tenant.headers, "If-Match": f'"{fresh["version"]}"'},
    )
    assert r.status_code == 422, r.text
    detail = r.json()["error"]["details"][0]
    assert (detail["path"], detail["code"]) == ("events[0].visit", "duplicate_visit")
    assert count_rows(db) == rows
    assert visit(client, tenant, cancelled).json()["status"] == "cancelled"


def test_absence_before_the_lunch_window_is_honoured_by_the_replan_and_a_fresh_plan(
    client: TestClient, tenant: Tenant, planned: dict[str, Any]
) -> None:
    # 10:00-12:00 ends inside the 11:00-13:30 lunch window: VROOM refused the shift's breaks
    # ("Inconsistent breaks", a 500) because the absence came after the lunch break.
    away = max(
        sorted({st for st, *_ in stops(planned)}),
        key=lambda s: len([x for x in stops(planned) if x[0] == s]),
    )
    absent = {"kind": "carer_absent", "staff": away, "from_time": "10:00", "until_time": "12:00"}
    v2 = post(client, tenant, planned, [absent], "07:00")
    fresh = plan_now(client, tenant)
    for plan in (v2, fresh):
        for st, v, s, e in stops(plan):
            if st == away:
                assert e <= secs("10:00") or s >= secs("12:00"), (v, hhmm(s), hhmm(e))


def test_fresh_plan_at_ten_keeps_what_the_current_version_has_begun(
    client: TestClient, tenant: Tenant, planned: dict[str, Any]
) -> None:
    post(
        client,
        tenant,
        planned,
        [{"kind": "visit_cancelled", "visit": late_visit(planned, secs("12:00"))[0]}],
        "09:00",
    )
    current = client.get(
        "/v1/districts/north/plans/current",
        params={"date": DAY.isoformat()},
        headers=tenant.headers,
    ).json()
    r = client.post(
        "/v1/plans?wait=60",
        # Other solver knobs than version 1: left alone, the solver would choose another day.
        json={
            "district": "north",
            "date": DAY.isoformat(),
            "now": "10:00",
            "options": {"continuity_penalty_s": 0, "exploration_level": 1},
        },
        headers=tenant.headers,
    )
    assert r.status_code == 201, r.text
    fresh = r.json()
    horizon = secs("10:00") + 20 * 60  # REPLAN_FREEZE_MINUTES
    begun = {s for s in stops(current) if s[2] < horizon}
    assert begun
    assert begun <= set(stops(fresh)), sorted(begun - set(stops(fresh)))[:3]
    # Nothing new is planned in the past.
    late = [s for s in stops(fresh) if s not in begun and s[2] < secs("10:00")]
    assert not late, late[:3]


@pytest.mark.parametrize("fresh_in_between", [False, True])
def test_a_carer_sick_all_day_can_come_back(
    client: TestClient, tenant: Tenant, planned: dict[str, Any], fresh_in_between: bool
) -> None:
    """Sick at 07:30, back 13:00-16:00: the second event answered 422 ("no shift") before."""
    by_staff: dict[str, int] = {}
    for staff, _v, _s, _e in stops(planned):
        by_staff[staff] = by_staff.get(staff, 0) + 1
    sick = max(sorted(by_staff), key=lambda s: by_staff[s])
    v2 = post(client, tenant, planned, [{"kind": "carer_absent", "staff": sick}], "07:30")
    assert all(st != sick for st, _v, _s, _e in stops(v2))
    base = plan_now(client, tenant) if fresh_in_between else v2
    assert all(st != sick for st, _v, _s, _e in stops(base))
    back = {"kind": "carer_available", "staff": sick, "from_time": "13:00", "until_time": "16:00"}
    v3 = post(client, tenant, base, [back], "13:00")
    mine = [(s, e) for st, _v, s, e in stops(v3) if st == sick]
    assert all(secs("13:00") <= s and e <= secs("16:00") for s, e in mine), mine
    route = client.get(
        f"/v1/staff/{sick}/route", params={"date": DAY}, headers=tenant.headers
    ).json()
    assert route["plan_version"] == v3["version"]


@pytest.fixture
def day_off(client: TestClient, tenant: Tenant, region: Region) -> tuple[dict[str, Any], str]:
    """The sample district planned while one carer (the returned id) has no shift that day."""
    batch = district_batch(region, DAY)
    off = batch["shifts"][-1]["staff"]
    batch["shifts"] = [s for s in batch["shifts"] if s["staff"] != off]
    load(client, tenant, batch)
    plan = plan_now(client, tenant)
    assert all(r["staff"] != off for r in plan["routes"])
    return plan, off


@pytest.mark.parametrize("fresh_after", [False, True], ids=["replan", "then_fresh_plan"])
def test_a_carer_on_her_day_off_can_be_called_in(
    client: TestClient,
    tenant: Tenant,
    day_off: tuple[dict[str, Any], str],
    fresh_after: bool,
) -> None:
    """`carer_available` for a carer with no shift: she gets exactly those hours, kept after.

    It answered 422 ("no shift for staff member ... today"), so a planner could not call in a
    carer on her day off when another called in sick.
    """
    planned, off = day_off
    by_staff: dict[str, int] = {}
    for staff, _v, _s, _e in stops(planned):
        by_staff[staff] = by_staff.get(staff, 0) + 1
    sick = max(sorted(by_staff), key=lambda s: by_staff[s])
    events = [
        {"kind": "carer_absent", "staff": sick, "from_time": "10:00"},
        {"kind": "carer_available", "staff": off, "from_time": "10:00", "until_time": "16:00"},
    ]
    v2 = post(client, tenant, planned, events, "09:30")
    theirs = [(s, e) for st, _v, s, e in stops(v2) if st == off]
    assert theirs, "the carer called in took over some of the sick carer's visits"
    assert all(secs("10:00") <= s and e <= secs("16:00") for s, e in theirs), theirs
    route = next(r for r in v2["routes"] if r["staff"] == off)
    assert route["stops"][0]["start"] >= "10:00"
    assert route["stops"][-1]["end"] <= "16:00"
    latest = plan_now(client, tenant) if fresh_after else v2
    again = [(s, e) for st, _v, s, e in stops(latest) if st == off]
    assert again
    assert all(secs("10:00") <= s and e <= secs("16:00") for s, e in again)
    assert all(st != sick or s < secs("10:00") for st, _v, s, _e in stops(latest))


def test_hours_for_someone_outside_the_district_are_an_unknown_carer(
    client: TestClient, tenant: Tenant, planned: dict[str, Any], db: Engine
) -> None:
    before = count_rows(db)
    event = {
        "kind": "carer_available",
        "staff": "nobody",
        "from_time": "10:00",
        "until_time": "12:00",
    }
    r = client.post(
        f"/v1/plans/{planned['id']}/events",
        json={"events": [event], "now": "09:00"},
        headers={**tenant.headers, "If-Match": f'"{planned["version"]}"'},
    )
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["loc"] == ["events", 0, "staff"]
    assert count_rows(db) == before
