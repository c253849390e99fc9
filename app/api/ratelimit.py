"""Rate limits per credential: a token bucket per API key or user, and per address for sign-in.

Each caller has a bucket of ``burst`` tokens refilled at ``rate`` tokens per second; a request
takes one token, and with none left the answer is 429 with ``Retry-After``. The buckets live in
process memory by default (right for one process) and in Redis when ``REDIS_URL`` is set, so all
replicas share them; the Redis update is one Lua script (atomic, on the server's clock). If Redis
is unreachable the limiter lets requests through and logs a warning: a rate limit is a guard
against floods, not something worth failing every request for.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import redis
from starlette.exceptions import HTTPException

from app.settings import Settings

log = logging.getLogger(__name__)

#: Prefix of every Redis key the limiter writes.
REDIS_PREFIX = "homecare:ratelimit:"


class RateLimiter(Protocol):
    """Takes one token from ``key``'s bucket; answers 0 when allowed, else seconds to wait."""

    def hit(self, key: str, *, rate: float, burst: int) -> float:
        """Take a token; the wait in seconds before one is available (0 = allowed now)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


class MemoryRateLimiter:
    """Buckets in a dict (least recently used evicted beyond ``max_keys``), thread-safe."""

    def __init__(
        self, *, max_keys: int = 100_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()
        self._max_keys = max_keys
        self._clock = clock

    def hit(self, key: str, *, rate: float, burst: int) -> float:
        """Take a token from ``key``'s bucket."""
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.pop(key, (float(burst), now))
            tokens = min(float(burst), tokens + (now - last) * rate)
            wait = 0.0
            if tokens >= 1.0:
                tokens -= 1.0
            else:
                wait = (1.0 - tokens) / rate
            self._buckets[key] = (tokens, now)
            while len(self._buckets) > self._max_keys:
                self._buckets.popitem(last=False)
        return wait

    def close(self) -> None:
        """Nothing to release."""


# KEYS[1] bucket; ARGV rate, burst. Returns the wait in seconds as a string (Lua numbers would be
# truncated to integers on the way back).
_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local data = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(data[1])
local ts = tonumber(data[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
else
  wait = (1 - tokens) / rate
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""


class RedisRateLimiter:
    """Buckets in Redis, shared by every process that uses the same server."""

    def __init__(self, url: str, *, prefix: str = REDIS_PREFIX) -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._script = self._client.register_script(_LUA)
        self._prefix = prefix
        self._warned_at = 0.0

    def hit(self, key: str, *, rate: float, burst: int) -> float:
        """Take a token from ``key``'s bucket; lets the request through if Redis fails."""
        try:
            answer = self._script(keys=[self._prefix + key], args=[rate, burst])
        except redis.RedisError as exc:
            now = time.monotonic()
            if now - self._warned_at > 60:
                self._warned_at = now
                name = type(exc).__name__
                log.warning("rate limiter: redis unavailable (%s); not limiting", name)
            return 0.0
        raw = answer.decode() if isinstance(answer, bytes) else str(answer)
        return float(raw)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()


def make_rate_limiter(settings: Settings) -> RateLimiter:
    """Redis-backed when ``REDIS_URL`` is set, else in memory."""
    if settings.redis_url:
        return RedisRateLimiter(settings.redis_url)
    return MemoryRateLimiter()


def enforce(limiter: RateLimiter, key: str, *, rate: float, burst: int) -> None:
    """Raise a 429 (with ``Retry-After`` in whole seconds) when ``key`` is over its limit."""
    if rate <= 0:
        return
    wait = limiter.hit(key, rate=rate, burst=burst)
    if wait > 0:
        retry = max(1, math.ceil(wait))
        raise HTTPException(
            429,
            detail=f"too many requests; retry in {retry} s",
            headers={"Retry-After": str(retry)},
        )
