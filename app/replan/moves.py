"""A planner's hand: move one visit to a carer (and a start), or find the best places for it.

A move takes the visit off its route (or the unassigned list) and puts it on the target carer's
route: at the position its requested start falls in, or, without a start, at the cheapest
position. The two touched routes are re-timed so every other stop keeps its start where it still
can; nothing else changes. The verdict is the validator's (:func:`app.scheduling.validate`) on
the whole day: a move is refused when it breaks a rule the plan did not already break, and the
answer names each one with its visit and shift. Recommendations are the same trial at every
position of every qualified carer, the valid ones ranked by added travel, with the visit's
preferred carers first when travel ties within :data:`CONTINUITY_TIE_S`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from app.domain import UNREACHABLE
from app.errors import InvalidInput
from app.replan.changes import VisitChange, describe_changes
from app.scheduling import qualified_shifts
from app.scheduling._timing import travel
from app.scheduling.kpis import compute_kpis
from app.scheduling.model import (
    Plan,
    Problem,
    Route,
    Shift,
    Stop,
    StopKind,
    TimeWindow,
    Visit,
)
from app.scheduling.validate import Violation, ViolationKind, validate

#: Travel within this many seconds counts as a tie that continuity of care decides.
CONTINUITY_TIE_S = 300
#: Times of day are minutes in the API: a start within a minute of the asked one is that start.
MINUTE_S = 60
#: How many placements a recommendation lists.
TOP_N = 5

Item = tuple[StopKind, str]


@dataclass(frozen=True)
class MoveOutcome:
    """What a move would do (a preview) or did (committed)."""

    plan: Plan
    valid: bool
    violations: tuple[Violation, ...]
    travel_delta_s: int
    preferred_before: bool | None
    preferred_after: bool
    others: tuple[VisitChange, ...]
    shift_id: str
    start: int
    position: int


def move_visit(
    problem: Problem,
    plan: Plan,
    visit_id: str,
    staff_id: str,
    *,
    start: int | None = None,
) -> MoveOutcome:
    """Put ``visit_id`` on ``staff_id``'s route (at ``start`` if given) and judge the result.

    Raises
    ------
    InvalidInput
        The visit or the carer's shift is not in the day, or the visit needs two carers (a
        double visit moves with both carers: re-plan it instead).
    """
    visit = _visit(problem, visit_id)
    shifts = [s for s in problem.shifts if s.staff_id == staff_id]
    if not shifts:
        msg = f"carer {staff_id!r} has no shift in this plan's day"
        raise InvalidInput(msg)
    shift = shifts[0]
    if start is not None:
        shift = next((s for s in shifts if s.start <= start < s.end), shift)
    base = _without(problem, plan, visit_id)
    items = _items(base, shift.id)
    # Every position is tried, even with a start asked for: the order that lets the visit start
    # then (and breaks nothing) is not always the one the old starts suggest.
    trials = list(range(len(items) + 1))
    known = _known(problem, plan)
    best: MoveOutcome | None = None
    for pos in trials:
        outcome = _trial(problem, plan, base, visit, shift, items, pos, start, known)
        if best is None or _better(outcome, best):
            best = outcome
    if best is None:  # trials always holds a position; kept for the type checker
        msg = "no position to try"
        raise InvalidInput(msg)
    return best


def recommend(
    problem: Problem, plan: Plan, visit_id: str, *, top: int = TOP_N
) -> list[MoveOutcome]:
    """The ``top`` best valid placements of ``visit_id``, one per carer, best first."""
    visit = _visit(problem, visit_id)
    base = _without(problem, plan, visit_id)
    known = _known(problem, plan)
    found: list[MoveOutcome] = []
    for shift in qualified_shifts(problem, visit):
        items = _items(base, shift.id)
        best: MoveOutcome | None = None
        for pos in range(len(items) + 1):
            outcome = _trial(problem, plan, base, visit, shift, items, pos, None, known, full=False)
            if outcome.valid and (best is None or _better(outcome, best)):
                best = outcome
        if best is not None:
            found.append(best)
    found.sort(key=_rank)
    # Each one shown is what a move to its carer at its start (a whole minute, as the API
    # speaks) does, checked on the whole day (the per-route check leaves out rules across
    # routes, such as a dependency's gap).
    shifts = {s.id: s for s in problem.shifts}
    out: list[MoveOutcome] = []
    for o in found:
        if len(out) == top:
            break
        shift = shifts[o.shift_id]
        items = _items(base, shift.id)
        minute = -(-o.start // MINUTE_S) * MINUTE_S
        again = _trial(problem, plan, base, visit, shift, items, o.position, minute, known)
        if again.valid:
            out.append(again)
    return out


#: Id of the visit a recommendation for a new visit imagines (never stored).
NEW_VISIT_ID = "new-visit"


def recommend_new(
    problem: Problem,
    plan: Plan,
    *,
    client_id: str,
    duration_s: int,
    windows: Sequence[TimeWindow],
    top: int = TOP_N,
) -> list[MoveOutcome]:
    """The best places for a visit not yet in the day, to a client who has one there.

    The new visit goes where the client's other visits are and has their preferred carers;
    it asks for no competence.

    Raises
    ------
    InvalidInput
        The client has no visit in this day (their place is not in the day's travel times: add
        the visit as an urgent visit event, which places it).
    """
    own = [v for v in problem.visits if v.client_id == client_id]
    if not own:
        msg = f"client {client_id!r} has no visit in this plan's day: add it as an urgent visit"
        raise InvalidInput(msg)
    preferred = frozenset().union(*(v.preferred_staff for v in own))
    new = Visit(
        NEW_VISIT_ID,
        client_id,
        own[0].location,
        duration_s,
        tuple(windows),
        preferred_staff=preferred,
        geocoded=own[0].geocoded,
    )
    return recommend(replace(problem, visits=(*problem.visits, new)), plan, NEW_VISIT_ID, top=top)


# -- trials -------------------------------------------------------------------------------------


def _rank(o: MoveOutcome) -> tuple[int, int, int, str]:
    return (
        o.travel_delta_s // CONTINUITY_TIE_S,
        not o.preferred_after,
        o.travel_delta_s,
        o.shift_id,
    )


def _better(a: MoveOutcome, b: MoveOutcome) -> bool:
    return (not a.valid, len(a.violations), *_rank(a)) < (not b.valid, len(b.violations), *_rank(b))


def _known(problem: Problem, plan: Plan) -> set[tuple[str, str | None, str | None]]:
    """Rules the plan already breaks (a move is judged only on what it breaks anew)."""
    return {
        (v.kind.value, v.visit_id, v.shift_id)
        for v in validate(problem, plan, check_priority=False)
    }


def _visit(problem: Problem, visit_id: str) -> Visit:
    visit = next((v for v in problem.visits if v.id == visit_id), None)
    if visit is None:
        msg = f"visit {visit_id!r} is not in this plan's day"
        raise InvalidInput(msg)
    if visit.carers_required > 1:
        msg = f"visit {visit_id!r} needs two carers: move it by re-planning, not by hand"
        raise InvalidInput(msg)
    return visit


def _without(problem: Problem, plan: Plan, visit_id: str) -> Plan:
    """The plan with the visit taken out (its route re-timed) and not listed as unassigned."""
    shifts = {s.id: s for s in problem.shifts}
    routes = []
    for r in plan.routes:
        if visit_id in r.visit_ids:
            items = [it for it in _route_items(r) if it != (StopKind.VISIT, visit_id)]
            starts = {(s.visit_id or s.break_id or ""): s.start for s in r.stops[1:-1]}
            routes.append(_schedule(problem, shifts[r.shift_id], items, starts))
        else:
            routes.append(r)
    unassigned = tuple(u for u in plan.unassigned if u.visit_id != visit_id)
    return Plan(tuple(routes), unassigned, plan.kpis, plan.solve_time_s)


def _trial(
    problem: Problem,
    old: Plan,
    base: Plan,
    visit: Visit,
    shift: Shift,
    items: Sequence[Item],
    pos: int,
    start: int | None,
    known: set[tuple[str, str | None, str | None]],
    *,
    full: bool = True,
) -> MoveOutcome:
    trial = [*items[:pos], (StopKind.VISIT, visit.id), *items[pos:]]
    starts = _starts(base, shift.id)
    if start is not None:
        starts[visit.id] = start
    route = _schedule(problem, shift, trial, starts)
    routes = [r for r in base.routes if r.shift_id != shift.id]
    routes.append(route)
    order = {r.shift_id: i for i, r in enumerate(old.routes)}
    routes.sort(key=lambda r: order.get(r.shift_id, len(order)))
    new = Plan(tuple(routes), base.unassigned, base.kpis, base.solve_time_s)
    new = replace(new, kpis=compute_kpis(problem, new))
    placed = next(s for s in route.stops if s.visit_id == visit.id)
    if full:
        found = validate(problem, new, check_priority=False)
    else:
        found = _route_violations(problem, new, route)
    broken = [v for v in found if (v.kind.value, v.visit_id, v.shift_id) not in known]
    if start is not None and abs(placed.start - start) >= MINUTE_S:
        broken.append(
            Violation(
                ViolationKind.TIME_WINDOW,
                f"visit {visit.id} cannot start at the asked time on this route",
                visit.id,
                shift.id,
            )
        )
    travel_delta = _travel(new) - _travel(old)
    was = [r.staff_id for r in old.routes if visit.id in r.visit_ids]
    pref = visit.preferred_staff
    others = (
        tuple(c for c in describe_changes(old, new, ()).visits if c.visit_id != visit.id)
        if full
        else ()
    )
    return MoveOutcome(
        plan=new,
        valid=not broken,
        violations=tuple(broken),
        travel_delta_s=travel_delta,
        preferred_before=None if not was else (not pref or was[0] in pref),
        preferred_after=not pref or shift.staff_id in pref,
        others=others,
        shift_id=shift.id,
        start=placed.start,
        position=pos,
    )


def _route_violations(problem: Problem, plan: Plan, route: Route) -> list[Violation]:
    """Rules one route breaks (a recommendation's quick check; cross-route rules excluded)."""
    one = Plan((route,), (), plan.kpis)
    cross = {ViolationKind.MISSING, ViolationKind.DOUBLE_CARERS, ViolationKind.DOUBLE_SYNC}
    cross |= {ViolationKind.DEPENDENCY}
    return [
        v
        for v in validate(problem, one, check_priority=False)
        if v.kind not in cross and (v.shift_id in (None, route.shift_id))
    ]


def _travel(plan: Plan) -> int:
    return sum(s.travel_time for r in plan.routes for s in r.stops)


def _route_items(route: Route) -> list[Item]:
    out: list[Item] = []
    for s in route.stops:
        if s.kind is StopKind.VISIT and s.visit_id is not None:
            out.append((StopKind.VISIT, s.visit_id))
        elif s.kind is StopKind.BREAK and s.break_id is not None:
            out.append((StopKind.BREAK, s.break_id))
    return out


def _items(plan: Plan, shift_id: str) -> list[Item]:
    route = next((r for r in plan.routes if r.shift_id == shift_id), None)
    return [] if route is None else _route_items(route)


def _starts(plan: Plan, shift_id: str) -> dict[str, int]:
    route = next((r for r in plan.routes if r.shift_id == shift_id), None)
    if route is None:
        return {}
    return {(s.visit_id or s.break_id or ""): s.start for s in route.stops[1:-1]}


def _schedule(
    problem: Problem, shift: Shift, items: Sequence[Item], targets: Mapping[str, int]
) -> Route:
    """Time ``items`` in order, each stop at its target start when reachable and inside a
    window, else as early as a window allows; the validator judges what cannot fit."""
    visits = {v.id: v for v in problem.visits}
    breaks = {b.id: b for b in shift.breaks}
    loc = shift.start_location
    now = shift.start
    stops = [Stop(StopKind.START, now, now, now, location=loc)]
    for kind, ref in items:
        if kind is StopKind.BREAK:
            b = breaks[ref]
            begin = max(now, targets.get(ref, now))
            fits = [w for w in b.windows if max(begin, w.start) + b.duration <= w.end]
            if fits:
                begin = max(begin, fits[0].start)
            stops.append(
                Stop(
                    StopKind.BREAK,
                    now,
                    begin,
                    begin + b.duration,
                    location=loc,
                    break_id=ref,
                    waiting=begin - now,
                )
            )
            now = begin + b.duration
            continue
        v = visits[ref]
        t, d = travel(problem, shift, loc, v.location)
        t = min(t, UNREACHABLE)
        arrival = now + t
        begin = _start_in_window(v, max(arrival, targets.get(ref, arrival)))
        stops.append(
            Stop(
                StopKind.VISIT,
                arrival,
                begin,
                begin + v.duration,
                location=v.location,
                visit_id=ref,
                travel_time=t,
                distance=d,
                waiting=begin - arrival,
            )
        )
        now, loc = begin + v.duration, v.location
    t, d = travel(problem, shift, loc, shift.end_location)
    t = min(t, UNREACHABLE)
    end_loc = shift.end_location if shift.end_location is not None else loc
    stops.append(
        Stop(StopKind.END, now + t, now + t, now + t, location=end_loc, travel_time=t, distance=d)
    )
    return Route(shift.id, shift.staff_id, shift.profile, tuple(stops))


def _start_in_window(visit: Visit, at: int) -> int:
    """``at`` if a window allows it, else the next window's opening, else ``at`` (invalid)."""
    for w in sorted(visit.windows, key=lambda w: w.start):
        if at + visit.duration <= w.end:
            return max(at, w.start)
    return at
