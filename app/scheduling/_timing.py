"""Small timing helpers over the problem's matrices, shared by decode, validator and explanations.

None of these read solver output: they take stops and a problem and do arithmetic on the matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from app.domain import UNREACHABLE
from app.scheduling.model import Problem, Route, Shift, Stop, StopKind, Visit


def travel(problem: Problem, shift: Shift, a: int | None, b: int | None) -> tuple[int, int]:
    """Travel (seconds, metres) from ``a`` to ``b`` in the shift's mode; 0 if either is None."""
    if a is None or b is None:
        return 0, 0
    m = problem.matrices[shift.profile]
    return int(m.durations[a, b]), int(m.distances[a, b])


def earliest_start(visit: Visit, arrival: int) -> int | None:
    """Earliest start at or after ``arrival`` such that the visit starts and ends in one window."""
    if not visit.windows:
        return arrival
    best: int | None = None
    for w in visit.windows:
        s = max(arrival, w.start)
        if s + visit.duration <= w.end and (best is None or s < best):
            best = s
    return best


def in_some_window(visit: Visit, start: int) -> bool:
    """Whether a visit starting at ``start`` starts and ends inside one of its windows."""
    if not visit.windows:
        return True
    return any(w.start <= start and start + visit.duration <= w.end for w in visit.windows)


def _last_location(stops: Sequence[Stop], upto: int) -> int | None:
    for s in reversed(stops[:upto]):
        if s.kind is not StopKind.BREAK:
            return s.location
    return None


def insertion_fits(
    problem: Problem, shift: Shift, stops: Sequence[Stop], pos: int, visit: Visit
) -> int | None:
    """Start time if ``visit`` fits between ``stops[pos-1]`` and ``stops[pos]`` without moving them.

    The other stops keep their times (a conservative test: pushing later stops could make more
    room). Capacity, max visits and max travel time of the shift are checked too.

    Returns
    -------
    int or None
        The earliest feasible start, or None when the visit does not fit there.
    """
    if pos <= 0 or pos >= len(stops):
        return None
    visits = [s for s in stops if s.kind is StopKind.VISIT]
    if shift.max_visits is not None and len(visits) + 1 > shift.max_visits:
        return None
    if shift.capacity is not None:
        by_id = {v.id: v for v in problem.visits}
        load = sum(by_id[s.visit_id].demand for s in visits if s.visit_id in by_id)
        if load + visit.demand > shift.capacity:
            return None
    prev_loc = _last_location(stops, pos)
    t_in, _ = travel(problem, shift, prev_loc, visit.location)
    if t_in >= UNREACHABLE:
        return None
    start = earliest_start(visit, stops[pos - 1].end + t_in)
    if start is None:
        return None
    end = start + visit.duration
    nxt = pos
    while nxt < len(stops) and stops[nxt].kind is StopKind.BREAK:
        nxt += 1
    if nxt > pos and end > stops[pos].start:
        return None
    free_from = stops[nxt - 1].end if nxt > pos else end
    nstop = stops[nxt] if nxt < len(stops) else None
    if nstop is None:
        return None
    t_out, _ = travel(problem, shift, visit.location, nstop.location)
    if t_out >= UNREACHABLE:
        return None
    limit = shift.end if nstop.kind is StopKind.END else nstop.start
    if free_from + t_out > limit:
        return None
    if shift.max_travel_time is not None:
        old, _ = travel(problem, shift, prev_loc, nstop.location)
        used = sum(s.travel_time for s in stops)
        if used - old + t_in + t_out > shift.max_travel_time:
            return None
    return start


def insertion_range(
    problem: Problem, shift: Shift, stops: Sequence[Stop], pos: int, visit: Visit
) -> list[tuple[int, int]]:
    """Every start at which ``visit`` fits between ``stops[pos-1]`` and ``stops[pos]``.

    Same test as :func:`insertion_fits` (the other stops keep their times), but the answer is
    the set of feasible starts as sorted intervals ``[lo, hi]`` (one per usable window), so a
    caller can choose a start that also suits another route (synchronised visits).
    """
    lo = insertion_fits(problem, shift, stops, pos, visit)
    if lo is None:
        return []
    nxt = pos
    while nxt < len(stops) and stops[nxt].kind is StopKind.BREAK:
        nxt += 1
    if nxt > pos:
        hi = stops[pos].start - visit.duration
    else:
        nstop = stops[pos]
        t_out, _ = travel(problem, shift, visit.location, nstop.location)
        limit = shift.end if nstop.kind is StopKind.END else nstop.start
        hi = limit - t_out - visit.duration
    if not visit.windows:
        return [(lo, hi)] if lo <= hi else []
    out = []
    for w in sorted(visit.windows, key=lambda w: w.start):
        a, b = max(lo, w.start), min(w.end - visit.duration, hi)
        if a <= b:
            out.append((a, b))
    return out


def with_matrix_distances(problem: Problem, routes: Sequence[Route]) -> tuple[Route, ...]:
    """``routes`` whose legs carry the distances of ``problem``'s matrices.

    A plan stored by an earlier matrix engine (or road data) keeps its times, which the engines
    agree on to the second, but its leg distances may differ by a few metres; the validator
    compares each leg with the matrix, and every re-plan of such a day fell back. Times are
    left as stored (facts stay facts); only the distance of a leg whose time matches is taken.
    """
    shifts = {s.id: s for s in problem.shifts}
    out: list[Route] = []
    for route in routes:
        shift = shifts.get(route.shift_id)
        if shift is None:
            out.append(route)
            continue
        loc = shift.start_location
        stops: list[Stop] = [route.stops[0]] if route.stops else []
        for stop in route.stops[1:]:
            if stop.kind is StopKind.BREAK:
                stops.append(stop)
                continue
            target = shift.end_location if stop.kind is StopKind.END else stop.location
            t, d = travel(problem, shift, loc, target)
            if t == stop.travel_time and d != stop.distance:
                stop = replace(stop, distance=d)
            stops.append(stop)
            loc = target
        out.append(replace(route, stops=tuple(stops)))
    return tuple(out)
