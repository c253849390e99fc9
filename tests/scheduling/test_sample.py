"""The sample district generator is deterministic, plain and consistent with its vocabulary."""

from __future__ import annotations

import numpy as np

from app.domain import Address, LatLon, TravelMatrix
from app.scheduling import solve, validate
from app.scheduling.model import SolveOptions
from app.scheduling.sample import HOLDS, district_points, generate_district, to_problem


def _addresses(n: int = 60) -> list[Address]:
    rng = np.random.default_rng(0)
    return [
        Address("Street", str(i), LatLon(47.1 + rng.uniform(0, 0.05), 9.5 + rng.uniform(0, 0.05)))
        for i in range(n)
    ]


def _matrix(points: list[LatLon], speed: float) -> TravelMatrix:
    xy = np.asarray([(p.lat * 111_000, p.lon * 76_000) for p in points])
    metres = np.rint(np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1)) * 1.3)
    dist = metres.astype(np.int64)
    return TravelMatrix(np.rint(dist / speed).astype(np.int64), dist)


def test_same_seed_same_district_and_counts() -> None:
    a = generate_district(_addresses(), visits=80, staff=8, seed=7)
    b = generate_district(_addresses(), visits=80, staff=8, seed=7)
    c = generate_district(_addresses(), visits=80, staff=8, seed=8)
    assert a == b
    assert a != c
    assert len(a.visits) == 80
    assert len(a.staff) == len(a.shifts) == 8


def test_vocabulary_and_shape() -> None:
    d = generate_district(_addresses(), visits=200, staff=12, seed=3)
    for s in d.staff:
        assert s.competences == HOLDS[s.level]
    staff_ids = {s.id for s in d.staff}
    for c in d.clients:
        assert 2 <= len(c.preferred_staff) <= 3
        assert set(c.preferred_staff) <= staff_ids
    per_client: dict[str, int] = {}
    for v in d.visits:
        per_client[v.client_id] = per_client.get(v.client_id, 0) + 1
        assert 5 * 60 <= v.duration <= 60 * 60
    assert max(per_client.values()) <= 4
    assert any(v.carers_required == 2 for v in d.visits)
    assert any(v.depends_on is not None for v in d.visits)
    basic = sum(v.competences == frozenset({"level2"}) for v in d.visits)
    assert basic > len(d.visits) / 2


def test_district_solves_into_a_valid_plan() -> None:
    d = generate_district(_addresses(), visits=60, staff=6, seed=2)
    points = district_points(d)
    p = to_problem(d, {"drive": _matrix(points, 8.0), "bike": _matrix(points, 4.0)})
    plan = solve(p, SolveOptions(time_limit_s=3.0, exploration_level=3, threads=1))
    assert validate(p, plan) == []
    assert plan.kpis["visits_planned"] > 40
