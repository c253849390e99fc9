"""The nurses' route: one carer's ordered stops of the current published plan.

The hot path is one Core statement on an autocommit connection (the carer and the id of the
current plan version; no transaction to begin and commit) and a lookup in the app's
:class:`app.planning.views.RouteCache`: the route is built, validated and encoded to JSON once
per plan version and carer, and a matching ``If-None-Match`` answers 304 from the cached ETag.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Header, Path, Query, Request, Response
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session

from app.api import authz
from app.api.deps import RouteReader
from app.api.plan_schemas import CarerRouteOut
from app.api.routers._items import ITEM_ERRORS
from app.api.routing import StrictJSONRoute
from app.planning import views
from app.store.inputs import PlanningDate


@contextlib.contextmanager
def _read_connection(request: Request) -> Iterator[Connection]:
    """An autocommit connection, for reads that need no transaction.

    The route reads an immutable plan version and the rows around it: without BEGIN and COMMIT
    a request makes two round trips to the database (pool check and the query) instead of four.
    """
    engine: Engine = request.app.state.engine
    with engine.connect() as conn:
        yield conn.execution_options(isolation_level="AUTOCOMMIT")


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
    request: Request,
    principal: RouteReader,
    date: Annotated[PlanningDate, Query(description="The day.")],
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    """Ordered stops with times, address, tasks and a navigation link per stop.

    The ETag depends on this carer's stops only: a re-plan that does not touch the carer keeps
    it, and `If-None-Match` with it answers 304 without a body. A new plan version is seen at
    once; an edited address or task without a new plan within `ROUTE_CACHE_TTL_S` seconds.
    """
    with _read_connection(request) as conn:
        target = views.route_target(conn, principal.org_id, external_id, date)
        # Role rules first: a nurse learns nothing about another carer's route or plan.
        authz.ensure_staff_route(
            principal, staff_id=target.staff_id, district_id=target.district_id
        )
        cache: views.RouteCache = request.app.state.route_cache
        entry = None if target.plan_id is None else cache.get(target.plan_id, target.staff_id)
        if entry is None:
            with Session(bind=conn) as session:
                body = views.carer_route(session, principal.org_id, target, date)
            encoded = CarerRouteOut.model_validate(body).model_dump_json().encode("utf-8")
            entry = cache.put(body["plan_id"], target.staff_id, encoded, views.route_etag(body))
    headers = {"ETag": entry.etag, "Cache-Control": "private, no-cache"}
    if views.etag_matches(if_none_match, entry.etag):
        return Response(status_code=304, headers=headers)
    return Response(entry.body, media_type="application/json", headers=headers)
