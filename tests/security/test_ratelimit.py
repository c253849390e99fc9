"""Rate limits: the token bucket in memory and in the machine's Redis, and the 429 answer."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis
from fastapi.testclient import TestClient

from app.api.app import create_app
from app.api.ratelimit import MemoryRateLimiter, RedisRateLimiter
from app.settings import Settings
from tests.conftest import Tenant

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_memory_bucket_allows_burst_then_refills() -> None:
    clock = FakeClock()
    limiter = MemoryRateLimiter(clock=clock)
    waits = [limiter.hit("k", rate=2.0, burst=3) for _ in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == pytest.approx(0.5)
    assert limiter.hit("other", rate=2.0, burst=3) == 0.0  # buckets are per key
    clock.now += 0.5
    assert limiter.hit("k", rate=2.0, burst=3) == 0.0
    assert limiter.hit("k", rate=2.0, burst=3) > 0
    clock.now += 100  # refills up to the burst, not beyond
    assert [limiter.hit("k", rate=2.0, burst=3) for _ in range(4)].count(0.0) == 3


def test_memory_limiter_forgets_the_least_recent_keys() -> None:
    limiter = MemoryRateLimiter(max_keys=2, clock=FakeClock())
    for key in ("a", "b", "c"):
        limiter.hit(key, rate=1.0, burst=1)
    assert limiter.hit("a", rate=1.0, burst=1) == 0.0  # "a" was evicted: a fresh bucket
    assert limiter.hit("c", rate=1.0, burst=1) > 0


def _limited_client(settings: Settings, **update: object) -> TestClient:
    limited = settings.model_copy(update={"rate_limit_burst": 3, "rate_limit_per_s": 0.1, **update})
    return TestClient(create_app(limited), raise_server_exceptions=False)


def _assert_limited(client: TestClient, tenant: Tenant, other_tenant: Tenant) -> None:
    statuses = [client.get("/v1/clients", headers=tenant.headers).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = client.get("/v1/clients", headers=tenant.headers)
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 10
    assert refused.json()["error"]["code"] == "too_many_requests"
    # Another credential has a bucket of its own.
    assert client.get("/v1/clients", headers=other_tenant.headers).status_code == 200
    assert "homecare_http_rate_limited_total" in client.get("/metrics").text


def test_http_answers_429_in_memory(
    settings: Settings, tenant: Tenant, other_tenant: Tenant
) -> None:
    with _limited_client(settings) as client:
        _assert_limited(client, tenant, other_tenant)


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The machine's Redis (database 15), emptied of the limiter's keys afterwards."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"Redis at {REDIS_URL} is unreachable: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} is unreachable: {exc}")
    yield REDIS_URL
    for key in client.scan_iter("homecare:ratelimit:*"):
        client.delete(key)
    client.close()


def test_redis_bucket_is_shared_between_limiters(redis_url: str) -> None:
    prefix = f"homecare:ratelimit:test-{uuid.uuid4().hex}:"
    first = RedisRateLimiter(redis_url, prefix=prefix)
    second = RedisRateLimiter(redis_url, prefix=prefix)
    try:
        waits = [first.hit("k", rate=0.5, burst=2), second.hit("k", rate=0.5, burst=2)]
        assert waits == [0.0, 0.0]
        wait = first.hit("k", rate=0.5, burst=2)  # a third request from either process waits
        assert 1.0 < wait <= 2.0
    finally:
        first.close()
        second.close()


def test_http_answers_429_with_redis(
    settings: Settings, tenant: Tenant, other_tenant: Tenant, redis_url: str
) -> None:
    with _limited_client(settings, redis_url=redis_url) as client:
        _assert_limited(client, tenant, other_tenant)


def test_unreachable_redis_does_not_block_requests(settings: Settings, tenant: Tenant) -> None:
    with _limited_client(settings, redis_url="redis://127.0.0.1:1/0") as client:
        statuses = {client.get("/v1/clients", headers=tenant.headers).status_code for _ in range(5)}
    # A rate limit guards against floods; an outage of Redis must not become an outage of the API.
    assert statuses == {200}
