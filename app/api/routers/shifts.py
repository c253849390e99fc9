"""Shifts: staff working days."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api import authz, schemas
from app.api.deps import Reader, SessionDep
from app.api.routers._items import (
    READ_ERRORS,
    DateFromQ,
    DateQ,
    DateToQ,
    DistrictFilter,
    Limit,
    Offset,
    add_item_routes,
    date_filter,
)
from app.api.routing import StrictJSONRoute
from app.store.inputs import ShiftIn

router = APIRouter(prefix="/v1/shifts", tags=["shifts"], route_class=StrictJSONRoute)


@router.get("", summary="List shifts", response_model=schemas.ShiftPage, responses=READ_ERRORS)
def list_shifts(
    principal: Reader,
    session: SessionDep,
    district: DistrictFilter = None,
    staff: Annotated[str | None, Query(description="Only this staff member.")] = None,
    date: DateQ = None,
    date_from: DateFromQ = None,
    date_to: DateToQ = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> schemas.ShiftPage:
    """Shifts ordered by date and start, filtered by the staff member's district and by date."""
    page = authz.repository(session, principal).shifts(
        limit=limit,
        offset=offset,
        district=district,
        staff=staff,
        dates=date_filter(date, date_from, date_to),
    )
    items = [schemas.shift_out(r) for r in page.items]
    return schemas.ShiftPage(items=items, total=page.total, limit=limit, offset=offset)


add_item_routes(
    router,
    resource="shifts",
    section="shifts",
    singular="shift",
    in_model=ShiftIn,
    out_model=schemas.ShiftOut,
    to_out=schemas.shift_out,
)
