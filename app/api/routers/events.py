"""Events on a plan (sick calls, cancellations, urgent visits, delays): each makes a new version.

``POST /v1/plans/{plan_id}/events`` names the version it is based on (``If-Match: "<version>"``
or ``based_on_version``). The handler parses, authorises, prepares the re-plan from the stored
version (request thread), computes it in the solver pool (off the event loop) and stores the new
version, the events and the webhook outbox in the request's one transaction.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures.process import BrokenProcessPool
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from app.api import authz, metrics
from app.api.deps import EventReporter, Principal, SessionDep, SettingsDep
from app.api.errors import ErrorBody, error_response
from app.api.plan_schemas import PlanDetailOut
from app.api.routers._items import ITEM_ERRORS, RowId
from app.api.routers.plans import plan_detail
from app.api.routing import StrictJSONRoute
from app.domain import LatLon
from app.errors import ErrorDetail, InvalidInput, SolverUnavailable
from app.planning import replan as service
from app.planning import versions
from app.planning.pool import get_pool
from app.planning.service import plan_options
from app.replan.errors import InvalidEventError
from app.replan.events import (
    ActualTimesReported,
    CarerAbsent,
    CarerAvailable,
    ClientUnavailable,
    VisitCancelled,
    VisitDelayed,
)
from app.scheduling.model import Priority
from app.settings import Settings
from app.store.inputs import TimeOfDay, Window
from app.store.repositories import Row

router = APIRouter(prefix="/v1/plans", tags=["plans"], route_class=StrictJSONRoute)
log = logging.getLogger(__name__)

Id = Annotated[str, Field(min_length=1, max_length=100)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CarerAbsentIn(_In):
    """A carer cannot work from ``from_time`` (omitted: the whole day) until ``until_time``."""

    kind: Literal["carer_absent"]
    staff: Id
    from_time: TimeOfDay | None = Field(default=None, examples=["10:00"])
    until_time: TimeOfDay | None = Field(default=None, examples=[None])


class CarerAvailableIn(_In):
    """A carer can work from ``from_time`` until ``until_time`` (back early, extra hours)."""

    kind: Literal["carer_available"]
    staff: Id
    from_time: TimeOfDay
    until_time: TimeOfDay


class VisitCancelledIn(_In):
    """A visit will not take place."""

    kind: Literal["visit_cancelled"]
    visit: Id


class UrgentVisitIn(_In):
    """A new visit to place today at a client's address (the client must have coordinates)."""

    kind: Literal["urgent_visit_added"]
    visit: Id
    client: Id
    windows: list[Window] = Field(min_length=1, max_length=10)
    duration_minutes: int = Field(ge=1, le=24 * 60)
    competences: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=50
    )
    #: The core's own vocabulary (one definition): the OpenAPI enum is what the planner takes.
    priority: Priority = Field(
        default=Priority.MANDATORY,
        description="`mandatory` (must happen today) or `optional` (may be left out).",
    )
    carers_required: int = Field(default=1, ge=1, le=2)


class VisitDelayedIn(_In):
    """A visit started (or will end) at other times than planned, as a planner reports it."""

    kind: Literal["visit_delayed"]
    visit: Id
    actual_start: TimeOfDay
    actual_end: TimeOfDay | None = None


class ActualTimesIn(_In):
    """When a visit really started (and ended), as a carer's phone reports it."""

    kind: Literal["actual_times_reported"]
    visit: Id
    actual_start: TimeOfDay
    actual_end: TimeOfDay | None = None


class ClientUnavailableIn(_In):
    """A client cannot be visited between ``from_time`` and ``until_time``."""

    kind: Literal["client_unavailable"]
    client: Id
    from_time: TimeOfDay
    until_time: TimeOfDay


class CarerPositionIn(_In):
    """Where a carer's phone was at ``at``: the route resumes from there when it is newer than
    the carer's last frozen stop (nurses report their own; planners any of their district's)."""

    kind: Literal["carer_position_reported"]
    staff: Id
    lat: float = Field(ge=-90, le=90, allow_inf_nan=False)
    lon: float = Field(ge=-180, le=180, allow_inf_nan=False)
    at: TimeOfDay


EventIn = Annotated[
    CarerAbsentIn
    | CarerAvailableIn
    | VisitCancelledIn
    | UrgentVisitIn
    | VisitDelayedIn
    | ActualTimesIn
    | ClientUnavailableIn
    | CarerPositionIn,
    Field(discriminator="kind"),
]


class EventsRequest(_In):
    """Events to apply to a plan version, and how to re-plan."""

    events: list[EventIn] = Field(min_length=1, max_length=100)
    based_on_version: int | None = Field(
        default=None,
        ge=1,
        le=2_147_483_647,
        description="The version the change is based on (or If-Match).",
    )
    now: TimeOfDay | None = Field(
        default=None,
        description="Time of day of the re-plan; default: now in the organisation's timezone.",
    )
    freeze_minutes: int | None = Field(
        default=None, ge=0, le=720, description="Stops starting before now + this stay (20)."
    )
    start_threshold_minutes: int = Field(
        default=60, ge=0, le=24 * 60, description="A start moved more than this is a mutation."
    )


def _core_event(ev: EventIn) -> service.EventSpec:
    """The core's event (or an urgent visit still to be placed) for one parsed event."""
    if isinstance(ev, CarerAbsentIn):
        return CarerAbsent(ev.staff, ev.from_time or 0, ev.until_time)
    if isinstance(ev, CarerAvailableIn):
        return CarerAvailable(ev.staff, ev.from_time, ev.until_time)
    if isinstance(ev, VisitCancelledIn):
        return VisitCancelled(ev.visit)
    if isinstance(ev, UrgentVisitIn):
        return service.UrgentVisitSpec(
            visit_id=ev.visit,
            client_id=ev.client,
            duration_s=ev.duration_minutes * 60,
            windows=tuple((w.start, w.end) for w in ev.windows),
            competences=frozenset(ev.competences),
            priority=ev.priority,
            carers_required=ev.carers_required,
        )
    if isinstance(ev, VisitDelayedIn):
        return VisitDelayed(ev.visit, ev.actual_start, ev.actual_end)
    if isinstance(ev, ActualTimesIn):
        return ActualTimesReported(ev.visit, ev.actual_start, ev.actual_end)
    if isinstance(ev, CarerPositionIn):
        return service.PositionSpec(ev.staff, LatLon(ev.lat, ev.lon), ev.at)
    return ClientUnavailable(ev.client, ev.from_time, ev.until_time)


def core_events(events: list[EventIn]) -> list[service.EventSpec]:
    """Every event in the core's terms; all field errors at once, with their paths."""
    out: list[service.EventSpec] = []
    errors: list[ErrorDetail] = []
    for i, ev in enumerate(events):
        try:
            out.append(_core_event(ev))
        except InvalidEventError as exc:
            errors.append(ErrorDetail(("events", i, exc.field), "invalid_event", str(exc)))
    if errors:
        msg = f"{len(errors)} invalid event(s); nothing was stored"
        raise InvalidInput(msg, errors)
    return out


def report_inconsistency(prepared: service.PreparedReplan, found: dict[str, Any]) -> None:
    """Log (ids only) and count a re-plan whose repair failed and fell back (never a 500).

    ``recovered``: the repaired plan broke these rules and a valid fallback is stored;
    ``stored``: what even the fallback breaks (facts only), stored as it stands.
    """
    recovered = list(found["violations"]) or (
        [{"kind": "exception", "visit": None, "shift": None}] if found["error"] else []
    )
    metrics.count_validation_failures(recovered, kind="replan", outcome="recovered")
    metrics.count_validation_failures(found["remaining"], kind="replan", outcome="stored")
    log.error(
        "re-plan of plan %s (version %d) fell back to the routes as they stand: %s",
        prepared.base_plan_id,
        prepared.base_version,
        found["error"] or f"{len(found['violations'])} violation(s)",
        extra={
            "plan_id": prepared.base_plan_id,
            "violations": {"repair": found["violations"], "remaining": found["remaining"]},
        },
    )


def parse_if_match(value: str) -> int | None:
    """The version in an ``If-Match`` header (``"3"``, ``W/"3"`` or ``3``), or None."""
    tag = value.strip().removeprefix("W/").strip('"')
    return int(tag) if tag.isdigit() and int(tag) >= 1 else None


def _prepare(
    session: Session,
    principal: Principal,
    settings: Settings,
    plan_id: int,
    body: EventsRequest,
    base_version: int,
) -> service.PreparedReplan:
    row = versions.get_plan(session, principal.org_id, plan_id)
    visits = [ev.visit for ev in body.events if isinstance(ev, VisitDelayedIn | ActualTimesIn)]
    staff = [ev.staff for ev in body.events if isinstance(ev, CarerPositionIn)]
    authz.ensure_plan_events(session, principal, row, visits, staff)
    options = plan_options(settings, {"time_limit_s": settings.replan_time_limit_s})
    freeze = body.freeze_minutes
    return service.prepare_replan(
        session,
        principal.org_id,
        plan_id,
        based_on_version=base_version,
        events=core_events(body.events),
        now_s=body.now,
        freeze_s=(settings.replan_freeze_minutes if freeze is None else freeze) * 60,
        start_threshold_s=body.start_threshold_minutes * 60,
        options=options,
        districts=authz.visible_districts(principal),
    )


def _store(
    session: Session,
    principal: Principal,
    prepared: service.PreparedReplan,
    outcome: service.ReplanOutcome,
) -> PlanDetailOut:
    row = service.store_replan(
        session,
        prepared,
        outcome,
        actor=principal.actor,
        event_docs=service.event_docs(prepared.job.events),
    )
    return plan_detail(Row(row, {"district": prepared.district}))


@router.post(
    "/{plan_id}/events",
    summary="Report events and re-plan the day",
    status_code=201,
    response_model=PlanDetailOut,
    responses={
        **ITEM_ERRORS,
        201: {
            "description": "The new version with its `diff`.",
            "headers": {"ETag": {"description": 'The new version, as `"<version>"`.'}},
        },
        409: {"model": ErrorBody, "description": "Based on a version that is not current."},
        422: {"model": ErrorBody, "description": "Invalid events (each path is named)."},
        428: {"model": ErrorBody, "description": "No base version (If-Match) was given."},
        503: {
            "model": ErrorBody,
            "description": "The solver's worker died twice on this re-plan; nothing was stored.",
        },
    },
)
async def post_plan_events(
    plan_id: RowId,
    body: EventsRequest,
    request: Request,
    principal: EventReporter,
    session: SessionDep,
    settings: SettingsDep,
    if_match: Annotated[str | None, Header(description='`"<version>"` it is based on.')] = None,
) -> JSONResponse:
    """Store the events and the re-planned day as the next version, or nothing.

    Stops that are done, under way or start within `freeze_minutes` of `now` stay exactly as they
    are; the rest is re-solved with a preference for keeping each visit with its carer. The answer
    is the new version with its `diff`: per carer and in total, visits whose carer changed, whose
    start moved more than the threshold or whose order changed, added and removed visits, the
    mutation count and the affected carers (their route ETags change, nobody else's do).
    A request based on a version that is no longer current gets 409 and stores nothing; of two
    simultaneous re-plans of one version exactly one succeeds.

    A nurse may report `actual_times_reported` and `visit_delayed` for visits on their own route
    of this version only (403 for any other kind, 404 for a plan or visit that is not theirs).
    """
    authz.ensure_event_kinds(principal, (ev.kind for ev in body.events))
    header = parse_if_match(if_match) if if_match is not None else None
    if if_match is not None and header is None:
        detail = ErrorDetail(("header", "if-match"), "invalid_version", 'use If-Match: "<version>"')
        raise InvalidInput("If-Match must name a plan version", [detail])
    base = header if header is not None else body.based_on_version
    if base is None:
        return error_response(
            428,
            "precondition_required",
            'name the version the change is based on: If-Match: "<version>" or based_on_version',
        )
    if header is not None and body.based_on_version not in (None, header):
        detail = ErrorDetail(("based_on_version",), "version_mismatch", "differs from If-Match")
        raise InvalidInput("If-Match and based_on_version name different versions", [detail])
    prepared = await run_in_threadpool(_prepare, session, principal, settings, plan_id, body, base)
    pool = get_pool(
        settings.region_file,
        settings.osm_cache_dir,
        settings.planning_workers,
        settings.region_modes,
    )
    try:
        outcome = await asyncio.wrap_future(pool.run(service.compute_replan, prepared.job))
    except BrokenProcessPool:
        # The worker died (killed, out of memory): once more on the fresh pool, then a 503.
        try:
            outcome = await asyncio.wrap_future(pool.run(service.compute_replan, prepared.job))
        except BrokenProcessPool:
            msg = "the solver's worker process stopped twice on this re-plan; nothing was stored"
            raise SolverUnavailable(msg) from None
    if outcome.inconsistency is not None:
        report_inconsistency(prepared, outcome.inconsistency)
    plan = await run_in_threadpool(_store, session, principal, prepared, outcome)
    return JSONResponse(
        plan.model_dump(mode="json"),
        status_code=201,
        headers={"Location": f"/v1/plans/{plan.id}", "ETag": f'"{plan.version}"'},
    )
