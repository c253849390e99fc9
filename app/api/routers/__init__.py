"""One router per resource; :data:`ROUTERS` is what the app factory includes, in order."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.routers import (
    auth,
    clients,
    districts,
    events,
    health,
    imports,
    jobs,
    organisation,
    plans,
    region,
    routes,
    shifts,
    staff,
    steering,
    templates,
    users,
    visits,
    webhooks,
)

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    imports.router,
    region.router,
    clients.router,
    staff.router,
    shifts.router,
    visits.router,
    templates.router,
    districts.router,
    # Before plans.router: /v1/plans/compare is not a plan id.
    steering.router,
    steering.stream_router,
    plans.router,
    plans.districts_router,
    events.router,
    webhooks.router,
    jobs.router,
    routes.router,
    organisation.router,
    auth.router,
    users.router,
)
