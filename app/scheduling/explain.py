"""Why a visit is unassigned: each reason is found by checking the problem and the plan.

Checks run from the most basic to the most specific; the first that holds is the reason:

1. ``not_geocoded``: the client has no usable coordinates;
2. ``pinned_staff_unavailable``: the pinned carer has no shift today;
3. ``no_qualified_staff``: no carer on shift holds every required competence (or the pinned
   carer lacks one);
4. ``no_allowed_staff_on_shift``: qualified carers are on shift, but none of the allowed team;
5. ``unreachable``: no qualified shift can travel there and back (no path in the matrix);
6. ``outside_shifts`` / ``window_unreachable``: no window overlaps a qualified shift at all, or
   even the direct trip start -> visit -> end of every qualified shift misses every window;
7. ``second_carer_unavailable``: a double visit has fewer than two distinct qualified carers who
   could reach it;
8. ``dependency_unsatisfied``: the visit it depends on is not planned, or no window keeps the gap;
9. ``shift_capacity_exhausted``: every qualified route is full (no gap where the visit fits
   without moving other stops, or max visits / capacity / travel limits are reached);
   ``dependency_unsatisfied`` instead when gaps exist but none within the required gap;
10. ``second_carer_unavailable``: gaps exist, but no two carers have one at a common start;
11. ``solver_could_not_place``: a gap exists, yet the solver did not use it (should not happen
    after the solver's greedy fill; reported honestly if it does).

A reason the solver observed itself (a ``hint``) is never passed on unchecked: the checks above
decide (issue 9: "no start keeps the required gap" was reported while a free gap kept it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from itertools import combinations

from app.domain import UNREACHABLE
from app.scheduling._timing import earliest_start, insertion_fits, travel
from app.scheduling.model import (
    Problem,
    Route,
    Shift,
    TimeWindow,
    Unassigned,
    UnassignedReason,
    Visit,
)


def qualified_shifts(problem: Problem, visit: Visit) -> list[Shift]:
    """Shifts whose carer holds the competences and is allowed (and pinned, if any)."""
    return [
        s
        for s in problem.shifts
        if visit.competences <= s.competences
        and (visit.allowed_staff is None or s.staff_id in visit.allowed_staff)
        and (visit.pinned_staff is None or s.staff_id == visit.pinned_staff)
    ]


def direct_trip_fits(problem: Problem, shift: Shift, visit: Visit) -> bool:
    """Whether start -> visit -> end alone fits the shift and one of the visit's windows."""
    t_in, _ = travel(problem, shift, shift.start_location, visit.location)
    t_out, _ = travel(problem, shift, visit.location, shift.end_location)
    if t_in >= UNREACHABLE or t_out >= UNREACHABLE:
        return False
    start = earliest_start(visit, shift.start + t_in)
    return start is not None and start + visit.duration + t_out <= shift.end


def _reachable(problem: Problem, shift: Shift, visit: Visit) -> bool:
    t_in, _ = travel(problem, shift, shift.start_location, visit.location)
    t_out, _ = travel(problem, shift, visit.location, shift.end_location)
    return t_in < UNREACHABLE and t_out < UNREACHABLE


def _overlaps_shift(shift: Shift, visit: Visit) -> bool:
    if not visit.windows:
        return shift.end - shift.start >= visit.duration
    return any(
        min(w.end, shift.end) - max(w.start, shift.start) >= visit.duration for w in visit.windows
    )


def _gap_impossible(routes: Sequence[Route], visit: Visit) -> bool:
    """Whether a dependent visit has no start left that keeps its gap (or its target is out)."""
    return visit.depends_on is not None and _within_gap(routes, visit) is None


def _within_gap(routes: Sequence[Route], visit: Visit) -> Visit | None:
    """``visit`` with windows cut to the starts its dependency allows (None: no start left)."""
    dep = visit.depends_on
    if dep is None:
        return visit
    starts = [s.start for r in routes for s in r.stops if s.visit_id == dep.visit_id]
    if not starts:
        return None
    lo = min(starts) + dep.min_gap
    hi = None if dep.max_gap is None else min(starts) + dep.max_gap
    cut = []
    for w in visit.windows or (TimeWindow(lo, lo + 48 * 3600),):
        a = max(w.start, lo)
        b = w.end - visit.duration if hi is None else min(w.end - visit.duration, hi)
        if a <= b:
            cut.append(TimeWindow(a, b + visit.duration))
    return replace(visit, windows=tuple(cut), depends_on=None) if cut else None


def _starts(problem: Problem, shift: Shift, route: Route | None, visit: Visit) -> list[int]:
    """Earliest start in each free gap of ``route`` where ``visit`` fits, nothing moving."""
    if route is None:
        if not direct_trip_fits(problem, shift, visit):
            return []
        t_in, _ = travel(problem, shift, shift.start_location, visit.location)
        start = earliest_start(visit, shift.start + t_in)
        return [] if start is None else [start]
    return [
        t
        for p in range(1, len(route.stops))
        if (t := insertion_fits(problem, shift, route.stops, p, visit)) is not None
    ]


def _sync_possible(
    problem: Problem, by_shift: Mapping[str, Route], shifts: Sequence[Shift], visit: Visit
) -> bool:
    """Whether two carers have a free gap at one common start (checked per window)."""
    for w in visit.windows or (None,):
        v = visit if w is None else replace(visit, windows=(w,))
        starts = {s.id: _starts(problem, s, by_shift.get(s.id), v) for s in shifts}
        for a, b in combinations(shifts, 2):
            if a.staff_id == b.staff_id:
                continue
            for t in {max(x, y) for x in starts[a.id] for y in starts[b.id]}:
                at = replace(v, windows=(TimeWindow(t, t + v.duration),))
                if _starts(problem, a, by_shift.get(a.id), at) and _starts(
                    problem, b, by_shift.get(b.id), at
                ):
                    return True
    return False


def explain_one(
    problem: Problem,
    routes: Sequence[Route],
    visit: Visit,
    *,
    hint: UnassignedReason | None = None,
) -> Unassigned:
    """Explain why one visit is not in ``routes``.

    Parameters
    ----------
    problem
        The problem that was solved.
    routes
        The planned routes.
    visit
        The unassigned visit.
    hint
        A reason the solver observed itself. Not trusted: the checks decide (kept so callers
        need not change).

    Returns
    -------
    Unassigned
        The reason and a one-sentence explanation (no client data in it).
    """
    vid = visit.id
    del hint  # the checks below decide

    def out(reason: UnassignedReason, detail: str) -> Unassigned:
        return Unassigned(vid, reason, detail)

    if not visit.geocoded:
        return out(UnassignedReason.NOT_GEOCODED, "The client's address has no coordinates.")
    staff_on_shift = {s.staff_id for s in problem.shifts}
    if visit.pinned_staff is not None and visit.pinned_staff not in staff_on_shift:
        return out(
            UnassignedReason.PINNED_STAFF_UNAVAILABLE, "The pinned carer has no shift on this day."
        )
    competent = [s for s in problem.shifts if visit.competences <= s.competences]
    if not competent:
        need = ", ".join(sorted(visit.competences))
        return out(UnassignedReason.NO_QUALIFIED_STAFF, f"No carer on shift holds: {need}.")
    qualified = qualified_shifts(problem, visit)
    if not qualified:
        if visit.pinned_staff is not None:
            return out(
                UnassignedReason.NO_QUALIFIED_STAFF,
                "The pinned carer lacks a required competence or is outside the allowed team.",
            )
        return out(
            UnassignedReason.NOT_IN_ALLOWED_TEAM,
            "No carer of the allowed team with the competences is on shift.",
        )
    reachable = [s for s in qualified if _reachable(problem, s, visit)]
    if not reachable:
        return out(UnassignedReason.UNREACHABLE, "No qualified carer can travel there and back.")
    if not any(_overlaps_shift(s, visit) for s in reachable):
        return out(UnassignedReason.OUTSIDE_SHIFTS, "No time window lies inside a qualified shift.")
    direct = [s for s in reachable if direct_trip_fits(problem, s, visit)]
    if not direct:
        return out(
            UnassignedReason.WINDOW_UNREACHABLE,
            "Even a direct trip from a qualified shift's start misses every time window.",
        )
    if visit.carers_required == 2 and len({s.staff_id for s in direct}) < 2:
        return out(
            UnassignedReason.SECOND_CARER_UNAVAILABLE,
            "Fewer than two qualified carers can reach this double visit in time.",
        )
    dep = visit.depends_on
    planned = {vid2 for r in routes for vid2 in r.visit_ids}
    if dep is not None and dep.visit_id not in planned:
        return out(
            UnassignedReason.DEPENDENCY_UNSATISFIED,
            f"It depends on visit {dep.visit_id!r}, which is not planned.",
        )
    if dep is not None and _gap_impossible(routes, visit):
        return out(
            UnassignedReason.DEPENDENCY_UNSATISFIED,
            f"No time window keeps the required gap after visit {dep.visit_id!r}.",
        )
    by_shift = {r.shift_id: r for r in routes}
    # A reason the solver observed is given only once the check it names has been made here.
    probe = _within_gap(routes, visit) if dep is not None else visit
    if probe is None or not any(_starts(problem, s, by_shift.get(s.id), probe) for s in direct):
        if dep is not None and any(_starts(problem, s, by_shift.get(s.id), visit) for s in direct):
            return out(
                UnassignedReason.DEPENDENCY_UNSATISFIED,
                "No free time on a qualified route keeps the required gap to visit "
                f"{dep.visit_id!r}.",
            )
        if any(_at_limit(problem, s, by_shift.get(s.id), visit) for s in direct):
            return out(
                UnassignedReason.CAPACITY,
                "Every qualified carer's route is full; a shift's visit, load or travel limit "
                "is reached.",
            )
        return out(
            UnassignedReason.ROUTES_FULL,
            "Every qualified carer's route is busy around the visit's time windows.",
        )
    if visit.carers_required > 1 and not _sync_possible(problem, by_shift, direct, probe):
        return out(
            UnassignedReason.SECOND_CARER_UNAVAILABLE,
            "No second carer is free at the same time as a first one.",
        )
    return out(
        UnassignedReason.OTHER,
        "A qualified carer has room, but the solver did not place it within its time limit.",
    )


def _at_limit(problem: Problem, shift: Shift, route: Route | None, visit: Visit) -> bool:
    """Whether adding ``visit`` to ``route`` would pass one of the shift's declared limits."""
    if route is None:
        return False
    ids = route.visit_ids
    if shift.max_visits is not None and len(ids) + 1 > shift.max_visits:
        return True
    if shift.capacity is not None:
        by_id = {v.id: v for v in problem.visits}
        load = sum(by_id[i].demand for i in ids if i in by_id)
        if load + visit.demand > shift.capacity:
            return True
    if shift.max_travel_time is not None:
        used = sum(s.travel_time for s in route.stops)
        t_in, _ = travel(problem, shift, shift.start_location, visit.location)
        if used + t_in > shift.max_travel_time:
            return True
    return False


def explain_unassigned(
    problem: Problem,
    routes: Sequence[Route],
    visit_ids: Iterable[str],
    *,
    hints: Mapping[str, UnassignedReason] | None = None,
) -> tuple[Unassigned, ...]:
    """Explain every visit of ``visit_ids`` (see :func:`explain_one`), in the given order."""
    by_id = {v.id: v for v in problem.visits}
    given = hints or {}
    return tuple(explain_one(problem, routes, by_id[vid], hint=given.get(vid)) for vid in visit_ids)
