"""Expansion of weekly visit templates into dated visits (idempotent).

The visit made from template ``T`` on date ``D`` has the external id ``T@D`` (ISO date), so
expanding a range twice creates nothing the second time, and a visit the care record changed or
cancelled after expansion is left as it is.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import ErrorDetail, InvalidInput
from app.store.models import Client, District, Visit, VisitStatus, VisitTemplate

MAX_DAYS = 92


@dataclass(frozen=True, slots=True)
class ExpandResult:
    """Visits created and visits that already existed for the range."""

    created: int
    existing: int


def visit_external_id(template_external_id: str, day: dt.date) -> str:
    """The external id of the visit a template makes on ``day``."""
    return f"{template_external_id}@{day.isoformat()}"


def expand(
    session: Session,
    org_id: int,
    *,
    start: dt.date,
    end: dt.date,
    district: str | None = None,
) -> ExpandResult:
    """Create the dated visits of every active client's templates between ``start`` and ``end``.

    Flushes, never commits. Raises :class:`InvalidInput` for an empty or over-long range.
    """
    if end < start or (end - start).days >= MAX_DAYS:
        msg = f"the range must run forwards and span at most {MAX_DAYS} days"
        raise InvalidInput(msg, [ErrorDetail(("to",), "invalid_range", msg)])
    stmt = (
        select(VisitTemplate)
        .join(Client, VisitTemplate.client_id == Client.id)
        .where(VisitTemplate.org_id == org_id, Client.active.is_(True))
        .where(VisitTemplate.valid_from <= end)
        .where((VisitTemplate.valid_to.is_(None)) | (VisitTemplate.valid_to >= start))
        .order_by(VisitTemplate.id)
    )
    if district is not None:
        stmt = stmt.join(District, Client.district_id == District.id).where(
            District.external_id == district
        )
    wanted: dict[str, tuple[VisitTemplate, dt.date]] = {}
    for tpl in session.scalars(stmt):
        day = max(start, tpl.valid_from)
        last = min(end, tpl.valid_to or end)
        while day <= last:
            if day.isoweekday() in tpl.weekdays:
                wanted[visit_external_id(tpl.external_id, day)] = (tpl, day)
            day += dt.timedelta(days=1)
    existing: set[str] = set()
    keys = sorted(wanted)
    for i in range(0, len(keys), 500):
        chunk = keys[i : i + 500]
        existing.update(
            session.scalars(
                select(Visit.external_id).where(
                    Visit.org_id == org_id, Visit.external_id.in_(chunk)
                )
            )
        )
    for ext in keys:
        if ext in existing:
            continue
        tpl, day = wanted[ext]
        session.add(
            Visit(
                org_id=org_id,
                external_id=ext,
                client_id=tpl.client_id,
                date=day,
                windows=tpl.windows,
                duration_s=tpl.duration_s,
                competences=tpl.competences,
                priority=tpl.priority,
                carers_required=tpl.carers_required,
                status=VisitStatus.PLANNED,
                template_id=tpl.id,
            )
        )
    session.flush()
    return ExpandResult(created=len(keys) - len(existing), existing=len(existing))
