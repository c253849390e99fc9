"""Staff: carers and nurses."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from app.api import authz, schemas
from app.api.deps import Reader, SessionDep
from app.api.routers._items import READ_ERRORS, DistrictFilter, Limit, Offset, add_item_routes
from app.api.routing import StrictJSONRoute
from app.store.inputs import StaffIn

router = APIRouter(prefix="/v1/staff", tags=["staff"], route_class=StrictJSONRoute)


@router.get("", summary="List staff", response_model=schemas.StaffPage, responses=READ_ERRORS)
def list_staff(
    principal: Reader,
    session: SessionDep,
    district: DistrictFilter = None,
    team: Annotated[str | None, Query(description="Only this team (external_id).")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> schemas.StaffPage:
    """Staff ordered by external id, optionally of one district or team."""
    page = authz.repository(session, principal).staff(
        limit=limit, offset=offset, district=district, team=team
    )
    items = [schemas.staff_out(r) for r in page.items]
    return schemas.StaffPage(items=items, total=page.total, limit=limit, offset=offset)


add_item_routes(
    router,
    resource="staff",
    section="staff",
    singular="staff_member",
    in_model=StaffIn,
    out_model=schemas.StaffOut,
    to_out=schemas.staff_out,
)
