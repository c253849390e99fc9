"""Shared fixtures: a migrated database per backend, a clean slate per test, an app and tenants.

Database tests run twice, on SQLite (a file per test session) and on PostgreSQL
(``TEST_DATABASE_URL``, default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``) in a schema
of its own that is created by ``alembic upgrade head`` and dropped at the end, so parallel runs
never see each other. Every test starts from empty tables (truncation before the test). Without a
reachable PostgreSQL the PostgreSQL half is skipped locally and FAILS when ``CI=true``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url

from app.api.app import create_app
from app.planning.pool import get_region
from app.routing import Region
from app.settings import Settings
from app.store import migrate, tenants
from app.store.db import make_engine, make_sessionmaker
from app.store.models import Base

PG_DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def pg_base_url() -> str:
    """The PostgreSQL server the tests use."""
    return os.environ.get("TEST_DATABASE_URL", PG_DEFAULT_URL)


def _pg_reachable(url: str) -> str | None:
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure: report it as the reason
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    finally:
        engine.dispose()
    return None


def require_postgres() -> str:
    """The server URL, or skip (locally) / fail (CI=true) when PostgreSQL is unreachable."""
    url = pg_base_url()
    problem = _pg_reachable(url)
    if problem is not None:
        msg = f"PostgreSQL at {make_url(url).render_as_string()} is unreachable: {problem}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    return url


def with_search_path(url: str, schema: str) -> str:
    """``url`` whose connections use ``schema`` first."""
    return (
        make_url(url)
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
    )


@pytest.fixture(scope="session")
def fresh_database_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Callable ``(backend) -> url`` of an empty database; PostgreSQL schemas dropped at the end."""
    schemas: list[str] = []

    def make(backend: str) -> str:
        if backend == "sqlite":
            path: Path = tmp_path_factory.mktemp("db") / "test.sqlite3"
            return f"sqlite:///{path}"
        base = require_postgres()
        schema = f"t_{uuid.uuid4().hex[:12]}"
        admin = create_engine(base)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
        schemas.append(schema)
        return with_search_path(base, schema)

    yield make
    if schemas:
        admin = create_engine(pg_base_url())
        with admin.begin() as conn:
            for schema in schemas:
                conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(
    scope="session",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def database_url(request: pytest.FixtureRequest, fresh_database_factory: object) -> str:
    """A migrated database (once per backend and session)."""
    url: str = fresh_database_factory(request.param)  # type: ignore[operator]
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    return url


@pytest.fixture(scope="session")
def _session_engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def truncate_all(engine: Engine) -> None:
    """Empty every table of the models (not alembic_version)."""
    tables = [t.name for t in Base.metadata.sorted_tables]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t}"' for t in tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(tables):
                conn.execute(text(f'DELETE FROM "{table}"'))


@pytest.fixture
def db(_session_engine: Engine) -> Engine:
    """An engine on an empty, migrated database (the backend is a fixture parameter)."""
    truncate_all(_session_engine)
    return _session_engine


def count_rows(engine: Engine) -> dict[str, int]:
    """Row count per table, to prove that a refused request stored nothing."""
    out = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            out[table.name] = int(conn.scalar(select(func.count()).select_from(table)) or 0)
    return out


@pytest.fixture
def settings(db: Engine, database_url: str) -> Settings:
    """Dev-mode settings on the test database (tests that need the region load it themselves)."""
    return Settings(
        database_url=database_url,
        dev_mode=True,
        max_body_bytes=256 * 1024,
        region_warmup=False,
    )


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    """A fresh app on the test database."""
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    """An HTTP client for ``app`` (server errors become responses, not exceptions)."""
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@dataclass(frozen=True)
class Tenant:
    """An organisation with an admin API key."""

    org_id: int
    key: str

    @property
    def headers(self) -> dict[str, str]:
        """Authorization headers for this tenant's key."""
        return {"Authorization": f"Bearer {self.key}"}


def make_tenant(engine: Engine, name: str) -> Tenant:
    """Create an organisation and an admin key, committed."""
    with make_sessionmaker(engine).begin() as session:
        org = tenants.create_organisation(session, name, timezone="Europe/Vaduz")
        key = tenants.create_api_key(session, org.id, name="test admin")
        return Tenant(org_id=org.id, key=key.plaintext)


@pytest.fixture
def tenant(db: Engine) -> Tenant:
    """The organisation most tests act as."""
    return make_tenant(db, "Thuiszorg Test")


@pytest.fixture
def other_tenant(db: Engine) -> Tenant:
    """A second organisation, to prove isolation."""
    return make_tenant(db, "Other Care")


@pytest.fixture(scope="session")
def region() -> Region:
    """Liechtenstein with every mode from osm_cache/: the per-process copy the API also uses."""
    settings = Settings(dev_mode=True)
    if not settings.region_file.is_file():
        pytest.skip(f"shared OSM data not found at {settings.region_file}")
    return get_region(settings.region_file, settings.osm_cache_dir)
