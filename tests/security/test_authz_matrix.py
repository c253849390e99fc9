"""Authorisation matrix generated from the OpenAPI document (issue 10).

For every operation of ``app.openapi()`` the generator finds every place where a request names an
external id: path parameters, query parameters, body fields (the places where the district-A and
district-B versions of the operation's valid body differ) and, for ``POST
/v1/plans/{plan_id}/events``, the id fields of every event kind of the schema's ``oneOf``. Each
place is aimed, alone, at a row outside the caller's reach, as:

- a planner of district A (the rest of the request is their own district's);
- a nurse of district A;
- an admin key and an admin's token of another organisation;

and every operation is called by tenant-1 keys that lack one scope each. The oracle shares no code
with the service: a request naming a row outside reach must not succeed (a 2xx is only accepted
for a read that returns none of the foreign rows' ids or markers, or another tenant's upsert of its
own row), the stored rows of the tenant must be unchanged, and a key lacking a scope must change
no table that scope guards nor read tenant data without ``read``. A query parameter, path
parameter or event field the generator cannot classify fails the test, so a new endpoint is
either covered or reported. The district-A plan is solved for real, so re-plan events reach the
code that resolves their ids.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.routing import Region
from app.settings import Settings
from app.store import tenants
from app.store.db import make_sessionmaker
from app.store.models import Role
from tests.security.conftest import DAY, World, build_world, tenant_fingerprint
from tests.security.test_isolation import NURSE_OPEN, PUBLIC, UPSERTS, Operation, operations
from tests.security.test_isolation import build_request as isolation_request

#: Query parameters that name rows, and those that do not. Anything else fails the test.
ID_QUERY: dict[str, Callable[[World, str], str]] = {
    "district": lambda w, d: f"d{d}",
    "client": lambda w, d: f"C-{d}",
    "staff": lambda w, d: f"S-{d}1",
    "team": lambda w, d: f"team-{d}",
    "visit": lambda w, d: f"V-{d}",
    # Plan ids of the two versions a comparison reads.
    "from": lambda w, d: w.ids[d]["plan_id"],
    "to": lambda w, d: w.ids[d]["plan_id"],
}
PLAIN_QUERY = {"limit", "offset", "date", "date_from", "date_to", "wait", "status", "mode", "after"}
#: A new visit described to the recommendations (its client is an id place above).
PLAIN_QUERY |= {"duration_minutes", "window_start", "window_end"}
#: Headers the schema declares that name no rows.
PLAIN_HEADERS = {"idempotency-key", "if-match", "if-none-match"}

#: Event fields by name: (is it a reference to a stored row?, value for district ``d``).
EVENT_FIELDS: dict[str, tuple[bool, Callable[[str, str], Any]]] = {
    "staff": (True, lambda d, kind: f"S-{d}1"),
    "visit": (True, lambda d, kind: f"V-{d}"),
    "client": (True, lambda d, kind: f"C-{d}"),
    "from_time": (False, lambda d, kind: "09:00"),
    "until_time": (False, lambda d, kind: "12:00"),
    "actual_start": (False, lambda d, kind: "09:00"),
    "actual_end": (False, lambda d, kind: "09:20"),
    "windows": (False, lambda d, kind: [{"start": "09:00", "end": "16:00"}]),
    "duration_minutes": (False, lambda d, kind: 15),
    # A phone's position (Vaduz): coordinates and a time, not references to rows.
    "lat": (False, lambda d, kind: 47.141),
    "lon": (False, lambda d, kind: 9.521),
    "at": (False, lambda d, kind: "09:00"),
}
#: An urgent visit's ``visit`` is the new visit's id, chosen by the caller, not a reference.
NEW_IDS = {("urgent_visit_added", "visit")}

#: Tables each scope guards (a key without the scope must leave them unchanged).
GUARDED = {
    # Webhook subscriptions are the integrations' (write scope, see app/api/routers/webhooks.py).
    "write": {"clients", "staff", "shifts", "visits", "visit_templates", "districts", "teams"}
    | {"webhook_subscriptions"},
    "plan": {"plans", "plan_events", "solve_jobs"},
    "admin": {"api_keys", "users", "user_districts", "competences", "organisations"},
}
SCOPES = ("read", "write", "plan", "admin")
#: Where a nurse may get past the role check (own route; actual times or delays of own visits).
NURSE_REACH = NURSE_OPEN | {("POST", "/v1/plans/{plan_id}/events")}
#: Care data of tenant 1 (names, addresses, notes; conftest marks each text field).
CARE_MARKERS = tuple(
    f"T1LEAK-{d} {field}" for d in "AB" for field in ("street", "city", "notes", "carer", "team")
)


@dataclass
class Call:
    """One request aimed at one id place (or at none)."""

    op: Operation
    place: str
    method: str
    url: str
    params: dict[str, Any]
    body: Any
    headers: dict[str, str]


@pytest.fixture
def settings(db: Engine, database_url: str) -> Settings:
    """One-second solves, no rate limit (the matrix is one very busy caller per role), no
    background webhook sending."""
    return Settings(
        database_url=database_url,
        dev_mode=True,
        region_warmup=False,
        rate_limit_per_s=0.0,
        solver_time_limit_s=1,
        replan_time_limit_s=1,
        # The delivery loop would change webhook_deliveries behind the matrix's back.
        webhook_poll_s=3600,
    )


@pytest.fixture
def solved_world(client: TestClient, db: Engine, settings: Settings, region: Region) -> World:
    """The security world with district A's day solved for real (so events resolve ids)."""
    world = build_world(client, db, settings)
    r = client.post(
        "/v1/plans?wait=60", json={"district": "dA", "date": DAY}, headers=world.t1.headers
    )
    assert r.status_code == 201, r.text
    world.ids["A"]["plan_id"] = r.json()["id"]
    world.ids["A"]["plan_version"] = r.json()["version"]
    return world


def _schema(spec: dict[str, Any], ref_or_schema: dict[str, Any]) -> dict[str, Any]:
    ref = ref_or_schema.get("$ref")
    if ref is None:
        return ref_or_schema
    out: dict[str, Any] = spec
    for part in ref.removeprefix("#/").split("/"):
        out = out[part]
    return out


def _event_bodies(spec: dict[str, Any], world: World) -> list[tuple[str, dict[str, Any], Any]]:
    """(kind, body for district A, places -> body for B) for every event kind of the schema."""
    request = _schema(
        spec,
        spec["paths"]["/v1/plans/{plan_id}/events"]["post"]["requestBody"]["content"][
            "application/json"
        ]["schema"],
    )
    out = []
    for variant in request["properties"]["events"]["items"]["oneOf"]:
        schema = _schema(spec, variant)
        kind = schema["properties"]["kind"]["const"]
        fields = [f for f in schema.get("required", []) if f != "kind"]
        fields += [f for f in ("until_time", "actual_end") if f in schema["properties"]]
        unknown = [f for f in fields if f not in EVENT_FIELDS]
        assert not unknown, f"classify event field(s) {unknown} of {kind} in EVENT_FIELDS"

        def event(
            d: str, foreign: str | None = None, *, kind: str = kind, fields: Any = fields
        ) -> Any:
            ev: dict[str, Any] = {"kind": kind}
            for f in fields:
                own = "A" if foreign != f else d
                value = EVENT_FIELDS[f][1](own, kind)
                if (kind, f) in NEW_IDS:
                    value = f"URG-{own}"
                ev[f] = value
            return ev

        refs = [f for f in fields if EVENT_FIELDS[f][0] and (kind, f) not in NEW_IDS]
        out.append(
            (
                kind,
                {"events": [event("A")], "now": "06:00"},
                {f"event {kind}.{f}": {"events": [event("B", f)], "now": "06:00"} for f in refs},
            )
        )
    return out


def _leaves(doc: Any, loc: tuple[Any, ...] = ()) -> dict[tuple[Any, ...], Any]:
    if isinstance(doc, dict):
        return {k: v for key, val in doc.items() for k, v in _leaves(val, (*loc, key)).items()}
    if isinstance(doc, list):
        return {k: v for i, val in enumerate(doc) for k, v in _leaves(val, (*loc, i)).items()}
    return {loc: doc}


def _put(doc: Any, loc: tuple[Any, ...], value: Any) -> Any:
    if not loc:
        return value
    if isinstance(doc, dict):
        return {k: _put(v, loc[1:], value) if k == loc[0] else v for k, v in doc.items()}
    return [_put(v, loc[1:], value) if i == loc[0] else v for i, v in enumerate(doc)]


def calls_for(op: Operation, world: World, spec: dict[str, Any]) -> list[Call]:
    """Requests of ``op``: district A's own request with one id place aimed at district B."""
    own = isolation_request(op, world, "A")
    other = isolation_request(op, world, "B")
    headers: dict[str, str] = {}
    for param in op.spec.get("parameters", []):
        if param["in"] == "header":
            assert param["name"].lower() in PLAIN_HEADERS, f"classify header {param['name']}"
        if param["in"] == "query":
            name = param["name"]
            assert name in ID_QUERY or name in PLAIN_QUERY, (
                f"classify query parameter {name!r} of {op.method} {op.path} (ID_QUERY/PLAIN_QUERY)"
            )
    base = Call(op, "none", op.method, own["url"], own["params"], own.get("json"), headers)
    out: list[Call] = []
    # Path parameters: every one is a place (a key or user id is tenant-wide, still a place).
    for name in re.findall(r"{(\w+)}", op.path):
        url = op.path
        for other_name in re.findall(r"{(\w+)}", op.path):
            src = other if other_name == name else own
            value = _path_value(src, op.path, other_name)
            url = url.replace("{" + other_name + "}", str(value))
        out.append(
            Call(op, f"path {name}", op.method, url, own["params"], own.get("json"), headers)
        )
    for param in op.spec.get("parameters", []):
        if param["in"] == "query" and param["name"] in ID_QUERY:
            params = {**own["params"], param["name"]: ID_QUERY[param["name"]](world, "B")}
            out.append(
                Call(
                    op,
                    f"query {param['name']}",
                    op.method,
                    own["url"],
                    params,
                    own.get("json"),
                    headers,
                )
            )
    if (op.method, op.path) == ("POST", "/v1/plans/{plan_id}/events"):
        version = world.ids["A"].get("plan_version", 1)
        hdr = {"If-Match": f'"{version}"'}
        # Only foreign places: an own event that succeeds would supersede the version.
        events = _event_bodies(spec, world)
        for _kind, _own_body, foreign in events:
            for place, body in foreign.items():
                out.append(Call(op, place, op.method, own["url"], own["params"], body, hdr))
        body_a = events[0][1]
        for call in out:
            if call.place.startswith("path"):
                call.body, call.headers = body_a, hdr
        return out
    if "json" in own:
        a, b = _leaves(own["json"]), _leaves(other["json"])
        assert a.keys() == b.keys(), f"{op.method} {op.path}: district bodies differ in shape"
        for loc, value in a.items():
            if b[loc] != value:
                body = _put(own["json"], loc, b[loc])
                where = ".".join(map(str, loc))
                out.append(
                    Call(op, f"body {where}", op.method, own["url"], own["params"], body, headers)
                )
    return out or [base]


def _path_value(request: dict[str, Any], template: str, name: str) -> str:
    pattern = re.escape(template)
    for n in re.findall(r"{(\w+)}", template):
        pattern = pattern.replace(re.escape("{" + n + "}"), f"(?P<{n}>[^/]+)")
    m = re.fullmatch(pattern, request["url"])
    assert m is not None
    return m.group(name)


def _send(client: TestClient, call: Call, headers: dict[str, str]) -> Any:
    return client.request(
        call.method,
        call.url,
        params=call.params,
        json=call.body,
        headers={**headers, **call.headers},
    )


FOREIGN_IDS_B = ("C-B", "S-B1", "S-B2", "V-B", "SH-B", "T-B", "team-B", "T1LEAK-B")


def _reveals(text: str, needles: tuple[str, ...]) -> list[str]:
    return [n for n in needles if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", text)]


def test_authorisation_matrix_generated_from_the_openapi_document(
    client: TestClient, app: FastAPI, solved_world: World, db: Engine
) -> None:
    world = solved_world
    spec = app.openapi()
    ops = [op for op in operations(app) if (op.method, op.path) not in PUBLIC]
    plan = {(op.method, op.path): calls_for(op, world, spec) for op in ops}
    tally: Counter[str] = Counter()
    leaks: list[str] = []
    problems: list[str] = []

    def judge(role: str, call: Call, r: Any, before: Any, needles: tuple[str, ...]) -> Any:
        tally[role] += 1
        label = f"{role}: {call.method} {call.op.path} [{call.place}] -> {r.status_code}"
        # A refused read changes nothing by construction (and reading every row after each of
        # them doubles the run); every write and every successful read is compared.
        refused_read = call.method == "GET" and r.status_code >= 400
        after = before if refused_read else tenant_fingerprint(db, world.t1.org_id)
        if r.status_code >= 500:
            problems.append(f"{label}: server error")
        if after != before:
            changed = sorted(t for t in after if after[t] != before[t])
            leaks.append(f"{label}: changed {changed}")
        # An id the request itself named may be echoed (in an error message); others may not.
        sent = json.dumps([call.url, call.params, call.body])
        shown = [n for n in _reveals(r.text, needles) if n not in _reveals(sent, needles)]
        if 200 <= r.status_code < 300:
            upsert = (call.op.method, call.op.path) in UPSERTS and role.startswith("other org")
            read = call.method == "GET" and not shown
            if call.place != "none" and not (read or upsert):
                leaks.append(f"{label}: succeeded naming a row outside reach")
        if shown:
            leaks.append(f"{label}: reveals {shown}")
        return after

    # A planner of district A, and a nurse of district A, aimed at district B place by place.
    for role, who in (("planner A", world.planner_a), ("nurse A", world.nurse_a)):
        before = tenant_fingerprint(db, world.t1.org_id)
        for key, calls in plan.items():
            for call in calls:
                op = call.op
                r = _send(client, call, who.headers)
                if role == "nurse A" and key not in NURSE_REACH and r.status_code != 403:
                    problems.append(f"{role}: {op.method} {op.path} -> {r.status_code}, not 403")
                if call.place == "none" and role == "planner A":
                    # The planner's own district: allowed or refused, but never B's data.
                    tally[role] += 1
                    if r.status_code >= 500:
                        problems.append(f"{role}: {op.method} {op.path} own -> 500")
                    if _reveals(r.text, FOREIGN_IDS_B):
                        leaks.append(f"{role}: {op.method} {op.path} own: reveals district B")
                    before = tenant_fingerprint(db, world.t1.org_id)
                    continue
                before = judge(role, call, r, before, FOREIGN_IDS_B)
    # Another organisation's admin key and admin token: every place names tenant 1's rows.
    everything = (*FOREIGN_IDS_B, "C-A", "S-A1", "V-A", "SH-A", "T-A", "T1LEAK")
    for role, headers in (
        ("other org key", world.t2.headers),
        ("other org token", world.other_admin.headers),
    ):
        before = tenant_fingerprint(db, world.t1.org_id)
        for calls in plan.values():
            for call in calls:
                r = _send(client, call, headers)
                before = judge(role, call, r, before, everything)
    # Tenant-1 keys lacking one scope each, on district A's own requests.
    for missing in SCOPES:
        with make_sessionmaker(db).begin() as session:
            key = tenants.create_api_key(
                session,
                world.t1.org_id,
                name=f"without {missing}",
                role=Role.ADMIN,
                scopes=[s for s in SCOPES if s != missing],
            ).plaintext
        headers = {"X-API-Key": key}
        role = f"key without {missing}"
        for calls in plan.values():
            call = calls[0]
            op = call.op
            own = Call(op, "none", call.method, *_own(op, world, spec, call))
            before = tenant_fingerprint(db, world.t1.org_id)
            r = _send(client, own, headers)
            tally[role] += 1
            after = tenant_fingerprint(db, world.t1.org_id)
            label = f"{role}: {op.method} {op.path} -> {r.status_code}"
            if r.status_code >= 500:
                problems.append(f"{label}: server error")
            changed = {t for t in after if after[t] != before[t]}
            if changed & GUARDED.get(missing, set()):
                leaks.append(f"{label}: changed {sorted(changed & GUARDED[missing])}")
            read = missing == "read" and op.method == "GET" and 200 <= r.status_code < 300
            # Care data (names, streets, notes carry the marker); ids in user lists are not.
            if read and _reveals(r.text, CARE_MARKERS):
                leaks.append(f"{label}: read tenant data")
    places = sum(len(c) for c in plan.values())
    summary = {
        "operations": len(ops),
        "id_places": places,
        "roles": len(tally),
        "requests": sum(tally.values()),
        "by_role": dict(tally),
        "leaks": len(leaks),
        "problems": len(problems),
    }
    print("authz-matrix " + json.dumps(summary, sort_keys=True))
    assert len(ops) > 20
    assert places > len(ops)
    assert any(c.place.startswith("event") for calls in plan.values() for c in calls)
    assert leaks == [], "\n".join(leaks + problems)
    assert problems == [], "\n".join(problems)


def _own(op: Operation, world: World, spec: dict[str, Any], call: Call) -> tuple[Any, ...]:
    own = isolation_request(op, world, "A")
    if any(p["name"] == "wait" for p in op.spec.get("parameters", [])):
        # A job that finished after the answer would change rows during a later request.
        own["params"] = {**own["params"], "wait": 60}
    if (op.method, op.path) == ("POST", "/v1/plans/{plan_id}/events"):
        _kind, body, _ = _event_bodies(spec, world)[0]
        return own["url"], own["params"], body, call.headers
    return own["url"], own["params"], own.get("json"), {}


def test_an_operation_the_generator_cannot_classify_fails(app: FastAPI, world: World) -> None:
    # A query parameter nobody classified: the generator must refuse, not skip it.
    spec = app.openapi()
    op = next(o for o in operations(app) if (o.method, o.path) == ("GET", "/v1/visits"))
    unknown = {**op.spec, "parameters": [*op.spec["parameters"], {"in": "query", "name": "carer"}]}
    with pytest.raises(AssertionError, match="classify query parameter 'carer'"):
        calls_for(Operation(op.method, op.path, unknown, op.nurse_allowed), world, spec)
