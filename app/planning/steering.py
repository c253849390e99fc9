"""Manual steering of a stored version: move or pin a visit, recommendations, comparisons.

The request layer authorises; this module loads the version with its problem (matrices from the
region's cache), asks :mod:`app.replan.moves`, and stores a committed move as the next version
the way a re-plan is stored: only if the base version is still the published one, with an event
row, an audit entry and the plan-changed webhook, all in the caller's transaction.

A pin is kept in the new version's stored problem (the visit's ``pinned_staff``): every re-plan
of that version or a later one starts from that problem, so it keeps the visit with the carer
(the insertion-first repair leaves an untouched route as it is, so its time stays too).
"""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass, replace

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.errors import InvalidInput, NotFound
from app.notify import outbox
from app.planning import codec
from app.planning.compute import route_geometry
from app.planning.replan import PLAN_CHANGED, StalePlanVersion
from app.planning.versions import (
    current_plan,
    get_plan,
    problem_with_matrices,
    result_from,
    store_plan_version,
)
from app.replan.moves import MoveOutcome, move_visit, recommend, recommend_new
from app.routing import Region
from app.scheduling.model import Plan as CorePlan
from app.scheduling.model import Problem, TimeWindow
from app.store import audit
from app.store.models import District, Plan, PlanEvent, PlanStatus


@dataclass(frozen=True)
class Loaded:
    """A stored version with its problem and core plan."""

    row: Plan
    problem: Problem
    plan: CorePlan


def load(session: Session, org_id: int, plan_id: int, region: Region) -> Loaded:
    """The version, the problem it was solved for (with matrices) and its routes."""
    row = get_plan(session, org_id, plan_id, with_problem=True)
    if row.problem is None:
        msg = f"plan {plan_id} has no stored problem to steer from"
        raise NotFound(msg)
    problem = problem_with_matrices(row.problem, region)
    plan = codec.plan_from_docs(row.routes, row.unassigned, row.kpis, row.solve_time_s)
    return Loaded(row, problem, plan)


def preview_move(loaded: Loaded, *, visit: str, staff: str, start_s: int | None) -> MoveOutcome:
    """What moving ``visit`` to ``staff`` (at ``start_s``) would do; nothing is stored."""
    return move_visit(loaded.problem, loaded.plan, visit, staff, start=start_s)


def recommendations(loaded: Loaded, *, visit: str) -> list[MoveOutcome]:
    """The best valid placements of ``visit``, best first."""
    return recommend(loaded.problem, loaded.plan, visit)


def new_visit_recommendations(
    loaded: Loaded, *, client: str, duration_s: int, windows: list[tuple[int, int]]
) -> list[MoveOutcome]:
    """The best valid placements of a visit to ``client`` that the day does not have yet."""
    return recommend_new(
        loaded.problem,
        loaded.plan,
        client_id=client,
        duration_s=duration_s,
        windows=[TimeWindow(a, b) for a, b in windows],
    )


def commit_move(
    session: Session,
    loaded: Loaded,
    outcome: MoveOutcome,
    region: Region,
    *,
    visit: str,
    staff: str,
    pin: bool | None,
    actor: str,
) -> Plan:
    """Store a valid move as the next version (flushes; the caller commits).

    Raises
    ------
    InvalidInput
        The move breaks a rule (see the preview).
    StalePlanVersion
        The base version is no longer the published one.
    """
    if not outcome.valid:
        msg = "the move breaks rules: " + "; ".join(v.message for v in outcome.violations)
        raise InvalidInput(msg)
    base = loaded.row
    problem_doc = copy.deepcopy(base.problem or {})
    if pin is not None:
        for v in problem_doc.get("visits", []):
            if v.get("id") == visit:
                v["pinned_staff"] = staff if pin else None
    geometry = dict(base.geometry or {})
    changed = {outcome.shift_id} | {
        r.shift_id
        for r in loaded.plan.routes
        if visit in r.visit_ids or any(c.visit_id in r.visit_ids for c in outcome.others)
    }
    touched = CorePlan(tuple(r for r in outcome.plan.routes if r.shift_id in changed), ())
    drawn, _warnings = route_geometry(region, loaded.problem, touched)
    for sid in changed:
        geometry.pop(sid, None)
    geometry.update(drawn)
    result = result_from(loaded.problem, outcome.plan, geometry)
    result = replace(result, problem=problem_doc)
    taken = session.execute(
        update(Plan)
        .where(Plan.id == base.id, Plan.org_id == base.org_id, Plan.status == PlanStatus.PUBLISHED)
        .values(status=PlanStatus.SUPERSEDED)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise _stale(session, base)
    diff = {
        "summary": f"{visit} moved by hand to {staff}"
        + ("" if pin is None else ", pinned" if pin else ", unpinned")
        + ".",
        "manual_move": {"visit": visit, "staff": staff, "pin": pin},
    }
    try:
        row = store_plan_version(
            session,
            org_id=base.org_id,
            district_id=base.district_id,
            day=base.date,
            result=result,
            created_by=actor,
            based_on_version=base.version,
            diff=diff,
        )
    except IntegrityError:
        session.rollback()
        raise _stale(session, base) from None
    doc = {"kind": "manual_move", "visit": visit, "staff": staff, "pin": pin}
    session.add(
        PlanEvent(
            org_id=base.org_id,
            plan_id=base.id,
            kind="manual_move",
            payload={**doc, "new_plan_id": row.id, "new_version": row.version},
            actor=actor,
            at=dt.datetime.now(dt.UTC),
        )
    )
    district = session.get(District, base.district_id)
    outbox.enqueue(
        session,
        base.org_id,
        PLAN_CHANGED,
        {
            "plan_id": row.id,
            "district": district.external_id if district is not None else None,
            "date": base.date.isoformat(),
            "version": row.version,
            "based_on_version": base.version,
            "events": ["manual_move"],
        },
    )
    audit.record(
        session,
        base.org_id,
        actor=actor,
        action="plan.moved",
        target_type="plan",
        target_id=str(row.id),
        details={"version": row.version, "based_on_version": base.version, "visit": visit},
    )
    session.flush()
    return row


def _stale(session: Session, base: Plan) -> StalePlanVersion:
    current = current_plan(session, base.org_id, base.district_id, base.date)
    have = None if current is None else current.version
    msg = f"version {base.version} is no longer current (now {have}); reload and try again"
    return StalePlanVersion(msg, have)
