"""The validator catches each kind of broken rule (so a clean result is not vacuous)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.scheduling import ViolationKind, solve, validate
from app.scheduling.model import (
    Dependency,
    FixedStop,
    Plan,
    Priority,
    Problem,
    Route,
    SolveOptions,
    StopKind,
    TimeWindow,
    Unassigned,
    UnassignedReason,
    Visit,
)
from tests.scheduling._fixtures import H, problem, shift, visits

FAST = SolveOptions(time_limit_s=2.0, exploration_level=3, threads=1)


@pytest.fixture(scope="module")
def solved() -> tuple[Problem, Plan]:
    vs = [
        *visits(4, 8),
        Visit("hoist", "c3", 3, 1800, (TimeWindow(9 * H, 11 * H),), carers_required=2),
        Visit(
            "dep",
            "c4",
            4,
            600,
            (TimeWindow(7 * H, 15 * H),),
            depends_on=Dependency("v4", min_gap=2 * H, max_gap=4 * H),
        ),
    ]
    p = problem(vs, [shift(0), shift(1)])
    plan = solve(p, FAST)
    assert validate(p, plan) == []
    assert not plan.unassigned
    return p, plan


def _edit_stop(plan: Plan, visit_id: str, *, start: int, end: int) -> Plan:
    routes = []
    done = False
    for r in plan.routes:
        stops = []
        for s in r.stops:
            if s.visit_id == visit_id and not done:
                stops.append(replace(s, start=start, end=end))
                done = True
                continue
            stops.append(s)
        routes.append(replace(r, stops=tuple(stops)))
    return replace(plan, routes=tuple(routes))


def _route_of(plan: Plan, visit_id: str) -> Route:
    return next(r for r in plan.routes if visit_id in r.visit_ids)


def _kinds(p: Problem, plan: Plan) -> set[ViolationKind]:
    return {v.kind for v in validate(p, plan)}


def test_window_violation(solved: tuple[Problem, Plan]) -> None:
    p, plan = solved
    stop = next(s for s in _route_of(plan, "v5").stops if s.visit_id == "v5")
    late = 12 * H - 600
    broken = _edit_stop(plan, "v5", start=max(late, stop.start), end=max(late, stop.start) + 1200)
    assert ViolationKind.TIME_WINDOW in _kinds(p, broken)


def test_travel_too_short(solved: tuple[Problem, Plan]) -> None:
    p, plan = solved
    r = plan.routes[0]
    second = [s for s in r.stops if s.kind is StopKind.VISIT][1]
    prev_end = r.stops[r.stops.index(second) - 1].end
    broken = _edit_stop(plan, second.visit_id or "", start=prev_end, end=prev_end + 1200)
    assert ViolationKind.TRAVEL in _kinds(p, broken)


def test_reported_times_of_a_fixed_stop_may_beat_the_matrix(
    solved: tuple[Problem, Plan],
) -> None:
    """A carer's phone reports what happened: quicker than the matrix is a fact, not a fault."""
    p, plan = solved
    r = plan.routes[0]
    second = [s for s in r.stops if s.kind is StopKind.VISIT][1]
    prev_end = r.stops[r.stops.index(second) - 1].end
    start, end = prev_end, prev_end + (second.end - second.start)
    reported = _edit_stop(plan, second.visit_id or "", start=start, end=end)
    fact = replace(p, fixed=(FixedStop(second.visit_id or "", r.shift_id, start, end),))
    assert ViolationKind.TRAVEL not in _kinds(fact, reported)
    assert ViolationKind.TRAVEL in _kinds(p, reported)  # the same times as a plan are refused


def test_duration_cut_short(solved: tuple[Problem, Plan]) -> None:
    p, plan = solved
    stop = next(s for s in _route_of(plan, "v6").stops if s.visit_id == "v6")
    assert ViolationKind.DURATION in _kinds(
        p, _edit_stop(plan, "v6", start=stop.start, end=stop.end - 60)
    )


def test_break_outside_window_and_missing(solved: tuple[Problem, Plan]) -> None:
    p, plan = solved
    r = plan.routes[0]
    moved = tuple(
        replace(s, start=8 * H, end=8 * H + 1800) if s.kind is StopKind.BREAK else s
        for s in r.stops
    )
    dropped = tuple(s for s in r.stops if s.kind is not StopKind.BREAK)
    assert ViolationKind.BREAK_WINDOW in _kinds(
        p, replace(plan, routes=(replace(r, stops=moved), *plan.routes[1:]))
    )
    # Work that runs through the lunch window owes the lunch (the solver may have done all
    # the work before the window, which owes none: see the next test).
    work = [s for s in dropped if s.kind is StopKind.VISIT]
    through = TimeWindow(work[0].start, work[-1].end)
    shifts = tuple(
        replace(sh, breaks=tuple(replace(b, windows=(through,)) for b in sh.breaks))
        if sh.id == r.shift_id
        else sh
        for sh in p.shifts
    )
    assert ViolationKind.BREAK_MISSING in _kinds(
        replace(p, shifts=shifts),
        replace(plan, routes=(replace(r, stops=dropped), *plan.routes[1:])),
    )


@pytest.mark.parametrize("when", ["after_the_work", "before_the_day"])
def test_no_break_is_owed_by_a_day_that_misses_its_window(
    solved: tuple[Problem, Plan], when: str
) -> None:
    """Work that ends before the window opens, or a day that starts after it closed (a carer
    idle at home until a late re-plan called her in), owes no break."""
    p, plan = solved
    r = plan.routes[0]
    dropped = tuple(s for s in r.stops if s.kind is not StopKind.BREAK)
    last_end = max(s.end for s in dropped if s.kind is StopKind.VISIT)
    if when == "after_the_work":
        window = TimeWindow(last_end, last_end + 2 * H)
    else:
        window = TimeWindow(max(0, dropped[0].start - 2 * H), dropped[0].start)
    shifts = tuple(
        replace(sh, breaks=tuple(replace(b, windows=(window,)) for b in sh.breaks))
        if sh.id == r.shift_id
        else sh
        for sh in p.shifts
    )
    p = replace(p, shifts=shifts)
    assert ViolationKind.BREAK_MISSING not in _kinds(
        p, replace(plan, routes=(replace(r, stops=dropped), *plan.routes[1:]))
    )


def test_shift_end_exceeded(solved: tuple[Problem, Plan]) -> None:
    p, plan = solved
    r = plan.routes[0]
    end = replace(r.stops[-1], arrival=16 * H, start=16 * H, end=16 * H)
    broken = replace(plan, routes=(replace(r, stops=(*r.stops[:-1], end)), *plan.routes[1:]))
    assert ViolationKind.SHIFT_BOUNDS in _kinds(p, broken)


def _problem_with(p: Problem, visit_id: str, **changes: object) -> Problem:
    vs = tuple(replace(v, **changes) if v.id == visit_id else v for v in p.visits)  # type: ignore[arg-type]
    return replace(p, visits=vs)


@pytest.mark.parametrize(
    ("changes", "kind"),
    [
        ({"competences": frozenset({"level5"})}, ViolationKind.COMPETENCE),
        ({"allowed_staff": frozenset({"nobody"})}, ViolationKind.NOT_ALLOWED),
        ({"pinned_staff": "nobody"}, ViolationKind.PINNED),
        ({"geocoded": False}, ViolationKind.NOT_GEOCODED),
    ],
)
def test_carer_rules(
    solved: tuple[Problem, Plan], changes: dict[str, object], kind: ViolationKind
) -> None:
    p, plan = solved
    assert kind in _kinds(_problem_with(p, "v7", **changes), plan)


def test_shift_limits(solved: tuple[Problem, Plan]) -> None:
    p, plan = solved
    r = plan.routes[0]
    tight = replace(
        next(s for s in p.shifts if s.id == r.shift_id), max_visits=1, max_travel_time=1, capacity=0
    )
    p2 = replace(p, shifts=tuple(tight if s.id == tight.id else s for s in p.shifts))
    p2 = _problem_with(p2, r.visit_ids[0], demand=1)
    assert {ViolationKind.MAX_VISITS, ViolationKind.MAX_TRAVEL, ViolationKind.CAPACITY} <= _kinds(
        p2, plan
    )


def test_double_visit_rules(solved: tuple[Problem, Plan]) -> None:
    p, plan = solved
    stop = next(s for r in plan.routes for s in r.stops if s.visit_id == "hoist")
    moved = _edit_stop(plan, "hoist", start=stop.start + 60, end=stop.end + 60)
    assert ViolationKind.DOUBLE_SYNC in _kinds(p, moved)
    single = replace(
        plan,
        routes=tuple(
            replace(r, stops=tuple(s for s in r.stops if s.visit_id != "hoist")) if k == 0 else r
            for k, r in enumerate(plan.routes)
        ),
    )
    assert ViolationKind.DOUBLE_CARERS in _kinds(p, single)


def test_dependency_gap(solved: tuple[Problem, Plan]) -> None:
    p, plan = solved
    p2 = _problem_with(p, "dep", depends_on=Dependency("v4", min_gap=10 * H))
    assert ViolationKind.DEPENDENCY in _kinds(p2, plan)


def test_bookkeeping(solved: tuple[Problem, Plan]) -> None:
    p, plan = solved
    both = replace(plan, unassigned=(Unassigned("v4", UnassignedReason.OTHER, ""),))
    assert ViolationKind.ASSIGNED_AND_UNASSIGNED in _kinds(p, both)
    r = _route_of(plan, "v5")
    missing = replace(
        plan,
        routes=tuple(
            replace(x, stops=tuple(s for s in x.stops if s.visit_id != "v5")) if x is r else x
            for x in plan.routes
        ),
    )
    assert ViolationKind.MISSING in _kinds(p, missing)
    twice = replace(plan, routes=(*plan.routes, plan.routes[0]))
    assert ViolationKind.DUPLICATE_ROUTE in _kinds(p, twice)


def test_fixed_stop_moved(solved: tuple[Problem, Plan]) -> None:
    p, plan = solved
    r = _route_of(plan, "v6")
    stop = next(s for s in r.stops if s.visit_id == "v6")
    p2 = replace(p, fixed=(FixedStop("v6", r.shift_id, stop.start + 300, stop.end + 300),))
    assert ViolationKind.FIXED_MOVED in _kinds(p2, plan)


def test_mandatory_left_out_for_optional() -> None:
    opt = Visit("opt", "c3", 3, 1800, (TimeWindow(9 * H, 10 * H),), priority=Priority.OPTIONAL)
    must = Visit("must", "c4", 4, 1800, (TimeWindow(9 * H, 10 * H),))
    p = problem([opt, must], [shift(0, breaks=False)])
    assert solve(p, FAST).routes[0].visit_ids == ("must",)
    only_opt = solve(replace(p, visits=(opt,)), FAST)
    broken = replace(only_opt, unassigned=(Unassigned("must", UnassignedReason.CAPACITY, ""),))
    assert ViolationKind.PRIORITY in _kinds(p, broken)
