"""Re-plans of issue 9: each found defect, reproduced on a small hand-made day."""

from __future__ import annotations

from dataclasses import replace

from app.replan.events import CarerAbsent, VisitCancelled
from app.replan.service import replan
from app.scheduling import validate
from app.scheduling.model import (
    Dependency,
    Plan,
    Problem,
    TimeWindow,
    Unassigned,
    UnassignedReason,
)
from tests.replan.conftest import FAST, H, visit

District = tuple[Problem, Plan]


def with_impossible_dependant(district: District) -> District:
    """``district`` plus ``x``: 4 h after a1 (08:00) but only allowed 07:00-09:00, unassigned."""
    problem, plan = district
    x = replace(
        visit("x", 2),
        windows=(TimeWindow(7 * H, 9 * H),),
        depends_on=Dependency(visit_id="a1", min_gap=4 * H),
    )
    reason = Unassigned("x", UnassignedReason.DEPENDENCY_UNSATISFIED, "no start keeps the gap")
    return (
        replace(problem, visits=(*problem.visits, x)),
        replace(plan, unassigned=(*plan.unassigned, reason)),
    )


def test_a_visit_left_out_for_its_dependency_stays_in_the_day_found_item_1(
    district: District,
) -> None:
    # The day of the demo: a visit unassigned because the visit it depends on is frozen early;
    # re-plans from the moment that visit froze answered 500 (unknown visit reported unassigned).
    problem, plan = with_impossible_dependant(district)
    for event in (VisitCancelled("b4"), CarerAbsent("bert", 10 * H)):
        result = replan(problem, plan, [event], now=8 * H, options=FAST)
        assert validate(result.problem, result.plan, check_priority=False) == []
        assert "x" in {u.visit_id for u in result.plan.unassigned}
