"""Credentials: sign-in tokens, their refusal when expired, forged or of a disabled user; users
managed by admins; API-key scopes and last use."""

from __future__ import annotations

import datetime as dt
import time

import jwt
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import Engine, select

from app.api import security
from app.settings import Settings
from app.store import users
from app.store.db import make_sessionmaker
from app.store.models import ApiKey, AuditEntry, User
from tests.conftest import Tenant
from tests.security.conftest import DAY, PASSWORD, World


def _user(engine: Engine, user_id: int) -> User:
    with make_sessionmaker(engine)() as session:
        user = session.get(User, user_id)
        assert user is not None
        session.expunge(user)
        return user


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class TestPasswords:
    def test_hash_verifies_only_the_right_password(self) -> None:
        stored = users.hash_password(PASSWORD)
        assert stored.startswith("scrypt$")
        assert PASSWORD not in stored
        assert users.verify_password(PASSWORD, stored)
        assert not users.verify_password(PASSWORD + "x", stored)
        assert not users.verify_password(PASSWORD, None)
        assert not users.verify_password(PASSWORD, "md5$garbage")

    def test_the_same_password_hashes_differently(self) -> None:
        assert users.hash_password(PASSWORD) != users.hash_password(PASSWORD)


class TestSignIn:
    def test_token_claims_and_use(
        self, client: TestClient, world: World, settings: Settings
    ) -> None:
        response = client.post(
            "/v1/auth/token", json={"email": "Planner-A@T1.example ", "password": PASSWORD}
        )
        assert response.status_code == 200
        body = response.json()
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == settings.token_ttl_s
        claims = jwt.decode(
            body["access_token"], security.signing_key(settings), algorithms=["HS256"]
        )
        assert set(claims) == {"sub", "org", "role", "exp", "iat", "jti"}
        assert claims["org"] == world.t1.org_id
        assert claims["role"] == "planner"
        me = client.get("/v1/auth/me", headers=_bearer(body["access_token"])).json()
        assert me["role"] == "planner"
        assert me["districts"] == ["dA"]
        assert me["actor"] == f"user:{world.planner_a.user_id}"

    @pytest.mark.parametrize(
        ("email", "password"),
        [("planner-a@t1.example", "wrong password!"), ("nobody@t1.example", PASSWORD)],
    )
    def test_wrong_email_or_password_is_401(
        self, client: TestClient, world: World, email: str, password: str
    ) -> None:
        response = client.post("/v1/auth/token", json={"email": email, "password": password})
        assert response.status_code == 401
        assert response.json()["error"]["message"] == "wrong email or password"

    def test_expired_token_is_401(
        self, client: TestClient, world: World, settings: Settings, db: Engine
    ) -> None:
        user = _user(db, world.admin.user_id)
        old, _ = security.issue_token(settings, user, now=time.time() - settings.token_ttl_s - 5)
        response = client.get("/v1/clients", headers=_bearer(old))
        assert response.status_code == 401
        assert "expired" in response.json()["error"]["message"]

    def test_forged_token_is_401(
        self, client: TestClient, world: World, settings: Settings, db: Engine
    ) -> None:
        user = _user(db, world.admin.user_id)
        other = settings.model_copy(update={"secret_key": SecretStr("x" * 40)})
        forged, _ = security.issue_token(other, user)
        assert client.get("/v1/clients", headers=_bearer(forged)).status_code == 401
        # Same claims, unsigned ("alg": "none") and tampered payloads are refused too.
        claims = jwt.decode(world.admin.token, options={"verify_signature": False})
        unsigned = jwt.encode(claims, key=None, algorithm="none")
        assert client.get("/v1/clients", headers=_bearer(unsigned)).status_code == 401
        head, _, sig = world.nurse_a.token.split(".")
        _, payload, _ = world.admin.token.split(".")
        spliced = f"{head}.{payload}.{sig}"
        assert client.get("/v1/clients", headers=_bearer(spliced)).status_code == 401

    def test_a_token_of_another_role_or_tenant_claim_is_401(
        self, client: TestClient, world: World, settings: Settings
    ) -> None:
        claims = jwt.decode(world.nurse_a.token, options={"verify_signature": False})
        promoted = jwt.encode(
            {**claims, "role": "admin"}, security.signing_key(settings), algorithm="HS256"
        )
        assert client.get("/v1/clients", headers=_bearer(promoted)).status_code == 401
        moved = jwt.encode(
            {**claims, "org": world.t2.org_id}, security.signing_key(settings), algorithm="HS256"
        )
        assert client.get("/v1/auth/me", headers=_bearer(moved)).status_code == 401

    def test_disabled_user_loses_token_and_sign_in(self, client: TestClient, world: World) -> None:
        assert client.get("/v1/clients", headers=world.planner_a.headers).status_code == 200
        response = client.post(
            f"/v1/users/{world.planner_a.user_id}/disable", headers=world.t1.headers
        )
        assert response.status_code == 200
        assert response.json()["disabled_at"] is not None
        refused = client.get("/v1/clients", headers=world.planner_a.headers)
        assert refused.status_code == 401
        assert refused.headers["WWW-Authenticate"] == "Bearer"
        login = client.post(
            "/v1/auth/token", json={"email": world.planner_a.email, "password": PASSWORD}
        )
        assert login.status_code == 401
        client.post(f"/v1/users/{world.planner_a.user_id}/enable", headers=world.t1.headers)
        assert client.get("/v1/clients", headers=world.planner_a.headers).status_code == 200

    def test_sign_in_attempts_are_rate_limited(
        self, client: TestClient, world: World, settings: Settings
    ) -> None:
        bad = {"email": world.admin.email, "password": "not the password"}
        statuses = [
            client.post("/v1/auth/token", json=bad).status_code
            for _ in range(settings.login_attempts_per_min + 1)
        ]
        assert statuses[:-1] == [401] * settings.login_attempts_per_min
        assert statuses[-1] == 429
        good = client.post("/v1/auth/token", json={**bad, "password": PASSWORD})
        assert good.status_code == 429


class TestUsers:
    def test_admin_creates_a_nurse_who_reads_only_their_route(
        self, client: TestClient, world: World
    ) -> None:
        response = client.post(
            "/v1/users",
            json={"email": "nurse-b@t1.example", "role": "nurse", "staff": "S-B1"},
            headers=world.admin.headers,
        )
        assert response.status_code == 201
        created = response.json()
        assert created["staff"] == "S-B1"
        generated = created["password"]
        assert len(generated) >= 16
        listed = client.get("/v1/users", headers=world.admin.headers).json()
        assert all("password" not in u for u in listed)
        token = client.post(
            "/v1/auth/token", json={"email": "nurse-b@t1.example", "password": generated}
        ).json()["access_token"]
        own = client.get("/v1/staff/S-B1/route", params={"date": DAY}, headers=_bearer(token))
        assert own.status_code == 200
        other = client.get("/v1/staff/S-B2/route", params={"date": DAY}, headers=_bearer(token))
        assert other.status_code == 404
        assert client.get("/v1/staff/S-B1", headers=_bearer(token)).status_code == 403
        # Re-linking moves the nurse's reach with it at once.
        client.put(
            f"/v1/users/{created['id']}/staff", json={"staff": "S-B2"}, headers=world.admin.headers
        )
        moved = client.get("/v1/staff/S-B2/route", params={"date": DAY}, headers=_bearer(token))
        assert moved.status_code == 200

    def test_setting_a_planners_districts_changes_their_reach(
        self, client: TestClient, world: World
    ) -> None:
        assert client.get("/v1/clients/C-B", headers=world.planner_a.headers).status_code == 404
        response = client.put(
            f"/v1/users/{world.planner_a.user_id}/districts",
            json={"districts": ["dA", "dB"]},
            headers=world.admin.headers,
        )
        assert response.json()["districts"] == ["dA", "dB"]
        assert client.get("/v1/clients/C-B", headers=world.planner_a.headers).status_code == 200
        unknown = client.put(
            f"/v1/users/{world.planner_a.user_id}/districts",
            json={"districts": ["nowhere"]},
            headers=world.admin.headers,
        )
        assert unknown.status_code == 422
        assert unknown.json()["error"]["details"][0]["path"] == "districts[0]"

    def test_duplicate_email_and_short_password_are_refused(
        self, client: TestClient, world: World
    ) -> None:
        dup = client.post(
            "/v1/users",
            json={"email": world.admin.email.upper(), "role": "admin"},
            headers=world.t1.headers,
        )
        assert dup.status_code == 409
        short = client.post(
            "/v1/users",
            json={"email": "x@t1.example", "role": "admin", "password": "short"},
            headers=world.t1.headers,
        )
        assert short.status_code == 422

    def test_user_changes_are_audited_without_personal_data(
        self, client: TestClient, world: World, db: Engine
    ) -> None:
        client.post(f"/v1/users/{world.nurse_a.user_id}/disable", headers=world.admin.headers)
        with make_sessionmaker(db)() as session:
            entries = session.scalars(
                select(AuditEntry).where(AuditEntry.target_type == "user")
            ).all()
        assert [(e.action, e.actor, e.target_id) for e in entries] == [
            ("disable", f"user:{world.admin.user_id}", str(world.nurse_a.user_id))
        ]
        assert "@" not in str(entries[0].details)


class TestApiKeys:
    def test_scopes_bind_even_an_admin_role_key(self, client: TestClient, tenant: Tenant) -> None:
        created = client.post(
            "/v1/api-keys",
            json={"name": "read only", "role": "admin", "scopes": ["read"]},
            headers=tenant.headers,
        ).json()
        key = {"X-API-Key": created["key"]}
        assert client.get("/v1/clients", headers=key).status_code == 200
        assert client.post("/v1/import", json={}, headers=key).status_code == 403
        assert client.get("/v1/api-keys", headers=key).status_code == 403

    def test_last_used_is_recorded_at_most_once_a_minute(
        self, client: TestClient, tenant: Tenant, db: Engine
    ) -> None:
        def last_used() -> dt.datetime | None:
            with make_sessionmaker(db)() as session:
                return session.scalars(select(ApiKey.last_used_at)).one()

        assert last_used() is None
        client.get("/v1/clients", headers=tenant.headers)
        first = last_used()
        assert first is not None
        client.get("/v1/clients", headers=tenant.headers)
        assert last_used() == first
        with make_sessionmaker(db).begin() as session:
            key = session.scalars(select(ApiKey)).one()
            key.last_used_at = first - dt.timedelta(minutes=2)
        client.get("/v1/clients", headers=tenant.headers)
        later = last_used()
        assert later is not None
        assert later >= first
