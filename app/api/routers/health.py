"""Liveness and readiness probes (outside /v1, no authentication)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import Engine, text

from app.api.routing import StrictJSONRoute

router = APIRouter(tags=["health"], route_class=StrictJSONRoute)


class Health(BaseModel):
    """Probe answer."""

    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = {}
    #: Why a check is not ``ok`` where that is known (e.g. why the region failed to load).
    reasons: dict[str, str] | None = None


@router.get("/healthz", summary="Liveness: the process answers", response_model=Health)
def healthz() -> Health:
    """Always ``ok`` while the process serves requests."""
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Readiness: the database answers and the region is loaded",
    response_model=Health,
    response_model_exclude_none=True,
    responses={503: {"model": Health, "description": "A dependency is unavailable."}},
)
def readyz(request: Request) -> Health | JSONResponse:
    """``ok`` when the database answers a trivial query (and the region is loaded), else 503.

    The region check appears when the app sets ``app.state.region_ready``: a bool, or a callable
    returning a bool or a ``(state, reason)`` pair with state ``ok``, ``loading`` or ``failed``
    (the start-up warm-up sets one). A failed region stays ``failed`` with its reason.
    """
    engine: Engine = request.app.state.engine
    checks = {"database": "ok"}
    reasons: dict[str, str] = {}
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:  # any failure means "not ready"
        checks["database"] = "unreachable"
    region_ready = getattr(request.app.state, "region_ready", None)
    if region_ready is not None:
        state = region_ready() if callable(region_ready) else bool(region_ready)
        if isinstance(state, tuple):
            checks["region"], reason = state
            if reason:
                reasons["region"] = reason
        else:
            checks["region"] = "ok" if state else "loading"
    if any(v != "ok" for v in checks.values()):
        body = Health(status="unavailable", checks=checks, reasons=reasons or None)
        return JSONResponse(body.model_dump(exclude_none=True), status_code=503)
    return Health(status="ok", checks=checks)
