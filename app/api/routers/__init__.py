"""One router per resource; :data:`ROUTERS` is what the app factory includes, in order."""

from __future__ import annotations

from fastapi import APIRouter

from app.api.routers import health, imports

ROUTERS: tuple[APIRouter, ...] = (health.router, imports.router)
