"""A day stored by another matrix engine re-plans: leg distances come from today's matrix."""

from __future__ import annotations

from dataclasses import replace

from app.scheduling import ViolationKind, validate, with_matrix_distances
from app.scheduling.model import Plan, Problem, StopKind


def test_distances_a_few_metres_off_are_taken_from_the_matrix(
    district: tuple[Problem, Plan],
) -> None:
    """Stored legs 6 m longer (the earlier engine rounded lengths per edge): every re-plan of the
    day failed validation and fell back (simulator, after the label engine landed)."""
    problem, plan = district
    routes = tuple(
        replace(
            r,
            stops=tuple(
                replace(s, distance=s.distance + 6) if s.kind is StopKind.VISIT else s
                for s in r.stops
            ),
        )
        for r in plan.routes
    )
    stale = replace(plan, routes=routes)
    assert {v.kind for v in validate(problem, stale)} == {ViolationKind.TRAVEL}
    fresh = replace(stale, routes=with_matrix_distances(problem, stale.routes))
    assert validate(problem, fresh) == []
    assert fresh.routes == plan.routes
