"""procrastinate queue schema (PostgreSQL only)

The queue library's own tables, types, functions and triggers (``procrastinate_*``), applied
from the installed package's ``schema.sql`` so the queue lives in the same database as the data.
On SQLite (the embedded default, where jobs run in-process) this revision does nothing.

Revision ID: 0003_procrastinate
Revises: 0002_plan_geometry
Create Date: 2026-11-25 09:00:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0003_procrastinate"
down_revision: str | None = "0002_plan_geometry"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    """Apply procrastinate's schema in the connection's current schema."""
    if not _is_postgresql():
        return
    from procrastinate.schema import SchemaManager

    # The raw driver cursor without parameters: the script has many statements and '%' signs.
    dbapi = op.get_bind().connection.dbapi_connection
    if dbapi is None:  # pragma: no cover - a live connection always has one
        msg = "no DBAPI connection"
        raise RuntimeError(msg)
    cursor = dbapi.cursor()
    try:
        cursor.execute(SchemaManager.get_schema())
    finally:
        cursor.close()


def downgrade() -> None:
    """Drop every procrastinate object of the current schema."""
    if not _is_postgresql():
        return
    bind = op.get_bind()
    schema = bind.scalar(text("SELECT current_schema()"))
    tables = bind.scalars(
        text(
            "SELECT tablename FROM pg_tables "
            "WHERE schemaname = :s AND tablename LIKE 'procrastinate%'"
        ),
        {"s": schema},
    ).all()
    for table in tables:
        op.execute(f'DROP TABLE IF EXISTS "{table}" CASCADE')
    functions = bind.execute(
        text(
            "SELECT p.proname, pg_get_function_identity_arguments(p.oid) FROM pg_proc p "
            "JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = :s AND p.proname LIKE 'procrastinate%'"
        ),
        {"s": schema},
    ).all()
    for name, args in functions:
        op.execute(f'DROP FUNCTION IF EXISTS "{name}"({args}) CASCADE')
    types = bind.scalars(
        text(
            "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
            "WHERE n.nspname = :s AND t.typname LIKE 'procrastinate%' AND t.typtype IN ('e', 'c')"
        ),
        {"s": schema},
    ).all()
    for name in types:
        op.execute(f'DROP TYPE IF EXISTS "{name}" CASCADE')
