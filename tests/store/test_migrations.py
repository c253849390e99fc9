"""Migrations build the schema from empty, agree with the models, and take it down again."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from app.store import migrate
from app.store.db import make_engine
from app.store.models import Base

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_upgrade_from_empty_matches_models_and_downgrades_to_base(
    backend: str, fresh_database_factory: Callable[[str], str]
) -> None:
    engine = make_engine(fresh_database_factory(backend))
    try:
        migrate.upgrade(engine)
        tables = set(inspect(engine).get_table_names())
        assert {t.name for t in Base.metadata.sorted_tables} <= tables

        with engine.connect() as conn:
            ctx = MigrationContext.configure(
                conn, opts={"compare_type": True, "include_object": migrate.include_object}
            )
            diff = compare_metadata(ctx, Base.metadata)
        assert diff == []

        migrate.downgrade(engine)
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}

        migrate.upgrade(engine)  # and back up again: downgrade left nothing behind
        assert {t.name for t in Base.metadata.sorted_tables} <= set(
            inspect(engine).get_table_names()
        )
    finally:
        engine.dispose()
