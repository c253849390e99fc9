"""Weekly visit templates and their expansion into dated visits."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from app.api import authz, schemas
from app.api.deps import Reader, SessionDep, Writer
from app.api.idempotency import IdempotencyKeyHeader, run_idempotent
from app.api.routers._items import (
    READ_ERRORS,
    WRITE_ERRORS,
    DistrictFilter,
    Limit,
    Offset,
    add_item_routes,
)
from app.api.routing import StrictJSONRoute
from app.planning.loading import district_by_external_id
from app.store import audit
from app.store import templates as tpl_store
from app.store.inputs import PlanningDate, VisitTemplateIn

router = APIRouter(
    prefix="/v1/visit-templates", tags=["visit-templates"], route_class=StrictJSONRoute
)


class ExpandRequest(BaseModel):
    """The date range (inclusive, at most 92 days) and optionally one district."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={"examples": [{"from": "2025-03-03", "to": "2025-03-09"}]},
    )

    from_: PlanningDate = Field(alias="from")
    to: PlanningDate
    district: str | None = None


class ExpandReport(BaseModel):
    """Visits created now and visits that already existed (from an earlier expansion)."""

    created: int
    existing: int


@router.get(
    "",
    summary="List visit templates",
    response_model=schemas.VisitTemplatePage,
    responses=READ_ERRORS,
)
def list_visit_templates(
    principal: Reader,
    session: SessionDep,
    district: DistrictFilter = None,
    client: Annotated[str | None, Query(description="Only this client.")] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> schemas.VisitTemplatePage:
    """Templates ordered by external id."""
    page = authz.repository(session, principal).templates(
        limit=limit, offset=offset, district=district, client=client
    )
    items = [schemas.template_out(r) for r in page.items]
    return schemas.VisitTemplatePage(items=items, total=page.total, limit=limit, offset=offset)


@router.post(
    "/expand",
    summary="Create the dated visits of the templates for a date range",
    response_model=ExpandReport,
    responses=WRITE_ERRORS,  # type: ignore[arg-type]
)
def expand_visit_templates(
    body: ExpandRequest,
    request: Request,
    principal: Writer,
    session: SessionDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> ExpandReport | JSONResponse:
    """Idempotent: the visit of template `T` on date `D` gets external id `T@D`, so expanding the
    same range again creates nothing, and visits changed or cancelled since are left alone.

    An unknown `district` (or another organisation's) is 404, as for plans."""
    authz.ensure_org_wide(principal)
    if body.district is not None:
        district_by_external_id(session, principal.org_id, body.district)

    def work() -> ExpandReport:
        result = tpl_store.expand(
            session, principal.org_id, start=body.from_, end=body.to, district=body.district
        )
        audit.record(
            session,
            principal.org_id,
            actor=principal.actor,
            action="expand_templates",
            target_type="visit_template",
            details={
                "from": body.from_.isoformat(),
                "to": body.to.isoformat(),
                "created": result.created,
            },
        )
        return ExpandReport(created=result.created, existing=result.existing)

    return run_idempotent(request, session, principal, idempotency_key, body, work)


add_item_routes(
    router,
    resource="templates",
    section="templates",
    singular="visit_template",
    in_model=VisitTemplateIn,
    out_model=schemas.VisitTemplateOut,
    to_out=schemas.template_out,
)
