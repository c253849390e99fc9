"""day facts: absences, extra hours, client unavailability; reported visit times

Revision ID: 0005_day_facts
Revises: 0004_webhooks
Create Date: 2026-11-30 20:43:24+00:00

Events are data (issue 9): ``day_facts`` holds a carer's absence or extra hours and a client's
unavailability per date; ``visits`` gains the reported actual times and carer of a started or
done visit, and ``origin`` (``urgent`` for visits added by an event). A fresh plan of the day
reads them, so it keeps what the day's events said.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_day_facts"
down_revision: str | None = "0004_webhooks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "day_facts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("org_id", sa.Integer(), nullable=False),
        sa.Column("district_id", sa.Integer(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column(
            "kind",
            sa.Enum(
                "carer_absent",
                "carer_available",
                "client_unavailable",
                name="day_fact_kind",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("staff_id", sa.Integer(), nullable=True),
        sa.Column("client_id", sa.Integer(), nullable=True),
        sa.Column("from_s", sa.Integer(), nullable=False),
        sa.Column("until_s", sa.Integer(), nullable=True),
        sa.Column("plan_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(staff_id IS NULL) <> (client_id IS NULL)", name=op.f("ck_day_facts_one_subject")
        ),
        sa.CheckConstraint(
            "until_s IS NULL OR until_s > from_s", name=op.f("ck_day_facts_until_after_from")
        ),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_day_facts_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["district_id"],
            ["districts.id"],
            name=op.f("fk_day_facts_district_id_districts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"],
            ["organisations.id"],
            name=op.f("fk_day_facts_org_id_organisations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"], ["plans.id"], name=op.f("fk_day_facts_plan_id_plans"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["staff_id"], ["staff.id"], name=op.f("fk_day_facts_staff_id_staff"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_day_facts")),
    )
    with op.batch_alter_table("day_facts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_day_facts_client_id"), ["client_id"], unique=False)
        batch_op.create_index(
            "ix_day_facts_org_id_district_id_date", ["org_id", "district_id", "date"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_day_facts_staff_id"), ["staff_id"], unique=False)

    with op.batch_alter_table("visits", schema=None) as batch_op:
        batch_op.add_column(sa.Column("actual_start_s", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("actual_end_s", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("actual_staff_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("origin", sa.String(length=16), server_default="import", nullable=False)
        )
        batch_op.create_index(
            batch_op.f("ix_visits_actual_staff_id"), ["actual_staff_id"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_visits_actual_staff_id_staff"),
            "staff",
            ["actual_staff_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    """Revert this revision."""
    with op.batch_alter_table("visits", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_visits_actual_staff_id_staff"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_visits_actual_staff_id"))
        batch_op.drop_column("origin")
        batch_op.drop_column("actual_staff_id")
        batch_op.drop_column("actual_end_s")
        batch_op.drop_column("actual_start_s")

    with op.batch_alter_table("day_facts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_day_facts_staff_id"))
        batch_op.drop_index("ix_day_facts_org_id_district_id_date")
        batch_op.drop_index(batch_op.f("ix_day_facts_client_id"))

    op.drop_table("day_facts")
