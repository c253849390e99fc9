"""The console and the API docs are served from the package, with nothing loaded from outside."""

from __future__ import annotations

import re

from fastapi.testclient import TestClient

from app.api.app import create_app
from app.settings import Settings


def _outside_urls(html: str) -> list[str]:
    return re.findall(r"""(?:src|href)=["'](https?://[^"']+)""", html)


def test_console_and_docs_pages_load_only_local_assets(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert _outside_urls(page.text) == []
    for path in ("/docs", "/redoc"):
        r = client.get(path)
        assert r.status_code == 200
        assert _outside_urls(r.text) == [], path
        assert "/console/vendor/" in r.text
    for asset in (
        "/console/console.js",
        "/console/console.css",
        "/console/i18n/en.js",
        "/console/vendor/swagger-ui-bundle.js",
        "/console/vendor/swagger-ui.css",
        "/console/vendor/redoc.standalone.js",
    ):
        assert client.get(asset).status_code == 200, asset
    assert "cdn.redoc.ly" not in client.get("/console/vendor/redoc.standalone.js").text
    assert client.get("/console/config.json").json() == {"tile_url": None}


def test_a_tile_url_opens_the_policy_to_that_origin_only(settings: Settings) -> None:
    tiles = settings.model_copy(
        update={"console_tile_url": "https://tiles.example/{z}/{x}/{y}.png"}
    )
    with TestClient(create_app(tiles)) as client:
        policy = client.get("/").headers["content-security-policy"]
        assert "img-src 'self' data: https://tiles.example;" in policy
        assert "connect-src 'self'" in policy
        assert client.get("/console/config.json").json()["tile_url"].startswith("https://tiles.")
