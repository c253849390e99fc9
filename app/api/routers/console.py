"""The planner's console and the API documentation pages, served from files in the package.

Nothing here is part of the API contract (no OpenAPI entries): the pages call the ``/v1`` API
with the credential the user signs in with, so every rule of the API holds in the browser.
Swagger UI and ReDoc come from npm packages vendored into ``app/console/static/vendor``
(``scripts/vendor-assets.sh``); no page loads anything from outside the service.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from app.api.deps import SettingsDep
from app.settings import Settings

STATIC_DIR = Path(__file__).resolve().parents[2] / "console" / "static"
STATIC_URL = "/console"
#: The console's own page allows nothing from outside the service.
CONSOLE_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)

router = APIRouter(include_in_schema=False)


def static_files() -> StaticFiles:
    """The console's scripts, styles, texts and the vendored documentation assets."""
    return StaticFiles(directory=STATIC_DIR)


def _tile_origin(settings: Settings) -> str | None:
    url = settings.console_tile_url
    return None if url is None else "https://" + url.removeprefix("https://").split("/", 1)[0]


@router.get("/")
def console_page(settings: SettingsDep) -> FileResponse:
    """The single-page console (planners sign in; nurses get their phone view)."""
    csp = CONSOLE_CSP
    origin = _tile_origin(settings)
    if origin is not None:  # the optional online map's tiles, and nothing else from outside
        csp = csp.replace("img-src 'self' data:", f"img-src 'self' data: {origin}")
    return FileResponse(
        STATIC_DIR / "console.html",
        media_type="text/html",
        headers={"Content-Security-Policy": csp, "Cache-Control": "no-cache"},
    )


@router.get("/console/config.json")
def console_config(settings: SettingsDep) -> JSONResponse:
    """What the page needs to know of the deployment (no tenant data, no credential needed)."""
    return JSONResponse({"tile_url": settings.console_tile_url})


@router.get("/docs")
def swagger_page() -> HTMLResponse:
    """Swagger UI from the vendored bundle (no validator badge: it would call out)."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="Home-care planner API",
        swagger_js_url=f"{STATIC_URL}/vendor/swagger-ui-bundle.js",
        swagger_css_url=f"{STATIC_URL}/vendor/swagger-ui.css",
        swagger_favicon_url=f"{STATIC_URL}/favicon.svg",
        swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
    )


@router.get("/redoc")
def redoc_page() -> HTMLResponse:
    """ReDoc from the vendored bundle, with the system fonts."""
    return get_redoc_html(
        openapi_url="/openapi.json",
        title="Home-care planner API",
        redoc_js_url=f"{STATIC_URL}/vendor/redoc.standalone.js",
        redoc_favicon_url=f"{STATIC_URL}/favicon.svg",
        with_google_fonts=False,
    )
