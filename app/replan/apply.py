"""Turn a solved plan plus the day's events into the problem a re-plan solves.

Two problems come out. The *full* re-plan problem (:attr:`ReplanInput.problem`) describes the
whole day after the events: frozen visits are kept and listed in ``Problem.fixed``, absences cut
shifts, and ``current_assignment`` says where every visit that still has its carer sits now; it is
what the new plan is validated against. The *open* problem (:attr:`ReplanInput.open_problem`) is
what the solver sees: only the visits that may move, and each shift truncated to its carer's
resume point (place and time after the frozen prefix), so the solver cannot touch frozen stops.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise

from app.replan.errors import EventConflictError, UnknownReferenceError
from app.replan.events import (
    ActualTimesReported,
    CarerAbsent,
    CarerAvailable,
    CarerPositionReported,
    ClientUnavailable,
    Event,
    UrgentVisitAdded,
    VisitCancelled,
    VisitDelayed,
)
from app.replan.freeze import (
    ABSENCE_BREAK,
    DEFAULT_FREEZE_S,
    Actual,
    Freeze,
    FrozenRoute,
    Position,
    freeze_plan,
)
from app.replan.intervals import Interval, subtract, subtract_all, union
from app.scheduling.model import (
    Break,
    Plan,
    Problem,
    Shift,
    Stop,
    StopKind,
    TimeWindow,
    Unassigned,
    UnassignedReason,
    Visit,
)

#: "Until the end of the day" for absences without an end.
_OPEN_END = 10**9


@dataclass(frozen=True, slots=True)
class ReplanInput:
    """Everything a re-plan needs, derived purely from the previous plan and the events."""

    #: The day after the events: frozen visits fixed, absences applied (validate against this).
    problem: Problem
    #: What the solver sees: movable visits only, shifts starting at each carer's resume point.
    open_problem: Problem
    freeze: Freeze
    #: Visits whose carer became unavailable; the solver is free to put them anywhere.
    orphaned: tuple[str, ...]
    #: Visits that cannot be planned whatever the solver does (cancelled, no window left).
    unassigned: tuple[Unassigned, ...]
    #: Open shifts by id (a shift with no time left after the events is absent).
    open_shifts: Mapping[str, Shift]


@dataclass
class _State:
    """Mutable scratch space while events are applied in order."""

    visits: dict[str, Visit]
    #: Cancelled visits (by events, or already in the plan as unassigned "cancelled").
    cancelled: dict[str, None]
    actuals: dict[str, Actual]
    positions: dict[str, Position]
    availability: dict[str, list[Interval]]
    client_blocks: dict[str, list[Interval]]
    #: Absences reported by events, per shift (before extra availability is added back).
    absences: dict[str, list[Interval]]


def apply_events(
    problem: Problem,
    plan: Plan,
    events: Sequence[Event],
    *,
    now: int,
    freeze_s: int = DEFAULT_FREEZE_S,
) -> Problem:
    """Build the re-planning problem for ``events`` applied to ``plan`` at ``now``.

    Parameters
    ----------
    problem
        The problem ``plan`` was solved for.
    plan
        The current plan.
    events
        Events in the order they happened.
    now
        Seconds since midnight at which the re-plan happens.
    freeze_s
        Freeze horizon: stops starting before ``now + freeze_s`` stay as they are.

    Returns
    -------
    Problem
        The day after the events, with ``fixed`` (frozen stops) and ``current_assignment``
        (visit -> shift for every planned visit that still has its carer).

    Raises
    ------
    UnknownReferenceError
        An event names a visit, staff member, client or location the problem does not have.
    EventConflictError
        An event contradicts the plan (a started visit cancelled, a duplicate urgent visit id).
    """
    return prepare_replan(problem, plan, events, now=now, freeze_s=freeze_s).problem


def prepare_replan(
    problem: Problem,
    plan: Plan,
    events: Sequence[Event],
    *,
    now: int,
    freeze_s: int = DEFAULT_FREEZE_S,
) -> ReplanInput:
    """Like :func:`apply_events`, returning also the solver's open problem and the freeze.

    Parameters
    ----------
    problem, plan, events, now, freeze_s
        As for :func:`apply_events`.

    Returns
    -------
    ReplanInput
        Full problem, open problem, freeze, orphaned visit ids and visits unassigned up front.
    """
    state = _collect(problem, plan, events)
    absent = _absent(state)
    freeze = freeze_plan(
        problem,
        plan,
        now=now,
        freeze_s=freeze_s,
        actuals=state.actuals,
        removed=tuple(state.cancelled),
        positions=state.positions,
        absent=absent,
    )
    frozen_ids = freeze.frozen_visit_ids
    assignment = _assignment(plan)
    planned = _planned_times(plan)

    unassigned = [
        Unassigned(v, UnassignedReason.CANCELLED, "cancelled by a re-planning event")
        for v in state.cancelled
    ]
    open_visits: dict[str, Visit] = {}
    #: Visits the client's absence leaves no window for: kept in the day with a window no
    #: visit fits in, so a later re-plan does not place them again (simulator finding 24).
    blocked: dict[str, Visit] = {}
    for vid, visit in state.visits.items():
        if vid in frozen_ids or vid in state.cancelled:
            continue
        cut = _cut_client_blocks(visit, state.client_blocks.get(visit.client_id, []))
        if cut is None:
            detail = "the client is unavailable during every window long enough for the visit"
            unassigned.append(Unassigned(vid, UnassignedReason.WINDOW_UNREACHABLE, detail))
            first = min((w.start for w in visit.windows), default=0)
            blocked[vid] = replace(visit, windows=(TimeWindow(first, first),))
            continue
        open_visits[vid] = cut
    gone = set(state.cancelled) | {u.visit_id for u in unassigned}
    for vid, visit in list(open_visits.items()):
        adjusted = _resolve_dependency(visit, freeze, gone)
        if adjusted is None:
            del open_visits[vid]
            detail = "the visit it depends on is frozen at a time that leaves no valid start"
            unassigned.append(Unassigned(vid, UnassignedReason.DEPENDENCY_UNSATISFIED, detail))
        else:
            open_visits[vid] = adjusted

    open_shifts: dict[str, Shift] = {}
    full_shifts: list[Shift] = []
    for shift in problem.shifts:
        avail = state.availability[shift.id]
        fr = freeze.routes.get(shift.id)
        open_shift = _open_shift(shift, avail, fr, now)
        if open_shift is not None:
            open_shifts[shift.id] = open_shift
        full_shifts.append(_full_shift(problem, shift, fr, open_shift, avail))

    orphaned: list[str] = []
    for vid in open_visits:
        shift_id = assignment.get(vid)
        if shift_id is None:
            continue
        start, end = planned[vid]
        covered = any(a <= start and end <= b for a, b in state.availability.get(shift_id, []))
        if shift_id not in open_shifts or not covered:
            orphaned.append(vid)
    orphan_set = frozenset(orphaned)

    # Every visit the new plan names stays in the day's problem: a visit reported unassigned
    # (cancelled, client away, a dependency on a frozen visit that leaves no start) included,
    # else the plan reports a visit its own problem does not know (issue 9, found item 1).
    reported = gone | {u.visit_id for u in unassigned}
    full_visits = tuple(
        _pin(v, freeze) if v.id in frozen_ids else open_visits.get(v.id, blocked.get(v.id, v))
        for v in state.visits.values()
        if v.id in frozen_ids or v.id in open_visits or v.id in reported
    )
    current = {
        vid: sid
        for vid, sid in assignment.items()
        if vid not in orphan_set and (vid in frozen_ids or vid in open_visits)
    }
    full_problem = replace(
        problem,
        visits=full_visits,
        shifts=tuple(full_shifts),
        current_assignment=current,
        fixed=freeze.fixed,
        absences={sid: tuple(iv) for sid, iv in absent.items()},
    )
    open_current = {
        vid: sid for vid, sid in current.items() if vid in open_visits and sid in open_shifts
    }
    # Warm start: each open shift's remaining visits in their current order.
    initial = {
        route.shift_id: tuple(v for v in route.visit_ids if open_current.get(v) == route.shift_id)
        for route in plan.routes
        if route.shift_id in open_shifts
    }
    open_problem = replace(
        problem,
        visits=tuple(open_visits.values()),
        shifts=tuple(open_shifts.values()),
        current_assignment=open_current,
        fixed=(),
        initial_routes={sid: vids for sid, vids in initial.items() if vids},
        previously_unassigned=frozenset(
            u.visit_id for u in plan.unassigned if u.visit_id in open_visits
        ),
        orphaned=orphan_set,
        absences={},  # the open shifts carry them as their bounds and fixed breaks
    )
    return ReplanInput(
        problem=full_problem,
        open_problem=open_problem,
        freeze=freeze,
        orphaned=tuple(orphaned),
        unassigned=tuple(unassigned),
        open_shifts=open_shifts,
    )


def closing_stop(problem: Problem, shift: Shift, last: FrozenRoute) -> Stop:
    """The END stop of a route that ends right after its frozen prefix.

    Parameters
    ----------
    problem
        Gives the travel matrix of the shift's profile.
    shift
        The shift (for its end location).
    last
        The route's frozen prefix.

    Returns
    -------
    Stop
        Travel from the prefix's last location to the shift's end location.
    """
    loc = last.resume_location
    travel = distance = 0
    end_loc = shift.end_location
    if loc is not None and end_loc is not None:
        matrix = problem.matrices[shift.profile]
        travel = int(matrix.durations[loc, end_loc])
        distance = int(matrix.distances[loc, end_loc])
    arrival = last.end_time + travel
    return Stop(
        kind=StopKind.END,
        arrival=arrival,
        start=arrival,
        end=arrival,
        location=end_loc if end_loc is not None else loc,
        travel_time=travel,
        distance=distance,
    )


def _collect(problem: Problem, plan: Plan, events: Sequence[Event]) -> _State:
    """Check every reference and fold the events, in order, into one state."""
    state = _State(
        visits={v.id: v for v in problem.visits},
        cancelled={
            u.visit_id: None
            for u in plan.unassigned
            if u.reason is UnassignedReason.CANCELLED
            and u.visit_id in {v.id for v in problem.visits}
        },
        actuals={},
        positions={},
        availability={
            s.id: subtract_all(
                [(s.start, s.end)] if s.end > s.start else [], problem.absences.get(s.id, ())
            )
            for s in problem.shifts
        },
        client_blocks=defaultdict(list),
        # Absences of earlier events, kept in the stored day (else an absence that began before
        # the carer's resume point was forgotten by the next re-plan; simulator finding).
        absences=defaultdict(list, {sid: list(iv) for sid, iv in problem.absences.items()}),
    )
    staff_shifts: dict[str, list[Shift]] = defaultdict(list)
    for s in problem.shifts:
        staff_shifts[s.staff_id].append(s)
    clients = {v.client_id for v in problem.visits}
    in_routes = {vid for r in plan.routes for vid in r.visit_ids}
    size = min((m.size for m in problem.matrices.values()), default=0)

    for event in events:
        if isinstance(event, CarerAbsent | CarerAvailable | CarerPositionReported):
            shifts = staff_shifts.get(event.staff_id)
            if not shifts:
                msg = f"staff {event.staff_id!r} has no shift in this plan"
                raise UnknownReferenceError("staff_id", msg)
            if isinstance(event, CarerAbsent):
                until = event.until_time if event.until_time is not None else _OPEN_END
                for s in shifts:
                    state.availability[s.id] = subtract(
                        state.availability[s.id], event.from_time, until
                    )
                    state.absences[s.id].append((event.from_time, until))
            elif isinstance(event, CarerAvailable):
                target = _nearest(shifts, event.from_time, event.until_time)
                state.availability[target.id] = union(
                    state.availability[target.id], event.from_time, event.until_time
                )
            else:
                _check_location("location", event.location, size)
                state.positions[event.staff_id] = Position(event.location, event.at_time)
        elif isinstance(event, VisitCancelled):
            _known_visit(state, event.visit_id)
            if event.visit_id in state.actuals:
                msg = f"visit {event.visit_id!r} has reported actual times; it cannot be cancelled"
                raise EventConflictError(msg)
            state.cancelled[event.visit_id] = None
        elif isinstance(event, UrgentVisitAdded):
            vid = event.visit.id
            if vid in state.visits:
                msg = f"visit id {vid!r} already exists in this plan"
                raise EventConflictError(msg)
            _check_location("visit.location", event.visit.location, size)
            state.visits[vid] = event.visit
            clients.add(event.visit.client_id)
        elif isinstance(event, VisitDelayed | ActualTimesReported):
            _known_visit(state, event.visit_id)
            if event.visit_id not in in_routes:
                msg = f"visit {event.visit_id!r} is not in any route; actual times need a carer"
                raise EventConflictError(msg)
            if event.visit_id in state.cancelled:
                msg = f"visit {event.visit_id!r} was cancelled; it cannot have actual times"
                raise EventConflictError(msg)
            state.actuals[event.visit_id] = Actual(event.actual_start, event.actual_end)
        elif isinstance(event, ClientUnavailable):
            if event.client_id not in clients:
                msg = f"client {event.client_id!r} has no visits in this plan"
                raise UnknownReferenceError("client_id", msg)
            state.client_blocks[event.client_id].append((event.from_time, event.until_time))
    return state


def _absent(state: _State) -> dict[str, list[Interval]]:
    """Per shift, the reported absences not given back by a later ``carer_available``."""
    out: dict[str, list[Interval]] = {}
    for sid, absences in state.absences.items():
        left = subtract_all(absences, state.availability.get(sid, []))
        if left:
            out[sid] = left
    return out


def _known_visit(state: _State, visit_id: str) -> None:
    if visit_id not in state.visits:
        msg = f"visit {visit_id!r} is not in this plan"
        raise UnknownReferenceError("visit_id", msg)


def _check_location(field: str, location: int, size: int) -> None:
    if not 0 <= location < size:
        msg = f"{field} {location} is not a location of this plan's matrices (size {size})"
        raise UnknownReferenceError(field, msg)


def _nearest(shifts: Sequence[Shift], start: int, end: int) -> Shift:
    """The shift whose working window overlaps or lies closest to ``[start, end]``."""

    def gap(s: Shift) -> int:
        return max(0, s.start - end, start - s.end)

    return min(shifts, key=gap)


def _clip(intervals: Iterable[Interval], a: int) -> list[Interval]:
    return [(max(s, a), e) for s, e in intervals if e > a]


def _assignment(plan: Plan) -> dict[str, str]:
    """Visit id -> the first shift whose route holds it."""
    out: dict[str, str] = {}
    for route in plan.routes:
        for vid in route.visit_ids:
            out.setdefault(vid, route.shift_id)
    return out


def _planned_times(plan: Plan) -> dict[str, Interval]:
    return {
        s.visit_id: (s.start, s.end)
        for r in plan.routes
        for s in r.stops
        if s.kind is StopKind.VISIT and s.visit_id is not None
    }


def _cut_windows(
    windows: Iterable[TimeWindow], blocks: Iterable[Interval], duration: int
) -> tuple[TimeWindow, ...]:
    """Windows minus the blocked ranges, keeping only pieces a visit of ``duration`` fits in."""
    pieces = subtract_all(((w.start, w.end) for w in windows), blocks)
    return tuple(TimeWindow(s, e) for s, e in pieces if e - s >= duration)


def _cut_client_blocks(visit: Visit, blocks: Sequence[Interval]) -> Visit | None:
    if not blocks:
        return visit
    windows = _cut_windows(visit.windows, blocks, visit.duration)
    return replace(visit, windows=windows) if windows else None


def _resolve_dependency(visit: Visit, freeze: Freeze, gone: set[str]) -> Visit | None:
    """Turn a dependency on a frozen visit into plain windows; drop one on a removed visit."""
    dep = visit.depends_on
    if dep is None:
        return visit
    if dep.visit_id in gone:
        return replace(visit, depends_on=None)
    fixed = next((f for f in freeze.fixed if f.visit_id == dep.visit_id), None)
    if fixed is None:
        return visit
    lo = fixed.start + dep.min_gap
    hi = _OPEN_END if dep.max_gap is None else fixed.start + dep.max_gap + visit.duration
    blocks = [(0, lo), (hi, _OPEN_END)] if hi < _OPEN_END else [(0, lo)]
    windows = _cut_windows(visit.windows, blocks, visit.duration)
    return replace(visit, windows=windows, depends_on=None) if windows else None


def _pin(visit: Visit, freeze: Freeze) -> Visit:
    """A frozen visit, with a window that admits its frozen times (an overrun may pass the end)."""
    stops = [f for f in freeze.fixed if f.visit_id == visit.id]
    start, end = min(f.start for f in stops), max(f.end for f in stops)
    if any(w.start <= start and end <= w.end for w in visit.windows):
        return visit
    return replace(visit, windows=(TimeWindow(start, end),))


def _open_shift(
    shift: Shift,
    availability: Sequence[Interval],
    frozen: FrozenRoute | None,
    now: int,
) -> Shift | None:
    """The part of ``shift`` still to plan: from the resume point, absences as fixed breaks."""
    if frozen is not None:
        resume_time, resume_loc = frozen.resume_time, frozen.resume_location
        taken = frozen.break_ids
        n_frozen = len(frozen.frozen_visit_ids)
        travelled = frozen.travel_time
    else:
        resume_time, resume_loc = max(shift.start, now), shift.start_location
        taken, n_frozen, travelled = frozenset(), 0, 0
    open_iv = _clip(availability, resume_time)
    if not open_iv or open_iv[-1][1] <= open_iv[0][0]:
        return None
    start, end = open_iv[0][0], open_iv[-1][1]
    breaks: list[Break] = []
    for br in shift.breaks:
        if br.id in taken:
            continue
        # A window piece too short for the break is no window: kept, it made VROOM refuse the
        # whole day ("fits in none of its windows") and a fresh plan at 14:35 fell back to an
        # empty day (simulator finding).
        windows = [
            TimeWindow(max(w.start, a), min(w.end, b))
            for w in br.windows
            for a, b in open_iv
            if min(w.end, b) - max(w.start, a) >= br.duration
        ]
        if windows:
            breaks.append(replace(br, windows=tuple(windows)))
    for (_, gap_start), (gap_end, _) in pairwise(open_iv):
        breaks.append(
            Break(
                id=f"{ABSENCE_BREAK}{shift.id}-{gap_start}",
                windows=(TimeWindow(gap_start, gap_end),),
                duration=gap_end - gap_start,
            )
        )
    # VROOM refuses a vehicle whose breaks are not in time order ("Inconsistent breaks").
    breaks.sort(key=lambda b: (b.windows[0].start, b.windows[-1].end))
    return replace(
        shift,
        start=start,
        end=end,
        start_location=resume_loc,
        breaks=tuple(breaks),
        max_visits=None if shift.max_visits is None else max(0, shift.max_visits - n_frozen),
        max_travel_time=(
            None if shift.max_travel_time is None else max(0, shift.max_travel_time - travelled)
        ),
    )


def _full_shift(
    problem: Problem,
    shift: Shift,
    frozen: FrozenRoute | None,
    open_shift: Shift | None,
    availability: Sequence[Interval],
) -> Shift:
    """The whole day's shift after the events (what the new plan is validated against).

    It starts when it did if anything of it is frozen, else when the carer is first available;
    it holds the breaks already taken plus those still to take.
    """
    has_prefix = frozen is not None and bool(frozen.frozen_visit_ids or frozen.break_ids)
    taken = frozen.break_ids if frozen is not None else frozenset()
    prefix_breaks = tuple(b for b in shift.breaks if b.id in taken)
    if open_shift is not None:
        start = shift.start if has_prefix or not availability else availability[0][0]
        # Nothing frozen: the route starts where the carer resumes (a reported position).
        start_location = shift.start_location if has_prefix else open_shift.start_location
        end = open_shift.end
        if has_prefix and frozen is not None:
            # Reported times may run the carer past the shift end on the way home: a fact.
            end = max(end, closing_stop(problem, shift, frozen).arrival)
        return replace(
            shift,
            start=start,
            end=end,
            breaks=prefix_breaks + open_shift.breaks,
            start_location=start_location,
        )
    if frozen is None or not has_prefix:
        # Absent for the rest of the day with nothing done: the shift stays in the day, empty
        # and without time, so that a later ``carer_available`` can give hours back (a carer
        # sick at 07:30 who is back at 13:00; simulator finding, issue 9).
        return replace(shift, end=shift.start, breaks=())
    end = max(frozen.end_time, closing_stop(problem, shift, frozen).arrival)
    return replace(shift, end=end, breaks=prefix_breaks)
