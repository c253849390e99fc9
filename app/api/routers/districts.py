"""Districts and teams (read; write them through ``POST /v1/import``)."""

from __future__ import annotations

from fastapi import APIRouter

from app.api import authz, schemas
from app.api.deps import Reader, SessionDep
from app.api.routers._items import ITEM_ERRORS, READ_ERRORS, DistrictFilter, Limit, Offset
from app.api.routing import StrictJSONRoute

router = APIRouter(prefix="/v1", tags=["districts"], route_class=StrictJSONRoute)


@router.get(
    "/districts",
    summary="List districts",
    response_model=schemas.DistrictPage,
    responses=READ_ERRORS,
)
def list_districts(
    principal: Reader, session: SessionDep, limit: Limit = 100, offset: Offset = 0
) -> schemas.DistrictPage:
    """Districts ordered by external id."""
    page = authz.repository(session, principal).districts(limit=limit, offset=offset)
    items = [schemas.district_out(r) for r in page.items]
    return schemas.DistrictPage(items=items, total=page.total, limit=limit, offset=offset)


@router.get(
    "/districts/{external_id}",
    summary="Get one district",
    response_model=schemas.DistrictOut,
    responses=ITEM_ERRORS,
)
def get_district(external_id: str, principal: Reader, session: SessionDep) -> schemas.DistrictOut:
    """The district with this external id."""
    row = authz.repository(session, principal).get("districts", external_id)
    return schemas.district_out(row)


@router.get("/teams", summary="List teams", response_model=schemas.TeamPage, responses=READ_ERRORS)
def list_teams(
    principal: Reader,
    session: SessionDep,
    district: DistrictFilter = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> schemas.TeamPage:
    """Teams ordered by external id, optionally of one district."""
    page = authz.repository(session, principal).teams(limit=limit, offset=offset, district=district)
    items = [schemas.team_out(r) for r in page.items]
    return schemas.TeamPage(items=items, total=page.total, limit=limit, offset=offset)
