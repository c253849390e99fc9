"""Costs handed to VROOM fit its uint32 cost bound, whatever the size of the day (issue 11).

VROOM refuses an input ("Too high cost values") when, for a cost matrix, the sum over jobs of the
largest cost leaving each job's location, plus the largest cost leaving each vehicle's start and
entering each vehicle's end, overflows uint32. One unreachable location (``UNREACHABLE`` = 10^7 s
in its row and column) put 10^7 into every row's maximum, so a day of 430+ visits failed.

The bound below is re-computed here from VROOM's rule as documented in its source
(``Input::check_cost_bound``), sharing no code with the module that scales the costs.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from app.domain import UNREACHABLE, TravelMatrix
from app.scheduling import solve, validate
from app.scheduling._build import fit_cost_bound
from app.scheduling.model import Problem, SolveOptions, TimeWindow, Visit
from tests.scheduling._fixtures import H, grid_matrix, shift

UINT32_MAX = 2**32 - 1
QUICK = SolveOptions(time_limit_s=1.0, exploration_level=1, threads=1)


def vroom_bound(costs: np.ndarray, jobs: list[int], starts: list[int], ends: list[int]) -> int:
    """VROOM's upper bound of a solution's cost for one cost matrix, in exact integers."""
    c = [[int(x) for x in row] for row in costs.tolist()]
    n = len(c)
    row_max = [max(c[i]) for i in range(n)]
    col_max = [max(c[i][j] for i in range(n)) for j in range(n)]
    jobs_bound = max(sum(row_max[j] for j in jobs), sum(col_max[j] for j in jobs))
    return jobs_bound + sum(row_max[s] for s in starts) + sum(col_max[e] for e in ends)


def _day(n_visits: int, n_shifts: int, cut_off: int, seed: int) -> Problem:
    """Half the shifts drive, half cycle; location ``cut_off`` has no road for cars."""
    n = n_shifts + n_visits
    bike = grid_matrix(n, seed)
    dur, dist = bike.durations // 3, bike.distances.copy()
    for a in (dur, dist):
        a[cut_off, :] = UNREACHABLE
        a[:, cut_off] = UNREACHABLE
        a[cut_off, cut_off] = 0
    visits = tuple(
        Visit(f"v{k}", f"c{k}", n_shifts + k, 600, (TimeWindow(7 * H, 15 * H),))
        for k in range(n_visits)
    )
    shifts = tuple(
        replace(shift(k, breaks=False), profile="drive" if k % 2 else "bike")
        for k in range(n_shifts)
    )
    return Problem(visits, shifts, {"drive": TravelMatrix(dur, dist), "bike": bike})


@pytest.mark.parametrize("seed", [1, 2])
def test_a_large_day_with_a_client_cars_cannot_reach_is_solved(seed: int) -> None:
    n_shifts, n_visits = 12, 480
    cut_off = int(np.random.default_rng(seed).integers(n_visits))
    problem = _day(n_visits, n_shifts, n_shifts + cut_off, seed)

    plan = solve(problem, QUICK)

    profile_of = {r.shift_id: r.profile for r in plan.routes}
    on = [r.shift_id for r in plan.routes if f"v{cut_off}" in r.visit_ids]
    assert all(profile_of[s] == "bike" for s in on)
    planned = {vid for r in plan.routes for vid in r.visit_ids}
    assert len(planned) > n_visits // 2
    assert validate(problem, plan) == []


@pytest.mark.parametrize("seed", range(4))
def test_fitted_costs_stay_under_the_bound_and_keep_their_order(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 60))
    dur = rng.integers(0, 4000, size=(n, n)).astype(np.int64)
    dead = rng.choice(n, size=3, replace=False)
    dur[dead, :] = UNREACHABLE
    dur[:, dead] = UNREACHABLE
    np.fill_diagonal(dur, 0)
    penalties = {f"p{k}": rng.integers(0, 2, size=n) * 1_000_000 for k in range(3)}
    # Many jobs per location (as in a large day): far over the bound before fitting.
    jobs = rng.integers(0, n, size=5000).tolist()
    starts = rng.integers(0, n, size=100).tolist()
    ends = starts

    scale = fit_cost_bound({k: (dur, pen) for k, pen in penalties.items()}, jobs, starts, ends)

    ok = dur < UNREACHABLE
    allowed_max = max(int((dur + pen[None, :])[ok].max()) for pen in penalties.values())
    for pen in penalties.values():
        raw = dur + pen[None, :]
        np.fill_diagonal(raw, 0)
        assert vroom_bound(raw, jobs, starts, ends) > UINT32_MAX
        fitted = scale.costs(dur, pen)
        assert vroom_bound(fitted, jobs, starts, ends) <= UINT32_MAX
        assert int(fitted.min()) >= 0
        assert (np.diag(fitted) == 0).all()
        # Among arcs the durations allow, a cheaper arc never becomes dearer.
        a, b = raw[ok], fitted[ok]
        order = np.argsort(a, kind="stable")
        assert (np.diff(b[order]) >= 0).all()
        # An arc the durations forbid costs at least as much as every allowed arc anywhere.
        assert int(fitted[~ok].min()) >= -(-allowed_max // scale.factor)


def test_costs_under_the_bound_are_left_as_they_are() -> None:
    rng = np.random.default_rng(7)
    dur = rng.integers(0, 4000, size=(30, 30)).astype(np.int64)
    np.fill_diagonal(dur, 0)
    pen = np.full(30, 900, dtype=np.int64)
    scale = fit_cost_bound({"p": (dur, pen)}, list(range(30)), [0], [0])
    expected = dur + 900
    np.fill_diagonal(expected, 0)
    assert (scale.costs(dur, pen) == expected).all()
