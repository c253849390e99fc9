"""Clients: the people cared for at home."""

from __future__ import annotations

from fastapi import APIRouter

from app.api import authz, schemas
from app.api.deps import Reader, SessionDep
from app.api.routers._items import READ_ERRORS, DistrictFilter, Limit, Offset, add_item_routes
from app.api.routing import StrictJSONRoute
from app.store.inputs import ClientIn

router = APIRouter(prefix="/v1/clients", tags=["clients"], route_class=StrictJSONRoute)


@router.get("", summary="List clients", response_model=schemas.ClientPage, responses=READ_ERRORS)
def list_clients(
    principal: Reader,
    session: SessionDep,
    district: DistrictFilter = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> schemas.ClientPage:
    """Clients ordered by external id, optionally of one district."""
    page = authz.repository(session, principal).clients(
        limit=limit, offset=offset, district=district
    )
    items = [schemas.client_out(r) for r in page.items]
    return schemas.ClientPage(items=items, total=page.total, limit=limit, offset=offset)


add_item_routes(
    router,
    resource="clients",
    section="clients",
    singular="client",
    in_model=ClientIn,
    out_model=schemas.ClientOut,
    to_out=schemas.client_out,
)
