"""Re-timing keeps previous starts where the route order allows."""

from __future__ import annotations

from app.replan.retime import keep_times
from app.scheduling.model import Plan, Problem

from .conftest import H, build_route

District = tuple[Problem, Plan]


def test_solver_times_are_pulled_back_to_the_old_starts(district: District) -> None:
    problem, plan = district
    old = plan.routes[0]
    late = build_route(
        problem,
        "s-anna",
        [("a1", 8 * H + 900), ("a2", 9 * H + 2400), ("a3", 11 * H), ("a4", 12 * H)],
    )
    starts = {s.visit_id: s.start for s in old.stops if s.visit_id}
    shift = problem.shifts[0]
    again = keep_times(problem, shift, late, starts, depart=old.stops[0].end, ready=7 * H)
    assert again.stops == old.stops


def test_an_unreachable_old_start_is_clamped_to_the_arrival(district: District) -> None:
    problem, plan = district
    route = plan.routes[0]
    starts = {"a1": 6 * H, "a2": 9 * H, "a3": 10 * H + 1800, "a4": 12 * H}
    again = keep_times(problem, problem.shifts[0], route, starts, depart=7 * H, ready=7 * H)
    first = again.stops[1]
    assert first.visit_id == "a1"
    # Asked for 06:00; the office is 5 minutes away from a 07:00 departure.
    assert first.arrival == 7 * H + 300
    assert first.start == 7 * H + 300
    assert first.waiting == 0


def test_ready_time_bounds_the_first_stop(district: District) -> None:
    problem, plan = district
    route = plan.routes[0]
    starts = {"a1": 7 * H}
    again = keep_times(problem, problem.shifts[0], route, starts, depart=7 * H, ready=8 * H + 600)
    assert again.stops[1].start == 8 * H + 900
