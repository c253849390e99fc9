"""Plan versions in the store: write a new version, find the current one, load one for a re-plan.

Versions count per (district, date) from 1. Storing a new published version supersedes the
previous published one in the same transaction, so a reader sees exactly one current version.
Functions only flush; the caller (request or job) commits.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, undefer

from app.errors import NotFound
from app.planning import codec
from app.planning.compute import PlanResult, safe_matrix
from app.routing import Region
from app.scheduling.model import Plan as CorePlan
from app.scheduling.model import Problem
from app.store.models import Plan, PlanStatus


def result_from(
    problem: Problem, plan: CorePlan, geometry: dict[str, Any] | None = None
) -> PlanResult:
    """A storable result of a solved (or re-planned) ``plan`` for ``problem``."""
    return PlanResult(
        routes=codec.routes_to_doc(problem, plan),
        unassigned=codec.unassigned_to_doc(problem, plan),
        kpis=dict(plan.kpis),
        problem=codec.problem_to_doc(problem),
        geometry=geometry or {},
        solve_time_s=round(plan.solve_time_s, 3),
    )


def store_plan_version(
    session: Session,
    *,
    org_id: int,
    district_id: int,
    day: dt.date,
    result: PlanResult,
    created_by: str,
    based_on_version: int | None = None,
    diff: dict[str, Any] | None = None,
) -> Plan:
    """Store ``result`` as the next published version of the district's day.

    Parameters
    ----------
    session
        The caller's session (flushed, not committed).
    org_id, district_id, day
        Which day of which district.
    result
        What :func:`app.planning.compute.compute_plan` (or :func:`result_from`) returned.
    created_by
        Actor label for the audit trail (no personal data).
    based_on_version
        The version a re-plan started from.
    diff
        A re-plan's diff against ``based_on_version``.

    Returns
    -------
    Plan
        The new row: ``version`` = previous highest + 1, status published; the previously
        published version of the day is now superseded.
    """
    latest = session.scalar(
        select(func.max(Plan.version)).where(
            Plan.org_id == org_id, Plan.district_id == district_id, Plan.date == day
        )
    )
    session.execute(
        update(Plan)
        .where(
            Plan.org_id == org_id,
            Plan.district_id == district_id,
            Plan.date == day,
            Plan.status == PlanStatus.PUBLISHED,
        )
        .values(status=PlanStatus.SUPERSEDED)
        .execution_options(synchronize_session=False)
    )
    row = Plan(
        org_id=org_id,
        district_id=district_id,
        date=day,
        version=(latest or 0) + 1,
        status=PlanStatus.PUBLISHED,
        based_on_version=based_on_version,
        routes=result.routes,
        unassigned=result.unassigned,
        kpis=result.kpis,
        diff=diff,
        geometry=result.geometry,
        problem=result.problem,
        solve_time_s=result.solve_time_s,
        created_by=created_by,
    )
    session.add(row)
    session.flush()
    return row


def current_plan(session: Session, org_id: int, district_id: int, day: dt.date) -> Plan | None:
    """The published version of the district's day, or None."""
    return session.scalar(
        select(Plan)
        .where(
            Plan.org_id == org_id,
            Plan.district_id == district_id,
            Plan.date == day,
            Plan.status == PlanStatus.PUBLISHED,
        )
        .order_by(Plan.version.desc())
        .limit(1)
    )


def get_plan(session: Session, org_id: int, plan_id: int, *, with_problem: bool = False) -> Plan:
    """One plan row of the organisation (problem and geometry loaded on request)."""
    stmt = select(Plan).where(Plan.org_id == org_id, Plan.id == plan_id)
    if with_problem:
        stmt = stmt.options(undefer(Plan.problem), undefer(Plan.geometry))
    row = session.scalar(stmt)
    if row is None:
        msg = f"no plan {plan_id}"
        raise NotFound(msg)
    return row


def load_plan_state(
    session: Session, org_id: int, plan_id: int, region: Region
) -> tuple[Problem, CorePlan]:
    """The problem a stored version was solved for (matrices recomputed) and the plan itself.

    This is where a re-plan starts: ``replan(problem, plan, events, ...)``. The matrices come
    from the region's cached shortest-path rows, so this takes milliseconds on a warm region.

    Raises
    ------
    NotFound
        No such plan in the organisation, or it was stored without its problem.
    """
    row = get_plan(session, org_id, plan_id, with_problem=True)
    if row.problem is None:
        msg = f"plan {plan_id} has no stored problem to re-plan from"
        raise NotFound(msg)
    problem = problem_with_matrices(row.problem, region)
    plan = codec.plan_from_docs(row.routes, row.unassigned, row.kpis, row.solve_time_s)
    return problem, plan


def problem_with_matrices(doc: dict[str, Any], region: Region) -> Problem:
    """Rebuild a stored problem document with the region's matrices for its profiles.

    Locations that are unreachable in a mode come back reachable only if the road data changed;
    visits that were unreachable stay unassigned because their stored plan says so.
    """
    points = codec.problem_points(doc)
    matrices = {mode: safe_matrix(region, mode, points)[0] for mode in doc["profiles"]}
    return codec.problem_from_doc(doc, matrices)
