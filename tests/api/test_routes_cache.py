"""The route endpoint's caches: built routes by plan version and carer, verified credentials.

Both caches must never serve what the rules forbid: a new plan version is seen at once, an edit
of live data (an address) within the route cache's TTL, a revocation made elsewhere within the
credential cache's TTL (and at once when made through this process), and a nurse still reads
only their own route whatever the cache holds.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, update

from app.api import security
from app.api.deps import Principal, PrincipalCache
from app.planning import versions
from app.planning.compute import PlanResult
from app.planning.views import RouteCache
from app.routing import Region
from app.settings import Settings
from app.store import users
from app.store.db import make_sessionmaker
from app.store.models import ApiKey, Client, Role, utcnow
from tests.api.test_plans import DAY, load, plan_now, settings
from tests.conftest import Tenant
from tests.planning.district import district_batch

__all__ = ["settings"]  # the small-solver-budget settings fixture of test_plans


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _route(client: TestClient, staff: str, headers: dict[str, str]) -> Any:
    return client.get(f"/v1/staff/{staff}/route?date={DAY}", headers=headers)


def _store_new_version(
    db: Engine, org_id: int, plan_id: int, change: Callable[[list[dict[str, Any]]], None]
) -> int:
    """Store the next version of ``plan_id`` with ``change`` applied to a copy of its routes."""
    with make_sessionmaker(db).begin() as session:
        row = versions.get_plan(session, org_id, plan_id, with_problem=True)
        routes = copy.deepcopy(row.routes)
        change(routes)
        new = versions.store_plan_version(
            session,
            org_id=org_id,
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
        return new.id


@pytest.fixture
def planned(
    client: TestClient, tenant: Tenant, region: Region
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The sample district imported and planned: (import batch, plan)."""
    batch = district_batch(region, DAY)
    load(client, tenant, batch)
    return batch, plan_now(client, tenant)


def _busy(plan: dict[str, Any]) -> list[str]:
    return [r["staff"] for r in plan["routes"] if len(r["stops"]) > 3]


def test_settings_size_the_caches(app: FastAPI, settings: Settings) -> None:
    cache: RouteCache = app.state.route_cache
    assert (cache.max_entries, cache.ttl_s) == (
        settings.route_cache_entries,
        settings.route_cache_ttl_s,
    )
    assert app.state.principal_cache.ttl_s == settings.auth_cache_ttl_s


def test_a_new_version_changes_the_cached_route_of_that_carer_only(
    client: TestClient,
    app: FastAPI,
    tenant: Tenant,
    db: Engine,
    planned: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    _, plan = planned
    mine, theirs = _busy(plan)[:2]
    first = {s: _route(client, s, tenant.headers) for s in (mine, theirs)}
    assert len(app.state.route_cache) == 2  # both routes are now served from the cache
    assert _route(client, mine, tenant.headers).content == first[mine].content

    def later_first_visit(routes: list[dict[str, Any]]) -> None:
        for route in routes:
            if route["staff"] == theirs:
                stop = next(s for s in route["stops"] if s["kind"] == "visit")
                stop["arrival"] += 60

    new_id = _store_new_version(db, tenant.org_id, plan["id"], later_first_visit)

    changed = _route(client, theirs, tenant.headers)
    assert changed.json()["plan_id"] == new_id
    assert changed.headers["etag"] != first[theirs].headers["etag"]
    old_stops = [s["arrival"] for s in first[theirs].json()["stops"]]
    assert [s["arrival"] for s in changed.json()["stops"]] != old_stops

    same = _route(client, mine, tenant.headers)
    assert same.json()["plan_id"] == new_id
    assert same.json()["plan_version"] == 2
    assert same.headers["etag"] == first[mine].headers["etag"]
    assert same.json()["stops"] == first[mine].json()["stops"]
    unchanged = _route(client, mine, {**tenant.headers, "If-None-Match": same.headers["etag"]})
    assert unchanged.status_code == 304


def test_an_edited_address_shows_once_the_cached_route_is_older_than_its_ttl(
    client: TestClient,
    app: FastAPI,
    tenant: Tenant,
    db: Engine,
    planned: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    clock = FakeClock()
    cache: RouteCache = app.state.route_cache
    cache.clock = clock
    _, plan = planned
    staff = _busy(plan)[0]
    before = _route(client, staff, tenant.headers)
    client_id = next(s["client"] for s in before.json()["stops"] if s["kind"] == "visit")
    with make_sessionmaker(db).begin() as session:
        session.execute(
            update(Client)
            .where(Client.org_id == tenant.org_id, Client.external_id == client_id)
            .values(street="Neue Strasse")
        )

    def streets(response: Any) -> set[str]:
        return {
            s["address"]["street"] for s in response.json()["stops"] if s["client"] == client_id
        }

    clock.now += cache.ttl_s / 2
    stale = _route(client, staff, tenant.headers)
    assert stale.headers["etag"] == before.headers["etag"]
    assert "Neue Strasse" not in streets(stale)
    clock.now += cache.ttl_s
    fresh = _route(client, staff, tenant.headers)
    assert streets(fresh) == {"Neue Strasse"}
    assert fresh.headers["etag"] != before.headers["etag"]


def test_route_cache_is_bounded_and_can_be_turned_off() -> None:
    cache = RouteCache(max_entries=2, ttl_s=60)
    for staff_id in (1, 2, 3):
        cache.put(7, staff_id, b"{}", f'"{staff_id}"')
    assert len(cache) == 2
    assert cache.get(7, 1) is None
    assert cache.get(7, 3) is not None
    off = RouteCache(max_entries=100, ttl_s=0)
    off.put(7, 1, b"{}", '"1"')
    assert off.get(7, 1) is None


def test_a_key_revoked_by_another_process_stops_working_within_the_ttl(
    client: TestClient, app: FastAPI, tenant: Tenant, db: Engine
) -> None:
    clock = FakeClock()
    cache: PrincipalCache = app.state.principal_cache
    cache.clock = clock
    created = client.post(
        "/v1/api-keys", json={"name": "vendor", "role": "planner"}, headers=tenant.headers
    ).json()
    key = {"X-API-Key": created["key"]}
    assert client.get("/v1/visits", headers=key).status_code == 200
    # Another API process revokes it: a plain statement, nothing this process would notice.
    with db.begin() as conn:
        conn.execute(update(ApiKey).where(ApiKey.id == created["id"]).values(revoked_at=utcnow()))
    clock.now += cache.ttl_s / 2
    assert client.get("/v1/visits", headers=key).status_code == 200  # the documented window
    clock.now += cache.ttl_s
    assert client.get("/v1/visits", headers=key).status_code == 401


def test_a_key_revoked_through_this_process_stops_at_once(
    client: TestClient, app: FastAPI, tenant: Tenant
) -> None:
    app.state.principal_cache.clock = FakeClock()  # time stands still: only the commit hook acts
    created = client.post(
        "/v1/api-keys", json={"name": "vendor", "role": "planner"}, headers=tenant.headers
    ).json()
    key = {"X-API-Key": created["key"]}
    assert client.get("/v1/visits", headers=key).status_code == 200
    assert client.delete(f"/v1/api-keys/{created['id']}", headers=tenant.headers).status_code == 204
    assert client.get("/v1/visits", headers=key).status_code == 401


def test_with_ttl_zero_every_request_reads_the_key(
    client: TestClient, app: FastAPI, tenant: Tenant, db: Engine
) -> None:
    app.state.principal_cache.ttl_s = 0
    assert client.get("/v1/visits", headers=tenant.headers).status_code == 200
    with db.begin() as conn:
        conn.execute(update(ApiKey).values(revoked_at=utcnow()))
    assert client.get("/v1/visits", headers=tenant.headers).status_code == 401


def test_a_cached_token_is_never_trusted_past_its_expiry() -> None:
    clock = FakeClock()
    cache = PrincipalCache(ttl_s=5, clock=clock)
    who = Principal(org_id=1, role=Role.NURSE, scopes=frozenset({"read"}), actor="user:1")
    cache.put("token", who, valid_s=1)
    assert cache.get("token") == who
    clock.now += 1
    assert cache.get("token") is None
    cache.put("expired", who, valid_s=-3)
    assert cache.get("expired") is None


def test_a_nurse_cannot_read_another_carers_cached_route(
    client: TestClient,
    tenant: Tenant,
    db: Engine,
    settings: Settings,
    planned: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    _, plan = planned
    own, other = _busy(plan)[:2]
    with make_sessionmaker(db).begin() as session:
        nurse = users.create_user(
            session,
            tenant.org_id,
            email="nurse@example.invalid",
            role=Role.NURSE,
            password="a-long-enough-password-1",
            staff=own,
        )
        token, _ = security.issue_token(settings, nurse)
    as_nurse = {"Authorization": f"Bearer {token}"}
    # The other carer's route is cached (read by the admin key) and the nurse knows its ETag.
    other_route = _route(client, other, tenant.headers)
    assert other_route.status_code == 200
    for headers in (as_nurse, {**as_nurse, "If-None-Match": other_route.headers["etag"]}):
        refused = _route(client, other, headers)
        assert refused.status_code == 404
        assert refused.json()["error"]["message"] == "route not found"
        assert "etag" not in refused.headers
    mine = _route(client, own, as_nurse)
    assert mine.status_code == 200
    assert mine.json()["staff"] == own
    # Cached principal or not, the nurse stays limited to their route and to it only.
    assert _route(client, other, as_nurse).status_code == 404
    assert client.get("/v1/clients", headers=as_nurse).status_code == 403
