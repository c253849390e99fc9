"""Re-plans as a service: events on a stored plan version become the next version, or nothing.

One re-plan runs in three steps, like a plan job:

1. :func:`prepare_replan` (database, request thread): load the base version, check the version the
   caller based the change on, resolve the events' references (external ids) against the stored
   problem and turn them into the core's events;
2. :func:`compute_replan` (CPU, a worker process of :mod:`app.planning.pool`): rebuild the matrices
   from the region's cached rows (grown with :meth:`Region.extend_matrix` for an urgent visit at
   a new place), :func:`app.replan.service.replan`, validate, draw the changed routes;
3. :func:`store_replan` (database, request thread): supersede the base version *only if it is
   still the published one* (a conditional ``UPDATE``: on PostgreSQL the row lock makes a second
   writer wait and then find nothing to update), store the new version with its diff, the events
   and the plan-changed webhook deliveries, all in the caller's transaction.

Two re-plans of the same version therefore produce exactly one new version: the loser's
conditional update touches no row (or, as a last guard, the unique ``(district, date, version)``
refuses its insert) and it stores nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.domain import LatLon
from app.errors import ErrorDetail, InvalidInput, NotFound, PlanConflict, Unroutable
from app.notify import outbox
from app.planning import codec, day_facts
from app.planning.compute import (
    PlanResult,
    route_geometry,
    safe_extend,
    solve_options,
    violation_docs,
)
from app.planning.inputs import PlanOptions
from app.planning.versions import (
    current_plan,
    get_plan,
    problem_with_matrices,
    result_from,
    store_plan_version,
)
from app.replan.changes import Placement, describe_changes
from app.replan.errors import EventConflictError, InvalidEventError, UnknownReferenceError
from app.replan.events import MAX_TIME_S as MAX_EVENT_TIME_S
from app.replan.events import (
    ActualTimesReported,
    CarerAbsent,
    CarerAvailable,
    CarerPositionReported,
    ClientUnavailable,
    Event,
    UrgentVisitAdded,
    VisitCancelled,
    VisitDelayed,
    event_to_dict,
)
from app.replan.service import ReplanResult, replan
from app.routing import Region
from app.scheduling import validate, with_matrix_distances
from app.scheduling.model import Plan as CorePlan
from app.scheduling.model import Priority, Problem, Shift, TimeWindow, Visit
from app.store import audit
from app.store.inputs import format_time_of_day
from app.store.models import (
    Client,
    District,
    Organisation,
    Plan,
    PlanEvent,
    PlanStatus,
    Team,
)

log = logging.getLogger(__name__)

#: Kind of the webhook event a new plan version sends.
PLAN_CHANGED = "plan.changed"


class StalePlanVersion(PlanConflict):
    """The change was based on a version that is not the current one; nothing was stored."""

    def __init__(self, message: str, current_version: int | None) -> None:
        detail = ErrorDetail(
            ("based_on_version",),
            "stale_version",
            f"the current version is {current_version}"
            if current_version is not None
            else "the day has no published version any more",
        )
        super().__init__(message, [detail])
        self.current_version = current_version


@dataclass(frozen=True, slots=True)
class UrgentVisitSpec:
    """An urgent visit as the API names it: its client by external id, no location index yet."""

    visit_id: str
    client_id: str
    duration_s: int
    windows: tuple[tuple[int, int], ...]
    competences: frozenset[str] = frozenset()
    priority: Priority = Priority.MANDATORY
    carers_required: int = 1


@dataclass(frozen=True, slots=True)
class PositionSpec:
    """A carer's phone position as the API gives it: coordinates, no location index yet."""

    staff_id: str
    point: LatLon
    at_time: int


#: What a caller hands to :func:`prepare_replan`: core events, urgent visits by client,
#: positions by coordinates.
EventSpec = Event | UrgentVisitSpec | PositionSpec


@dataclass(frozen=True, slots=True)
class ReplanJob:
    """Everything :func:`compute_replan` needs, as plain picklable values (sent to a worker)."""

    problem: dict[str, Any]
    routes: list[dict[str, Any]]
    unassigned: list[dict[str, Any]]
    kpis: dict[str, Any]
    #: The base version's road geometry per shift (kept for carers the re-plan does not touch).
    geometry: dict[str, Any]
    #: Places of urgent visits at clients the stored problem has no location for, in order.
    new_points: tuple[LatLon, ...]
    events: tuple[Event, ...]
    now_s: int
    freeze_s: int
    start_threshold_s: int
    options: PlanOptions


@dataclass(frozen=True, slots=True)
class PreparedReplan:
    """A checked re-plan request: which version it starts from, and the job to compute."""

    org_id: int
    base_plan_id: int
    district_id: int
    district: str
    day: dt.date
    base_version: int
    job: ReplanJob


@dataclass(frozen=True, slots=True)
class ReplanOutcome:
    """The computed new version (not stored yet)."""

    result: PlanResult
    diff: dict[str, Any]
    affected_staff: tuple[str, ...]
    mutations: int
    #: Set when the core had to fall back (see :func:`_inconsistency`): log it and count it.
    inconsistency: dict[str, Any] | None = None


def local_now_s(timezone: str, day: dt.date, now: dt.datetime | None = None) -> int:
    """Seconds since midnight of ``day`` in ``timezone`` at the instant ``now`` (default: now).

    A day in the future gives 0 (nothing is frozen); a day long past is clamped to the latest time
    an event may name.
    """
    instant = now or dt.datetime.now(dt.UTC)
    midnight = dt.datetime.combine(day, dt.time(), tzinfo=ZoneInfo(timezone))
    seconds = int((instant - midnight).total_seconds())
    return min(max(seconds, 0), MAX_EVENT_TIME_S)


def check_base_version(
    session: Session, org_id: int, plan_id: int, based_on_version: int
) -> tuple[Plan, Plan]:
    """The addressed plan row and the current published version of its day.

    Raises
    ------
    NotFound
        No such plan in the organisation.
    StalePlanVersion
        ``based_on_version`` is not the current published version of the plan's day.
    """
    row = get_plan(session, org_id, plan_id)
    current = current_plan(session, org_id, row.district_id, row.date)
    if current is None or current.version != based_on_version:
        have = None if current is None else current.version
        msg = (
            f"the change is based on version {based_on_version} but the current version of "
            f"this day is {have}; reload the plan and send the events again"
        )
        raise StalePlanVersion(msg, have)
    return row, current


def prepare_replan(
    session: Session,
    org_id: int,
    plan_id: int,
    *,
    based_on_version: int,
    events: Sequence[EventSpec],
    now_s: int | None,
    freeze_s: int,
    start_threshold_s: int,
    options: PlanOptions,
    districts: frozenset[int] | None = None,
) -> PreparedReplan:
    """Check the base version and resolve ``events`` against the stored problem (reads only).

    Parameters
    ----------
    session
        The request's session.
    org_id, plan_id
        The addressed plan (any version of the day; the base is ``based_on_version``).
    based_on_version
        The version the caller saw; it must be the current published one.
    events
        Core events (ids are external ids) and urgent visits by client external id.
    now_s
        Seconds since midnight of the plan date; None: the organisation's local time now.
    freeze_s, start_threshold_s, options
        Re-plan knobs.
    districts
        The districts whose clients an urgent visit may name (a planner's); None: any of the
        organisation. A client outside them is answered like one that does not exist.

    Raises
    ------
    NotFound, StalePlanVersion
        See :func:`check_base_version`.
    InvalidInput
        An event names a visit, carer or client the day does not have (``details`` name the
        event's index and field).
    """
    _row, base = check_base_version(session, org_id, plan_id, based_on_version)
    full = get_plan(session, org_id, base.id, with_problem=True)
    if full.problem is None:
        msg = f"plan version {base.version} was stored without its problem; plan the day again"
        raise NotFound(msg)
    org = session.get(Organisation, org_id)
    district = session.scalar(select(District.external_id).where(District.id == base.district_id))
    if now_s is None:
        now_s = local_now_s(org.timezone if org else "UTC", base.date)
    problem = _with_extra_shifts(session, org_id, base.district_id, base.date, full.problem, events)
    core, new_points = _resolve(session, org_id, problem, events, districts)
    job = ReplanJob(
        problem=problem,
        routes=full.routes,
        unassigned=full.unassigned,
        kpis=full.kpis,
        geometry=full.geometry or {},
        new_points=new_points,
        events=core,
        now_s=now_s,
        freeze_s=freeze_s,
        start_threshold_s=start_threshold_s,
        options=options,
    )
    return PreparedReplan(
        org_id=org_id,
        base_plan_id=base.id,
        district_id=base.district_id,
        district=district or "",
        day=base.date,
        base_version=base.version,
        job=job,
    )


def _with_extra_shifts(
    session: Session,
    org_id: int,
    district_id: int,
    day: dt.date,
    problem: dict[str, Any],
    events: Sequence[EventSpec],
) -> dict[str, Any]:
    """``problem`` with a shift for each carer given hours who has no shift that day.

    A carer called in on her day off (``carer_available``) is one of the district's active
    staff: her shift is exactly those hours, from and back to her own start and end places,
    with her competences, travel mode and team. Anyone else stays an unknown reference.
    """
    rostered = {s["staff"] for s in problem["shifts"]}
    locations = list(problem["locations"])
    profiles = set(problem["profiles"])
    extra: list[dict[str, Any]] = []
    for ev in events:
        if not isinstance(ev, CarerAvailable) or ev.staff_id in rostered:
            continue
        carer = day_facts.district_carer(session, org_id, district_id, ev.staff_id)
        if carer is None:
            continue
        team = (
            session.scalar(select(Team.external_id).where(Team.id == carer.team_id))
            if carer.team_id is not None
            else None
        )
        start_at = len(locations)
        locations.append([carer.start_lat, carer.start_lon])
        end_at = start_at
        if (carer.end_lat, carer.end_lon) != (carer.start_lat, carer.start_lon):
            end_at = len(locations)
            locations.append([carer.end_lat, carer.end_lon])
        shift = Shift(
            id=day_facts.extra_shift_id(ev.staff_id, day),
            staff_id=ev.staff_id,
            start=ev.from_time,
            end=ev.until_time,
            profile=carer.travel_mode.value,
            competences=frozenset(carer.competences),
            start_location=start_at,
            end_location=end_at,
            team=team,
        )
        extra.append(codec.shift_to_doc(shift))
        profiles.add(shift.profile)
        rostered.add(ev.staff_id)
    if not extra:
        return problem
    return {
        **problem,
        "locations": locations,
        "profiles": sorted(profiles),
        "shifts": [*problem["shifts"], *extra],
    }


def _resolve(
    session: Session,
    org_id: int,
    problem: dict[str, Any],
    events: Sequence[EventSpec],
    districts: frozenset[int] | None,
) -> tuple[tuple[Event, ...], tuple[LatLon, ...]]:
    """Core events with every reference checked; urgent visits get a location index."""
    visits = {v["id"] for v in problem["visits"]}
    staff = {s["staff"] for s in problem["shifts"]}
    location_of = {v["client"]: int(v["location"]) for v in problem["visits"] if v["geocoded"]}
    n_locations = len(problem["locations"])
    new_points: list[LatLon] = []
    out: list[Event] = []
    errors: list[ErrorDetail] = []

    def unknown(i: int, field: str, what: str, value: str) -> None:
        errors.append(
            ErrorDetail(("events", i, field), "unknown_reference", f"no {what} {value!r} today")
        )

    for i, ev in enumerate(events):
        if isinstance(ev, UrgentVisitSpec):
            if ev.visit_id in visits:
                errors.append(
                    ErrorDetail(
                        ("events", i, "visit"),
                        "duplicate_visit",
                        f"visit {ev.visit_id!r} is already part of the day",
                    )
                )
                continue
            loc = location_of.get(ev.client_id)
            if loc is None:
                point = _client_point(session, org_id, ev.client_id, districts)
                if point is None:
                    unknown(i, "client", "client with coordinates", ev.client_id)
                    continue
                loc = n_locations + len(new_points)
                new_points.append(point)
                location_of[ev.client_id] = loc
            visits.add(ev.visit_id)
            try:
                out.append(UrgentVisitAdded(_visit(ev, loc)))
            except InvalidEventError as exc:
                errors.append(ErrorDetail(("events", i, exc.field), "invalid_event", str(exc)))
            continue
        if isinstance(ev, PositionSpec):
            if ev.staff_id not in staff:
                unknown(i, "staff", "shift for staff member", ev.staff_id)
                continue
            try:
                out.append(
                    CarerPositionReported(ev.staff_id, n_locations + len(new_points), ev.at_time)
                )
            except InvalidEventError as exc:
                errors.append(ErrorDetail(("events", i, exc.field), "invalid_event", str(exc)))
                continue
            new_points.append(ev.point)
            continue
        if isinstance(ev, CarerAbsent | CarerAvailable | CarerPositionReported):
            if ev.staff_id not in staff:
                unknown(i, "staff", "shift for staff member", ev.staff_id)
                continue
        elif isinstance(ev, VisitCancelled | VisitDelayed | ActualTimesReported):
            if ev.visit_id not in visits:
                unknown(i, "visit", "visit", ev.visit_id)
                continue
        elif isinstance(ev, ClientUnavailable) and ev.client_id not in location_of:
            unknown(i, "client", "visit to client", ev.client_id)
            continue
        out.append(ev)
    if errors:
        msg = f"{len(errors)} event(s) name something the day does not have; nothing was stored"
        raise InvalidInput(msg, errors)
    return tuple(out), tuple(new_points)


def _client_point(
    session: Session, org_id: int, external_id: str, districts: frozenset[int] | None
) -> LatLon | None:
    stmt = select(Client.lat, Client.lon).where(
        Client.org_id == org_id, Client.external_id == external_id
    )
    if districts is not None:
        stmt = stmt.where(Client.district_id.in_(districts))
    row = session.execute(stmt).first()
    if row is None or row[0] is None or row[1] is None:
        return None
    return LatLon(float(row[0]), float(row[1]))


def _visit(spec: UrgentVisitSpec, location: int) -> Visit:
    return Visit(
        id=spec.visit_id,
        client_id=spec.client_id,
        location=location,
        duration=spec.duration_s,
        windows=tuple(TimeWindow(a, b) for a, b in spec.windows),
        competences=spec.competences,
        priority=spec.priority,
        carers_required=spec.carers_required,
    )


def compute_replan(region: Region, job: ReplanJob) -> ReplanOutcome:
    """Re-plan a stored version after events (CPU: run it in a worker process).

    Parameters
    ----------
    region
        The loaded region; its cached shortest-path rows make the matrices cheap.
    job
        The prepared request.

    Returns
    -------
    ReplanOutcome
        The storable new version, its diff (with orphaned and re-placed visits), the affected
        staff and the mutation count.

    Raises
    ------
    Unroutable
        An urgent visit's place cannot be reached on the roads.
    InvalidInput, PlanConflict
        An event contradicts the plan (e.g. cancelling a visit that has started).

    A repair that breaks a hard rule or fails is not an error here: the core answers with the
    routes as they stand after the events, and ``inconsistency`` says what happened.
    """
    problem = problem_with_matrices(job.problem, region)
    if job.new_points:
        problem = _grow(region, codec.problem_points(job.problem), job.new_points, problem)
    plan = codec.plan_from_docs(job.routes, job.unassigned, job.kpis)
    plan = replace(plan, routes=with_matrix_distances(problem, plan.routes))
    try:
        result = replan(
            problem,
            plan,
            job.events,
            now=job.now_s,
            freeze_s=job.freeze_s,
            options=solve_options(job.options),
            start_threshold_s=job.start_threshold_s,
        )
    except UnknownReferenceError as exc:
        detail = ErrorDetail(("events",), "unknown_reference", str(exc))
        raise InvalidInput(str(exc), [detail]) from None
    except EventConflictError as exc:
        raise PlanConflict(str(exc)) from None
    inconsistency = _inconsistency(result)
    geometry = _geometry(region, result.problem, result.plan, job, result.diff.affected_staff)
    diff = result.diff.to_dict()
    diff["orphaned"] = list(result.orphaned)
    diff["replaced"] = list(result.replaced)
    diff["phone_calls"] = list(result.released)
    diff.update(_for_people(plan, result, job.events))
    return ReplanOutcome(
        result=result_from(result.problem, result.plan, geometry),
        diff=diff,
        affected_staff=result.diff.affected_staff,
        mutations=result.diff.mutations,
        inconsistency=inconsistency,
    )


def _for_people(old: CorePlan, result: ReplanResult, events: Sequence[Event]) -> dict[str, Any]:
    """The diff's summary line and per-visit changes (old -> new carer and times, cause).

    ``removed``, ``cancelled`` and ``unassigned`` are kept apart (the mutation lists above
    count a visit leaving the routes as removed whatever the reason).
    """
    told = describe_changes(
        old, result.plan, events, released=result.released, time_text=format_time_of_day
    )

    def where(p: Placement | None) -> dict[str, Any] | None:
        if p is None:
            return None
        return {
            "staff": list(p.staff),
            "start": format_time_of_day(p.start),
            "end": format_time_of_day(p.end),
        }

    return {
        "summary": told.summary,
        "changes": [
            {
                "visit": c.visit_id,
                "change": c.change,
                "cause": c.cause,
                "old": where(c.old),
                "new": where(c.new),
                "reason": c.reason,
                "detail": c.detail,
                "phone_call": c.phone_call,
            }
            for c in told.visits
        ],
        "removed": told.ids("removed"),
        "cancelled": told.ids("cancelled"),
        "unassigned": told.ids("unassigned"),
    }


def _inconsistency(result: ReplanResult) -> dict[str, Any] | None:
    """What went wrong inside the re-plan, as ids (None: nothing).

    The core fell back to the routes as they stand when its repair broke a rule or raised;
    the final check here must agree (what it still finds are facts only, and is reported as
    ``remaining``: the version is stored anyway, the events being facts too).
    """
    remaining = validate(result.problem, result.plan, check_priority=False)
    found = result.inconsistency
    if found is None and not remaining:
        return None
    return {
        "violations": violation_docs(found.violations) if found is not None else [],
        "error": found.error if found is not None else None,
        "remaining": violation_docs(remaining),
    }


def _grow(region: Region, points: list[LatLon], new: Sequence[LatLon], problem: Problem) -> Problem:
    """``problem`` with ``new`` places appended: only their matrix rows/columns are computed."""
    matrices = {}
    nowhere: set[int] | None = None  # new points no mode reaches
    for mode, matrix in problem.matrices.items():
        matrices[mode], bad = safe_extend(region, mode, matrix, points, new)
        nowhere = set(bad) if nowhere is None else nowhere & set(bad)
    if nowhere:
        # Off every mode's roads: no carer could get there. A place only one mode misses (a
        # pedestrian street, a phone's fix beside a footpath) is unreachable in that mode only.
        msg = "a new place (an urgent visit's or a reported position) is off every mode's roads"
        raise Unroutable(msg)
    return replace(problem, matrices=matrices, locations=problem.locations + tuple(new))


def _geometry(
    region: Region,
    problem: Problem,
    plan: CorePlan,
    job: ReplanJob,
    affected: Sequence[str],
) -> dict[str, Any]:
    """Road geometry: redrawn for affected carers' routes, kept from the base for the rest."""
    touched = set(affected)
    redraw = replace(plan, routes=tuple(r for r in plan.routes if r.staff_id in touched))
    drawn, _warnings = route_geometry(region, problem, redraw)
    kept = {r.shift_id for r in plan.routes if r.staff_id not in touched}
    return {**{k: v for k, v in job.geometry.items() if k in kept}, **drawn}


def store_replan(
    session: Session,
    prepared: PreparedReplan,
    outcome: ReplanOutcome,
    *,
    actor: str,
    event_docs: Sequence[dict[str, Any]],
) -> Plan:
    """Store the new version, its events and webhook deliveries (flushes; the caller commits).

    Raises
    ------
    StalePlanVersion
        Another change superseded the base version since :func:`prepare_replan` (nothing is
        written: the caller rolls back).
    """
    taken = session.execute(
        update(Plan)
        .where(
            Plan.id == prepared.base_plan_id,
            Plan.org_id == prepared.org_id,
            Plan.status == PlanStatus.PUBLISHED,
        )
        .values(status=PlanStatus.SUPERSEDED)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise _lost_race(session, prepared)
    try:
        row = store_plan_version(
            session,
            org_id=prepared.org_id,
            district_id=prepared.district_id,
            day=prepared.day,
            result=outcome.result,
            created_by=actor,
            based_on_version=prepared.base_version,
            diff=outcome.diff,
        )
    except IntegrityError:
        # The last guard (unique district/date/version): the failed flush spoilt the
        # transaction, which the request would roll back anyway; do it first to read the
        # current version for the answer.
        session.rollback()
        raise _lost_race(session, prepared) from None
    day_facts.record_event_facts(
        session,
        org_id=prepared.org_id,
        district_id=prepared.district_id,
        day=prepared.day,
        now_s=prepared.job.now_s,
        events=prepared.job.events,
        new_routes=row.routes,
        plan_id=row.id,
        actor=actor,
    )
    at = dt.datetime.now(dt.UTC)
    for doc in event_docs:
        session.add(
            PlanEvent(
                org_id=prepared.org_id,
                plan_id=prepared.base_plan_id,
                kind=str(doc["kind"]),
                payload={**doc, "new_plan_id": row.id, "new_version": row.version},
                actor=actor,
                at=at,
            )
        )
    outbox.enqueue(
        session,
        prepared.org_id,
        PLAN_CHANGED,
        {
            "plan_id": row.id,
            "district": prepared.district,
            "date": prepared.day.isoformat(),
            "version": row.version,
            "based_on_version": prepared.base_version,
            "mutations": outcome.mutations,
            "affected_staff": list(outcome.affected_staff),
            "events": [str(d["kind"]) for d in event_docs],
        },
    )
    audit.record(
        session,
        prepared.org_id,
        actor=actor,
        action="plan.replanned",
        target_type="plan",
        target_id=str(row.id),
        details={
            "district": prepared.district,
            "date": prepared.day.isoformat(),
            "version": row.version,
            "based_on_version": prepared.base_version,
            "events": len(event_docs),
            "mutations": outcome.mutations,
        },
    )
    session.flush()
    log.info(
        "plan %s re-planned to version %d: %d event(s), %d mutation(s), %d carer(s) affected",
        row.id,
        row.version,
        len(event_docs),
        outcome.mutations,
        len(outcome.affected_staff),
    )
    return row


def _lost_race(session: Session, prepared: PreparedReplan) -> StalePlanVersion:
    current = current_plan(session, prepared.org_id, prepared.district_id, prepared.day)
    have = None if current is None else current.version
    msg = (
        f"version {prepared.base_version} was superseded by a concurrent change "
        f"(now {have}); reload the plan and send the events again"
    )
    return StalePlanVersion(msg, have)


def event_docs(events: Sequence[Event]) -> list[dict[str, Any]]:
    """The stored form of core events (ids and times only, no client data)."""
    return [event_to_dict(e) for e in events]


__all__ = [
    "PLAN_CHANGED",
    "EventSpec",
    "PositionSpec",
    "PreparedReplan",
    "ReplanJob",
    "ReplanOutcome",
    "StalePlanVersion",
    "UrgentVisitSpec",
    "check_base_version",
    "compute_replan",
    "event_docs",
    "local_now_s",
    "prepare_replan",
    "store_replan",
]
