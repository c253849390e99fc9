"""The delivery loop alone: outbox rows, giving up, refusals, and the loop in the app lifespan."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
from sqlalchemy import Engine, select

from app.notify import outbox
from app.notify.delivery import DeliveryLoop, deliver_due
from app.replan.webhooks import RetryPolicy
from app.settings import Settings
from app.store.db import make_sessionmaker
from app.store.models import DeliveryStatus, WebhookDelivery
from tests.conftest import Tenant


def _queue(db: Engine, tenant: Tenant, urls: list[str]) -> None:
    with make_sessionmaker(db).begin() as session:
        for url in urls:
            outbox.create_subscription(
                session, tenant.org_id, url=url, event_types=["plan.changed"], actor="test"
            )
        outbox.enqueue(session, tenant.org_id, "plan.changed", {"plan_id": 1})


def _deliveries(db: Engine) -> list[WebhookDelivery]:
    with make_sessionmaker(db)() as session:
        return list(session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))


def test_one_delivery_per_active_subscription_and_giving_up_after_max_attempts(
    db: Engine, tenant: Tenant, other_tenant: Tenant
) -> None:
    _queue(db, tenant, ["https://a.example/h", "https://b.example/h"])
    _queue(db, other_tenant, [])  # nobody listens there: nothing queued
    rows = _deliveries(db)
    assert len(rows) == 2
    assert len({r.event_id for r in rows}) == 1

    def down(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503 if request.url.host == "a.example" else 410)

    http = httpx.Client(transport=httpx.MockTransport(down))
    factory = make_sessionmaker(db)
    policy = RetryPolicy(base_s=1, cap_s=1, max_attempts=2)
    t = dt.datetime.now(dt.UTC)
    deliver_due(factory, http, policy=policy, now=t)
    deliver_due(factory, http, policy=policy, now=t + dt.timedelta(seconds=5))
    a, b = _deliveries(db)
    # 503 is retried up to max_attempts; 410 is a refusal: failed at once.
    assert (a.status, a.attempts, a.last_status_code, a.last_error) == (
        DeliveryStatus.FAILED,
        2,
        503,
        "HTTP 503",
    )
    assert (b.status, b.attempts, b.last_status_code) == (DeliveryStatus.FAILED, 1, 410)
    assert deliver_due(factory, http, policy=policy, now=t + dt.timedelta(days=1)) == []


def test_the_loop_started_and_stopped_sends_due_deliveries_off_the_request_path(
    db: Engine, tenant: Tenant, database_url: str
) -> None:
    _queue(db, tenant, ["https://a.example/h"])
    got: list[str] = []

    def ok(request: httpx.Request) -> httpx.Response:
        got.append(request.headers["Homecare-Event"])
        return httpx.Response(204)

    settings = Settings(database_url=database_url, dev_mode=True, webhook_poll_s=0.05)
    loop = DeliveryLoop(make_sessionmaker(db), settings, transport=httpx.MockTransport(ok))

    async def run() -> None:
        await loop.start()
        for _ in range(200):
            if _deliveries(db)[0].status is DeliveryStatus.DELIVERED:
                break
            await asyncio.sleep(0.05)
        await loop.stop()

    asyncio.run(run())
    assert got == ["plan.changed"]
    (row,) = _deliveries(db)
    assert (row.status, row.attempts, row.last_status_code) == (DeliveryStatus.DELIVERED, 1, 204)
