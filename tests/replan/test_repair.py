"""Insertion-first repair: only the visits an event touches move; the re-solve is a fallback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from app import scheduling
from app.replan.events import (
    ActualTimesReported,
    CarerAbsent,
    UrgentVisitAdded,
    VisitCancelled,
)
from app.replan.service import replan
from app.scheduling import validate
from app.scheduling.model import (
    Break,
    Plan,
    Problem,
    Route,
    SolveOptions,
    Stop,
    StopKind,
    TimeWindow,
)

from .conftest import FAST, H, visit

District = tuple[Problem, Plan]
SolveFn = Callable[[Problem, SolveOptions | None], Plan]


def _route(plan: Plan, staff: str) -> Route:
    return next(r for r in plan.routes if r.staff_id == staff)


@pytest.fixture
def no_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test if the re-solve (VROOM) runs."""

    def boom(problem: Problem, options: SolveOptions | None = None) -> Plan:
        msg = "the insertion path should not need the re-solve here"
        raise AssertionError(msg)

    monkeypatch.setattr(scheduling, "solve", boom)


@pytest.fixture
def solve_calls(monkeypatch: pytest.MonkeyPatch) -> list[Problem]:
    """Record every re-solve while still running it."""
    calls: list[Problem] = []
    real: SolveFn = scheduling.solve

    def spy(problem: Problem, options: SolveOptions | None = None) -> Plan:
        calls.append(problem)
        return real(problem, options)

    monkeypatch.setattr(scheduling, "solve", spy)
    return calls


@pytest.mark.usefixtures("no_resolve")
class TestInsertion:
    def test_cancellation_moves_nobody(self, district: District) -> None:
        problem, plan = district
        result = replan(problem, plan, [VisitCancelled("a3")], now=8 * H + 1800, options=FAST)
        assert result.diff.removed == ("a3",)
        assert result.diff.mutations == 0
        assert set(result.diff.affected_staff) <= {"anna"}
        assert _route(result.plan, "anna").visit_ids == ("a1", "a2", "a4")
        for staff in ("bert", "cora"):
            assert _route(result.plan, staff) == _route(plan, staff)
        assert validate(result.problem, result.plan) == []

    @pytest.mark.parametrize("impossible", ["nobody_qualified", "after_every_shift"])
    def test_an_urgent_visit_no_solver_could_place_costs_no_re_solve(
        self, district: District, impossible: str
    ) -> None:
        """Every such event paid the whole re-solve budget for nothing (3+ s in the simulator)."""
        problem, plan = district
        urgent = visit("u1", 10, competences=("palliative",))
        if impossible == "after_every_shift":
            urgent = replace(visit("u1", 10), windows=(TimeWindow(23 * H, 23 * H + 3000),))
        result = replan(problem, plan, [UrgentVisitAdded(urgent)], now=10 * H, options=FAST)
        (u,) = [u for u in result.plan.unassigned if u.visit_id == "u1"]
        assert u.reason.value in ("no_qualified_staff", "outside_shifts")
        assert result.inconsistency is None  # the re-solve (which fails here) did not run
        assert result.diff.mutations == 0

    def test_urgent_visit_goes_to_the_one_qualified_carer(self, district: District) -> None:
        problem, plan = district
        urgent = replace(
            visit("u1", 10, competences=("nurse",)), windows=(TimeWindow(11 * H, 14 * H),)
        )
        result = replan(problem, plan, [UrgentVisitAdded(urgent)], now=10 * H, options=FAST)
        assert "u1" in _route(result.plan, "cora").visit_ids
        assert result.diff.added == ("u1",)
        assert result.diff.mutations == 0
        assert result.diff.affected_staff == ("cora",)
        for staff in ("anna", "bert"):
            assert _route(result.plan, staff) == _route(plan, staff)
        assert validate(result.problem, result.plan) == []

    def test_sick_call_moves_only_the_orphaned_visits(self, district: District) -> None:
        problem, plan = district
        result = replan(problem, plan, [CarerAbsent("bert", 7 * H)], now=7 * H, options=FAST)
        orphans = set(_route(plan, "bert").visit_ids)
        assert set(result.orphaned) == orphans
        assert set(result.replaced) == orphans
        assert set(result.diff.mutated) <= orphans
        assert set(result.diff.resource_changed) == orphans
        for staff in ("anna", "cora"):
            kept = [v for v in _route(result.plan, staff).visit_ids if v not in orphans]
            assert kept == list(_route(plan, staff).visit_ids)
        assert validate(result.problem, result.plan) == []

    def test_overrun_moves_only_that_carers_later_stops(self, district: District) -> None:
        problem, plan = district
        overrun = ActualTimesReported("a1", 8 * H, 10 * H)
        result = replan(problem, plan, [overrun], now=8 * H + 1200, options=FAST)
        assert result.diff.affected_staff == ("anna",)
        assert _route(result.plan, "anna").visit_ids == ("a1", "a2", "a3", "a4")
        for staff in ("bert", "cora"):
            assert _route(result.plan, staff) == _route(plan, staff)
        assert set(result.diff.mutated) <= {"a2", "a3", "a4"}
        assert validate(result.problem, result.plan) == []

    def test_overrun_past_the_shift_drops_one_visit_and_places_it_elsewhere(
        self, district: District
    ) -> None:
        problem, plan = district
        overrun = ActualTimesReported("a1", 8 * H, 13 * H + 1800)
        result = replan(problem, plan, [overrun], now=8 * H + 1200, options=FAST)
        anna = _route(result.plan, "anna").visit_ids
        assert len(anna) == 3  # a1 (frozen) + two of three: exactly one taken out
        moved = {"a2", "a3", "a4"} - set(anna)
        assert len(moved) == 1
        planned = {v for r in result.plan.routes for v in r.visit_ids}
        assert moved <= planned
        assert set(result.diff.resource_changed) == moved
        assert validate(result.problem, result.plan) == []


class TestFallback:
    def test_double_visit_urgent_uses_the_resolve(
        self, district: District, solve_calls: list[Problem]
    ) -> None:
        problem, plan = district
        double = replace(visit("u2", 6), carers_required=2, windows=(TimeWindow(11 * H, 15 * H),))
        result = replan(problem, plan, [UrgentVisitAdded(double)], now=10 * H, options=FAST)
        assert len(solve_calls) == 1
        assert validate(result.problem, result.plan, check_priority=False) == []

    def test_no_fallback_when_everything_fits(
        self, district: District, solve_calls: list[Problem]
    ) -> None:
        problem, plan = district
        replan(problem, plan, [VisitCancelled("b2")], now=8 * H, options=FAST)
        assert solve_calls == []

    def test_resolve_strategy_is_still_reachable(
        self, district: District, solve_calls: list[Problem]
    ) -> None:
        problem, plan = district
        result = replan(
            problem, plan, [VisitCancelled("b2")], now=8 * H, options=FAST, strategy="resolve"
        )
        assert len(solve_calls) == 1
        assert validate(result.problem, result.plan) == []


def _with_lunch(problem: Problem, lunch: Break) -> Problem:
    """``problem`` with ``lunch`` owed by cora's shift."""
    shifts = tuple(replace(s, breaks=(lunch,)) if s.id == "s-cora" else s for s in problem.shifts)
    return replace(problem, shifts=shifts)


@pytest.mark.parametrize(
    ("cancelled", "now", "kept"),
    [(("c1", "c2", "c3", "c4"), 7 * H, None), (("c2", "c3", "c4"), 8 * H + 1800, ("c1",))],
    ids=["no_route_left", "only_the_morning_left"],
)
def test_a_lunch_still_ahead_stays_owed_for_later_work(
    district: District, cancelled: tuple[str, ...], now: int, kept: tuple[str, ...] | None
) -> None:
    """cora's visits cancelled (all, or all but c1 done), then an urgent visit only she may do.

    A carer with no route lost her breaks from the day for good, so the next route she got had
    no lunch (simulator finding: ``break_missing`` on late shifts); one whose work ended before
    the window opened lost it too, and an urgent visit at 11:00 then gave her a route through
    lunch without one (simulator seed 11). A route that ends before the window needs no lunch,
    and the validator says so.
    """
    problem, plan = district
    lunch = Break("lunch", (TimeWindow(11 * H, 13 * H),), 1800)
    problem = _with_lunch(problem, lunch)
    first = replan(problem, plan, [VisitCancelled(v) for v in cancelled], now=now, options=FAST)
    if kept is not None:
        assert _route(first.plan, "cora").visit_ids == kept
        assert [s.kind for s in _route(first.plan, "cora").stops].count(StopKind.BREAK) == 0
    assert validate(first.problem, first.plan) == []
    cora = next(s for s in first.problem.shifts if s.id == "s-cora")
    assert cora.breaks == (lunch,)
    urgent = replace(visit("u1", 10, competences=("nurse",)), windows=(TimeWindow(11 * H, 15 * H),))
    second = replan(first.problem, first.plan, [UrgentVisitAdded(urgent)], now=9 * H, options=FAST)
    route = _route(second.plan, "cora")
    assert "u1" in route.visit_ids
    assert [s.break_id for s in route.stops if s.kind is StopKind.BREAK] == ["lunch"]
    assert validate(second.problem, second.plan) == []


def test_an_overrun_that_leaves_no_room_for_lunch_in_its_window_is_followed_by_it(
    district: District,
) -> None:
    """c3 reported 11:00-12:20 with lunch owed 11:00-12:30: lunch follows it in full, validly.

    The fact leaves no window room for the break; the plan moved it out of its window and the
    validator called that a broken rule, so the re-plan fell back and logged an inconsistency
    (simulator seed 12, ``break_window`` after a nurse's report at 20:24).
    """
    problem, plan = district
    problem = _with_lunch(problem, Break("lunch", (TimeWindow(11 * H, 12 * H + 1800),), 1800))
    cora = _route(plan, "cora")
    i = next(i for i, s in enumerate(cora.stops) if s.visit_id == "c3")
    c3 = cora.stops[i]
    brk = Stop(StopKind.BREAK, c3.end, c3.end, c3.end + 1800, c3.location, break_id="lunch")
    cora = replace(cora, stops=(*cora.stops[: i + 1], brk, *cora.stops[i + 1 :]))
    plan = replace(plan, routes=tuple(cora if r.staff_id == "cora" else r for r in plan.routes))
    assert validate(problem, plan) == []
    report = ActualTimesReported("c3", c3.start, 12 * H + 1200)
    result = replan(problem, plan, [report], now=20 * H, options=FAST)
    assert result.inconsistency is None
    stops = _route(result.plan, "cora").stops
    i = next(i for i, s in enumerate(stops) if s.visit_id == "c3")
    assert (stops[i].end, stops[i + 1].kind) == (12 * H + 1200, StopKind.BREAK)
    assert (stops[i + 1].start, stops[i + 1].end) == (12 * H + 1200, 12 * H + 3000)
    assert validate(result.problem, result.plan) == []
