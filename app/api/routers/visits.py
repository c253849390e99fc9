"""Visits: dated visits to clients."""

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
from app.store.inputs import VisitIn
from app.store.models import VisitStatus

router = APIRouter(prefix="/v1/visits", tags=["visits"], route_class=StrictJSONRoute)


@router.get("", summary="List visits", response_model=schemas.VisitPage, responses=READ_ERRORS)
def list_visits(
    principal: Reader,
    session: SessionDep,
    district: DistrictFilter = None,
    client: Annotated[str | None, Query(description="Only this client.")] = None,
    status: Annotated[VisitStatus | None, Query(description="Only this status.")] = None,
    date: DateQ = None,
    date_from: DateFromQ = None,
    date_to: DateToQ = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> schemas.VisitPage:
    """Visits ordered by date and external id, filtered by the client's district, date, status."""
    page = authz.repository(session, principal).visits(
        limit=limit,
        offset=offset,
        district=district,
        client=client,
        status=status,
        dates=date_filter(date, date_from, date_to),
    )
    items = [schemas.visit_out(r) for r in page.items]
    return schemas.VisitPage(items=items, total=page.total, limit=limit, offset=offset)


add_item_routes(
    router,
    resource="visits",
    section="visits",
    singular="visit",
    in_model=VisitIn,
    out_model=schemas.VisitOut,
    to_out=schemas.visit_out,
)
