"""No credential creates a stronger one (issue 10, defect 2).

Every caller that may manage credentials (an API key holding the ``admin`` scope, of any role,
with any other scopes; an admin user) tries to create API keys and users of every role and
scope set. The expected answer comes from a rule written here, independently of the service:
the new credential's role ranks no higher, its scopes are a subset of the caller's, and its
districts lie within the caller's reach. A refused request stores nothing; an accepted one is
checked by *using* the new credential (its scopes, and the token of a new user).
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from app.settings import Settings
from app.store import tenants, users
from app.store.db import make_sessionmaker
from app.store.models import ApiKey, Role, User
from tests.security.conftest import PASSWORD, World

RANK = {"nurse": 0, "planner": 1, "admin": 2}
ROLE_SCOPES = {"admin": {"read", "write", "plan", "admin"}, "planner": {"read", "write", "plan"}}
ROLE_SCOPES["nurse"] = {"read"}
ALL = ("read", "write", "plan", "admin")


def _may(caller_role: str, caller_scopes: frozenset[str], role: str, scopes: set[str]) -> bool:
    """The rule, as the issue states it (callers here are organisation-wide)."""
    return RANK[role] <= RANK[caller_role] and scopes <= caller_scopes


def _keys(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(ApiKey)) or 0)


def _key(engine: Engine, org_id: int, role: str, scopes: frozenset[str]) -> dict[str, str]:
    with make_sessionmaker(engine).begin() as session:
        new = tenants.create_api_key(
            session, org_id, name="caller", role=Role(role), scopes=sorted(scopes)
        )
    return {"X-API-Key": new.plaintext}


def test_an_api_key_never_creates_a_stronger_key_or_user(
    client: TestClient, world: World, db: Engine
) -> None:
    # Admin-scope callers of both roles that reach the endpoints (a nurse-role credential is
    # refused by the gate first): alone, with one, two and all other scopes.
    narrow = [frozenset(), frozenset({"read"}), frozenset({"write", "plan"}), frozenset(ALL)]
    callers = [(role, scopes | {"admin"}) for role in ("planner", "admin") for scopes in narrow]
    tried = accepted = 0
    problems: list[str] = []
    for n, (caller_role, caller_scopes) in enumerate(callers):
        headers = _key(db, world.t1.org_id, caller_role, caller_scopes)
        for role in RANK:
            # The default, each single scope, all of them, the caller's own and one more.
            tries = [None, *(frozenset({s}) for s in ALL), frozenset(ALL), caller_scopes]
            tries += [caller_scopes | {s} for s in sorted(set(ALL) - caller_scopes)[:1]]
            for scopes in tries:
                body: dict[str, Any] = {"name": "new", "role": role}
                if scopes is not None:
                    body["scopes"] = sorted(scopes)
                wanted = set(ROLE_SCOPES[role] if scopes is None else scopes)
                expect = _may(caller_role, caller_scopes, role, wanted)
                before = _keys(db)
                r = client.post("/v1/api-keys", json=body, headers=headers)
                tried += 1
                label = f"{caller_role}{sorted(caller_scopes)} -> key {role}{sorted(wanted)}"
                if expect and r.status_code != 201:
                    problems.append(f"{label}: refused {r.status_code} {r.text[:120]}")
                elif not expect and r.status_code != 403:
                    problems.append(f"{label}: answered {r.status_code}")
                if r.status_code == 201:
                    accepted += 1
                    if not set(r.json()["scopes"]) <= caller_scopes:
                        problems.append(f"{label}: holds {r.json()['scopes']}")
                elif _keys(db) != before:
                    problems.append(f"{label}: refused but stored")
            user = {
                "email": f"u{n}-{role}@t1.example",
                "role": role,
                "password": PASSWORD,
                **({"staff": "S-A2"} if role == "nurse" else {}),
                **({"districts": ["dA"]} if role == "planner" else {}),
            }
            expect = _may(caller_role, caller_scopes, role, ROLE_SCOPES[role])
            r = client.post("/v1/users", json=user, headers=headers)
            tried += 1
            label = f"{caller_role}{sorted(caller_scopes)} -> user {role}"
            if r.status_code != (201 if expect else 403):
                problems.append(f"{label}: answered {r.status_code} {r.text[:120]}")
            if r.status_code == 201:
                accepted += 1
    print(f"escalation: {tried} creations tried, {accepted} accepted")
    assert accepted > 0
    assert problems == []


def test_an_admin_only_key_cannot_mint_a_key_that_reads_client_data(
    client: TestClient, world: World
) -> None:
    admin_only = world.t1.headers  # full admin key, to create the narrow one
    r = client.post(
        "/v1/api-keys",
        json={"name": "narrow", "role": "admin", "scopes": ["admin"]},
        headers=admin_only,
    )
    assert r.status_code == 201, r.text
    narrow = {"X-API-Key": r.json()["key"]}
    assert client.get("/v1/clients", headers=narrow).status_code == 403
    r = client.post("/v1/api-keys", json={"name": "x", "role": "admin"}, headers=narrow)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "forbidden"
    r = client.post(
        "/v1/users",
        json={"email": "boss@t1.example", "role": "admin", "password": PASSWORD},
        headers=narrow,
    )
    assert r.status_code == 403, r.text
    # What it may do: a key no stronger than itself.
    r = client.post(
        "/v1/api-keys", json={"name": "y", "role": "planner", "scopes": ["admin"]}, headers=narrow
    )
    assert r.status_code == 201, r.text


def test_a_weaker_key_cannot_enable_or_widen_a_stronger_user(
    client: TestClient, world: World, db: Engine, settings: Settings
) -> None:
    # A planner-role key with the admin scope manages users, but only up to planners.
    weak = _key(db, world.t1.org_id, "planner", frozenset({"admin", "read", "write", "plan"}))
    admin_id = world.admin.user_id
    assert client.post(f"/v1/users/{admin_id}/disable", headers=world.t1.headers).status_code == 200
    r = client.post(f"/v1/users/{admin_id}/enable", headers=weak)
    assert r.status_code == 403, r.text
    with make_sessionmaker(db).begin() as session:
        assert session.get(User, admin_id).disabled_at is not None  # type: ignore[union-attr]
    # Its own reach is the whole organisation, so a planner's districts may be set.
    planner_id = world.planner_a.user_id
    r = client.put(
        f"/v1/users/{planner_id}/districts", json={"districts": ["dA", "dB"]}, headers=weak
    )
    assert r.status_code == 200, r.text
    with make_sessionmaker(db).begin() as session:
        assert users.district_ids(session, planner_id) == {
            world.ids["A"]["district_id"],
            world.ids["B"]["district_id"],
        }
        keys = session.scalars(select(ApiKey.role).where(ApiKey.org_id == world.t1.org_id)).all()
        assert Role.ADMIN in keys
