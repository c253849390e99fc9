"""Small synthetic districts with hand-written matrices (no OSM data in unit tests).

Locations: 0 is the team office (every shift starts and ends there); 1..12 are clients' homes on
a line, 5 minutes (and 1 km) apart per step, so travel times are easy to check by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pytest

from app.domain import TravelMatrix
from app.scheduling import solve
from app.scheduling.model import (
    Plan,
    Problem,
    Route,
    Shift,
    SolveOptions,
    Stop,
    StopKind,
    TimeWindow,
    Visit,
)

H = 3600
STEP_S = 300
N_LOCATIONS = 13


def line_matrix(n: int = N_LOCATIONS) -> TravelMatrix:
    """Travel on a line: |i - j| steps of 5 minutes / 1 km."""
    idx = np.arange(n, dtype=np.int64)
    steps = np.abs(idx[:, None] - idx[None, :]).astype(np.int64)
    return TravelMatrix(durations=steps * STEP_S, distances=steps * 1000)


def visit(
    vid: str, location: int, *, client: str | None = None, competences: Sequence[str] = ()
) -> Visit:
    """A 30-minute visit that may happen any time between 07:00 and 16:00."""
    return Visit(
        id=vid,
        client_id=client or f"client-{vid}",
        location=location,
        duration=30 * 60,
        windows=(TimeWindow(7 * H, 16 * H),),
        competences=frozenset(competences),
    )


def shift(sid: str, staff: str, *, competences: Sequence[str] = ()) -> Shift:
    """07:00-15:00 from and back to the office."""
    return Shift(
        id=sid,
        staff_id=staff,
        start=7 * H,
        end=15 * H,
        competences=frozenset(competences),
        start_location=0,
        end_location=0,
    )


def build_route(problem: Problem, shift_id: str, plan: Sequence[tuple[str, int]]) -> Route:
    """A consistent route: ``plan`` lists (visit id, start); travel comes from the matrix."""
    s = next(x for x in problem.shifts if x.id == shift_id)
    m = problem.matrices[s.profile]
    visits = {v.id: v for v in problem.visits}
    start_loc = s.start_location if s.start_location is not None else 0
    stops = [Stop(kind=StopKind.START, arrival=s.start, start=s.start, end=s.start, location=0)]
    loc, t = start_loc, s.start
    for vid, start in plan:
        v = visits[vid]
        travel = int(m.durations[loc, v.location])
        arrival = t + travel
        if start < arrival:
            msg = f"{vid} cannot start at {start}, arrival {arrival}"
            raise ValueError(msg)
        stops.append(
            Stop(
                kind=StopKind.VISIT,
                arrival=arrival,
                start=start,
                end=start + v.duration,
                location=v.location,
                visit_id=vid,
                travel_time=travel,
                distance=int(m.distances[loc, v.location]),
                waiting=start - arrival,
            )
        )
        loc, t = v.location, start + v.duration
    back = int(m.durations[loc, 0])
    stops.append(
        Stop(
            kind=StopKind.END,
            arrival=t + back,
            start=t + back,
            end=t + back,
            location=0,
            travel_time=back,
            distance=int(m.distances[loc, 0]),
        )
    )
    return Route(shift_id=shift_id, staff_id=s.staff_id, profile=s.profile, stops=tuple(stops))


@pytest.fixture
def district() -> tuple[Problem, Plan]:
    """Three carers, twelve visits, one hourly route each; cora is the only nurse.

    anna: a1..a4 at 08:00, 09:00, 10:30, 12:00 (locations 1-4)
    bert: b1..b4 at 08:00, 09:30, 11:00, 13:00 (locations 5-8)
    cora: c1..c4 at 08:00, 09:00, 11:00, 13:00 (locations 9-12), c2 needs a nurse
    """
    visits = (
        *(visit(f"a{i}", i) for i in range(1, 5)),
        *(visit(f"b{i}", 4 + i) for i in range(1, 5)),
        visit("c1", 9),
        visit("c2", 10, competences=("nurse",)),
        visit("c3", 11),
        visit("c4", 12),
    )
    shifts = (
        shift("s-anna", "anna"),
        shift("s-bert", "bert"),
        shift("s-cora", "cora", competences=("nurse",)),
    )
    problem = Problem(visits=visits, shifts=shifts, matrices={"drive": line_matrix()})
    routes = (
        build_route(
            problem, "s-anna", [("a1", 8 * H), ("a2", 9 * H), ("a3", 10 * H + 1800), ("a4", 12 * H)]
        ),
        build_route(
            problem, "s-bert", [("b1", 8 * H), ("b2", 9 * H + 1800), ("b3", 11 * H), ("b4", 13 * H)]
        ),
        build_route(
            problem, "s-cora", [("c1", 8 * H), ("c2", 9 * H), ("c3", 11 * H), ("c4", 13 * H)]
        ),
    )
    return problem, Plan(routes=routes, unassigned=())


FAST = SolveOptions(time_limit_s=2.0, exploration_level=4, threads=1, continuity_penalty_s=0)


def windowed(vid: str, location: int, at: int, *, competences: Sequence[str] = ()) -> Visit:
    """A 30-minute visit with a window from one hour before ``at`` to one hour after."""
    return replace(
        visit(vid, location, competences=competences),
        windows=(TimeWindow(at - H, at + H + 1800),),
    )


@pytest.fixture(scope="session")
def solved_district() -> tuple[Problem, Plan]:
    """Four carers, sixteen visits in hour-wide windows, planned by the real solver.

    Each carer may do five visits; cora and dora are nurses; c2 and d2 need a nurse.
    """
    visits: list[Visit] = []
    for k, name in enumerate(("a", "b", "c", "d")):
        for i in range(4):
            need = ("nurse",) if name in "cd" and i == 1 else ()
            visits.append(
                windowed(f"{name}{i + 1}", 3 * k + i % 3 + 1, (8 + 2 * i) * H, competences=need)
            )
    shifts = tuple(
        replace(s, max_visits=5)
        for s in (
            shift("s-anna", "anna"),
            shift("s-bert", "bert"),
            shift("s-cora", "cora", competences=("nurse",)),
            shift("s-dora", "dora", competences=("nurse",)),
        )
    )
    problem = Problem(visits=tuple(visits), shifts=shifts, matrices={"drive": line_matrix()})
    # VROOM alone on one thread is deterministic; the timed local search is not, and on a busy
    # machine it once left bert without the late visits the tests rely on.
    plan = solve(problem, replace(FAST, improve_s=0))
    return problem, plan
