"""Webhook subscriptions through the API, and a re-plan announced, signed and retried."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.notify.delivery import deliver_due
from app.replan.webhooks import SIGNATURE_HEADER, RetryPolicy, verify
from app.settings import Settings
from app.store.db import make_sessionmaker
from tests.api.test_replan import planned, post_events
from tests.conftest import Tenant, count_rows

__all__ = ["planned"]  # the re-plan tests' fixture: an imported and planned district day


@pytest.fixture
def settings(db: Engine, database_url: str) -> Settings:
    """Fast solves; the app's own delivery loop stays idle (the tests drive deliveries)."""
    return Settings(
        database_url=database_url,
        dev_mode=True,
        solver_time_limit_s=1,
        replan_time_limit_s=1,
        job_heartbeat_s=0.2,
        webhook_poll_s=3600,
    )


def subscribe(client: TestClient, tenant: Tenant, url: str) -> dict[str, Any]:
    """Create a subscription (must succeed)."""
    r = client.post("/v1/webhooks", json={"url": url}, headers=tenant.headers)
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    return body


def test_secret_is_shown_once_and_subscriptions_are_per_organisation(
    client: TestClient, tenant: Tenant, other_tenant: Tenant, db: Engine
) -> None:
    sub = subscribe(client, tenant, "https://ecd.example.com/hooks")
    assert sub["secret"].startswith("whsec_")
    assert sub["event_types"] == ["plan.changed"]
    listed = client.get("/v1/webhooks", headers=tenant.headers).json()
    assert listed["total"] == 1
    assert "secret" not in listed["items"][0]
    assert sub["secret"] not in json.dumps(listed)

    theirs = client.get("/v1/webhooks", headers=other_tenant.headers).json()
    assert theirs["total"] == 0
    rows = count_rows(db)
    for method, path in (
        ("DELETE", f"/v1/webhooks/{sub['id']}"),
        ("GET", f"/v1/webhooks/{sub['id']}/deliveries"),
    ):
        r = client.request(method, path, headers=other_tenant.headers)
        assert r.status_code == 404, (method, r.text)
    assert count_rows(db) == rows

    bad = client.post(
        "/v1/webhooks",
        json={"url": "https://x.example", "event_types": ["plan.eaten"]},
        headers=tenant.headers,
    )
    assert bad.status_code == 422
    assert client.delete(f"/v1/webhooks/{sub['id']}", headers=tenant.headers).status_code == 204
    assert client.get("/v1/webhooks", headers=tenant.headers).json()["total"] == 0


def test_replan_is_announced_signed_and_retried_until_delivered(
    client: TestClient, tenant: Tenant, planned: dict[str, Any], db: Engine
) -> None:
    sub = subscribe(client, tenant, "https://ecd.example.com/hooks")
    secret = sub["secret"].encode()
    r = post_events(client, tenant, planned, [{"kind": "carer_absent", "staff": "staff-001"}])
    assert r.status_code == 201, r.text
    log = client.get(f"/v1/webhooks/{sub['id']}/deliveries", headers=tenant.headers).json()
    assert [(d["status"], d["attempts"]) for d in log["items"]] == [("pending", 0)]

    seen: list[tuple[bool, dict[str, Any]]] = []
    answers = iter(["500", "timeout", "200"])
    t0 = dt.datetime.now(dt.UTC)

    def receiver(request: httpx.Request) -> httpx.Response:
        signed = verify(
            secret, request.headers[SIGNATURE_HEADER], request.content, now=int(t0.timestamp())
        )
        seen.append((signed, json.loads(request.content)))
        answer = next(answers)
        if answer == "timeout":
            raise httpx.ReadTimeout("too slow", request=request)
        return httpx.Response(int(answer))

    http = httpx.Client(transport=httpx.MockTransport(receiver))
    factory = make_sessionmaker(db)
    policy = RetryPolicy(base_s=30, max_attempts=5)
    first = deliver_due(factory, http, policy=policy, now=t0)
    assert [a.status_code for a in first] == [500]
    assert deliver_due(factory, http, policy=policy, now=t0) == []  # not due before the backoff
    second = deliver_due(factory, http, policy=policy, now=t0 + dt.timedelta(seconds=60))
    assert [a.status_code for a in second] == [None]
    third = deliver_due(factory, http, policy=policy, now=t0 + dt.timedelta(seconds=180))
    assert [(a.status.value, a.status_code) for a in third] == [("delivered", 200)]
    assert deliver_due(factory, http, policy=policy, now=t0 + dt.timedelta(days=1)) == []

    assert [ok for ok, _ in seen] == [True, True, True]
    payload = seen[0][1]
    assert payload["type"] == "plan.changed"
    assert payload["data"]["version"] == 2
    assert payload["data"]["based_on_version"] == 1
    assert "staff-001" in payload["data"]["affected_staff"]
    assert seen[0][1] == seen[2][1]  # the same event, the same id, every attempt
    log = client.get(f"/v1/webhooks/{sub['id']}/deliveries", headers=tenant.headers).json()
    (entry,) = log["items"]
    assert (entry["status"], entry["attempts"], entry["last_status_code"]) == ("delivered", 3, 200)
    assert entry["delivered_at"] is not None
    assert entry["last_error"] is None
