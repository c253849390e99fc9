"""Prometheus metrics: request latency, solve duration, job queue depth; served at ``/metrics``.

The metrics live in one registry of this module (not prometheus_client's global one), so several
apps in one process (tests) share them without duplicate-registration errors. Other layers report
through the functions here: ``metrics.observe_solve(seconds)`` after a solve,
``metrics.set_queue_depth(n)`` when the number of waiting jobs changes. Labels are route
templates and status codes only, never ids or anything a client could put in a URL.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REGISTRY = CollectorRegistry(auto_describe=True)

REQUEST_SECONDS = Histogram(
    "homecare_http_request_duration_seconds",
    "HTTP request latency by route template, method and status.",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "homecare_http_rate_limited_total",
    "Requests refused with 429.",
    registry=REGISTRY,
)
SOLVE_SECONDS = Histogram(
    "homecare_solve_duration_seconds",
    "Wall-clock time of one solve or re-plan.",
    ["kind"],
    buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0),
    registry=REGISTRY,
)
VALIDATION_FAILURES = Counter(
    "homecare_plan_validation_failures_total",
    "Hard-rule violations found by validating a computed plan, by plan kind, broken rule and "
    "outcome (recovered: a valid fallback version was stored instead; stored: only facts were "
    "left and the version was stored as it stands; refused: nothing was stored).",
    ["kind", "violation", "outcome"],
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "homecare_job_queue_depth",
    "Solve jobs waiting to run.",
    registry=REGISTRY,
)

#: The route label of requests that matched no route (so unknown URLs add no label values).
UNMATCHED = "<unmatched>"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
CONTENT_TYPE = CONTENT_TYPE_LATEST


def observe_solve(seconds: float, *, kind: str = "solve") -> None:
    """Record one solve (``kind`` is ``solve`` or ``replan``) that took ``seconds``."""
    SOLVE_SECONDS.labels(kind=kind).observe(seconds)


def count_validation_failures(
    violations: Iterable[Mapping[str, object]], *, kind: str, outcome: str
) -> None:
    """Count each violation (``{"kind": ...}`` docs) of a plan that failed validation."""
    for v in violations:
        VALIDATION_FAILURES.labels(kind=kind, violation=str(v.get("kind")), outcome=outcome).inc()


def set_queue_depth(depth: int) -> None:
    """Set how many jobs are waiting."""
    QUEUE_DEPTH.set(depth)


def exposition() -> bytes:
    """The current metrics in Prometheus' text format."""
    return generate_latest(REGISTRY)


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/v1/clients/{external_id}``), never the raw path."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class RequestMetrics:
    """ASGI middleware timing every HTTP request into :data:`REQUEST_SECONDS`."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            REQUEST_SECONDS.labels(
                method=scope["method"] if scope["method"] in _METHODS else "OTHER",
                route=route_template(scope),
                status=str(status),
            ).observe(time.perf_counter() - start)
            if status == 429:
                RATE_LIMITED.inc()
