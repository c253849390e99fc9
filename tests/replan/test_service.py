"""Re-planning with the real solver on a small synthetic district."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.replan.events import (
    ActualTimesReported,
    CarerAbsent,
    CarerPositionReported,
    UrgentVisitAdded,
    VisitCancelled,
)
from app.replan.service import replan
from app.scheduling import validate
from app.scheduling.model import Plan, Problem, Route, Stop, StopKind, TimeWindow

from .conftest import FAST, H, visit

District = tuple[Problem, Plan]
FREEZE_S = 1200


def _route(plan: Plan, staff: str) -> Route:
    return next(r for r in plan.routes if r.staff_id == staff)


def _frozen_part(route: Route, now: int) -> tuple[Stop, ...]:
    """The old route's stops up to the last one starting before the freeze horizon."""
    last = max(
        (
            i
            for i, s in enumerate(route.stops)
            if s.kind is not StopKind.END and s.start < now + FREEZE_S
        ),
        default=0,
    )
    return route.stops[: last + 1]


class TestSickCall:
    def test_sick_at_ten_keeps_the_morning_and_replaces_the_rest(
        self, solved_district: District
    ) -> None:
        problem, plan = solved_district
        now = 10 * H

        # A carer with a morning and visits after 10:20, most of those (VROOM's plan under a
        # time limit may vary).
        def later_visits(r: Route) -> int:
            return sum(1 for s in r.stops if s.visit_id and s.start >= now + FREEZE_S)

        busy = [r for r in plan.routes if any(s.visit_id and s.start < now for s in r.stops)]
        bert = max(busy, key=later_visits)
        sick = bert.staff_id
        later = [s.visit_id for s in bert.stops if s.visit_id and s.start >= now + FREEZE_S]
        assert later  # the fixture gives someone visits after 10:20

        result = replan(
            problem, plan, [CarerAbsent(sick, now)], now=now, options=FAST, warm_start=True
        )

        new_bert = _route(result.plan, sick)
        kept = _frozen_part(bert, now)
        assert new_bert.stops[: len(kept)] == kept
        assert [s.kind for s in new_bert.stops[len(kept) :]] == [StopKind.END]
        assert set(result.orphaned) == set(later)
        unassigned = {u.visit_id: u for u in result.plan.unassigned}
        for vid in later:
            carers = [r.staff_id for r in result.plan.routes if vid in r.visit_ids]
            assert carers != [sick]
            assert carers or vid in unassigned
        assert set(result.replaced) == {v for v in later if v not in unassigned}
        assert validate(result.problem, result.plan) == []

    @pytest.mark.parametrize("warm", [False, True])
    def test_no_events_changes_nothing(self, solved_district: District, warm: bool) -> None:
        problem, plan = solved_district
        result = replan(problem, plan, [], now=9 * H, options=FAST, warm_start=warm)
        assert result.diff.mutations == 0
        assert result.diff.affected_staff == ()
        assert validate(result.problem, result.plan) == []


class TestCancellation:
    def test_cancellation_frees_time_without_reshuffling_others(
        self, solved_district: District
    ) -> None:
        problem, plan = solved_district
        cora = _route(plan, "cora")
        victim = cora.visit_ids[-2]
        result = replan(problem, plan, [VisitCancelled(victim)], now=9 * H, options=FAST)
        assert result.diff.removed == (victim,)
        assert result.diff.mutations == 0
        assert set(result.diff.affected_staff) <= {"cora"}
        assert victim not in {v for r in result.plan.routes for v in r.visit_ids}
        assert any(u.visit_id == victim and u.reason == "cancelled" for u in result.plan.unassigned)
        assert validate(result.problem, result.plan) == []


class TestUrgentVisit:
    def test_urgent_visit_goes_to_a_carer_with_the_competence(
        self, solved_district: District
    ) -> None:
        problem, plan = solved_district
        urgent = replace(
            visit("u1", 4, competences=("nurse",)), windows=(TimeWindow(11 * H, 14 * H),)
        )
        result = replan(problem, plan, [UrgentVisitAdded(urgent)], now=10 * H, options=FAST)
        carers = [r.staff_id for r in result.plan.routes if "u1" in r.visit_ids]
        assert carers in (["cora"], ["dora"])
        assert result.diff.added == ("u1",)
        assert validate(result.problem, result.plan) == []


class TestFrozen:
    @pytest.mark.parametrize("now", [7 * H, 8 * H + 1800, 9 * H + 1500, 11 * H, 13 * H])
    def test_frozen_stops_never_change(self, solved_district: District, now: int) -> None:
        problem, plan = solved_district
        result = replan(problem, plan, [CarerAbsent("dora", now)], now=now, options=FAST)
        new = {r.shift_id: r for r in result.plan.routes}
        for old in plan.routes:
            kept = _frozen_part(old, now)
            if old.staff_id == "dora":
                # Absent from now: only what she started before keeps (issue 9, item 5).
                kept = tuple(s for s in kept if s.kind is not StopKind.VISIT or s.start < now)
                assert not [
                    s
                    for r in result.plan.routes
                    if r.staff_id == "dora"
                    for s in r.stops
                    if s.kind is StopKind.VISIT and s.start >= now
                ]
            if any(s.kind is not StopKind.START for s in kept):
                assert new[old.shift_id].stops[: len(kept)] == kept
        for f in result.problem.fixed:
            stop = next(s for s in new[f.shift_id].stops if s.visit_id == f.visit_id)
            assert (stop.start, stop.end) == (f.start, f.end)
        assert validate(result.problem, result.plan) == []

    def test_overrun_pushes_the_frozen_prefix_and_the_rest_follows(
        self, solved_district: District
    ) -> None:
        problem, plan = solved_district
        bert = _route(plan, "bert")
        first = next(s for s in bert.stops if s.kind is StopKind.VISIT)
        assert first.visit_id is not None
        overrun = ActualTimesReported(first.visit_id, first.start, first.end + 40 * 60)
        now = first.start + 1800
        result = replan(problem, plan, [overrun], now=now, options=FAST)
        new_first = next(s for s in _route(result.plan, "bert").stops if s.kind is StopKind.VISIT)
        assert (new_first.start, new_first.end) == (first.start, first.end + 40 * 60)
        assert validate(result.problem, result.plan) == []


class TestPosition:
    @pytest.mark.parametrize("now", [7 * H, 8 * H + 1800])
    def test_reported_position_validates(self, solved_district: District, now: int) -> None:
        problem, plan = solved_district
        event = CarerPositionReported("anna", 12, now)
        result = replan(problem, plan, [event], now=now, options=FAST)
        assert validate(result.problem, result.plan) == []
        anna = _route(result.plan, "anna")
        if not any(s.kind is StopKind.VISIT for s in _frozen_part(_route(plan, "anna"), now)):
            assert anna.stops[0].location == 12
