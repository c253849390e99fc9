"""Post-optimisation (app.scheduling.improve): never worse, always valid, fixes a bad route."""

from __future__ import annotations

import numpy as np
import pytest

from app.domain import TravelMatrix
from app.scheduling import solve, validate
from app.scheduling.improve import improve_plan, improve_routes, timed_route, visit_penalty
from app.scheduling.model import Plan, Problem, Route, Shift, SolveOptions, TimeWindow, Visit
from tests.scheduling._fixtures import H, grid_matrix, shift, visits


def _travel(routes: tuple[Route, ...] | list[Route]) -> int:
    return sum(s.travel_time for r in routes for s in r.stops)


def _vrptw(seed: int, n: int = 40, k: int = 5, width: int = 2 * H) -> Problem:
    """Random VRPTW: one depot (location 0), windows of ``width`` in a 10-hour day, capacity."""
    rng = np.random.default_rng(seed)
    vs = []
    for i in range(1, n + 1):
        open_at = int(rng.integers(7 * H, 15 * H))
        vs.append(
            Visit(
                f"v{i}",
                f"c{i}",
                i,
                int(rng.integers(5, 31)) * 60,
                (TimeWindow(open_at, open_at + width),),
                demand=int(rng.integers(1, 10)),
            )
        )
    shifts = tuple(
        Shift(f"sh{j}", f"s{j}", 6 * H, 19 * H, start_location=0, end_location=0, capacity=60)
        for j in range(k)
    )
    return Problem(tuple(vs), shifts, {"drive": grid_matrix(n + 1, seed)})


def test_zigzag_routes_get_shorter_and_stay_valid() -> None:
    """Visits dealt round-robin to three carers (all-day windows) leave much to gain."""
    n = 24
    vs = [
        Visit(f"v{i}", f"c{i}", i, 900, (TimeWindow(7 * H, 18 * H),), demand=1)
        for i in range(1, n + 1)
    ]
    shifts = tuple(
        Shift(f"sh{j}", f"s{j}", 7 * H, 18 * H, start_location=0, end_location=0, capacity=10)
        for j in range(3)
    )
    problem = Problem(tuple(vs), shifts, {"drive": grid_matrix(n + 1, 3)})
    routes = tuple(timed_route(problem, j, list(range(j, n, 3))) for j in range(3))
    plan = Plan(routes, ())
    assert validate(problem, plan) == []

    res = improve_routes(problem, routes, 1.0)

    assert res.cost_after < 0.8 * res.cost_before
    assert _travel(res.routes) == res.cost_after
    assert validate(problem, Plan(res.routes, ())) == []
    assert sorted(v for r in res.routes for v in r.visit_ids) == sorted(v.id for v in vs)
    assert all(sum(vs[int(v[1:]) - 1].demand for v in r.visit_ids) <= 10 for r in res.routes)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_never_worse_and_valid_after_vroom(seed: int) -> None:
    """On VROOM's own plans of random VRPTW instances the result is valid and never longer."""
    problem = _vrptw(seed)
    plan = solve(problem, SolveOptions(time_limit_s=5, exploration_level=1, continuity_penalty_s=0))
    res = improve_routes(problem, plan.routes, 0.4, seed=seed)

    assert res.cost_after <= res.cost_before
    assert _travel(res.routes) <= _travel(plan.routes)
    improved = Plan(res.routes, plan.unassigned)
    assert validate(problem, improved) == []
    before = sorted(v for r in plan.routes for v in r.visit_ids)
    assert sorted(v for r in res.routes for v in r.visit_ids) == before


def test_tight_windows_and_two_windows_per_visit_stay_valid() -> None:
    """Visits with two short windows: every accepted move keeps one of them."""
    rng = np.random.default_rng(7)
    vs = []
    for i in range(1, 31):
        a = int(rng.integers(7 * H, 10 * H))
        b = int(rng.integers(12 * H, 15 * H))
        vs.append(
            Visit(f"v{i}", f"c{i}", i, 600, (TimeWindow(a, a + 2400), TimeWindow(b, b + 2400)))
        )
    shifts = tuple(
        Shift(f"sh{j}", f"s{j}", 6 * H, 18 * H, start_location=0, end_location=0) for j in range(6)
    )
    problem = Problem(tuple(vs), shifts, {"drive": grid_matrix(31, 7)})
    plan = solve(problem, SolveOptions(time_limit_s=5, exploration_level=1, continuity_penalty_s=0))
    res = improve_routes(problem, plan.routes, 0.4)

    assert res.cost_after <= res.cost_before
    assert validate(problem, Plan(res.routes, plan.unassigned)) == []


def test_routes_with_breaks_are_left_alone() -> None:
    """A shift with a break is outside the search: its route comes back as the same object."""
    problem = Problem(
        tuple(visits(4, 8)),
        (shift(0), shift(1, breaks=False)),
        {"drive": grid_matrix(30)},
    )
    plan = solve(problem, SolveOptions(time_limit_s=5, exploration_level=1, continuity_penalty_s=0))
    with_break = [r for r in plan.routes if r.shift_id == "sh0"]
    res = improve_routes(problem, plan.routes, 0.2)

    assert [r for r in res.routes if r.shift_id == "sh0"] == with_break
    assert all(r is w for r in res.routes for w in with_break if r.shift_id == "sh0")
    assert validate(problem, Plan(res.routes, plan.unassigned)) == []


def test_zero_budget_returns_the_input() -> None:
    problem = _vrptw(4, n=15, k=3)
    plan = solve(problem, SolveOptions(time_limit_s=5, exploration_level=1, continuity_penalty_s=0))
    res = improve_routes(problem, plan.routes, 0.0)
    assert res.routes == plan.routes
    assert res.cost_after == res.cost_before
    assert improve_plan(problem, plan, 0.0) is plan


def test_continuity_penalty_counts_in_the_objective() -> None:
    """Moving a visit to a non-preferred carer must save more travel than the penalty."""
    m = TravelMatrix(
        np.array([[0, 100, 100], [100, 0, 10], [100, 10, 0]], dtype=np.int64),
        np.array([[0, 100, 100], [100, 0, 10], [100, 10, 0]], dtype=np.int64),
    )
    v1 = Visit("a", "ca", 1, 60, (TimeWindow(0, 10_000),), preferred_staff=frozenset({"s0"}))
    v2 = Visit("b", "cb", 2, 60, (TimeWindow(0, 10_000),), preferred_staff=frozenset({"s1"}))
    shifts = (
        Shift("sh0", "s0", 0, 10_000, start_location=0, end_location=0),
        Shift("sh1", "s1", 0, 10_000, start_location=0, end_location=0),
    )
    problem = Problem((v1, v2), shifts, {"drive": m})
    assert visit_penalty(problem, v1, 1, 900, 0) == 900
    assert visit_penalty(problem, v1, 0, 900, 0) == 0
    routes = (timed_route(problem, 0, [0]), timed_route(problem, 1, [1]))

    merged = improve_routes(problem, routes, 0.2, continuity_penalty_s=0)
    kept = improve_routes(problem, routes, 0.2, continuity_penalty_s=900)

    assert merged.cost_after == 210 < merged.cost_before == 400
    assert len(merged.routes) == 1
    assert kept.routes == routes


def test_solver_hook_returns_a_valid_plan() -> None:
    problem = _vrptw(5, n=30, k=4)
    opts = SolveOptions(time_limit_s=5, exploration_level=1, continuity_penalty_s=0, improve_s=0.3)
    plan = solve(problem, opts)
    assert validate(problem, plan) == []
    assert sum(len(r.visit_ids) for r in plan.routes) + len(plan.unassigned) == 30
