"""Coupled local search (app.scheduling.coupled): linked visits move together, plans stay valid."""

from __future__ import annotations

import numpy as np
import pytest

from app.domain import TravelMatrix
from app.scheduling import solve, validate
from app.scheduling.coupled import improve_coupled
from app.scheduling.model import (
    Break,
    Dependency,
    FixedStop,
    Plan,
    Problem,
    Route,
    Shift,
    SolveOptions,
    StopKind,
    TimeWindow,
    Visit,
)
from bench import hhcrsp
from tests.scheduling._fixtures import H, grid_matrix

MANKOWSKA = hhcrsp.DATA / "mankowska2014"


def _linked(seed: int, n: int = 24, pairs: int = 5, *, breaks: bool = False) -> Problem:
    """Random day: ``n`` visits with soft windows, ``pairs`` of them followed by a partner
    visit at the same client (gap [0, 0] or [10, 30] minutes), four carers from the office."""
    rng = np.random.default_rng(seed)
    vs: list[Visit] = []
    for i in range(1, n + 1):
        open_at = int(rng.integers(7 * H, 13 * H))
        vs.append(
            Visit(
                f"v{i}",
                f"c{i}",
                i,
                int(rng.integers(10, 31)) * 60,
                (TimeWindow(open_at, 19 * H),),
                due=open_at + H,
            )
        )
    for k in range(pairs):
        first = vs[k]
        gap = (0, 0) if k % 2 == 0 else (600, 1800)
        vs.append(
            Visit(
                f"w{k}",
                first.client_id,
                first.location,
                first.duration,
                first.windows,
                due=first.due,
                depends_on=Dependency(first.id, gap[0], gap[1], together=True),
            )
        )
    lunch = (Break("lunch", (TimeWindow(11 * H, 13 * H),), 1800),) if breaks else ()
    shifts = [
        Shift(f"sh{j}", f"s{j}", 6 * H, 20 * H, start_location=0, end_location=0, breaks=lunch)
        for j in range(4)
    ]
    return Problem(tuple(vs), tuple(shifts), {"drive": grid_matrix(n + 1, seed)})


def _cost(problem: Problem, routes: tuple[Route, ...]) -> int:
    due = {v.id: v.due for v in problem.visits}
    late = [
        max(0, s.start - d)
        for r in routes
        for s in r.stops
        if s.visit_id is not None and (d := due[s.visit_id]) is not None
    ]
    return sum(s.travel_time for r in routes for s in r.stops) + sum(late) + max(late, default=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linked_plans_get_no_worse_and_stay_valid(seed: int) -> None:
    """On VROOM's coupled plans the search keeps every rule, every visit and every gap."""
    problem = _linked(seed)
    plan = solve(problem, SolveOptions(time_limit_s=2, improve_s=0, continuity_penalty_s=0))

    res = improve_coupled(problem, plan.routes, 1.0, seed=seed)

    assert res.cost_after <= res.cost_before
    assert _cost(problem, res.routes) <= _cost(problem, plan.routes)
    assert validate(problem, Plan(res.routes, plan.unassigned)) == []
    before = sorted(v for r in plan.routes for v in r.visit_ids)
    assert sorted(v for r in res.routes for v in r.visit_ids) == before


def test_a_pair_moves_together_to_the_carer_nearby() -> None:
    """A simultaneous pair served from the far side of town moves next door, both parts at once.

    Carers 0 and 1 start at the office (location 0) next to the pair; carers 2 and 3 start far
    away. The input has the pair on carers 2 and 3; only moving both parts gains.
    """
    pts = np.array([[0, 0], [100, 0], [5000, 5000], [5000, 5100]], dtype=float)
    metres = np.rint(np.hypot(*(pts[:, None, :] - pts[None, :, :]).transpose(2, 0, 1)))
    m = TravelMatrix((metres / 5).astype(np.int64), metres.astype(np.int64))
    win = (TimeWindow(8 * H, 18 * H),)
    vs = (
        Visit("a", "c", 1, 1800, win),
        Visit("b", "c", 1, 1800, win, depends_on=Dependency("a", 0, 0, together=True)),
    )
    shifts = tuple(
        Shift(f"sh{j}", f"s{j}", 7 * H, 19 * H, start_location=loc, end_location=loc)
        for j, loc in enumerate((0, 0, 2, 3))
    )
    problem = Problem(vs, shifts, {"drive": m})
    far = tuple(_route(problem, j, vid, 9 * H) for j, vid in ((2, "a"), (3, "b")))
    assert validate(problem, Plan(far, ())) == []

    res = improve_coupled(problem, far, 1.0)

    assert {r.shift_id for r in res.routes} == {"sh0", "sh1"}
    starts = {s.visit_id: s.start for r in res.routes for s in r.stops if s.visit_id}
    assert starts["a"] == starts["b"]
    assert validate(problem, Plan(res.routes, ())) == []
    assert res.cost_after < res.cost_before


def _route(problem: Problem, si: int, vid: str, start: int) -> Route:
    from app.scheduling.improve import timed_route

    vi = next(i for i, v in enumerate(problem.visits) if v.id == vid)
    wins = [[(start, start)] for _ in problem.visits]
    return timed_route(problem, si, [vi], wins)


def test_breaks_keep_their_windows() -> None:
    """Carers with a lunch break: the search moves visits around it, never out of its window."""
    problem = _linked(3, breaks=True)
    plan = solve(problem, SolveOptions(time_limit_s=2, improve_s=0, continuity_penalty_s=0))

    res = improve_coupled(problem, plan.routes, 1.0)

    assert validate(problem, Plan(res.routes, plan.unassigned)) == []
    for r in res.routes:
        lunch = [s for s in r.stops if s.kind is StopKind.BREAK]
        assert len(lunch) == 1
        assert lunch[0].start >= 11 * H
        assert lunch[0].end <= 13 * H


def test_routes_with_fixed_stops_stay_as_they_are() -> None:
    """A fixed stop's route is not touched; its partner's gap holds against it."""
    problem = _linked(4)
    plan = solve(problem, SolveOptions(time_limit_s=2, improve_s=0, continuity_penalty_s=0))
    route = next(r for r in plan.routes if "v1" in r.visit_ids)
    stop = next(s for s in route.stops if s.visit_id == "v1")
    fixed = Problem(
        problem.visits,
        problem.shifts,
        problem.matrices,
        fixed=(FixedStop("v1", route.shift_id, stop.start, stop.end),),
    )

    res = improve_coupled(fixed, plan.routes, 1.0)

    assert route in res.routes
    assert validate(fixed, Plan(res.routes, plan.unassigned)) == []


def test_zero_budget_returns_the_input() -> None:
    problem = _linked(5)
    plan = solve(problem, SolveOptions(time_limit_s=1, improve_s=0, continuity_penalty_s=0))
    res = improve_coupled(problem, plan.routes, 0.0)
    assert res.routes == plan.routes


def test_the_smallest_hhcrsp_instance_reaches_its_best_known_objective() -> None:
    """Service path on Mankowska A1 (10 patients, 3 caregivers): the published best (218.2)."""
    inst = hhcrsp.read_instance(MANKOWSKA / "instances" / "InstanzCPLEX_HCSRP_10_1.json")
    plan = solve(hhcrsp.to_problem(inst, 1000), SolveOptions(time_limit_s=6))
    ev = hhcrsp.check_solution(inst, hhcrsp.operations(inst, plan, 1000))
    assert ev.violations == []
    assert ev.served == 10
    assert ev.objective <= 1.01 * hhcrsp.load_bks(MANKOWSKA)["InstanzCPLEX_HCSRP_10_1"]
