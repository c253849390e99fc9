"""Place linked visits (double-staffed, dependent) left out, into gaps of routes, both or neither.

VROOM cannot synchronise two routes; the coupling rounds of :mod:`app.scheduling.solver` pin
what VROOM proposed and drop what it cannot keep, so a double visit or a dependent pair can be
left out although two carers have room at a common time. This pass looks for such room
directly: for each visit left out it computes, per route and position, every feasible start
(:func:`app.scheduling._timing.insertion_range`, the other stops keep their times), and picks
the cheapest pair of positions on two routes whose starts can keep the coupling (same start for
the two carers of a double visit; ``[min_gap, max_gap]`` after the first visit for a dependency).
Both parts go in, or neither; the independent validator has the last word on every insertion.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from app.scheduling._timing import insertion_range, travel
from app.scheduling.explain import qualified_shifts
from app.scheduling.model import (
    Problem,
    Route,
    Stop,
    StopKind,
    Visit,
    pending_plan,
)
from app.scheduling.validate import validate

#: Step of a route as the solver times it: (kind, visit or break index, planned start).
Step = tuple[StopKind, int, int]
#: The solver's timing function: (shift index, departure, steps) -> route.
Retime = Callable[[int, int, Sequence[Step]], Route]
#: Candidate placements tried (cheapest first) before a visit is given up.
MAX_TRIES = 30

_Slot = tuple[int, int, int, int, int]  # route, position, lo, hi, added travel


def fill_linked(
    problem: Problem, routes: list[Route], retime: Retime, *, late: bool = False
) -> list[Route]:
    """Insert double visits and dependent visits left out where both parts fit; return routes.

    With ``late`` the pass also places single visits, and a candidate's cost is its added
    travel plus its lateness past :attr:`Visit.due` (seconds for seconds): the cheapest
    late start the hard windows allow, for visits a stricter solve left out.

    Parameters
    ----------
    problem
        The problem.
    routes
        One route per shift (empty routes included, so idle carers can be used), valid.
    retime
        Builds a route of a shift from steps keeping their planned starts.

    Returns
    -------
    list of Route
        The routes with every linked visit that could be placed; still valid.
    """
    index = {v.id: i for i, v in enumerate(problem.visits)}
    shift_pos = {s.id: i for i, s in enumerate(problem.shifts)}
    by_shift = {r.shift_id: k for k, r in enumerate(routes)}
    fixed_ids = {f.visit_id for f in problem.fixed}
    dependents: dict[str, list[Visit]] = {}
    for v in problem.visits:
        if v.depends_on is not None:
            dependents.setdefault(v.depends_on.visit_id, []).append(v)

    def placed() -> dict[str, list[tuple[int, int]]]:
        out: dict[str, list[tuple[int, int]]] = {}
        for k, r in enumerate(routes):
            for s in r.stops:
                if s.kind is StopKind.VISIT and s.visit_id is not None:
                    out.setdefault(s.visit_id, []).append((k, s.start))
        return out

    def slots(v: Visit) -> list[_Slot]:
        out: list[_Slot] = []
        for shift in qualified_shifts(problem, v):
            k = by_shift.get(shift.id)
            if k is None:
                continue
            stops = routes[k].stops
            for pos in range(1, len(stops)):
                ranges = insertion_range(problem, shift, stops, pos, v)
                if not ranges:
                    continue
                prev = _last_loc(stops, pos)
                t_in, _ = travel(problem, shift, prev, v.location)
                t_out, _ = travel(problem, shift, v.location, stops[pos].location)
                old, _ = travel(problem, shift, prev, stops[pos].location)
                added = t_in + t_out - old
                out.extend((k, pos, a, b, added) for a, b in ranges)
        return out

    def insert(k: int, pos: int, v: Visit, start: int) -> None:
        shift = problem.shifts[shift_pos[routes[k].shift_id]]
        steps: list[Step] = []
        for s in routes[k].stops[1:-1]:
            if s.kind is StopKind.BREAK:
                bi = next(i for i, b in enumerate(shift.breaks) if b.id == s.break_id)
                steps.append((StopKind.BREAK, bi, s.start))
            elif s.visit_id is not None:
                steps.append((StopKind.VISIT, index[s.visit_id], s.start))
        steps.insert(pos - 1, (StopKind.VISIT, index[v.id], start))
        routes[k] = retime(shift_pos[shift.id], routes[k].stops[0].start, steps)

    def remove(k: int, v: Visit) -> None:
        shift = problem.shifts[shift_pos[routes[k].shift_id]]
        steps: list[Step] = []
        for s in routes[k].stops[1:-1]:
            if s.kind is StopKind.BREAK:
                bi = next(i for i, b in enumerate(shift.breaks) if b.id == s.break_id)
                steps.append((StopKind.BREAK, bi, s.start))
            elif s.visit_id is not None and s.visit_id != v.id:
                steps.append((StopKind.VISIT, index[s.visit_id], s.start))
        routes[k] = retime(shift_pos[shift.id], routes[k].stops[0].start, steps)

    def try_pairs(
        x: Visit, y: Visit, gap_lo: int, gap_hi: int, sx: list[_Slot], sy: list[_Slot]
    ) -> bool:
        cands: list[tuple[int, int, int, int, int, int, int]] = []
        for kx, px, a1, b1, cx in sx:
            for ky, py, a2, b2, cy in sy:
                if kx == ky:
                    continue
                tx = max(a1, a2 - gap_hi)
                ty = max(a2, tx + gap_lo)
                if tx <= b1 and ty <= b2 and ty - tx <= gap_hi:
                    cost = cx + cy + lateness(x, tx) + lateness(y, ty)
                    cands.append((cost, tx, kx, px, ty, ky, py))
        cands.sort()
        for _cost, tx, kx, px, ty, ky, py in cands[:MAX_TRIES]:
            before = list(routes)
            insert(kx, px, x, tx)
            insert(ky, py, y, ty)
            if not validate(problem, pending_plan(problem, routes), check_priority=False):
                return True
            routes[:] = before
        return False

    def try_single(y: Visit, lo: int, hi: int, sy: list[_Slot]) -> bool:
        cands = sorted(
            (c + lateness(y, max(a, lo)), max(a, lo), k, p)
            for k, p, a, b, c in sy
            if max(a, lo) <= min(b, hi)
        )
        for _cost, t, k, p in cands[:MAX_TRIES]:
            before = list(routes)
            insert(k, p, y, t)
            if not validate(problem, pending_plan(problem, routes), check_priority=False):
                return True
            routes[:] = before
        return False

    def lateness(v: Visit, t: int) -> int:
        return 0 if v.due is None else max(0, t - v.due)

    far = 2**31 - 1
    for v in problem.visits:
        if not v.geocoded or v.id in fixed_ids:
            continue
        single = v.carers_required == 1 and v.depends_on is None and v.id not in dependents
        if single:
            # Where every visit stands is only needed here in a late pass: building it for each
            # of a 1,000-visit day's single visits cost 2 s of a 10 s solve.
            if late and v.id not in placed():
                try_single(v, 0, far, slots(v))
            continue
        where = placed()
        if v.carers_required == 2 and v.depends_on is None and v.id not in dependents:
            if v.id not in where:
                s = slots(v)
                try_pairs(v, v, 0, 0, s, s)
            continue
        dep = v.depends_on
        if dep is None or v.carers_required != 1 or v.id in dependents or v.id in where:
            continue
        x = problem.visits[index[dep.visit_id]] if dep.visit_id in index else None
        if x is None or x.carers_required != 1 or x.id in fixed_ids:
            continue
        if any(o.id != v.id for o in dependents.get(x.id, [])) or x.depends_on is not None:
            continue
        hi_gap = far if dep.max_gap is None else dep.max_gap
        if x.id in where:
            tx = where[x.id][0][1]
            if try_single(v, tx + dep.min_gap, tx + hi_gap, slots(v)):
                continue
            # Move the first visit too: take it out and place the pair together.
            before = list(routes)
            k = where[x.id][0][0]
            remove(k, x)
            if not try_pairs(x, v, dep.min_gap, hi_gap, slots(x), slots(v)):
                routes[:] = before
        else:
            try_pairs(x, v, dep.min_gap, hi_gap, slots(x), slots(v))
    return routes


def _last_loc(stops: Sequence[Stop], upto: int) -> int | None:
    for s in reversed(stops[:upto]):
        if s.kind is not StopKind.BREAK:
            return s.location
    return None


def empty_routes(problem: Problem, routes: Sequence[Route], retime: Retime) -> Mapping[str, Route]:
    """Empty routes (start and end only) of the shifts ``routes`` does not use."""
    used = {r.shift_id for r in routes}
    out = {}
    for si, s in enumerate(problem.shifts):
        if s.id in used:
            continue
        breaks: list[Step] = []
        for bi, b in sorted(enumerate(s.breaks), key=lambda x: min(w.start for w in x[1].windows)):
            fits = [w.start for w in b.windows if w.end - w.start >= b.duration]
            if not fits:
                break
            breaks.append((StopKind.BREAK, bi, min(fits)))
        else:
            out[s.id] = retime(si, s.start, breaks)
    return out


__all__ = ["empty_routes", "fill_linked"]
