"""Manual steering and the console's live view: moves, recommendations, comparisons, updates.

Handlers parse, authorise (tenant, role and district as the plan endpoints do), call
:mod:`app.planning.steering` or :mod:`app.planning.compare`, store and return.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy.orm import Session, sessionmaker

from app.api import authz, schemas
from app.api.deps import Planner, Principal, Reader, SessionDep, SettingsDep
from app.api.errors import ErrorBody, error_response
from app.api.routers._items import AUTH_ERRORS, ITEM_ERRORS, RowId
from app.api.routers.events import parse_if_match
from app.api.routing import StrictJSONRoute
from app.api.steering_schemas import (
    CarerChangesOut,
    CompareOut,
    MovedVisitOut,
    MoveOut,
    MoveRequest,
    PlacementOut,
    RecommendationsOut,
    ViolationOut,
)
from app.errors import ErrorDetail, InvalidInput
from app.planning import compare, pool, steering, versions
from app.planning.loading import district_by_external_id
from app.planning.replan import StalePlanVersion
from app.replan.moves import MoveOutcome
from app.settings import Settings
from app.store.inputs import PlanningDate, TimeOfDay, format_time_of_day
from app.store.models import Plan, PlanStatus
from app.store.repositories import Row, TenantRepository

router = APIRouter(prefix="/v1/plans", tags=["plans"], route_class=StrictJSONRoute)
stream_router = APIRouter(prefix="/v1/districts", tags=["plans"], route_class=StrictJSONRoute)

#: How often an open stream looks for a new version, and how long it stays open at most.
POLL_S = 1.0
STREAM_MAX_S = 25.0


def _plan_row(session: Session, principal: Principal, plan_id: int) -> Row:
    authz.ensure_not_nurse(principal)
    row = TenantRepository(session, principal.org_id).plan(plan_id)
    authz.ensure_district(principal, row.obj.district_id, what="plan")
    return row


def _region(settings: Settings) -> Any:
    return pool.get_region(settings.region_file, settings.osm_cache_dir, settings.region_modes)


def _placement(o: MoveOutcome, staff: str) -> PlacementOut:
    return PlacementOut(
        staff=staff,
        shift=o.shift_id,
        # Rounded up to the minute: asking for this start must find the same place.
        start=format_time_of_day(-(-o.start // 60) * 60),
        travel_delta_s=o.travel_delta_s,
        preferred=o.preferred_after,
    )


def _move_out(o: MoveOutcome, staff: str, plan: schemas.PlanSummary | None) -> MoveOut:
    return MoveOut(
        valid=o.valid,
        violations=[
            ViolationOut(rule=v.kind.value, visit=v.visit_id, shift=v.shift_id, message=v.message)
            for v in o.violations
        ],
        travel_delta_s=o.travel_delta_s,
        continuity={"before_preferred": o.preferred_before, "after_preferred": o.preferred_after},
        placement=_placement(o, staff),
        moved=[
            MovedVisitOut(
                visit=c.visit_id,
                change=c.change,
                from_staff=list(c.old.staff) if c.old else [],
                to_staff=list(c.new.staff) if c.new else [],
                from_start=format_time_of_day(c.old.start) if c.old else None,
                to_start=format_time_of_day(c.new.start) if c.new else None,
            )
            for c in o.others
        ],
        plan=plan,
    )


def _base_version(if_match: str | None, body: MoveRequest) -> int | None:
    header = parse_if_match(if_match) if if_match is not None else None
    if if_match is not None and header is None:
        detail = ErrorDetail(("header", "if-match"), "invalid_version", 'use If-Match: "<version>"')
        raise InvalidInput("If-Match must name a plan version", [detail])
    if header is not None and body.based_on_version not in (None, header):
        detail = ErrorDetail(("based_on_version",), "version_mismatch", "differs from If-Match")
        raise InvalidInput("If-Match and based_on_version name different versions", [detail])
    return header if header is not None else body.based_on_version


def _move(
    session: Session,
    principal: Principal,
    settings: Settings,
    plan_id: int,
    body: MoveRequest,
    base: int | None,
) -> MoveOut:
    row = _plan_row(session, principal, plan_id)
    if base is not None and (row.obj.version != base or row.obj.status is not PlanStatus.PUBLISHED):
        current = versions.current_plan(
            session, principal.org_id, row.obj.district_id, row.obj.date
        )
        have = None if current is None else current.version
        msg = f"version {base} is not the current version of the day"
        raise StalePlanVersion(msg, have)
    region = _region(settings)
    loaded = steering.load(session, principal.org_id, plan_id, region)
    outcome = steering.preview_move(loaded, visit=body.visit, staff=body.staff, start_s=body.start)
    if body.preview:
        return _move_out(outcome, body.staff, None)
    stored = steering.commit_move(
        session,
        loaded,
        outcome,
        region,
        visit=body.visit,
        staff=body.staff,
        pin=body.pin,
        actor=principal.actor,
    )
    session.commit()
    summary = schemas.plan_summary(Row(stored, {"district": row.refs["district"]}))
    return _move_out(outcome, body.staff, summary)


@router.get(
    "/compare",
    summary="Compare two versions of a day",
    response_model=CompareOut,
    responses={**ITEM_ERRORS, 422: {"model": ErrorBody, "description": "Not the same day."}},
)
def compare_plans(
    principal: Reader,
    session: SessionDep,
    from_: Annotated[int, Query(alias="from", ge=1, le=2_147_483_647, description="Plan id.")],
    to: Annotated[int, Query(ge=1, le=2_147_483_647, description="Plan id.")],
) -> CompareOut:
    """Per carer, the visits added, removed and moved from one version to the other, in words.

    Both versions must be of the same district and date.
    """
    old, new = _plan_row(session, principal, from_), _plan_row(session, principal, to)
    a, b = old.obj, new.obj
    if (a.district_id, a.date) != (b.district_id, b.date):
        raise InvalidInput("the two versions are not of the same district and day")
    found = compare.compare_versions(a, b)
    return CompareOut(
        district=old.refs["district"],
        date=a.date,
        from_version=a.version,
        to_version=b.version,
        summary=found.summary,
        carers=[
            CarerChangesOut(
                staff=c.staff,
                lines=list(c.lines),
                added=list(c.added),
                removed=list(c.removed),
                moved=list(c.moved),
            )
            for c in found.carers
        ],
    )


@router.post(
    "/{plan_id}/moves",
    summary="Move a visit by hand (preview or commit)",
    response_model=MoveOut,
    responses={
        **ITEM_ERRORS,
        200: {"description": "The preview, or the committed move with the new version."},
        409: {"model": ErrorBody, "description": "Based on a version that is not current."},
        422: {"model": ErrorBody, "description": "Unknown visit or carer, or a refused commit."},
        428: {"model": ErrorBody, "description": "A commit without a base version."},
    },
)
async def move_visit(
    plan_id: RowId,
    body: MoveRequest,
    principal: Planner,
    session: SessionDep,
    settings: SettingsDep,
    if_match: Annotated[str | None, Header(description='`"<version>"` it is based on.')] = None,
) -> JSONResponse:
    """Put a visit on another carer's route (at a start, or the cheapest place) and say what it
    does: whether it is valid, which rules break and where, the travel and continuity change and
    which other visits move. With `preview: false` a valid move is stored as the next version
    (`pin: true` also keeps the visit with that carer in every later re-plan; `false` unpins).
    """
    base = _base_version(if_match, body)
    if not body.preview and base is None:
        return error_response(
            428,
            "precondition_required",
            'name the version the move is based on: If-Match: "<version>" or based_on_version',
        )
    out = await run_in_threadpool(_move, session, principal, settings, plan_id, body, base)
    headers = {} if out.plan is None else {"ETag": f'"{out.plan.version}"'}
    return JSONResponse(out.model_dump(mode="json"), headers=headers)


@dataclass(frozen=True)
class NewVisit:
    """A visit the day does not have yet, described in the query."""

    client: str
    duration_s: int
    window: tuple[int, int]


def _new_visit(
    visit: str | None,
    client: str | None,
    duration_minutes: int | None,
    window_start: int | None,
    window_end: int | None,
) -> NewVisit | None:
    """None for an existing visit; the new visit's description; 422 for anything in between."""
    none_described = all(x is None for x in (client, duration_minutes, window_start, window_end))
    if visit is not None and none_described:
        return None
    if (
        visit is None
        and client is not None
        and duration_minutes is not None
        and window_start is not None
        and window_end is not None
    ):
        if window_end - window_start < duration_minutes * 60:
            raise InvalidInput("the window is shorter than the visit")
        return NewVisit(client, duration_minutes * 60, (window_start, window_end))
    msg = "name a visit, or describe a new one by client, duration_minutes and a window"
    raise InvalidInput(msg)


def _recommend(
    session: Session,
    principal: Principal,
    settings: Settings,
    plan_id: int,
    visit: str | None,
    described: tuple[str | None, int | None, int | None, int | None],
) -> RecommendationsOut:
    row = _plan_row(session, principal, plan_id)
    # After the plan's authorisation: a plan out of reach is 403/404 whatever the query says.
    new = _new_visit(visit, *described)
    loaded = steering.load(session, principal.org_id, plan_id, _region(settings))
    if new is not None:
        found = steering.new_visit_recommendations(
            loaded, client=new.client, duration_s=new.duration_s, windows=[new.window]
        )
    else:
        found = steering.recommendations(loaded, visit=visit or "")
    staff = {s.id: s.staff_id for s in loaded.problem.shifts}
    return RecommendationsOut(
        plan_id=row.obj.id,
        version=row.obj.version,
        visit=visit,
        client=None if new is None else new.client,
        items=[_placement(o, staff[o.shift_id]) for o in found],
    )


@router.get(
    "/{plan_id}/recommendations",
    summary="The best places for a visit",
    response_model=RecommendationsOut,
    responses={**ITEM_ERRORS, 422: {"model": ErrorBody, "description": "Unknown visit."}},
)
async def get_recommendations(
    plan_id: RowId,
    principal: Reader,
    session: SessionDep,
    settings: SettingsDep,
    visit: Annotated[
        str | None, Query(min_length=1, max_length=200, description="Visit external id.")
    ] = None,
    client: Annotated[
        str | None,
        Query(min_length=1, max_length=100, description="A new visit: its client."),
    ] = None,
    duration_minutes: Annotated[
        int | None, Query(ge=1, le=1440, description="A new visit: its length.")
    ] = None,
    window_start: Annotated[
        TimeOfDay | None, Query(description="A new visit: its window opens (`HH:MM`).")
    ] = None,
    window_end: Annotated[
        TimeOfDay | None, Query(description="A new visit: its window closes (`HH:MM`).")
    ] = None,
) -> RecommendationsOut:
    """Up to 5 valid placements, one per carer, by added travel with preferred carers first on
    near ties, of either a visit of this version (`visit`, unassigned or planned: each one can
    be committed with `POST /v1/plans/{id}/moves`, `staff`, `start`, `preview: false`) or a new
    visit described by `client` (who has a visit that day), `duration_minutes` and a window
    (add it with an `urgent_visit_added` event).
    """
    described = (client, duration_minutes, window_start, window_end)
    return await run_in_threadpool(
        _recommend, session, principal, settings, plan_id, visit, described
    )


def _district_id(session: Session, principal: Principal, district: str) -> int:
    authz.ensure_not_nurse(principal)
    row = district_by_external_id(session, principal.org_id, district)
    authz.ensure_district(principal, row.id)
    return row.id


def _current(
    factory: sessionmaker[Session], org_id: int, district_id: int, day: Any
) -> dict[str, Any] | None:
    with factory() as session:
        plan: Plan | None = versions.current_plan(session, org_id, district_id, day)
        if plan is None:
            return None
        return {"id": plan.id, "version": plan.version, "created_by": plan.created_by}


@stream_router.get(
    "/{district}/plans/stream",
    summary="Server-sent events: a district's day changed",
    response_class=StreamingResponse,
    responses={
        **ITEM_ERRORS,
        **AUTH_ERRORS,
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "`event: plan` with `{id, version, created_by}` of the current version.",
        },
    },
)
async def stream_plan_versions(
    district: str,
    request: Request,
    principal: Reader,
    session: SessionDep,
    date: Annotated[PlanningDate, Query(description="The plan date.")],
    after: Annotated[
        int | None, Query(ge=0, le=2_147_483_647, description="The version the page shows.")
    ] = None,
    wait: Annotated[
        float, Query(ge=0, le=STREAM_MAX_S, description="Longest wait for a change, seconds.")
    ] = STREAM_MAX_S,
) -> StreamingResponse:
    """The current version as an event at once when it differs from `after` (or `after` is
    not given); else the stream waits up to `wait` seconds for a new version, sends it and ends.
    A page reconnects with the version it now shows (a long poll the browser keeps open).
    """
    district_id = await run_in_threadpool(_district_id, session, principal, district)
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    org_id = principal.org_id

    async def events() -> AsyncIterator[str]:
        deadline = time.monotonic() + wait
        yield "retry: 1000\n\n"
        while True:
            info = await run_in_threadpool(_current, factory, org_id, district_id, date)
            if info is not None and info["version"] != after:
                yield f"id: {info['version']}\nevent: plan\ndata: {json.dumps(info)}\n\n"
                return
            if after is None or time.monotonic() >= deadline or await request.is_disconnected():
                return
            await asyncio.sleep(POLL_S)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
