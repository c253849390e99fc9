"""Insertion-first repair of the open part of a plan: move only what an event forces to move.

Instead of re-solving every open route, the previous plan's open routes are kept as they are
(same carer, same order) and re-timed; a route that no longer fits its shift (an overrun) loses
the fewest visits needed. Orphaned visits, urgent visits and the visits taken out are then put
back one by one at the cheapest feasible position (added travel, plus an hour's worth of travel
per other stop pushed by more than the mutation threshold), each change checked by
:func:`app.scheduling.validate` on the route it touches. Previously unassigned visits are added
last, and only where they fit without moving any other stop. Coupled visits (double-staffed,
dependencies) are never inserted greedily: when one has to move, the caller falls back to the
re-solve.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from app.domain import UNREACHABLE
from app.replan.apply import ReplanInput
from app.replan.diff import DEFAULT_START_THRESHOLD_S
from app.replan.retime import keep_times
from app.scheduling import explain_unassigned, qualified_shifts, validate
from app.scheduling._timing import earliest_start, in_some_window, travel
from app.scheduling.model import (
    Plan,
    Priority,
    Problem,
    Route,
    Shift,
    Stop,
    StopKind,
    Unassigned,
    UnassignedReason,
    Visit,
)
from app.scheduling.validate import ViolationKind

#: One step of a route before timing: (VISIT, visit id) or (BREAK, break id).
Item = tuple[StopKind, str]
#: Cost, in seconds of travel, of pushing another stop by more than the mutation threshold.
MOVE_PENALTY_S = 3600
#: Cross-route rules a single-route check cannot judge (the full validation does).
_CROSS_ROUTE = frozenset(
    {
        ViolationKind.DOUBLE_CARERS,
        ViolationKind.DOUBLE_SYNC,
        ViolationKind.DEPENDENCY,
        ViolationKind.MISSING,
    }
)


@dataclass(frozen=True, slots=True)
class RepairOutcome:
    """The open part after insertion repair."""

    #: Routes over the open shifts and the open visits left out (with reasons).
    open_plan: Plan
    #: Visits that had to be placed (orphaned, urgent, taken out of an infeasible route) but
    #: were not: the caller should try the re-solve.
    unplaced: tuple[str, ...]
    #: Kept visits taken out of a route that no longer fits (e.g. after an overrun).
    dropped: tuple[str, ...]


def coupled_visits(problem: Problem) -> frozenset[str]:
    """Visits synchronised with another one (double-staffed, dependent or depended on).

    Parameters
    ----------
    problem
        Any problem.

    Returns
    -------
    frozenset of str
        Their ids; their start is never moved and they are never inserted greedily.
    """
    out = {v.id for v in problem.visits if v.carers_required > 1 or v.depends_on is not None}
    out |= {v.depends_on.visit_id for v in problem.visits if v.depends_on is not None}
    return frozenset(out)


class _Repair:
    """Scratch state: the open problem, one item list per open shift, and the old starts."""

    def __init__(self, inp: ReplanInput, old: Plan, threshold_s: int, continuity_s: int) -> None:
        self.problem = inp.open_problem
        self.shifts: dict[str, Shift] = {s.id: s for s in self.problem.shifts}
        self.visits: dict[str, Visit] = {v.id: v for v in self.problem.visits}
        self.coupled = coupled_visits(self.problem)
        self.threshold = threshold_s
        self.continuity = continuity_s
        self.targets: dict[str, int] = {}
        for r in old.routes:
            for s in r.stops:
                if s.kind is StopKind.VISIT and s.visit_id is not None:
                    self.targets.setdefault(s.visit_id, s.start)
                elif s.kind is StopKind.BREAK and s.break_id is not None:
                    self.targets.setdefault(s.break_id, s.start)
        # Every part of a double visit stays on its route (current_assignment names one shift).
        orphaned = set(inp.orphaned)
        self.items: dict[str, list[Item]] = {sid: [] for sid in self.shifts}
        for r in old.routes:
            if r.shift_id not in self.shifts:
                continue
            own = {b.id for b in self.shifts[r.shift_id].breaks}
            for s in r.stops:
                if s.kind is StopKind.VISIT and s.visit_id is not None:
                    if s.visit_id in self.visits and s.visit_id not in orphaned:
                        self.items[r.shift_id].append((StopKind.VISIT, s.visit_id))
                elif s.kind is StopKind.BREAK and s.break_id in own and s.break_id is not None:
                    self.items[r.shift_id].append((StopKind.BREAK, s.break_id))
        self.routes: dict[str, Route] = {}

    # -- timing -----------------------------------------------------------------------------

    def schedule(self, sid: str, items: Sequence[Item]) -> Route | None:
        """Time ``items`` on shift ``sid`` (old starts kept where feasible); None if infeasible."""
        shift = self.shifts[sid]
        breaks = {b.id: b for b in shift.breaks}
        loc = shift.start_location
        now = shift.start
        stops = [Stop(StopKind.START, now, now, now, location=loc)]
        n_visits = load = used = 0
        for kind, ref in items:
            if kind is StopKind.BREAK:
                b = breaks[ref]
                fits = [
                    max(now, w.start) for w in b.windows if max(now, w.start) + b.duration <= w.end
                ]
                if not fits:
                    return None
                start = min(fits)
                stops.append(
                    Stop(
                        StopKind.BREAK,
                        now,
                        start,
                        start + b.duration,
                        location=loc,
                        break_id=ref,
                        waiting=start - now,
                    )
                )
                now = start + b.duration
                continue
            v = self.visits[ref]
            t, d = travel(self.problem, shift, loc, v.location)
            if t >= UNREACHABLE:
                return None
            arrival = now + t
            begin: int | None
            if ref in self.coupled:
                begin = self.targets.get(ref)
                if begin is None or begin < arrival or not in_some_window(v, begin):
                    return None
            else:
                begin = earliest_start(v, arrival)
                if begin is None:
                    return None
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
            n_visits += 1
            load += v.demand
            used += t
        t, d = travel(self.problem, shift, loc, shift.end_location)
        if t >= UNREACHABLE or now + t > shift.end:
            return None
        used += t
        if shift.max_visits is not None and n_visits > shift.max_visits:
            return None
        if shift.capacity is not None and load > shift.capacity:
            return None
        if shift.max_travel_time is not None and used > shift.max_travel_time:
            return None
        end_loc = shift.end_location if shift.end_location is not None else loc
        stops.append(
            Stop(
                StopKind.END, now + t, now + t, now + t, location=end_loc, travel_time=t, distance=d
            )
        )
        route = Route(sid, shift.staff_id, shift.profile, tuple(stops))
        return keep_times(
            self.problem,
            shift,
            route,
            self.targets,
            depart=shift.start,
            ready=shift.start,
            pinned=self.coupled,
        )

    def valid(self, route: Route) -> bool:
        """The validator's verdict on one route (cross-route rules are left to the full check)."""
        inside = set(route.visit_ids)
        pending = tuple(
            Unassigned(v.id, UnassignedReason.OTHER, "")
            for v in self.problem.visits
            if v.id not in inside
        )
        found = validate(self.problem, Plan((route,), pending), check_priority=False)
        return all(f.kind in _CROSS_ROUTE for f in found)

    # -- step 2: keep and re-time -------------------------------------------------------------

    def fit(self, sid: str) -> list[str]:
        """Re-time shift ``sid``'s kept route, taking out the fewest visits that make it fit."""
        dropped: list[str] = []
        items = list(self.items[sid])
        while True:
            if not any(k is StopKind.VISIT for k, _ in items):
                self.items[sid] = []
                self.routes.pop(sid, None)
                return dropped
            route = self.schedule(sid, items)
            if route is not None and self.valid(route):
                self.items[sid] = items
                self.routes[sid] = route
                return dropped
            victim = self._best_removal(sid, items)
            dropped.append(victim)
            items = [it for it in items if it != (StopKind.VISIT, victim)]

    def _best_removal(self, sid: str, items: Sequence[Item]) -> str:
        """The visit whose removal alone makes the route fit (latest first), else the last one."""
        visits = [ref for k, ref in items if k is StopKind.VISIT]
        movable = [ref for ref in visits if ref not in self.coupled] or visits
        for ref in reversed(movable):
            rest = [it for it in items if it != (StopKind.VISIT, ref)]
            route = self.schedule(sid, rest)
            if route is not None and self.valid(route):
                return ref
        return movable[-1]

    # -- step 3: insertion -------------------------------------------------------------------

    def _cost(self, sid: str, route: Route, vid: str) -> int:
        before = self.routes.get(sid)
        old_travel = sum(s.travel_time for s in before.stops) if before is not None else 0
        cost = sum(s.travel_time for s in route.stops) - old_travel
        old_starts = (
            {s.visit_id or s.break_id: s.start for s in before.stops[1:-1]}
            if before is not None
            else {}
        )
        for s in route.stops[1:-1]:
            key = s.visit_id or s.break_id
            if key == vid or key not in old_starts:
                continue
            if abs(s.start - old_starts[key]) > self.threshold:
                cost += MOVE_PENALTY_S
        v = self.visits[vid]
        if v.preferred_staff and self.shifts[sid].staff_id not in v.preferred_staff:
            cost += self.continuity
        return cost

    def _unmoved(self, sid: str, route: Route, vid: str) -> bool:
        before = self.routes.get(sid)
        if before is None:
            return True
        old = {s.visit_id or s.break_id: s.start for s in before.stops[1:-1]}
        return all(
            old.get(s.visit_id or s.break_id) == s.start
            for s in route.stops[1:-1]
            if s.visit_id != vid
        )

    def insert(self, vid: str, *, strict: bool) -> bool:
        """Put ``vid`` at its cheapest feasible position; ``strict``: no other stop may move."""
        v = self.visits[vid]
        if vid in self.coupled or not v.geocoded:
            return False
        candidates: list[tuple[int, str, int, Route]] = []
        for shift in qualified_shifts(self.problem, v):
            if v.windows and not any(
                max(w.start, shift.start) + v.duration <= min(w.end, shift.end) for w in v.windows
            ):
                continue
            items = self.items[shift.id]
            for pos in range(len(items) + 1):
                trial = [*items[:pos], (StopKind.VISIT, vid), *items[pos:]]
                route = self.schedule(shift.id, trial)
                if route is None or (strict and not self._unmoved(shift.id, route, vid)):
                    continue
                candidates.append((self._cost(shift.id, route, vid), shift.id, pos, route))
        for _cost, sid, pos, route in sorted(candidates, key=lambda c: (c[0], c[1], c[2])):
            if self.valid(route):
                items = self.items[sid]
                self.items[sid] = [*items[:pos], (StopKind.VISIT, vid), *items[pos:]]
                self.routes[sid] = route
                return True
        return False

    def swap_in(self, vid: str) -> str | None:
        """Give ``vid`` (mandatory) the place of an optional visit, no other stop moving.

        Returns the optional visit taken out, or None. This is the single swap the validator's
        priority rule looks for.
        """
        v = self.visits[vid]
        if vid in self.coupled or not v.geocoded:
            return None
        for shift in qualified_shifts(self.problem, v):
            items = self.items[shift.id]
            for pos, (kind, ref) in enumerate(items):
                o = self.visits.get(ref)
                if kind is not StopKind.VISIT or o is None or ref in self.coupled:
                    continue
                if o.priority is Priority.MANDATORY:
                    continue
                trial = [*items[:pos], (StopKind.VISIT, vid), *items[pos + 1 :]]
                route = self.schedule(shift.id, trial)
                if route is None or not self._unmoved(shift.id, route, vid):
                    continue
                if self.valid(route):
                    self.items[shift.id] = trial
                    self.routes[shift.id] = route
                    return ref
        return None

    def drop_broken_couples(self) -> list[str]:
        """Take out coupled visits whose partner is not planned (a dependency, a second carer).

        Returns the visits taken out; their routes are re-timed.
        """
        out: list[str] = []
        while True:
            count: dict[str, int] = {}
            for items in self.items.values():
                for kind, ref in items:
                    if kind is StopKind.VISIT:
                        count[ref] = count.get(ref, 0) + 1
            broken = {
                vid
                for vid in count
                if vid in self.coupled
                and (
                    count[vid] < self.visits[vid].carers_required
                    or (
                        (dep := self.visits[vid].depends_on) is not None
                        and dep.visit_id in self.visits
                        and dep.visit_id not in count
                    )
                )
            }
            if not broken:
                return out
            out.extend(sorted(broken))
            for sid, items in self.items.items():
                if any(ref in broken for _k, ref in items):
                    self.items[sid] = [it for it in items if it[1] not in broken]
                    out.extend(self.fit(sid))

    def _place_missing_breaks(self, sid: str) -> None:
        """Put breaks of the open shift that the old route did not show (absences) in order."""
        have = {ref for k, ref in self.items[sid] if k is StopKind.BREAK}
        for b in self.shifts[sid].breaks:
            if b.id in have:
                continue
            items = self.items[sid]
            for pos in range(len(items) + 1):
                trial = [*items[:pos], (StopKind.BREAK, b.id), *items[pos:]]
                if self.schedule(sid, trial) is not None:
                    self.items[sid] = trial
                    break
            else:
                self.items[sid] = [*items, (StopKind.BREAK, b.id)]


def insertion_repair(
    inp: ReplanInput,
    old: Plan,
    *,
    start_threshold_s: int = DEFAULT_START_THRESHOLD_S,
    continuity_penalty_s: int = 0,
) -> RepairOutcome:
    """Repair the open part of ``old`` by keeping routes and inserting what has to move.

    Parameters
    ----------
    inp
        The prepared re-plan (:func:`app.replan.apply.prepare_replan`): its open problem has the
        movable visits, the open shifts and ``current_assignment`` (orphans left out).
    old
        The previous plan version (order, carers and starts to keep).
    start_threshold_s
        A start moved by more than this is a mutation; insertions pay
        :data:`MOVE_PENALTY_S` per other stop they push that far.
    continuity_penalty_s
        Extra cost of giving a visit to a carer outside its preferred staff.

    Returns
    -------
    RepairOutcome
        The open routes (to splice behind the frozen prefixes with
        :func:`app.replan.service.assemble`), the visits left out with reasons, and the
        orphaned / urgent / dropped visits that found no place.
    """
    rep = _Repair(inp, old, start_threshold_s, continuity_penalty_s)
    for sid in rep.items:
        rep._place_missing_breaks(sid)
    dropped: list[str] = []
    for sid in sorted(rep.items):
        dropped.extend(rep.fit(sid))
    # A coupled visit taken out of one route cannot stay on its partner's route alone.
    gone_coupled = {vid for vid in dropped if vid in rep.coupled}
    if gone_coupled:
        for sid, items in rep.items.items():
            if any(ref in gone_coupled for _k, ref in items):
                rep.items[sid] = [it for it in items if it[1] not in gone_coupled]
                dropped.extend(rep.fit(sid))

    placed = {vid for items in rep.items.values() for k, vid in items if k is StopKind.VISIT}
    previously = inp.open_problem.previously_unassigned
    must = [v for v in rep.problem.visits if v.id not in placed and v.id not in previously]
    must.sort(key=_urgency)
    unplaced = [v.id for v in must if not rep.insert(v.id, strict=False)]
    bumped_out: list[str] = []
    for vid in list(unplaced):
        if rep.visits[vid].priority is Priority.MANDATORY:
            bumped = rep.swap_in(vid)
            if bumped is not None:
                unplaced.remove(vid)
                bumped_out.append(bumped)
    for vid in bumped_out:  # optional: it may stay out, as the solver would leave it
        rep.insert(vid, strict=True)
    extra = sorted(
        (v for v in rep.problem.visits if v.id in previously and v.id not in placed),
        key=_urgency,
    )
    left_out = [v for v in extra if not rep.insert(v.id, strict=True)]
    # The validator's priority rule: a mandatory visit never waits while an optional one holds
    # a place it fits in; the optional one then gets one more chance at a gap.
    for v in left_out:
        if v.priority is Priority.MANDATORY:
            bumped = rep.swap_in(v.id)
            if bumped is not None:
                rep.insert(bumped, strict=True)

    unplaced.extend(rep.drop_broken_couples())

    routes = tuple(rep.routes[sid] for sid in rep.shifts if sid in rep.routes)
    in_routes = {vid for r in routes for vid in r.visit_ids}
    left = [v.id for v in rep.problem.visits if v.id not in in_routes]
    return RepairOutcome(
        open_plan=Plan(routes=routes, unassigned=explain_unassigned(rep.problem, routes, left)),
        unplaced=tuple(unplaced),
        dropped=tuple(dict.fromkeys(dropped)),
    )


def kept_routes(inp: ReplanInput, old: Plan, *, leave_out: Collection[str] = ()) -> Plan:
    """The open part of ``old`` as it stands after the events, with nothing inserted.

    The safe fallback of a re-plan whose repair failed: every open route keeps its carer and
    order, re-timed; a route that no longer fits loses the fewest visits; coupled visits whose
    partner is gone and the ``leave_out`` visits are taken out. Orphaned, urgent and taken-out
    visits stay unassigned, each with the reason :func:`explain_unassigned` finds by checking.

    Parameters
    ----------
    inp
        The prepared re-plan.
    old
        The previous plan version.
    leave_out
        Visits not to keep on any route (they broke a rule in an earlier attempt).

    Returns
    -------
    Plan
        Routes over the open shifts and the open visits left out with reasons.
    """
    rep = _Repair(inp, old, DEFAULT_START_THRESHOLD_S, 0)
    gone = set(leave_out)
    for sid in rep.items:
        rep.items[sid] = [it for it in rep.items[sid] if it[1] not in gone]
        rep._place_missing_breaks(sid)
    for sid in sorted(rep.items):
        rep.fit(sid)
    rep.drop_broken_couples()
    routes = tuple(rep.routes[sid] for sid in rep.shifts if sid in rep.routes)
    in_routes = {vid for r in routes for vid in r.visit_ids}
    left = [v.id for v in rep.problem.visits if v.id not in in_routes]
    return Plan(routes=routes, unassigned=explain_unassigned(rep.problem, routes, left))


def _urgency(v: Visit) -> tuple[bool, int]:
    """Mandatory first, then the narrowest total window."""
    width = sum(w.end - w.start for w in v.windows) if v.windows else 10**9
    return (v.priority is not Priority.MANDATORY, width)


def mandatory_placed(problem: Problem, plan: Plan, among: Collection[str] | None = None) -> int:
    """How many mandatory visits ``plan`` places (optionally only those in ``among``).

    Parameters
    ----------
    problem
        Gives each visit's priority.
    plan
        The plan to count.
    among
        Restrict the count to these visit ids.

    Returns
    -------
    int
        The number of distinct mandatory visits in the plan's routes.
    """
    mandatory: Mapping[str, bool] = {v.id: v.priority is Priority.MANDATORY for v in problem.visits}
    placed = {vid for r in plan.routes for vid in r.visit_ids}
    if among is not None:
        placed &= set(among)
    return sum(1 for vid in placed if mandatory.get(vid, False))


__all__ = [
    "MOVE_PENALTY_S",
    "RepairOutcome",
    "coupled_visits",
    "insertion_repair",
    "kept_routes",
    "mandatory_placed",
]
