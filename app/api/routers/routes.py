"""The nurses' route: one carer's ordered stops of the current published plan."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Response
from fastapi.responses import JSONResponse

from app.api import authz
from app.api.deps import RouteReader, SessionDep
from app.api.plan_schemas import CarerRouteOut
from app.api.routers._items import ITEM_ERRORS
from app.api.routing import StrictJSONRoute
from app.planning import views

router = APIRouter(prefix="/v1/staff", tags=["routes"], route_class=StrictJSONRoute)


@router.get(
    "/{external_id}/route",
    summary="A carer's route for a day",
    response_model=CarerRouteOut,
    responses={
        **ITEM_ERRORS,
        200: {"headers": {"ETag": {"description": "Strong tag of this carer's route content."}}},
        304: {"description": "Unchanged since the ETag sent in If-None-Match."},
    },
)
def get_staff_route(
    external_id: Annotated[str, Path(min_length=1, max_length=100)],
    principal: RouteReader,
    session: SessionDep,
    date: Annotated[dt.date, Query(description="The day.")],
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """Ordered stops with times, address, tasks and a navigation link per stop.

    The ETag depends on this carer's stops only: a re-plan that does not touch the carer keeps
    it, and `If-None-Match` with it answers 304 without a body.
    """
    staff = views.find_staff(session, principal.org_id, external_id)
    authz.ensure_staff_route(principal, staff_id=staff.id, district_id=staff.district_id)
    body = views.carer_route(session, principal.org_id, staff, date)
    etag = views.route_etag(body)
    headers = {"ETag": etag, "Cache-Control": "private, no-cache"}
    if views.etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    out = CarerRouteOut.model_validate(body)
    return JSONResponse(out.model_dump(mode="json"), headers=headers)
