"""care-record fields: client display name and geocode precision, staff start/end address

Revision ID: 0006_care_record_fields
Revises: 0004_webhooks
Create Date: 2026-11-30 21:00:00+00:00

Issue 9, item 6: the carer's route shows a display name per client; a geocoded position says
whether it is the house or only its street; staff may give where their day starts and ends as an
address (geocoded like clients, the care record's coordinates win). All columns are nullable, so
existing rows stay valid without a backfill.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_care_record_fields"
down_revision: str | None = "0005_day_facts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _source(name: str) -> sa.Enum:
    return sa.Enum(
        "care_record", "geocoded", name=name, native_enum=False, create_constraint=True, length=32
    )


def upgrade() -> None:
    """Apply this revision."""
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.add_column(sa.Column("display_name", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column(
                "geocode_precision",
                sa.Enum(
                    "address",
                    "street",
                    name="geocode_precision",
                    native_enum=False,
                    create_constraint=True,
                    length=32,
                ),
                nullable=True,
            )
        )
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.add_column(sa.Column("start_address", _JSON, nullable=True))
        batch_op.add_column(sa.Column("end_address", _JSON, nullable=True))
        batch_op.add_column(sa.Column("start_source", _source("start_source"), nullable=True))
        batch_op.add_column(sa.Column("end_source", _source("end_source"), nullable=True))
    # Every stored start and end came from the care record (there was no other way to give one).
    op.execute("UPDATE staff SET start_source = 'care_record', end_source = 'care_record'")


def downgrade() -> None:
    """Revert this revision."""
    # The CHECK constraints of the enums go first: SQLite's table copy would keep them.
    with op.batch_alter_table("staff", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_staff_end_source"), type_="check")
        batch_op.drop_constraint(op.f("ck_staff_start_source"), type_="check")
        batch_op.drop_column("end_source")
        batch_op.drop_column("start_source")
        batch_op.drop_column("end_address")
        batch_op.drop_column("start_address")
    with op.batch_alter_table("clients", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_clients_geocode_precision"), type_="check")
        batch_op.drop_column("geocode_precision")
        batch_op.drop_column("display_name")
