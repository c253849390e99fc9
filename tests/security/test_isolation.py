"""Isolation matrix: every operation of the OpenAPI schema, called as every kind of outsider.

The operations come from ``app.openapi()``, so an endpoint added later is covered without
touching this file, or fails here until it gets a request body or a path-parameter value below
(the failure message says which). Path parameters are real ids of tenant 1, so a 404 means
"isolated", not "bad id".

- no credential -> 401 (except the public routes listed below);
- an admin of another tenant -> 403/404 on anything naming tenant 1's rows, never a byte of tenant
  1's data, and tenant 1's rows unchanged;
- a nurse of tenant 1 -> 403 everywhere except the endpoints open to nurses, where another carer's
  route is 404;
- a planner of district A, aimed at district B -> 403/404, lists without B's rows, nothing changed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.store.tenants import DEFAULT_COMPETENCES
from tests.security.conftest import DAY, World, tenant_fingerprint

#: Routes anyone may call. Probes carry no tenant data; sign-in is how a person gets a credential.
#: (/metrics and the docs pages are not in the OpenAPI schema; test_operations covers /metrics.)
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("POST", "/v1/auth/token"),
}

#: The only operations a nurse credential may call: who they are, and a carer's route (the handler
#: then allows exactly their own). Every other operation must answer a nurse with 403.
NURSE_OPEN = {
    ("GET", "/v1/auth/me"),
    ("GET", "/v1/staff/{external_id}/route"),
}

#: ``external_id`` values by the path's resource segment (``/v1/<segment>/{external_id}``).
EXTERNAL_IDS = {
    "clients": "C-{d}",
    "staff": "S-{d}1",
    "shifts": "SH-{d}",
    "visits": "V-{d}",
    "visit-templates": "T-{d}",
    "districts": "d{d}",
}

#: Other path parameters, from the ids of district ``d`` (see conftest.World.ids).
PATH_VALUES: dict[str, Callable[[World, str], Any]] = {
    "plan_id": lambda w, d: w.ids[d]["plan_id"],
    "job_id": lambda w, d: w.ids[d]["job_id"],
    "district": lambda w, d: w.ids[d]["district"],
    "user_id": lambda w, d: w.ids[d]["user_id"],
    "key_id": lambda w, d: w.spare_key_id,
    "subscription_id": lambda w, d: w.ids[d]["subscription_id"],
}

#: Required query parameters by name.
QUERY_VALUES: dict[str, Callable[[World, str], Any]] = {
    "date": lambda w, d: DAY,
    "visit": lambda w, d: f"V-{d}",
    "from": lambda w, d: w.ids[d]["plan_id"],
    "to": lambda w, d: w.ids[d]["plan_id"],
}

_WINDOW = [{"start": "07:30", "end": "08:30"}]


def _client(d: str) -> dict[str, Any]:
    return {
        "external_id": f"C-{d}",
        "district": f"d{d}",
        "street": "Neutral street",
        "housenumber": "1",
        "coordinates": {"lat": 47.14, "lon": 9.52},
    }


#: A valid body per operation that takes one, aimed at district ``d``'s rows.
BODIES: dict[tuple[str, str], Callable[[str], Any]] = {
    ("POST", "/v1/auth/token"): lambda d: {"email": "nobody@neutral.example", "password": "x"},
    ("POST", "/v1/import"): lambda d: {"districts": [{"external_id": "neutral", "name": "N"}]},
    ("PUT", "/v1/clients/{external_id}"): _client,
    ("PUT", "/v1/staff/{external_id}"): lambda d: {
        "external_id": f"S-{d}1",
        "name": "Neutral",
        "district": f"d{d}",
        "travel_mode": "walk",
        "start": {"lat": 47.14, "lon": 9.52},
    },
    ("PUT", "/v1/shifts/{external_id}"): lambda d: {
        "external_id": f"SH-{d}",
        "staff": f"S-{d}1",
        "date": DAY,
        "start": "08:00",
        "end": "12:00",
    },
    ("PUT", "/v1/visits/{external_id}"): lambda d: {
        "external_id": f"V-{d}",
        "client": f"C-{d}",
        "date": DAY,
        "windows": _WINDOW,
        "duration_minutes": 10,
    },
    ("PUT", "/v1/visit-templates/{external_id}"): lambda d: {
        "external_id": f"T-{d}",
        "client": f"C-{d}",
        "weekdays": [2],
        "windows": _WINDOW,
        "duration_minutes": 10,
        "valid_from": DAY,
    },
    ("POST", "/v1/visit-templates/expand"): lambda d: {"from": DAY, "to": DAY, "district": f"d{d}"},
    ("PATCH", "/v1/organisation"): lambda d: {"name": "Neutral name"},
    ("PUT", "/v1/organisation/competences"): lambda d: {
        "competences": [{"code": c, "label": lbl} for c, lbl in DEFAULT_COMPETENCES]
    },
    ("POST", "/v1/api-keys"): lambda d: {"name": "neutral", "role": "planner"},
    ("POST", "/v1/users"): lambda d: {
        "email": f"new-{d}@neutral.example",
        "role": "planner",
        "districts": [f"d{d}"],
    },
    ("PUT", "/v1/users/{user_id}/districts"): lambda d: {"districts": [f"d{d}"]},
    ("PUT", "/v1/users/{user_id}/staff"): lambda d: {"staff": f"S-{d}1"},
    ("POST", "/v1/plans"): lambda d: {"district": f"d{d}", "date": DAY},
    ("POST", "/v1/clients/geocode"): lambda d: {"district": f"d{d}"},
    ("POST", "/v1/webhooks"): lambda d: {"url": "https://neutral.example/hook"},
    ("POST", "/v1/plans/{plan_id}/moves"): lambda d: {
        "visit": f"V-{d}",
        "staff": f"S-{d}1",
        "preview": True,
    },
    ("POST", "/v1/plans/{plan_id}/events"): lambda d: {
        "events": [{"kind": "visit_cancelled", "visit": f"V-{d}"}],
        "based_on_version": 1,
    },
}

#: Reads that name their rows in the query rather than the path (a comparison's two plan ids):
#: outside reach they answer as a path id does, 403 or 404.
QUERY_ROW_READS = {("GET", "/v1/plans/compare")}

#: Upserts by external id act in the caller's own tenant: another tenant's PUT of ``C-A`` would
#: create *its own* C-A, so for these a 2xx/422 is isolation too (tenant 1 is checked unchanged).
UPSERTS = {
    ("PUT", f"/v1/{segment}/{{external_id}}")
    for segment in ("clients", "staff", "shifts", "visits", "visit-templates")
}


@dataclass(frozen=True)
class Operation:
    """One method on one path template of the schema."""

    method: str
    path: str
    spec: dict[str, Any]
    nurse_allowed: bool

    @property
    def has_path_params(self) -> bool:
        """Whether the path names a row."""
        return "{" in self.path


def operations(app: FastAPI) -> list[Operation]:
    """Every operation of the app's OpenAPI schema."""
    ops = []
    for path, item in app.openapi()["paths"].items():
        for method, spec in item.items():
            if method.upper() in {"GET", "POST", "PUT", "PATCH", "DELETE"}:
                m = method.upper()
                ops.append(Operation(m, path, spec, (m, path) in NURSE_OPEN))
    assert len(ops) > 20, "the schema should list the whole API"
    return ops


def build_request(op: Operation, world: World, d: str) -> dict[str, Any]:
    """URL, query and body of ``op`` aimed at district ``d`` of tenant 1."""
    url = op.path
    for name in re.findall(r"{(\w+)}", op.path):
        if name == "external_id":
            segment = op.path.split("/")[2]
            assert segment in EXTERNAL_IDS, f"add {segment!r} to EXTERNAL_IDS for {op.path}"
            value: Any = EXTERNAL_IDS[segment].format(d=d)
        else:
            assert name in PATH_VALUES, f"add path parameter {name!r} of {op.path} to PATH_VALUES"
            value = PATH_VALUES[name](world, d)
        url = url.replace("{" + name + "}", str(value))
    params = {}
    for param in op.spec.get("parameters", []):
        if param["in"] == "query" and param.get("required"):
            name = param["name"]
            assert name in QUERY_VALUES, f"add query parameter {name!r} of {op.path}"
            params[name] = QUERY_VALUES[name](world, d)
    request: dict[str, Any] = {"method": op.method, "url": url, "params": params}
    if "requestBody" in op.spec:
        key = (op.method, op.path)
        assert key in BODIES, f"add a request body for {op.method} {op.path} to BODIES"
        request["json"] = BODIES[key](d)
    return request


def _call(client: TestClient, request: dict[str, Any], headers: dict[str, str]) -> Any:
    return client.request(
        request["method"],
        request["url"],
        params=request["params"],
        json=request.get("json"),
        headers=headers,
    )


def _run_matrix(
    client: TestClient,
    app: FastAPI,
    world: World,
    db: Engine,
    *,
    headers: dict[str, str],
    district: str,
    marker: str,
    expect: Callable[[Operation, int], bool],
) -> list[str]:
    """Call every non-public operation; the problems found (empty when isolated)."""
    problems = []
    before = tenant_fingerprint(db, world.t1.org_id)
    for op in operations(app):
        if (op.method, op.path) in PUBLIC:
            continue
        request = build_request(op, world, district)
        response = _call(client, request, headers)
        label = f"{op.method} {request['url']} -> {response.status_code}"
        if response.status_code >= 500:
            problems.append(f"{label}: server error")
        elif not expect(op, response.status_code):
            problems.append(f"{label}: unexpected status {response.text[:200]}")
        if marker.lower() in response.text.lower():
            problems.append(f"{label}: leaks {marker}")
    if tenant_fingerprint(db, world.t1.org_id) != before:
        problems.append("tenant 1's rows changed")
    return problems


def test_every_route_without_credentials_is_401(
    client: TestClient, app: FastAPI, world: World
) -> None:
    problems = []
    for op in operations(app):
        request = build_request(op, world, "A")
        response = _call(client, request, {})
        if (op.method, op.path) in PUBLIC:
            # Sign-in answers 401 for the wrong password, but never asks for a credential.
            if response.status_code >= 500 or "missing credentials" in response.text:
                problems.append(f"public {op.method} {op.path} -> {response.status_code}")
        elif response.status_code != 401:
            problems.append(f"{op.method} {op.path} -> {response.status_code} without credentials")
        elif response.json()["error"]["code"] != "unauthenticated":
            problems.append(f"{op.method} {op.path}: 401 without the common error body")
    assert problems == []


def test_another_tenants_admin_sees_and_changes_nothing(
    client: TestClient, app: FastAPI, world: World, db: Engine
) -> None:
    def expect(op: Operation, status: int) -> bool:
        if status == 401:
            return False
        if op.has_path_params and (op.method, op.path) not in UPSERTS:
            return status in (403, 404)
        return True

    for headers in (world.t2.headers, world.other_admin.headers):
        problems = _run_matrix(
            client, app, world, db, headers=headers, district="A", marker="T1LEAK", expect=expect
        )
        assert problems == []


def test_a_nurse_reaches_only_their_own_route(
    client: TestClient, app: FastAPI, world: World, db: Engine
) -> None:
    def expect(op: Operation, status: int) -> bool:
        if not op.nurse_allowed:
            return status == 403
        # Open to nurses: aimed at district B's carer, i.e. someone else's route.
        return status in (403, 404) if op.has_path_params else status < 400

    problems = _run_matrix(
        client,
        app,
        world,
        db,
        headers=world.nurse_a.headers,
        district="B",
        marker="T1LEAK",
        expect=expect,
    )
    assert problems == []


def test_a_planner_of_district_a_cannot_reach_district_b(
    client: TestClient, app: FastAPI, world: World, db: Engine
) -> None:
    def expect(op: Operation, status: int) -> bool:
        if (op.method, op.path) in QUERY_ROW_READS:
            return status in (403, 404)
        if op.method == "GET" and not op.has_path_params:
            return status < 400 or status == 403
        return status in (403, 404)

    problems = _run_matrix(
        client,
        app,
        world,
        db,
        headers=world.planner_a.headers,
        district="B",
        marker="T1LEAK-B",
        expect=expect,
    )
    assert problems == []


def test_a_planner_reads_their_own_district(client: TestClient, world: World) -> None:
    for url in ("/v1/clients", "/v1/visits", "/v1/staff", "/v1/plans", "/v1/districts"):
        response = client.get(url, headers=world.planner_a.headers)
        assert response.status_code == 200, url
        assert response.json()["total"] >= 1, url
        assert "T1LEAK-B" not in response.text, url
    assert client.get("/v1/clients/C-A", headers=world.planner_a.headers).status_code == 200
    assert client.get("/v1/clients/C-B", headers=world.planner_a.headers).status_code == 404
    plan_b = world.ids["B"]["plan_id"]
    assert client.get(f"/v1/plans/{plan_b}", headers=world.planner_a.headers).status_code == 404


def test_the_tenant_admin_reaches_both_districts(client: TestClient, world: World) -> None:
    for who in (world.t1.headers, world.admin.headers):
        response = client.get("/v1/clients", headers=who)
        assert response.json()["total"] == 2
        for d in ("A", "B"):
            assert client.get(f"/v1/clients/C-{d}", headers=who).status_code == 200
