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


@router.get("/healthz", summary="Liveness: the process answers", response_model=Health)
def healthz() -> Health:
    """Always ``ok`` while the process serves requests."""
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Readiness: the database answers",
    response_model=Health,
    responses={503: {"model": Health, "description": "A dependency is unavailable."}},
)
def readyz(request: Request) -> Health | JSONResponse:
    """``ok`` when the database answers a trivial query, else 503."""
    engine: Engine = request.app.state.engine
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:  # any failure means "not ready"
        body = Health(status="unavailable", checks={"database": "unreachable"})
        return JSONResponse(body.model_dump(), status_code=503)
    return Health(status="ok", checks={"database": "ok"})
