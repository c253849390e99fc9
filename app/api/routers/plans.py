"""Plan versions (read). Creating and publishing plans is added by the planning endpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api import schemas
from app.api.deps import Reader, SessionDep
from app.api.routers._items import (
    ITEM_ERRORS,
    READ_ERRORS,
    DateFromQ,
    DateQ,
    DateToQ,
    DistrictFilter,
    Limit,
    Offset,
    date_filter,
)
from app.api.routing import StrictJSONRoute
from app.store.models import PlanStatus
from app.store.repositories import TenantRepository

router = APIRouter(prefix="/v1/plans", tags=["plans"], route_class=StrictJSONRoute)


@router.get(
    "", summary="List plan versions", response_model=schemas.PlanPage, responses=READ_ERRORS
)
def list_plans(
    principal: Reader,
    session: SessionDep,
    district: DistrictFilter = None,
    status: Annotated[PlanStatus | None, Query(description="Only this status.")] = None,
    date: DateQ = None,
    date_from: DateFromQ = None,
    date_to: DateToQ = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> schemas.PlanPage:
    """Plan versions (without routes), newest date first, then district, newest version first."""
    page = TenantRepository(session, principal.org_id).plans(
        limit=limit,
        offset=offset,
        district=district,
        status=status,
        dates=date_filter(date, date_from, date_to),
    )
    items = [schemas.plan_summary(r) for r in page.items]
    return schemas.PlanPage(items=items, total=page.total, limit=limit, offset=offset)


@router.get(
    "/{plan_id}",
    summary="Get one plan version",
    response_model=schemas.PlanOut,
    responses=ITEM_ERRORS,
)
def get_plan(plan_id: int, principal: Reader, session: SessionDep) -> schemas.PlanOut:
    """A plan version with its routes, unassigned visits (with reasons) and figures."""
    return schemas.plan_out(TenantRepository(session, principal.org_id).plan(plan_id))
