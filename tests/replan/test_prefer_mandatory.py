"""A mandatory visit left out takes the place an optional visit holds, when it fits there."""

from __future__ import annotations

from dataclasses import replace

from app.scheduling import ViolationKind, prefer_mandatory, validate
from app.scheduling.model import Plan, Priority, Problem, TimeWindow, Unassigned, UnassignedReason

from .conftest import H, visit


def test_the_mandatory_visit_takes_the_optional_ones_place(
    district: tuple[Problem, Plan],
) -> None:
    """Anna's a3 (10:30) is optional; m, mandatory, fits only at 10:30 at a3's place.

    A fresh plan of a day around its facts ended like this and failed as a job (PlanNotValid:
    mandatory_left_for_optional; simulator, whole-day fresh plan at 14:30).
    """
    problem, plan = district
    m = replace(visit("m", 3), windows=(TimeWindow(10 * H + 1800, 11 * H),))
    visits = tuple(
        replace(v, priority=Priority.OPTIONAL) if v.id == "a3" else v for v in problem.visits
    )
    problem = replace(problem, visits=(*visits, m))
    plan = replace(plan, unassigned=(Unassigned("m", UnassignedReason.ROUTES_FULL, ""),))
    kinds = {v.kind for v in validate(problem, plan)}
    assert kinds == {ViolationKind.PRIORITY}
    better = prefer_mandatory(problem, plan)
    assert validate(problem, better) == []
    anna = next(r for r in better.routes if r.staff_id == "anna")
    assert "m" in anna.visit_ids
    placed = {vid for r in better.routes for vid in r.visit_ids}
    assert {u.visit_id for u in better.unassigned} == {"a3"} - placed
