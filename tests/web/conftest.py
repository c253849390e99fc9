"""A live service on the demo day and a headless Chromium (the Debian package) driven by
Playwright.

The browser tests need the system chromium: without it they are skipped on a developer's
machine and fail in CI (``CI=true``), where ``.ci/run`` installs it.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from app.api.app import create_app
from app.settings import Settings
from app.store import migrate, seed
from app.store.db import make_engine

DAY = dt.date(2026, 12, 1)
PASSWORD = "console-test-password"
#: A 1x1 transparent PNG: what the fake tile server answers.
BLANK_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def chromium_path() -> str | None:
    """The Debian chromium binary, if installed."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class Live:
    """The running service and the demo day's credentials."""

    base: str
    api_key: str
    plan_id: int
    planner: str = "planner@demo.example"
    nurse: str = "nurse@demo.example"
    nurse_staff: str = ""
    day: str = DAY.isoformat()
    extra: dict[str, Any] = field(default_factory=dict)

    def api(self, method: str, path: str, **kw: Any) -> httpx.Response:
        """Call the API as the demo admin key."""
        headers = {"X-API-Key": self.api_key, **kw.pop("headers", {})}
        return httpx.request(method, self.base + path, headers=headers, timeout=60, **kw)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def web_settings(tmp: Path, **extra: Any) -> Settings:
    """A migrated SQLite file of its own, the demo's files in ``tmp``, short solver budgets."""
    settings = Settings(
        **extra,
        database_url=f"sqlite:///{tmp / 'console.sqlite3'}",
        dev_mode=True,
        data_dir=tmp,
        region_warmup=False,
        replan_time_limit_s=1,
        solver_time_limit_s=2,
        rate_limit_per_s=0.0,
        # Every test signs in afresh from the same address.
        login_attempts_per_min=1000,
        webhook_poll_s=3600,
    )
    if not settings.region_file.is_file():
        pytest.skip(f"shared OSM data not found at {settings.region_file}")
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    engine.dispose()
    return settings


@contextmanager
def serve(settings: Settings) -> Iterator[str]:
    """The service on a free port of 127.0.0.1 in a thread; yields its base URL."""
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            pytest.fail("the service did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def add_people(out: Live, district: str, nurse_staff: str) -> None:
    """A planner of ``district`` and a nurse linked to ``nurse_staff``, with :data:`PASSWORD`."""
    for email, role, extra in (
        (out.planner, "planner", {"districts": [district]}),
        (out.nurse, "nurse", {"staff": nurse_staff}),
    ):
        r = out.api(
            "POST", "/v1/users", json={"email": email, "role": role, "password": PASSWORD, **extra}
        )
        assert r.status_code == 201, r.text


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """The demo district seeded as ``make run`` does, served by uvicorn on a free port."""
    settings = web_settings(tmp_path_factory.mktemp("console"))
    demo = seed.seed_demo(settings, day=DAY)
    assert demo.plan_id is not None, demo.summary
    with serve(settings) as base:
        out = Live(base=base, api_key=demo.api_key, plan_id=demo.plan_id)
        plan = out.api("GET", f"/v1/plans/{demo.plan_id}").json()
        out.nurse_staff = next(r["staff"] for r in reversed(plan["routes"]) if len(r["stops"]) > 3)
        add_people(out, plan["district"], out.nurse_staff)
        yield out


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium from the Debian package (never a downloaded browser build)."""
    path = chromium_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs it (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium chromium-driver)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


class Console:
    """One browser page on the console, recording console errors and outside requests."""

    def __init__(
        self,
        browser: Any,
        live: Live,
        *,
        width: int = 1400,
        height: int = 1000,
        tiles: str | None = None,
    ):
        self.live = live
        #: Requests to the optional online tile server (answered here with a blank tile).
        self.tiles: list[str] = []
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.errors: list[str] = []
        #: Errors a test provokes on purpose (Chromium logs every 4xx answer as one).
        self.allowed: list[str] = []
        self.outside: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

        def guard(route: Any) -> None:
            if route.request.url.startswith(live.base):
                route.continue_()
            elif tiles is not None and route.request.url.startswith(tiles):
                self.tiles.append(route.request.url)
                route.fulfill(status=200, content_type="image/png", body=BLANK_PNG)
            else:
                self.outside.append(route.request.url)
                route.abort()

        self.page.route("**/*", guard)

    def sign_in(self, email: str, path: str = "/") -> None:
        """Open the console and sign in with email and password."""
        self.page.goto(self.live.base + path)
        self.page.get_by_label("Email").fill(email)
        self.page.get_by_label("Password").fill(PASSWORD)
        self.page.get_by_role("button", name="Sign in").click()

    def shot(self, name: str, show: str | None = None) -> None:
        """A screenshot of the window into docs/screenshots/, scrolled to ``show`` if given."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        if show is not None:
            self.page.locator(show).first.scroll_into_view_if_needed()
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))

    def close(self) -> None:
        """Close the page; fail on any console error or outside request it saw."""
        self.context.close()
        unexpected = [e for e in self.errors if not any(a in e for a in self.allowed)]
        assert unexpected == [], unexpected
        assert self.outside == [], self.outside


@pytest.fixture
def console(browser: Any, live: Live) -> Iterator[Console]:
    """A desktop-sized console page, checked for console errors when the test ends."""
    c = Console(browser, live)
    yield c
    c.close()
