"""Each unassigned reason is found by checking the problem and the plan."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.domain import UNREACHABLE, TravelMatrix
from app.scheduling import explain_one, solve
from app.scheduling.model import (
    Dependency,
    Problem,
    SolveOptions,
    TimeWindow,
    UnassignedReason,
    Visit,
)
from tests.scheduling._fixtures import H, grid_matrix, problem, shift, visits

FAST = SolveOptions(time_limit_s=2.0, exploration_level=3, threads=1)
W = (TimeWindow(8 * H, 12 * H),)


def _reason(p: Problem, visit_id: str) -> UnassignedReason:
    plan = solve(p, FAST)
    found = {u.visit_id: u.reason for u in plan.unassigned}
    return found[visit_id]


@pytest.mark.parametrize(
    ("visit", "reason"),
    [
        (Visit("x", "c", 3, 600, W, geocoded=False), UnassignedReason.NOT_GEOCODED),
        (Visit("x", "c", 3, 600, W, pinned_staff="s9"), UnassignedReason.PINNED_STAFF_UNAVAILABLE),
        (
            Visit("x", "c", 3, 600, W, competences=frozenset({"insulin"})),
            UnassignedReason.NO_QUALIFIED_STAFF,
        ),
        (
            Visit("x", "c", 3, 600, W, allowed_staff=frozenset({"s9"})),
            UnassignedReason.NOT_IN_ALLOWED_TEAM,
        ),
        (Visit("x", "c", 3, 600, (TimeWindow(20 * H, 21 * H),)), UnassignedReason.OUTSIDE_SHIFTS),
        (
            Visit("x", "c", 3, 600, (TimeWindow(7 * H, 7 * H + 700),)),
            UnassignedReason.WINDOW_UNREACHABLE,
        ),
        (Visit("x", "c", 3, 600, W, carers_required=2), UnassignedReason.SECOND_CARER_UNAVAILABLE),
        (
            Visit("x", "c", 3, 600, W, depends_on=Dependency("gone")),
            UnassignedReason.DEPENDENCY_UNSATISFIED,
        ),
    ],
)
def test_static_reasons(visit: Visit, reason: UnassignedReason) -> None:
    assert _reason(problem([visit], [shift(0)]), "x") is reason


def test_unreachable_location() -> None:
    m = grid_matrix(6)
    d, dist = m.durations.copy(), m.distances.copy()
    d[:, 5] = d[5, :] = UNREACHABLE
    dist[:, 5] = dist[5, :] = UNREACHABLE
    d[5, 5] = dist[5, 5] = 0
    p = Problem((Visit("x", "c", 5, 600, W),), (shift(0),), {"drive": TravelMatrix(d, dist)})
    assert _reason(p, "x") is UnassignedReason.UNREACHABLE


def test_busy_routes_without_a_limit_are_not_called_capacity() -> None:
    # Twelve 30-minute visits in one 2-hour window, one carer without any capacity limit:
    # most cannot fit, and the true reason is time, not an exhausted capacity (issue 14).
    vs = [Visit(f"v{k}", f"c{k}", k, 1800, (TimeWindow(9 * H, 11 * H),)) for k in range(2, 14)]
    p = problem(vs, [shift(0, breaks=False)])
    plan = solve(p, FAST)
    assert plan.unassigned
    assert {u.reason for u in plan.unassigned} == {UnassignedReason.ROUTES_FULL}


def test_full_routes_at_a_declared_limit_mean_capacity() -> None:
    # Same day, but the shift declares max 2 visits: the limit is what stops the rest.
    vs = [Visit(f"v{k}", f"c{k}", k, 1800, (TimeWindow(9 * H, 15 * H),)) for k in range(2, 8)]
    p = problem(vs, [replace(shift(0, breaks=False), max_visits=2)])
    plan = solve(p, FAST)
    assert len(plan.unassigned) == 4
    assert {u.reason for u in plan.unassigned} == {UnassignedReason.CAPACITY}


def test_gap_left_by_solver_is_reported_honestly() -> None:
    p = problem(visits(3, 2), [shift(0, breaks=False)])
    plan = solve(p, FAST)
    route = plan.routes[0]
    emptied = replace(route, stops=(route.stops[0], route.stops[-1]))
    got = explain_one(p, (emptied,), p.visits[0])
    assert got.reason is UnassignedReason.OTHER


def test_dependency_gap_impossible_after_first_visit() -> None:
    first = Visit("a", "c3", 3, 600, (TimeWindow(11 * H, 12 * H),))
    second = Visit(
        "b", "c3", 3, 600, (TimeWindow(8 * H, 13 * H),), depends_on=Dependency("a", min_gap=3 * H)
    )
    assert _reason(problem([first, second], [shift(0)]), "b") is (
        UnassignedReason.DEPENDENCY_UNSATISFIED
    )


def test_details_carry_no_client_data() -> None:
    v = Visit("x", "secret-client", 3, 600, W, competences=frozenset({"insulin"}))
    got = explain_one(problem([v], [shift(0)]), (), v)
    assert "secret-client" not in got.detail
    assert "insulin" in got.detail
