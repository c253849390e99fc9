"""Re-plans through the API: events become a new version with its diff, or nothing at all."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from app.planning import replan as service
from app.planning.inputs import PlanOptions
from app.planning.pool import get_region
from app.replan.events import VisitCancelled
from app.routing import Region
from app.settings import Settings
from app.store.db import make_sessionmaker
from app.store.models import Plan, PlanEvent
from tests.api.test_plans import DAY, load, plan_now
from tests.conftest import Tenant, count_rows
from tests.planning.district import district_batch

TEN = 10 * 3600


@pytest.fixture
def settings(db: Engine, database_url: str) -> Settings:
    """One-second solves for the day and for each re-plan."""
    return Settings(
        database_url=database_url,
        dev_mode=True,
        solver_time_limit_s=1,
        replan_time_limit_s=1,
        job_heartbeat_s=0.2,
    )


@pytest.fixture
def planned(client: TestClient, tenant: Tenant, region: Region) -> dict[str, Any]:
    """The tenant's sample district is imported and planned (version 1)."""
    batch = district_batch(region, DAY)
    load(client, tenant, batch)
    plan = plan_now(client, tenant)
    plan["batch"] = batch
    return plan


def post_events(
    client: TestClient,
    tenant: Tenant,
    plan: dict[str, Any],
    events: list[dict[str, Any]],
    *,
    version: int | None = None,
    now: str = "10:00",
) -> Any:
    """POST events on ``plan`` based on ``version`` (default: the plan's own) via If-Match."""
    headers = {**tenant.headers, "If-Match": f'"{version or plan["version"]}"'}
    return client.post(
        f"/v1/plans/{plan['id']}/events",
        json={"events": events, "now": now},
        headers=headers,
    )


def secs(hhmm: str) -> int:
    """``"10:30"`` -> seconds since midnight."""
    h, m = hhmm.split(":")
    return int(h) * 3600 + int(m) * 60


def visit_stops(plan: dict[str, Any]) -> dict[str, tuple[str, int, int]]:
    """visit -> (staff, start, end) for every planned visit stop (first carer of doubles)."""
    out: dict[str, tuple[str, int, int]] = {}
    for r in plan["routes"]:
        for s in r["stops"]:
            if s["kind"] == "visit":
                out.setdefault(s["visit"], (r["staff"], secs(s["start"]), secs(s["end"])))
    return out


def busiest_around(plan: dict[str, Any], t: int) -> str:
    """The carer with the most visits before and after ``t``."""

    def score(route: dict[str, Any]) -> int:
        starts = [secs(s["start"]) for s in route["stops"] if s["kind"] == "visit"]
        return min(sum(x < t for x in starts), sum(x >= t + 1800 for x in starts))

    return str(max(plan["routes"], key=score)["staff"])


def test_sick_call_at_ten_keeps_the_morning_and_replaces_the_rest(
    client: TestClient, tenant: Tenant, planned: dict[str, Any], db: Engine
) -> None:
    sick = busiest_around(planned, TEN)
    before = visit_stops(planned)
    mine = {v: s for v, s in before.items() if s[0] == sick}
    r = post_events(
        client, tenant, planned, [{"kind": "carer_absent", "staff": sick, "from_time": "10:00"}]
    )
    assert r.status_code == 201, r.text
    new = r.json()
    assert (new["version"], new["based_on_version"], new["status"]) == (2, 1, "published")
    assert r.headers["etag"] == '"2"'
    after = visit_stops(new)
    left = {u["visit"]: u for u in new["unassigned"]}
    for visit, (_staff, start, end) in mine.items():
        if end <= TEN:
            assert after[visit] == (sick, start, end), visit  # the morning stays exactly
        elif start >= TEN:
            # Re-placed with someone else, or unassigned with a reason.
            assert (visit in after and after[visit][0] != sick) or left[visit]["reason"], visit
    diff = new["diff"]
    assert sick in diff["affected_staff"]
    assert set(diff["orphaned"]) == {v for v, s in mine.items() if s[1] >= TEN}
    assert set(diff["replaced"]) <= set(diff["orphaned"])
    assert all(u["detail"] for u in new["unassigned"])
    old = client.get(f"/v1/plans/{planned['id']}", headers=tenant.headers).json()
    assert old["status"] == "superseded"
    with make_sessionmaker(db)() as session:
        events = session.scalars(select(PlanEvent)).all()
    assert [(e.kind, e.plan_id, e.actor.startswith("api_key:")) for e in events] == [
        ("carer_absent", planned["id"], True)
    ]
    assert events[0].payload["new_version"] == 2


def test_cancellation_frees_time_without_reshuffling_other_carers(
    client: TestClient, tenant: Tenant, planned: dict[str, Any]
) -> None:
    before = visit_stops(planned)
    visit, (staff, _start, _end) = next(
        (v, s) for v, s in sorted(before.items(), key=lambda kv: kv[1][1]) if s[1] > TEN + 3600
    )
    r = post_events(client, tenant, planned, [{"kind": "visit_cancelled", "visit": visit}])
    assert r.status_code == 201, r.text
    new = r.json()
    assert visit not in visit_stops(new)
    assert any(u["visit"] == visit and u["reason"] == "cancelled" for u in new["unassigned"])
    diff = new["diff"]
    assert visit in diff["cancelled"]  # cancelled, not removed (issue 9)
    assert visit not in diff["removed"]
    others = [c for c in diff["carers"] if c["staff_id"] != staff]
    assert others
    assert all(c["mutations"] == 0 for c in others), others
    assert diff["mutations"] == 0


def test_urgent_visit_goes_to_a_carer_with_the_competence(
    client: TestClient, tenant: Tenant, planned: dict[str, Any]
) -> None:
    batch = planned["batch"]
    skills = {s["external_id"]: set(s["competences"]) for s in batch["staff"]}
    # A competence some carers have and others do not.
    every = set.union(*skills.values())
    rare = next(c for c in sorted(every) if not all(c in s for s in skills.values()))
    client_id = batch["clients"][0]["external_id"]
    event = {
        "kind": "urgent_visit_added",
        "visit": "urgent-1",
        "client": client_id,
        "windows": [{"start": "10:30", "end": "16:00"}],
        "duration_minutes": 20,
        "competences": [rare],
    }
    r = post_events(client, tenant, planned, [event])
    assert r.status_code == 201, r.text
    new = r.json()
    placed = visit_stops(new)
    assert "urgent-1" in placed, new["unassigned"]
    assert rare in skills[placed["urgent-1"][0]]
    assert placed["urgent-1"][1] >= 10 * 3600 + 1800
    assert "urgent-1" in new["diff"]["added"]


def test_stale_or_missing_version_stores_nothing(
    client: TestClient, tenant: Tenant, planned: dict[str, Any], db: Engine
) -> None:
    visit = next(iter(visit_stops(planned)))
    cancel = [{"kind": "visit_cancelled", "visit": visit}]
    r = post_events(client, tenant, planned, [{"kind": "carer_absent", "staff": "staff-001"}])
    assert r.status_code == 201, r.text
    rows = count_rows(db)

    stale = post_events(client, tenant, planned, cancel, version=1)
    assert stale.status_code == 409, stale.text
    err = stale.json()["error"]
    assert err["code"] == "plan_conflict"
    assert err["details"][0]["path"] == "based_on_version"
    assert "current version is 2" in err["details"][0]["msg"]
    missing = client.post(
        f"/v1/plans/{planned['id']}/events", json={"events": cancel}, headers=tenant.headers
    )
    assert missing.status_code == 428, missing.text
    bad = client.post(
        f"/v1/plans/{planned['id']}/events",
        json={
            "based_on_version": 2,
            "events": [
                {
                    "kind": "carer_available",
                    "staff": "x",
                    "from_time": "12:00",
                    "until_time": "11:00",
                }
            ],
        },
        headers=tenant.headers,
    )
    assert bad.status_code == 422, bad.text
    assert bad.json()["error"]["details"][0]["path"] == "events[0].until_time"
    unknown = post_events(
        client, tenant, planned, [{"kind": "visit_cancelled", "visit": "nope"}], version=2
    )
    assert unknown.status_code == 422, unknown.text
    assert unknown.json()["error"]["details"][0]["path"] == "events[0].visit"
    assert count_rows(db) == rows


def test_affected_carers_route_etags_change_and_the_others_do_not(
    client: TestClient, tenant: Tenant, planned: dict[str, Any]
) -> None:
    staff = sorted({r["staff"] for r in planned["routes"]})
    tags = {
        s: client.get(f"/v1/staff/{s}/route?date={DAY}", headers=tenant.headers).headers["etag"]
        for s in staff
    }
    sick = busiest_around(planned, TEN)
    r = post_events(
        client, tenant, planned, [{"kind": "carer_absent", "staff": sick, "from_time": "10:00"}]
    )
    assert r.status_code == 201, r.text
    affected = set(r.json()["diff"]["affected_staff"])
    assert sick in affected
    assert set(staff) - affected, "the test needs an unaffected carer"
    for s in staff:
        again = client.get(
            f"/v1/staff/{s}/route?date={DAY}",
            headers={**tenant.headers, "If-None-Match": tags[s]},
        )
        assert again.status_code == (200 if s in affected else 304), s


def test_another_organisation_cannot_replan_or_see_the_plan(
    client: TestClient, tenant: Tenant, other_tenant: Tenant, planned: dict[str, Any], db: Engine
) -> None:
    rows = count_rows(db)
    r = post_events(client, other_tenant, planned, [{"kind": "carer_absent", "staff": "staff-001"}])
    assert r.status_code == 404, r.text
    assert count_rows(db) == rows


def _prepared(db: Engine, org_id: int, plan_id: int, visit: str) -> service.PreparedReplan:
    with make_sessionmaker(db)() as session:
        return service.prepare_replan(
            session,
            org_id,
            plan_id,
            based_on_version=1,
            events=[VisitCancelled(visit)],
            now_s=TEN,
            freeze_s=1200,
            start_threshold_s=3600,
            options=PlanOptions(
                time_limit_s=1, exploration_level=1, threads=1, continuity_penalty_s=0
            ),
        )


def test_two_simultaneous_replans_of_one_version_make_exactly_one_new_version(
    tenant: Tenant, planned: dict[str, Any], db: Engine, settings: Settings
) -> None:
    """Both compute, then both try to store at the same moment: one commits, one conflicts."""
    region = get_region(settings.region_file, settings.osm_cache_dir)
    late = sorted(visit_stops(planned).items(), key=lambda kv: -kv[1][1])
    jobs = [_prepared(db, tenant.org_id, planned["id"], v) for v, _ in late[:2]]
    outcomes = [service.compute_replan(region, p.job) for p in jobs]
    barrier = threading.Barrier(2)
    results: list[str] = []

    def store(k: int) -> None:
        factory = make_sessionmaker(db)
        barrier.wait()
        try:
            with factory.begin() as session:
                service.store_replan(
                    session, jobs[k], outcomes[k], actor="test", event_docs=[{"kind": "x"}]
                )
            results.append("stored")
        except service.StalePlanVersion as exc:
            results.append(f"conflict {exc.current_version}")

    threads = [threading.Thread(target=store, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == ["conflict 2", "stored"]
    with make_sessionmaker(db)() as session:
        versions = session.execute(select(Plan.version, Plan.status)).all()
        events = session.scalars(select(PlanEvent)).all()
    assert sorted((v, s.value) for v, s in versions) == [(1, "superseded"), (2, "published")]
    assert len(events) == 1


@pytest.mark.postgres
def test_concurrent_api_replans_on_postgresql_make_one_version(
    client: TestClient, tenant: Tenant, db: Engine, request: pytest.FixtureRequest
) -> None:
    if db.dialect.name != "postgresql":
        pytest.skip("the real concurrent HTTP race runs on PostgreSQL")
    planned: dict[str, Any] = request.getfixturevalue("planned")
    late = sorted(visit_stops(planned).items(), key=lambda kv: -kv[1][1])
    answers: list[int] = []

    def send(visit: str) -> None:
        r = post_events(client, tenant, planned, [{"kind": "visit_cancelled", "visit": visit}])
        answers.append(r.status_code)

    threads = [threading.Thread(target=send, args=(v,)) for v, _ in late[:2]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(answers) == [201, 409]
    with make_sessionmaker(db)() as session:
        versions = sorted(session.scalars(select(Plan.version)).all())
        events = session.scalars(select(PlanEvent)).all()
    assert versions == [1, 2]
    assert len(events) == 1
