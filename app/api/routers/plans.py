"""Plan versions: create (a job, or the plan with ``?wait=``), read, GeoJSON, unassigned, current.

Handlers parse, authorise (:mod:`app.api.authz`), call :mod:`app.planning` and return. Creating a
plan stores a job and commits it before handing it to the job backend, so the job survives a
crash from the moment the client sees its id.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from app.api import authz, schemas
from app.api.deps import Planner, Principal, Reader, SessionDep, SettingsDep
from app.api.errors import ErrorBody
from app.api.plan_schemas import (
    GeoJSONFeatureCollection,
    JobOut,
    PlanDetailOut,
    PlanRequest,
    UnassignedList,
    job_out,
    route_out,
    unassigned_out,
)
from app.api.routers._items import (
    AUTH_ERRORS,
    ITEM_ERRORS,
    READ_ERRORS,
    DateFromQ,
    DateQ,
    DateToQ,
    DistrictFilter,
    Limit,
    Offset,
    RowId,
    date_filter,
)
from app.api.routing import StrictJSONRoute
from app.errors import NotFound
from app.jobs import store as jobs
from app.jobs.backend import JobBackend
from app.planning import service, versions, views
from app.planning.loading import district_by_external_id
from app.store.inputs import PlanningDate
from app.store.models import JobStatus, PlanStatus
from app.store.repositories import Row, TenantRepository

router = APIRouter(prefix="/v1/plans", tags=["plans"], route_class=StrictJSONRoute)
districts_router = APIRouter(prefix="/v1/districts", tags=["plans"], route_class=StrictJSONRoute)

WaitQ = Annotated[
    float,
    Query(
        ge=0,
        le=600,
        description="Wait up to this many seconds (bounded by PLAN_WAIT_MAX_S, 60 by default) "
        "for the plan: 201 with the plan if it is ready in time, else 202 with the job.",
    ),
]


def backend_of(request: Request) -> JobBackend:
    """The app's job backend."""
    backend: JobBackend = request.app.state.jobs
    return backend


def plan_detail(row: Row) -> PlanDetailOut:
    """API view of a plan row with routes, unassigned visits and figures."""
    p = row.obj
    return PlanDetailOut(
        **schemas.plan_summary(row).model_dump(),
        routes=[route_out(r) for r in p.routes],
        unassigned=unassigned_out(p.unassigned),
        diff=p.diff,
    )


def _plan_row(session: Any, principal: Principal, plan_id: int) -> Row:
    authz.ensure_not_nurse(principal)
    row = TenantRepository(session, principal.org_id).plan(plan_id)
    authz.ensure_district(principal, row.obj.district_id, what="plan")
    return row


def _submit(session: Any, principal: Principal, body: PlanRequest, freeze_s: int = 0) -> JobOut:
    authz.ensure_not_nurse(principal)
    district = district_by_external_id(session, principal.org_id, body.district)
    authz.ensure_district(principal, district.id)
    overrides = body.options.model_dump() if body.options else {}
    job = service.submit_plan(
        session,
        principal.org_id,
        district=body.district,
        day=body.date,
        options=service.OptionOverrides(**overrides),
        actor=principal.actor,
        now_s=body.now,
        freeze_s=freeze_s,
    )
    # The request commits here, not at the end: the runner must see the job row.
    session.commit()
    return job_out(job)


def _fresh_job(session: Any, org_id: int, job_id: str) -> JobOut:
    return job_out(jobs.get_job_fresh(session, org_id, job_id))


def _plan_by_id(session: Any, org_id: int, plan_id: int) -> PlanDetailOut:
    return plan_detail(TenantRepository(session, org_id).plan(plan_id))


@router.post(
    "",
    summary="Plan a district's day",
    status_code=202,
    response_model=JobOut,
    responses={
        201: {"model": PlanDetailOut, "description": "The plan (with `?wait=`, ready in time)."},
        202: {"model": JobOut, "description": "The job computing the plan (see Location)."},
        **ITEM_ERRORS,
        422: {"model": ErrorBody, "description": "Invalid request."},
    },
)
async def create_plan(
    body: PlanRequest,
    request: Request,
    principal: Planner,
    session: SessionDep,
    settings: SettingsDep,
    wait: WaitQ = 0,
) -> JSONResponse:
    """Queue a plan for the district's day; the new version supersedes the published one.

    Every plan is computed by a stored job (`GET /v1/jobs/{id}`). With `?wait=<seconds>` the
    request waits that long (bounded) and answers 201 with the plan when it is ready in time.
    """
    freeze_s = settings.replan_freeze_minutes * 60
    job = await run_in_threadpool(_submit, session, principal, body, freeze_s)
    backend = backend_of(request)
    await backend.enqueue(job.id)
    limit = min(wait, settings.plan_wait_max_s)
    if limit > 0:
        status = await backend.wait(job.id, limit)
        job = await run_in_threadpool(_fresh_job, session, principal.org_id, job.id)
        if status is JobStatus.DONE and job.result_plan_id is not None:
            plan = await run_in_threadpool(
                _plan_by_id, session, principal.org_id, job.result_plan_id
            )
            return JSONResponse(
                plan.model_dump(mode="json"),
                status_code=201,
                headers={"Location": f"/v1/plans/{plan.id}"},
            )
    return JSONResponse(
        job.model_dump(mode="json"), status_code=202, headers={"Location": job.links.self}
    )


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
    authz.ensure_not_nurse(principal)
    page = authz.repository(session, principal).plans(
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
    response_model=PlanDetailOut,
    responses=ITEM_ERRORS,
)
def get_plan(plan_id: RowId, principal: Reader, session: SessionDep) -> PlanDetailOut:
    """A plan version with its routes, unassigned visits (with reasons) and figures."""
    return plan_detail(_plan_row(session, principal, plan_id))


@router.get(
    "/{plan_id}/unassigned",
    summary="Unassigned visits of a plan version",
    response_model=UnassignedList,
    responses=ITEM_ERRORS,
)
def get_plan_unassigned(plan_id: RowId, principal: Reader, session: SessionDep) -> UnassignedList:
    """Every visit left out of the plan: visit and client external id, reason code, sentence."""
    row = _plan_row(session, principal, plan_id)
    items = unassigned_out(row.obj.unassigned)
    return UnassignedList(
        plan_id=row.obj.id, version=row.obj.version, items=items, total=len(items)
    )


@router.get(
    "/{plan_id}/geojson",
    summary="A plan version as GeoJSON",
    response_model=GeoJSONFeatureCollection,
    responses={
        **ITEM_ERRORS,
        200: {"content": {"application/geo+json": {}}, "description": "A FeatureCollection."},
    },
)
def get_plan_geojson(plan_id: RowId, principal: Reader, session: SessionDep) -> JSONResponse:
    """A LineString per route along the roads and a Point per stop (ids and times only)."""
    _plan_row(session, principal, plan_id)
    plan, _ = views.plan_with_geometry(session, principal.org_id, plan_id)
    return JSONResponse(views.plan_geojson(plan), media_type="application/geo+json")


@districts_router.get(
    "/{district}/plans/current",
    summary="The current plan of a district's day",
    response_model=PlanDetailOut,
    responses={**ITEM_ERRORS, **AUTH_ERRORS},
)
def get_current_plan(
    district: str,
    principal: Reader,
    session: SessionDep,
    date: Annotated[PlanningDate, Query(description="The plan date.")],
) -> PlanDetailOut:
    """The latest published version for the district and date (404 if none)."""
    authz.ensure_not_nurse(principal)
    row = district_by_external_id(session, principal.org_id, district)
    authz.ensure_district(principal, row.id)
    plan = versions.current_plan(session, principal.org_id, row.id, date)
    if plan is None:
        msg = f"no published plan for district {district!r} on {date.isoformat()}"
        raise NotFound(msg)
    return plan_detail(Row(plan, {"district": row.external_id}))
