"""``python -m app create-admin``: the first person who can sign in."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.cli import main
from tests.conftest import Tenant


def test_create_admin_prints_a_generated_password_once(
    client: TestClient,
    tenant: Tenant,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    args = ["create-admin", "--org", str(tenant.org_id), "--email", "Boss@Org.example", "--dev"]
    assert main(args) == 0
    password = capsys.readouterr().out.strip().splitlines()[-1]
    response = client.post(
        "/v1/auth/token", json={"email": "boss@org.example", "password": password}
    )
    assert response.status_code == 200
    token = response.json()["access_token"]
    me = client.get("/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert (me["role"], me["org_id"]) == ("admin", tenant.org_id)


def test_create_admin_reads_the_password_from_stdin(
    client: TestClient,
    db: Engine,
    tenant: Tenant,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setattr("sys.stdin", io.StringIO("a long chosen password\n"))
    args = ["create-admin", "--org", str(tenant.org_id), "--email", "b@org.example"]
    assert main([*args, "--password-stdin", "--dev"]) == 0
    assert "a long chosen password" not in capsys.readouterr().out
    login = {"email": "b@org.example", "password": "a long chosen password"}
    assert client.post("/v1/auth/token", json=login).status_code == 200
