"""Independent plan validator: recomputes every route from the matrices and checks every hard rule.

It never trusts the times a solver reported beyond the planned *starts*: arrivals, travel and
end times are recomputed from ``Problem.matrices`` and compared.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from enum import StrEnum

from app.domain import UNREACHABLE
from app.scheduling._timing import in_some_window, insertion_fits, travel
from app.scheduling.model import (
    FixedStop,
    Plan,
    Priority,
    Problem,
    Route,
    Shift,
    Stop,
    StopKind,
    Visit,
)


class ViolationKind(StrEnum):
    """The hard rule a plan breaks."""

    UNKNOWN_SHIFT = "unknown_shift"
    DUPLICATE_ROUTE = "duplicate_route"
    STAFF_MISMATCH = "staff_mismatch"
    STRUCTURE = "route_structure"
    UNKNOWN_VISIT = "unknown_visit"
    LOCATION = "location_mismatch"
    TRAVEL = "travel_time_too_short"
    UNREACHABLE = "unreachable"
    DURATION = "duration_mismatch"
    TIME_WINDOW = "time_window"
    SHIFT_BOUNDS = "shift_bounds"
    BREAK_WINDOW = "break_window"
    BREAK_MISSING = "break_missing"
    BREAK_UNKNOWN = "break_unknown"
    COMPETENCE = "competence"
    NOT_ALLOWED = "not_in_allowed_team"
    PINNED = "pinned_staff"
    MAX_VISITS = "max_visits"
    MAX_TRAVEL = "max_travel_time"
    CAPACITY = "capacity"
    DUPLICATE_VISIT = "duplicate_visit"
    DOUBLE_CARERS = "double_visit_carers"
    DOUBLE_SYNC = "double_visit_not_synchronised"
    DEPENDENCY = "dependency_gap"
    FIXED_MOVED = "fixed_stop_moved"
    ASSIGNED_AND_UNASSIGNED = "assigned_and_unassigned"
    MISSING = "visit_missing"
    NOT_GEOCODED = "not_geocoded_assigned"
    PRIORITY = "mandatory_left_for_optional"


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule, with the visit and/or shift it concerns."""

    kind: ViolationKind
    message: str
    visit_id: str | None = None
    shift_id: str | None = None


def validate(problem: Problem, plan: Plan, *, check_priority: bool = True) -> list[Violation]:
    """Check every hard rule of ``plan`` against ``problem``.

    Parameters
    ----------
    problem
        The problem the plan claims to solve.
    plan
        Routes and unassigned visits to check.
    check_priority
        Also check that no unassigned mandatory visit could simply take the place of an assigned
        optional one (a single swap that keeps every other stop as it is).

    Returns
    -------
    list of Violation
        Empty when the plan keeps every rule.
    """
    out: list[Violation] = []
    shifts = {s.id: s for s in problem.shifts}
    visits = {v.id: v for v in problem.visits}
    fixed = {(f.visit_id, f.shift_id): f for f in problem.fixed}
    seen_shifts: set[str] = set()
    #: visit id -> [(shift id, staff id, start)]
    done: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    for route in plan.routes:
        shift = shifts.get(route.shift_id)
        if shift is None:
            out.append(
                Violation(
                    ViolationKind.UNKNOWN_SHIFT, "route of unknown shift", shift_id=route.shift_id
                )
            )
            continue
        if route.shift_id in seen_shifts:
            out.append(
                Violation(
                    ViolationKind.DUPLICATE_ROUTE, "two routes for one shift", shift_id=shift.id
                )
            )
        seen_shifts.add(route.shift_id)
        if route.staff_id != shift.staff_id:
            out.append(
                Violation(
                    ViolationKind.STAFF_MISMATCH,
                    "route staff differs from shift",
                    shift_id=shift.id,
                )
            )
        out.extend(_check_route(problem, shift, route, visits, fixed, done))

    unassigned = {u.visit_id for u in plan.unassigned}
    out.extend(_check_visits(problem, done, unassigned))
    for (vid, sid), f in fixed.items():
        if not any(s == sid and t == f.start for s, _, t in done.get(vid, [])):
            out.append(
                Violation(
                    ViolationKind.FIXED_MOVED,
                    "fixed stop not kept as it was",
                    visit_id=vid,
                    shift_id=sid,
                )
            )
    if check_priority:
        out.extend(_check_priority(problem, plan, done))
    return out


def _check_route(
    problem: Problem,
    shift: Shift,
    route: Route,
    visits: dict[str, Visit],
    fixed: dict[tuple[str, str], FixedStop],
    done: dict[str, list[tuple[str, str, int]]],
) -> list[Violation]:
    out: list[Violation] = []
    sid = shift.id

    def bad(kind: ViolationKind, msg: str, vid: str | None = None) -> None:
        out.append(Violation(kind, msg, visit_id=vid, shift_id=sid))

    stops = route.stops
    if len(stops) < 2 or stops[0].kind is not StopKind.START or stops[-1].kind is not StopKind.END:
        bad(ViolationKind.STRUCTURE, "a route runs START ... END")
        return out
    if any(s.kind in (StopKind.START, StopKind.END) for s in stops[1:-1]):
        bad(ViolationKind.STRUCTURE, "START/END inside a route")
        return out
    first = stops[0]
    if first.location != shift.start_location and shift.start_location is not None:
        bad(ViolationKind.LOCATION, "route does not start at the shift's start location")
    if first.start < shift.start:
        bad(ViolationKind.SHIFT_BOUNDS, "route starts before the shift")
    loc, now = shift.start_location, first.start
    total_travel, load, n_visits = 0, 0, 0
    breaks_seen: dict[str, int] = defaultdict(int)
    break_by_id = {b.id: b for b in shift.breaks}
    fact_end: int | None = None  # end of the previous stop when it is a reported fact
    for stop in stops[1:]:
        if stop.kind is StopKind.BREAK:
            b = break_by_id.get(stop.break_id or "")
            if b is None:
                bad(ViolationKind.BREAK_UNKNOWN, f"unknown break {stop.break_id!r}")
                continue
            breaks_seen[b.id] += 1
            if stop.start < now:
                bad(ViolationKind.TRAVEL, f"break {b.id!r} starts before the previous stop ends")
            # A reported overrun that leaves no window room for the break: the carer takes it in
            # full right after that visit (the overrun is a fact, not the planner's choice).
            forced = (
                fact_end is not None
                and stop.start == fact_end
                and all(max(fact_end, w.start) + b.duration > w.end for w in b.windows)
            )
            in_window = any(w.start <= stop.start and stop.end <= w.end for w in b.windows)
            if stop.end - stop.start < b.duration or not (in_window or forced):
                bad(ViolationKind.BREAK_WINDOW, f"break {b.id!r} not taken in full in a window")
            now = max(now, stop.end)
            fact_end = None
            continue
        target = shift.end_location if stop.kind is StopKind.END else None
        vid = stop.visit_id
        visit = visits.get(vid or "") if stop.kind is StopKind.VISIT else None
        if stop.kind is StopKind.VISIT:
            if visit is None:
                bad(ViolationKind.UNKNOWN_VISIT, f"unknown visit {vid!r}", vid)
                continue
            target = visit.location
            if not visit.geocoded:
                bad(ViolationKind.NOT_GEOCODED, "visit without coordinates is planned", vid)
                continue
            if stop.location != visit.location:
                bad(ViolationKind.LOCATION, "stop location differs from the visit's", vid)
        t, d = travel(problem, shift, loc, target)
        if t >= UNREACHABLE:
            bad(ViolationKind.UNREACHABLE, "no path to this stop", vid)
        total_travel += t
        if stop.travel_time != t or stop.distance != d:
            bad(ViolationKind.TRAVEL, "reported travel differs from the matrix", vid)
        # A fixed stop is a fact (done, under way, or reported by the carer's phone, to the
        # minute): the carer may have been faster than the matrix, so its start is not checked
        # against travel; that it was kept as it was is checked separately (FIXED_MOVED).
        is_fact = vid is not None and (vid, sid) in fixed
        fact_end = stop.end if is_fact else None
        if stop.start < now + t and not is_fact:
            bad(ViolationKind.TRAVEL, "starts before the carer can be there", vid)
        if stop.kind is StopKind.END:
            if stop.start > shift.end:
                bad(ViolationKind.SHIFT_BOUNDS, "route ends after the shift")
            break
        if visit is None or vid is None:  # narrowed above; keeps mypy exact
            continue
        f = fixed.get((vid, sid))
        if f is not None:
            expected_end = f.end
        else:
            expected_end = stop.start + visit.duration
            if not in_some_window(visit, stop.start):
                bad(ViolationKind.TIME_WINDOW, "visit does not start and end in one window", vid)
        if stop.end != expected_end:
            bad(ViolationKind.DURATION, "stop end differs from start + duration", vid)
        if not visit.competences <= shift.competences:
            bad(ViolationKind.COMPETENCE, "carer lacks a required competence", vid)
        if visit.allowed_staff is not None and shift.staff_id not in visit.allowed_staff:
            bad(ViolationKind.NOT_ALLOWED, "carer is not in the visit's allowed team", vid)
        if visit.pinned_staff is not None and shift.staff_id != visit.pinned_staff:
            bad(ViolationKind.PINNED, "visit is pinned to another carer", vid)
        done[vid].append((sid, shift.staff_id, stop.start))
        n_visits += 1
        load += visit.demand
        now, loc = stop.end, visit.location
    last_work = max((s.end for s in stops if s.kind is StopKind.VISIT), default=first.start)
    for b in shift.breaks:
        # A carer whose work ends before a break's window opens goes home without it (a
        # re-plan keeps such a break in the shift: later work that reaches the window owes it);
        # one whose day starts after the window closed (called in late) was not working then.
        not_owed = breaks_seen[b.id] == 0 and (
            last_work <= min(w.start for w in b.windows)
            or first.start >= max(w.end for w in b.windows)
        )
        if breaks_seen[b.id] != 1 and not not_owed:
            bad(ViolationKind.BREAK_MISSING, f"break {b.id!r} taken {breaks_seen[b.id]} times")
    if shift.max_visits is not None and n_visits > shift.max_visits:
        bad(ViolationKind.MAX_VISITS, "more visits than the shift allows")
    if shift.max_travel_time is not None and total_travel > shift.max_travel_time:
        bad(ViolationKind.MAX_TRAVEL, "more travel time than the shift allows")
    if shift.capacity is not None and load > shift.capacity:
        bad(ViolationKind.CAPACITY, "more demand than the shift's capacity")
    return out


def _check_visits(
    problem: Problem, done: dict[str, list[tuple[str, str, int]]], unassigned: set[str]
) -> list[Violation]:
    out: list[Violation] = []
    known = {v.id for v in problem.visits}
    for vid in sorted(unassigned - known):
        out.append(
            Violation(
                ViolationKind.UNKNOWN_VISIT, "unknown visit reported unassigned", visit_id=vid
            )
        )
    for v in problem.visits:
        got = done.get(v.id, [])
        if got and v.id in unassigned:
            out.append(
                Violation(
                    ViolationKind.ASSIGNED_AND_UNASSIGNED,
                    "visit is both planned and unassigned",
                    visit_id=v.id,
                )
            )
        if not got and v.id not in unassigned:
            out.append(
                Violation(
                    ViolationKind.MISSING, "visit neither planned nor unassigned", visit_id=v.id
                )
            )
        staff = [s for _, s, _ in got]
        if len(set(staff)) != len(staff):
            out.append(
                Violation(
                    ViolationKind.DUPLICATE_VISIT, "one carer does a visit twice", visit_id=v.id
                )
            )
        if got and len(got) != v.carers_required:
            kind = (
                ViolationKind.DOUBLE_CARERS
                if v.carers_required == 2
                else ViolationKind.DUPLICATE_VISIT
            )
            out.append(
                Violation(
                    kind,
                    f"{len(got)} carers for a visit needing {v.carers_required}",
                    visit_id=v.id,
                )
            )
        if len({t for _, _, t in got}) > 1:
            out.append(
                Violation(
                    ViolationKind.DOUBLE_SYNC, "carers of a double visit start apart", visit_id=v.id
                )
            )
        dep = v.depends_on
        if dep is not None and got:
            before = done.get(dep.visit_id, [])
            if not before:
                out.append(
                    Violation(
                        ViolationKind.DEPENDENCY,
                        f"depends on {dep.visit_id!r}, which is not planned",
                        visit_id=v.id,
                    )
                )
                continue
            gap = min(t for _, _, t in got) - min(t for _, _, t in before)
            if gap < dep.min_gap or (dep.max_gap is not None and gap > dep.max_gap):
                out.append(
                    Violation(
                        ViolationKind.DEPENDENCY,
                        f"gap {gap}s after {dep.visit_id!r} outside [{dep.min_gap}, {dep.max_gap}]",
                        visit_id=v.id,
                    )
                )
    return out


def _check_priority(
    problem: Problem, plan: Plan, done: dict[str, list[tuple[str, str, int]]]
) -> list[Violation]:
    from app.scheduling.explain import qualified_shifts

    out: list[Violation] = []
    visits = {v.id: v for v in problem.visits}
    fixed_ids = {f.visit_id for f in problem.fixed}
    needed = {x.depends_on.visit_id for x in problem.visits if x.depends_on is not None}
    routes = {r.shift_id: r for r in plan.routes}
    for u in plan.unassigned:
        m = visits.get(u.visit_id)
        if m is None or m.priority is not Priority.MANDATORY or m.carers_required != 1:
            continue
        if not m.geocoded or m.depends_on is not None or u.visit_id in done:
            continue
        for shift in qualified_shifts(problem, m):
            route = routes.get(shift.id)
            if route is None:
                continue
            for k, stop in enumerate(route.stops):
                o = visits.get(stop.visit_id or "")
                if (
                    o is None
                    or o.priority is Priority.MANDATORY
                    or o.carers_required != 1
                    or o.depends_on is not None
                    or o.id in fixed_ids
                    or o.id in needed
                ):
                    continue
                rest: list[Stop] = [*route.stops[:k], *route.stops[k + 1 :]]
                if insertion_fits(problem, shift, rest, k, m) is not None:
                    out.append(
                        Violation(
                            ViolationKind.PRIORITY,
                            f"optional {o.id!r} holds a place mandatory {m.id!r} fits in",
                            visit_id=o.id,
                            shift_id=shift.id,
                        )
                    )
                    return out
    return out
