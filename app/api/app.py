"""The app factory: everything stateful (engine, sessions) is built here from the settings."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Response
from fastapi.routing import APIRoute
from sqlalchemy.orm import Session, sessionmaker

from app.api import errors, metrics, ratelimit
from app.api.deps import PrincipalCache
from app.api.middleware import BodySizeLimit, RequestContext
from app.api.routers import ROUTERS, console
from app.errors import RegionUnavailable
from app.jobs.backend import JobBackend
from app.jobs.runner import InProcessBackend
from app.notify.delivery import DeliveryLoop
from app.planning.pool import PoolClosed, get_pool, get_region, region_state
from app.planning.views import RouteCache
from app.settings import Settings
from app.store.db import make_engine, make_sessionmaker

DESCRIPTION = """
Home-care route and visit scheduling for district nursing teams.

**For care-record (ECD/EPD/EOJ) vendors:** push clients, staff, shifts and visits with
`POST /v1/import` (idempotent upsert by your own external ids, all-or-nothing per batch, honours
`Idempotency-Key`), then read plans back.

**Conventions.** Authenticate with `Authorization: Bearer <API key>` or `X-API-Key` (systems),
or `Authorization: Bearer <token>` from `POST /v1/auth/token` (people: admin, planner, nurse).
Times of day are `"HH:MM"` strings in the organisation's timezone, durations are whole minutes,
dates are ISO `YYYY-MM-DD`. Lists are paginated with `limit`/`offset` and return `total`.
Every error has the body `{"error": {"code", "message", "details": [{"loc", "path", "code",
"msg"}]}}` and a 4xx status for anything the caller can fix; one bad row refuses the whole batch
and names every bad field.
"""

TAGS = [
    {"name": "import", "description": "Bulk upsert of care-record data by external id."},
    {"name": "clients", "description": "People cared for at home."},
    {"name": "staff", "description": "Carers and nurses."},
    {"name": "shifts", "description": "Working days of staff."},
    {"name": "visits", "description": "Dated visits to clients."},
    {"name": "visit-templates", "description": "Weekly recurring visits and their expansion."},
    {"name": "districts", "description": "Districts and teams."},
    {"name": "plans", "description": "Plan versions per district and date, and solve jobs."},
    {"name": "routes", "description": "A carer's work list for a day (the nurses' app)."},
    {"name": "region", "description": "The road network and address index plans use."},
    {"name": "organisation", "description": "Tenant settings, competence list and API keys."},
    {"name": "webhooks", "description": "Plan-changed notifications to vendors' endpoints."},
    {"name": "auth", "description": "Sign-in tokens for people."},
    {"name": "users", "description": "People who sign in, their roles and reach (admin only)."},
    {"name": "health", "description": "Liveness and readiness probes."},
]


def _operation_id(route: APIRoute) -> str:
    # Stable ids for generated clients: the handler's function name, unique across the app.
    return route.name


def create_app(settings: Settings) -> FastAPI:
    """Build the ASGI app: engine and sessionmaker on ``app.state``, routers, error handlers."""
    engine = make_engine(settings.database_url, echo=settings.database_echo)
    limiter = ratelimit.make_rate_limiter(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if settings.region_warmup:
            _start_region_warmup(app, settings)
        await jobs.start()  # recovers jobs a crashed process left running
        await webhooks.start()
        yield
        await webhooks.stop()
        await jobs.stop()
        limiter.close()
        engine.dispose()

    app = FastAPI(
        title="Home-care planner API",
        version="1.0.0",
        summary="Routes and visit schedules for home-care teams.",
        description=DESCRIPTION,
        openapi_tags=TAGS,
        generate_unique_id_function=_operation_id,
        lifespan=lifespan,
        # Served from vendored files by app.api.routers.console (the defaults load a CDN).
        docs_url=None,
        redoc_url=None,
        license_info={"name": "AGPL-3.0-or-later"},
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = make_sessionmaker(engine)
    jobs = _job_backend(settings, app.state.sessionmaker)
    app.state.jobs = jobs
    webhooks = DeliveryLoop(app.state.sessionmaker, settings)
    app.state.webhooks = webhooks
    app.state.rate_limiter = limiter
    app.state.route_cache = RouteCache(
        max_entries=settings.route_cache_entries, ttl_s=settings.route_cache_ttl_s
    )
    app.state.principal_cache = PrincipalCache(ttl_s=settings.auth_cache_ttl_s)
    errors.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # Added last = outermost: every answer (413s and 500s included) is timed, logged and has an id.
    app.add_middleware(metrics.RequestMetrics)
    app.add_middleware(RequestContext)
    for router in ROUTERS:
        app.include_router(router)
    app.include_router(console.router)
    app.mount(console.STATIC_URL, console.static_files(), name="console")
    app.add_api_route(
        "/metrics",
        _metrics_endpoint,
        methods=["GET"],
        response_class=Response,
        # An operations endpoint for the Prometheus scraper, not part of the API contract.
        include_in_schema=False,
    )
    return app


def _job_backend(settings: Settings, factory: sessionmaker[Session]) -> JobBackend:
    """The configured job backend: in this process (default) or on procrastinate workers."""
    if settings.job_backend == "procrastinate":
        from app.jobs.queue_procrastinate import ProcrastinateBackend

        return ProcrastinateBackend(factory, settings)
    return InProcessBackend(
        factory,
        settings,
        lambda: get_pool(
            settings.region_file,
            settings.osm_cache_dir,
            settings.planning_workers,
            settings.region_modes,
        ),
    )


_log = logging.getLogger(__name__)


def _start_region_warmup(app: FastAPI, settings: Settings) -> None:
    """Load the region on a daemon thread; ``/readyz`` reports "loading", then "ok" or "failed".

    A cold ``osm_cache`` builds the road graphs first (15-30 s), which must neither delay the
    liveness probe nor block shutdown, hence a daemon thread rather than the event loop's executor.
    A failure is kept with its reason (``/readyz`` and every region call say it; it is not retried
    per request).
    """
    region_file, cache_dir = settings.region_file, settings.osm_cache_dir
    modes = settings.region_modes
    app.state.region_ready = lambda: region_state(region_file, cache_dir, modes)

    def warm() -> None:
        try:
            get_region(region_file, cache_dir, modes)
        except RegionUnavailable as exc:  # kept by the pool; /readyz reports it
            _log.warning("region warm-up failed: %s", exc.message)
            return
        if settings.job_backend != "procrastinate":  # the solver workers live in this process
            try:
                get_pool(region_file, cache_dir, settings.planning_workers, modes).warm()
            except PoolClosed:  # shutting down already
                return

    threading.Thread(target=warm, name="region-warmup", daemon=True).start()


def _metrics_endpoint() -> Response:
    """Request latency by route, solve durations and job queue depth (no tenant data)."""
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)
