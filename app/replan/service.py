"""Re-plan a day: apply events, repair only the open part, splice it behind the frozen prefix.

The default strategy (``"insert"``, :mod:`app.replan.repair`) keeps every open route as it was,
re-times it, and inserts only the visits that must move (orphaned, urgent, taken out of a route
that no longer fits) at their cheapest feasible place. When one of those finds no place, or the
result fails the validator, the re-solve below runs too and the better plan wins.

Re-solve (``"resolve"``): the solver never sees a frozen stop: it gets the open problem
(movable visits, shifts starting at each carer's resume point) with ``current_assignment`` and
a stability penalty, so a visit stays with its carer unless moving it pays. Its routes are then
appended to the untouched frozen prefixes and the result is checked, not trusted: every frozen
stop must come back byte-identical.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

from app import scheduling
from app.replan.apply import ReplanInput, closing_stop, prepare_replan
from app.replan.diff import DEFAULT_START_THRESHOLD_S, PlanDiff, diff_plans
from app.replan.errors import FrozenStopChangedError
from app.replan.events import (
    ActualTimesReported,
    ClientUnavailable,
    Event,
    UrgentVisitAdded,
    VisitCancelled,
    VisitDelayed,
)
from app.replan.freeze import DEFAULT_FREEZE_S, FrozenRoute
from app.replan.repair import RepairOutcome, insertion_repair, kept_routes, mandatory_placed
from app.replan.retime import keep_times
from app.scheduling.model import (
    Break,
    Plan,
    Problem,
    Route,
    Shift,
    SolveOptions,
    Stop,
    StopKind,
    UnassignedReason,
)
from app.scheduling.validate import Violation

log = logging.getLogger(__name__)

#: Rounds of the safe fallback that take out the visits a validation names before it keeps
#: only the frozen stops.
FALLBACK_ROUNDS = 5

#: Stability used when the caller's options leave it at 0: moving a visit away from its carer
#: must save more than an hour of travel (see docs/decisions/replan-freeze-and-stability.md).
DEFAULT_STABILITY_PENALTY_S = 3600

#: ``"insert"``: keep routes, insert what must move, re-solve only as a fallback (default).
#: ``"resolve"``: re-solve the whole open part with VROOM and the stability penalty.
Strategy = Literal["insert", "resolve"]


@dataclass(frozen=True, slots=True)
class Inconsistency:
    """Why a re-plan fell back to keeping the routes as they stand (an internal defect).

    ``violations`` are the hard rules the repaired plan broke, ``error`` the exception the
    repair raised (type and message: ids only); ``remaining`` what even the fallback breaks
    (only facts were left, e.g. reported times no rule can hold).
    """

    violations: tuple[Violation, ...] = ()
    error: str | None = None
    remaining: tuple[Violation, ...] = ()


@dataclass(frozen=True, slots=True)
class ReplanResult:
    """A new plan version with what changed and why."""

    plan: Plan
    diff: PlanDiff
    #: Visits whose carer became unavailable (placed again or unassigned with a reason).
    orphaned: tuple[str, ...]
    #: The day's problem after the events: the ``problem`` argument of the next re-plan.
    problem: Problem
    #: Set when the repair failed and the safe fallback made this plan (log and count it).
    inconsistency: Inconsistency | None = None
    #: Visits about to start whose carer is absent: moved or unassigned, someone must phone.
    released: tuple[str, ...] = ()

    @property
    def replaced(self) -> tuple[str, ...]:
        """Orphaned visits that found a new carer."""
        planned = {vid for r in self.plan.routes for vid in r.visit_ids}
        return tuple(v for v in self.orphaned if v in planned)


def replan(
    problem: Problem,
    plan: Plan,
    events: Sequence[Event],
    *,
    now: int,
    freeze_s: int = DEFAULT_FREEZE_S,
    options: SolveOptions | None = None,
    start_threshold_s: int = DEFAULT_START_THRESHOLD_S,
    warm_start: bool = False,
    strategy: Strategy = "insert",
) -> ReplanResult:
    """Repair ``plan`` after ``events``, moving only what has to move.

    Parameters
    ----------
    problem
        The problem ``plan`` was solved for (for a second re-plan: the previous result's
        ``problem``).
    plan
        The current plan version.
    events
        Events since that version, in order.
    now
        Seconds since midnight at which the re-plan happens.
    freeze_s
        Stops starting before ``now + freeze_s`` stay exactly as they are (default 20 min).
    options
        Solver options; a ``stability_penalty_s`` of 0 is replaced by
        :data:`DEFAULT_STABILITY_PENALTY_S` (a re-plan always prefers keeping carers).
    start_threshold_s
        Start moves above this count as mutations in the diff (default 1 hour).
    warm_start
        Start the solver from the current routes (VROOM steps) and rank orphaned and
        previously unassigned visits below planned ones, so no planned visit is pushed out
        one-for-one. Off by default: on the Liechtenstein benchmark it cut mutations by ~10%
        but cost ~10% more travel than a full re-solve (the travel floor); see
        docs/decisions/replan-freeze-and-stability.md. Used by the re-solve only.
    strategy
        ``"insert"`` (default): keep the open routes (order, carers, times where feasible),
        drop the fewest visits from a route that no longer fits, and insert orphaned, urgent
        and dropped visits at their cheapest feasible place (previously unassigned ones only
        where nothing else moves). If one of them stays unplaced or the plan fails the
        validator, the re-solve runs as well and the plan placing more mandatory visits, then
        with fewer mutations, then less travel, is returned. ``"resolve"``: the re-solve only.

    Returns
    -------
    ReplanResult
        The new plan (frozen prefixes + re-solved open part, cancelled visits unassigned with
        reason ``cancelled``), its diff against ``plan`` and the orphaned visits.

    Raises
    ------
    UnknownReferenceError, EventConflictError
        From the events (see :func:`app.replan.apply.apply_events`).
    FrozenStopChangedError
        If the solver's routes contradict a frozen prefix (a solver bug; nothing is stored).
    """
    t0 = time.perf_counter()
    opts = options or SolveOptions()
    if opts.stability_penalty_s <= 0:
        opts = replace(opts, stability_penalty_s=DEFAULT_STABILITY_PENALTY_S)
    inp = prepare_replan(problem, plan, events, now=now, freeze_s=freeze_s)
    inconsistency: Inconsistency | None = None
    try:
        if strategy == "resolve":
            full_problem, new_plan = _resolve(inp, plan, opts, warm_start=warm_start)
        else:
            full_problem, new_plan = _insert_or_resolve(
                inp, plan, opts, warm_start=warm_start, start_threshold_s=start_threshold_s
            )
        found = scheduling.validate(full_problem, new_plan, check_priority=False)
        if found:
            inconsistency = Inconsistency(violations=tuple(found))
    except Exception as exc:  # a re-plan never fails the planner: see below
        # The events were valid (prepare_replan raised nothing), so whatever broke is ours;
        # the planner still gets the day with the events applied, and the defect is reported.
        inconsistency = Inconsistency(error=f"{type(exc).__name__}: {exc}")
    if inconsistency is not None:
        full_problem, new_plan, remaining = safe_plan(inp, plan)
        inconsistency = replace(inconsistency, remaining=remaining)
        log.error(
            "re-plan fell back to the routes as they stand: %s",
            inconsistency.error or f"{len(inconsistency.violations)} violation(s)",
        )
    new_plan = _stable_reasons(plan, new_plan, events, full_problem)
    new_plan = replace(new_plan, solve_time_s=time.perf_counter() - t0)
    return ReplanResult(
        plan=new_plan,
        diff=diff_plans(plan, new_plan, start_threshold_s=start_threshold_s),
        orphaned=inp.orphaned,
        problem=full_problem,
        inconsistency=inconsistency,
        released=inp.freeze.released,
    )


def touched_visits(problem: Problem, events: Sequence[Event]) -> frozenset[str]:
    """Visits an event concerns: named, at a named client, or one a named carer may do.

    Visits depending on a touched visit are touched too.
    """
    by_id = {v.id: v for v in problem.visits}
    out: set[str] = set()
    staff: set[str] = set()
    for e in events:
        if isinstance(e, VisitCancelled | VisitDelayed | ActualTimesReported):
            out.add(e.visit_id)
        elif isinstance(e, UrgentVisitAdded):
            out.add(e.visit.id)
        elif isinstance(e, ClientUnavailable):
            out |= {v.id for v in problem.visits if v.client_id == e.client_id}
        else:
            staff.add(e.staff_id)
    if staff:
        out |= {
            v.id
            for v in problem.visits
            if any(s.staff_id in staff for s in scheduling.qualified_shifts(problem, v))
        }
    grew = True
    while grew:
        more = {
            v.id
            for v in by_id.values()
            if v.depends_on is not None and v.depends_on.visit_id in out and v.id not in out
        }
        grew = bool(more)
        out |= more
    return frozenset(out)


def _stable_reasons(old: Plan, new: Plan, events: Sequence[Event], problem: Problem) -> Plan:
    """An event does not change the reason of a visit it did not touch.

    A visit unassigned before and still unassigned keeps its earlier reason and sentence when
    no event concerns it (:func:`touched_visits`): the re-plan tried it again (only where it
    fits without moving anyone) and failed, so the earlier finding still holds, while a
    re-explanation against the truncated open day would name an artefact of the clock.
    """
    before = {u.visit_id: u for u in old.unassigned if u.reason is not UnassignedReason.CANCELLED}
    if not before:
        return new
    touched = touched_visits(problem, events)
    kept = tuple(
        before[u.visit_id]
        if u.visit_id in before
        and u.visit_id not in touched
        and u.reason is not UnassignedReason.CANCELLED
        else u
        for u in new.unassigned
    )
    return replace(new, unassigned=kept)


def safe_plan(inp: ReplanInput, old: Plan) -> tuple[Problem, Plan, tuple[Violation, ...]]:
    """The current plan with the events applied and nothing re-planned: the safe fallback.

    Frozen stops stay; every open route keeps its carer and order (:func:`kept_routes`);
    displaced visits (orphaned, urgent, no longer fitting) are unassigned with a reason found
    by checking. Visits a validation still names are taken out and the routes rebuilt, at
    most :data:`FALLBACK_ROUNDS` times; then only the frozen stops are kept.

    Parameters
    ----------
    inp
        The prepared re-plan.
    old
        The previous plan version.

    Returns
    -------
    tuple of Problem, Plan and violations
        The day's problem, the plan, and what it still breaks (empty unless the frozen stops
        themselves break a rule: they are facts and stay).
    """
    open_ids = {v.id for v in inp.open_problem.visits}
    leave_out: set[str] = set()
    for _ in range(FALLBACK_ROUNDS):
        try:
            full, plan = assemble(inp, old, kept_routes(inp, old, leave_out=leave_out))
        except FrozenStopChangedError:
            break
        found = scheduling.validate(full, plan, check_priority=False)
        if not found:
            return full, plan, ()
        named = {v.visit_id for v in found if v.visit_id in open_ids} - leave_out
        if not named:
            break
        leave_out |= {vid for vid in named if vid is not None}
    everyone = [v.id for v in inp.open_problem.visits]
    bare = Plan(
        routes=(),
        unassigned=tuple(scheduling.explain_unassigned(inp.open_problem, (), everyone)),
    )
    full, plan = assemble(inp, old, bare)
    return full, plan, tuple(scheduling.validate(full, plan, check_priority=False))


def _resolve(
    inp: ReplanInput, old: Plan, opts: SolveOptions, *, warm_start: bool
) -> tuple[Problem, Plan]:
    """Re-solve the whole open part with VROOM (stability penalty, optional warm start)."""
    if not warm_start:
        cold = replace(
            inp.open_problem,
            initial_routes={},
            previously_unassigned=frozenset(),
            orphaned=frozenset(),
        )
        inp = replace(inp, open_problem=cold)
    if inp.open_problem.visits and inp.open_problem.shifts:
        open_plan = scheduling.solve(inp.open_problem, opts)
    else:
        open_plan = Plan(
            routes=(),
            unassigned=tuple(
                scheduling.explain_unassigned(
                    inp.open_problem, (), [v.id for v in inp.open_problem.visits]
                )
            ),
        )
    return assemble(inp, old, open_plan)


def _insert_or_resolve(
    inp: ReplanInput,
    old: Plan,
    opts: SolveOptions,
    *,
    warm_start: bool,
    start_threshold_s: int,
) -> tuple[Problem, Plan]:
    """Insertion repair; the re-solve too when it leaves a visit out or breaks a rule.

    Of two candidates the one placing more mandatory visits wins, then the one with fewer
    mutations against ``old``, then the one with less travel.
    """
    t0 = time.perf_counter()
    outcome = insertion_repair(
        inp,
        old,
        start_threshold_s=start_threshold_s,
        continuity_penalty_s=opts.continuity_penalty_s,
    )
    inserted: tuple[Problem, Plan] | None
    try:
        inserted = assemble(inp, old, outcome.open_plan)
    except FrozenStopChangedError:
        inserted = None
    if inserted is not None and scheduling.validate(*inserted, check_priority=False):
        inserted = None
    if inserted is not None and not _solver_could_help(outcome):
        return inserted
    # The fallback shares the re-plan's time budget with the insertion (at least half of it).
    spent = time.perf_counter() - t0
    limit = max(opts.time_limit_s / 2, opts.time_limit_s - spent)
    # A planner waits for this answer: the post-optimisation gets a third of what is left,
    # not its plan-sized share (at least 0.75 s, which made a 2 s re-plan take 3).
    improve_s = min(opts.improve_s, limit / 3)
    resolved = _resolve(
        inp, old, replace(opts, time_limit_s=limit, improve_s=improve_s), warm_start=warm_start
    )
    if inserted is None:
        return resolved
    if scheduling.validate(*resolved, check_priority=False):
        return inserted

    def rank(candidate: tuple[Problem, Plan]) -> tuple[int, int, float]:
        full, new = candidate
        moved = diff_plans(old, new, start_threshold_s=start_threshold_s).mutations
        return (-mandatory_placed(full, new), moved, float(new.kpis.get("travel_s", 0)))

    return min((inserted, resolved), key=rank)


#: Reasons found by a check of the visit against the open day alone (qualified carers, their
#: hours, the roads): no re-solve can place such a visit, so it does not run for one.
_BEYOND_ANY_SOLVER = frozenset(
    {
        UnassignedReason.NOT_GEOCODED,
        UnassignedReason.NO_QUALIFIED_STAFF,
        UnassignedReason.PINNED_STAFF_UNAVAILABLE,
        UnassignedReason.NOT_IN_ALLOWED_TEAM,
        UnassignedReason.UNREACHABLE,
        UnassignedReason.WINDOW_UNREACHABLE,
        UnassignedReason.OUTSIDE_SHIFTS,
    }
)


def _solver_could_help(outcome: RepairOutcome) -> bool:
    """Whether a visit the insertion left out might find a place in a re-solve.

    An urgent visit nobody is qualified for, or whose window lies after every shift, made every
    such event pay the whole re-solve budget for nothing (3+ s in the day simulator).
    """
    reason = {u.visit_id: u.reason for u in outcome.open_plan.unassigned}
    return any(reason.get(vid) not in _BEYOND_ANY_SOLVER for vid in outcome.unplaced)


def assemble(
    inp: ReplanInput, old: Plan, open_plan: Plan, *, keep_old_times: bool = True
) -> tuple[Problem, Plan]:
    """Join the frozen prefixes and a solved open part into the day's new plan.

    Parameters
    ----------
    inp
        The prepared re-plan.
    old
        The previous plan version (its times are the targets when ``keep_old_times``).
    open_plan
        The solver's plan for ``inp.open_problem``.
    keep_old_times
        Re-time open routes towards the previous starts (the default; False keeps the solver's
        schedule, as a from-scratch comparison does).

    Returns
    -------
    tuple of Problem and Plan
        The day's problem (shift breaks adjusted to what is still owed) and the new plan with
        its KPIs; frozen stops are checked with :func:`check_frozen`.
    """
    full_problem, routes, tails = _splice(inp, old, open_plan, keep_old_times=keep_old_times)
    check_frozen(inp, routes)
    # Reasons are found again on the open routes as they now stand (re-timed): a reason found
    # on the solver's or the repair's own times may name a gap that re-timing opened or closed.
    left = [u.visit_id for u in open_plan.unassigned]
    again = scheduling.explain_unassigned(inp.open_problem, tails, left)
    plan = Plan(routes=routes, unassigned=inp.unassigned + tuple(again))
    return full_problem, replace(plan, kpis=scheduling.compute_kpis(full_problem, plan))


def check_frozen(inp: ReplanInput, routes: Sequence[Route]) -> None:
    """Raise unless every frozen prefix and fixed stop is in ``routes`` exactly as frozen.

    Parameters
    ----------
    inp
        The prepared re-plan (its freeze).
    routes
        The new routes.

    Raises
    ------
    FrozenStopChangedError
        Naming the first shift or visit whose frozen stops differ.
    """
    by_shift = {r.shift_id: r for r in routes}
    for sid, fr in inp.freeze.routes.items():
        if not fr.frozen_visit_ids and not fr.break_ids:
            continue
        route = by_shift.get(sid)
        if route is None or route.stops[: len(fr.prefix)] != fr.prefix:
            msg = f"the frozen stops of shift {sid!r} changed in the new plan"
            raise FrozenStopChangedError(msg)
    placed = {
        (s.visit_id, r.shift_id): (s.start, s.end)
        for r in routes
        for s in r.stops
        if s.kind is StopKind.VISIT
    }
    for f in inp.freeze.fixed:
        if placed.get((f.visit_id, f.shift_id)) != (f.start, f.end):
            msg = f"frozen visit {f.visit_id!r} moved away from shift {f.shift_id!r} or its times"
            raise FrozenStopChangedError(msg)
    frozen = inp.freeze.frozen_visit_ids
    for r in routes:
        head = inp.freeze.routes.get(r.shift_id)
        tail = r.stops[len(head.prefix) :] if head is not None else r.stops
        moved = [s.visit_id for s in tail if s.visit_id in frozen]
        if moved:
            msg = f"frozen visit {moved[0]!r} appears again in the open part of {r.shift_id!r}"
            raise FrozenStopChangedError(msg)


def _splice(
    inp: ReplanInput, old: Plan, open_plan: Plan, *, keep_old_times: bool
) -> tuple[Problem, tuple[Route, ...], tuple[Route, ...]]:
    """Frozen prefix + the solver's open route (old times kept) for every shift."""
    tails = {r.shift_id: r for r in open_plan.routes}
    unknown = set(tails) - set(inp.open_shifts)
    if unknown:
        msg = f"the solver returned routes for shifts it was not given: {sorted(unknown)}"
        raise FrozenStopChangedError(msg)
    old_routes = {r.shift_id: r for r in old.routes}
    old_visit_starts = {
        s.visit_id: s.start
        for r in old.routes
        for s in r.stops
        if s.kind is StopKind.VISIT and s.visit_id is not None
    }
    pinned = _coupled(inp.open_problem)
    shifts: list[Shift] = []
    routes: list[Route] = []
    timed: list[Route] = []
    for shift in inp.problem.shifts:
        fr = inp.freeze.routes.get(shift.id)
        has_prefix = fr is not None and bool(fr.frozen_visit_ids or fr.break_ids)
        tail = tails.get(shift.id)
        if tail is None:
            if has_prefix and fr is not None:
                shift = _owed_only(inp, shift, fr)
        elif keep_old_times:
            old_route = old_routes.get(shift.id)
            starts = dict(old_visit_starts)
            if old_route is not None:
                starts.update(
                    (s.break_id, s.start)
                    for s in old_route.stops
                    if s.kind is StopKind.BREAK and s.break_id is not None
                )
            open_shift = inp.open_shifts[shift.id]
            ready = open_shift.start
            depart = _departure(fr if has_prefix else None, old_route, tail, ready)
            tail = keep_times(
                inp.open_problem,
                open_shift,
                tail,
                starts,
                depart=depart,
                ready=ready,
                pinned=pinned,
            )
        shifts.append(shift)
        if tail is not None:
            timed.append(tail)
        stops = _route_stops(inp, shift, fr if has_prefix else None, tail)
        if stops:
            routes.append(Route(shift.id, shift.staff_id, shift.profile, stops))
    return replace(inp.problem, shifts=tuple(shifts)), tuple(routes), tuple(timed)


def _owed_only(inp: ReplanInput, shift: Shift, frozen: FrozenRoute) -> Shift:
    """``shift`` keeping the breaks taken in ``frozen`` and those its end still owes.

    Nothing is left to do after the prefix: an open break is owed now only when the work runs
    into its window (then it follows the prefix; simulator finding 16: a long overrun lost the
    lunch break). One whose windows open after the work ends stays in the shift but not on the
    route, for a later version's work (the validator asks it of no route that ends before its
    window). One whose windows the work passed entirely is gone. A carer with no route at all
    keeps her breaks (not handled here): a later version may give her work, and they were lost
    for good before, so that her next route had no lunch.
    """
    owed = {b.id for b, _ in _owed_breaks(inp, shift, frozen)}
    # A break whose windows open after the work ends stays in the shift, not on the route: a
    # later version that gives her work into its window owes it (it was dropped for good and
    # an urgent visit at 11:00 then made a route through lunch without one; simulator seed 11).
    ahead = {b.id for b in shift.breaks if all(w.start >= frozen.end_time for w in b.windows)}
    keep = frozen.break_ids | owed | ahead
    return replace(shift, breaks=tuple(b for b in shift.breaks if b.id in keep))


def _coupled(problem: Problem) -> frozenset[str]:
    """Visits whose start the solver synchronised with another visit (never re-timed)."""
    out = {v.id for v in problem.visits if v.carers_required > 1 or v.depends_on is not None}
    out |= {v.depends_on.visit_id for v in problem.visits if v.depends_on is not None}
    return frozenset(out)


def _departure(frozen: FrozenRoute | None, old: Route | None, tail: Route, ready: int) -> int:
    """The START time shown on a re-timed open route.

    After a frozen prefix: when the prefix ends (if the carer resumes where it ends). Without
    one: the previous plan's departure from the same place. Else when the carer is ready.
    """
    first = tail.stops[0]
    if frozen is not None:
        last = next((s.location for s in reversed(frozen.prefix) if s.location is not None), None)
        return frozen.end_time if last == first.location else ready
    if old is not None and old.stops and old.stops[0].kind is StopKind.START:
        return old.stops[0].end if old.stops[0].location == first.location else ready
    return ready


def _route_stops(
    inp: ReplanInput,
    shift: Shift,
    frozen: FrozenRoute | None,
    tail: Route | None,
) -> tuple[Stop, ...]:
    if frozen is None:
        return tail.stops if tail is not None else ()
    if tail is None:
        owed = _owed_breaks(inp, shift, frozen)
        if not owed:
            return (*frozen.prefix, closing_stop(inp.problem, shift, frozen))
        stops = [*frozen.prefix]
        end = frozen.end_time
        for b, start in owed:
            stops.append(
                Stop(
                    StopKind.BREAK,
                    end,
                    start,
                    start + b.duration,
                    location=frozen.resume_location,
                    break_id=b.id,
                    waiting=start - end,
                )
            )
            end = start + b.duration
        closing = closing_stop(inp.problem, shift, replace(frozen, prefix=tuple(stops)))
        return (*stops, closing)
    _check_joint(frozen, tail)
    return frozen.prefix + tail.stops[1:]


def _owed_breaks(
    inp: ReplanInput, shift: Shift, frozen: FrozenRoute | None
) -> list[tuple[Break, int]]:
    """Breaks still owed right after a prefix that ends the route, with their starts.

    A break not taken yet is owed when the prefix's work runs into one of its windows and
    the break still fits there before the carer must be home; one whose window the work
    passed entirely cannot be given any more (the reported times are facts).
    """
    if frozen is None:
        return []
    taken = frozen.break_ids
    end = frozen.end_time
    out: list[tuple[Break, int]] = []
    for b in sorted(shift.breaks, key=lambda x: min(w.start for w in x.windows)):
        if b.id in taken or not any(end >= w.start for w in b.windows):
            continue
        fits = [max(end, w.start) for w in b.windows if max(end, w.start) + b.duration <= w.end]
        if not fits:
            continue
        start = min(fits)
        home = closing_stop(inp.problem, shift, frozen).travel_time
        if start + b.duration + home > shift.end:
            continue
        out.append((b, start))
        end = start + b.duration
    return out


def _check_joint(frozen: FrozenRoute, tail: Route) -> None:
    first = tail.stops[0]
    if first.location != frozen.resume_location or first.start < frozen.end_time:
        msg = (
            f"the solver's route for {tail.shift_id!r} does not start where and when its carer "
            "resumes after the frozen stops"
        )
        raise FrozenStopChangedError(msg)


__all__ = ["Inconsistency", "ReplanResult", "assemble", "check_frozen", "replan", "safe_plan"]
