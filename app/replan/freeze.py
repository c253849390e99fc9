"""The frozen prefix of each route: what a re-plan must keep exactly as it is.

Rule (see docs/decisions/replan-freeze-and-stability.md): walking a route in order, a stop is
*frozen* when its carer has reported actual times for it, or when it starts before
``now + freeze_s`` after earlier stops have been moved by reported overruns. Everything up to the
last frozen stop is the route's frozen prefix (a carer's morning cannot be reordered behind them).
The carer resumes from the prefix's last location at its end, never before ``now``; a newer
reported position sets the resume time, and also the place when nothing of the route is frozen.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace

from app.domain import UNREACHABLE
from app.replan.errors import InvalidArgumentError, UnknownReferenceError
from app.scheduling.model import FixedStop, Plan, Problem, Route, Shift, Stop, StopKind, Visit

#: Default freeze horizon: stops starting within 20 minutes of now are not moved.
DEFAULT_FREEZE_S = 20 * 60


@dataclass(frozen=True, slots=True)
class Actual:
    """Reported times of one visit; ``end`` None means in progress with its planned duration."""

    start: int
    end: int | None = None


@dataclass(frozen=True, slots=True)
class Position:
    """A carer's reported position (location index) at a time."""

    location: int
    at_time: int


@dataclass(frozen=True, slots=True)
class FrozenRoute:
    """One route's frozen prefix and where its carer resumes.

    ``prefix`` holds the route's START stop and every stop up to the last frozen one, with times as
    they now stand (reported actual times and the overruns they push onwards); it is what the new
    plan must contain unchanged.
    """

    shift_id: str
    staff_id: str
    profile: str
    prefix: tuple[Stop, ...]
    resume_location: int | None
    resume_time: int
    #: Travel seconds already spent in the prefix (counts against the shift's max travel time).
    travel_time: int

    @property
    def frozen_visit_ids(self) -> tuple[str, ...]:
        """Visit ids in the prefix, in route order."""
        return tuple(s.visit_id for s in self.prefix if s.kind is StopKind.VISIT and s.visit_id)

    @property
    def break_ids(self) -> frozenset[str]:
        """Breaks already taken (or frozen) in the prefix."""
        return frozenset(s.break_id for s in self.prefix if s.kind is StopKind.BREAK and s.break_id)

    @property
    def end_time(self) -> int:
        """When the prefix's last stop ends."""
        return self.prefix[-1].end if self.prefix else self.resume_time


@dataclass(frozen=True, slots=True)
class Freeze:
    """The frozen part of a whole plan at ``now``."""

    now: int
    freeze_s: int
    routes: Mapping[str, FrozenRoute] = field(default_factory=dict)
    fixed: tuple[FixedStop, ...] = ()
    #: Visits inside the freeze horizon that were *not* frozen because their carer is absent
    #: then, or an overrun pushed them out of their window or shift: somebody must call the
    #: client (or the other carer), so the diff marks them.
    released: tuple[str, ...] = ()

    @property
    def frozen_visit_ids(self) -> frozenset[str]:
        """Every visit that stays exactly as it is."""
        return frozenset(f.visit_id for f in self.fixed)


def freeze_plan(
    problem: Problem,
    plan: Plan,
    *,
    now: int,
    freeze_s: int = DEFAULT_FREEZE_S,
    actuals: Mapping[str, Actual] | None = None,
    removed: Collection[str] = (),
    positions: Mapping[str, Position] | None = None,
    absent: Mapping[str, Sequence[tuple[int, int]]] | None = None,
) -> Freeze:
    """Find each route's frozen prefix and its carer's resume point.

    Parameters
    ----------
    problem
        The problem the plan was solved for (matrices give travel when times must be recomputed).
    plan
        The current plan.
    now
        Seconds since midnight at which the re-plan happens.
    freeze_s
        Stops starting before ``now + freeze_s`` are frozen (default 20 minutes).
    actuals
        Reported times by visit id; such visits are frozen at those times and push later stops.
    removed
        Visit ids taken out of the routes before freezing (cancelled, not started).
    positions
        Reported carer positions by staff id; used as resume point when newer than the prefix.
    absent
        When each shift's carer is absent (shift id -> intervals). A visit starting in an
        absence is never frozen, however soon it starts, unless it has reported times: an
        absent carer keeps no visit after the absence starts.

    Returns
    -------
    Freeze
        Prefix and resume point per shift id, and the frozen visits as fixed stops.
    """
    if now < 0 or freeze_s < 0:
        msg = f"now and freeze_s must be >= 0 seconds, got now={now}, freeze_s={freeze_s}"
        raise InvalidArgumentError(msg)
    actuals = actuals or {}
    positions = positions or {}
    removed_set = frozenset(removed)
    horizon = now + freeze_s
    retimed = _synchronised(problem, plan, actuals, removed_set)
    visits = {v.id: v for v in problem.visits}
    shift_end = {s.id: s.end for s in problem.shifts}
    # Stops an earlier version fixed (reported, or frozen) that began before now happened: a
    # later absence, even one stored from before, does not release them (simulator finding: a
    # reported visit moved). A fixed stop still to come is released like any other.
    happened = set(actuals) | {f.visit_id for f in problem.fixed if f.start < now}
    limit = {
        sid: min(
            _first_unworkable(stops, happened, (absent or {}).get(sid, ())),
            _first_pushed_out(stops, actuals, visits, shift_end.get(sid), now),
        )
        for sid, stops in retimed.items()
    }
    # A double visit one of whose carers is absent by then cannot happen as planned: its other
    # part is not frozen either, so both are placed again or left out together (one part was
    # kept frozen and the visit stood with 1 of 2 carers; simulator, Helsinki seed 9).
    half_gone = {
        s.visit_id
        for sid, stops in retimed.items()
        for s in stops[limit[sid] :]
        if s.kind is StopKind.VISIT and s.visit_id is not None and s.visit_id not in happened
    }
    limit = {
        sid: min(
            limit[sid],
            next((i for i, s in enumerate(stops) if s.visit_id in half_gone), len(stops)),
        )
        for sid, stops in retimed.items()
    }
    cut = {
        sid: min(_last_frozen_index(stops, actuals, horizon), limit[sid] - 1)
        for sid, stops in retimed.items()
    }
    # A double-staffed visit frozen on one route is frozen on the other too: extend to a fixpoint.
    changed = True
    while changed:
        changed = False
        frozen_ids = {
            s.visit_id
            for sid, stops in retimed.items()
            for s in stops[: cut[sid] + 1]
            if s.visit_id
        }
        for sid, stops in retimed.items():
            for i in range(cut[sid] + 1, min(len(stops), limit[sid])):
                if stops[i].visit_id in frozen_ids and stops[i].kind is StopKind.VISIT:
                    cut[sid] = i
                    changed = True
    shifts = {s.id: s for s in problem.shifts}
    routes: dict[str, FrozenRoute] = {}
    fixed: list[FixedStop] = []
    for route in plan.routes:
        prefix = retimed[route.shift_id][: cut[route.shift_id] + 1]
        shift = shifts.get(route.shift_id)
        shift_start = shift.start if shift else (prefix[0].start if prefix else 0)
        loc = next((s.location for s in reversed(prefix) if s.location is not None), None)
        # Only the START stop frozen: the carer is free from the shift's start, not from the
        # departure the old plan chose (it left late because its first visit was late).
        started = any(s.kind is not StopKind.START for s in prefix)
        end = prefix[-1].end if started else shift_start
        resume_loc, resume_time = loc, max(end, now, shift_start)
        pos = positions.get(route.staff_id)
        if pos is not None and not _reachable(problem, route.profile, pos.location, shift):
            pos = None  # a fix off her mode's roads (beside a footpath): she resumes as planned
        untouched = not any(s.kind is not StopKind.START for s in prefix)
        if pos is not None and untouched:
            # Before any frozen stop the position becomes the route's start (and the day's
            # shift starts there, see apply._full_shift).
            resume_loc, resume_time = pos.location, max(pos.at_time, now, shift_start)
        elif pos is not None and pos.at_time >= end:
            # After frozen stops a plan cannot show a detour through the position, so the
            # carer resumes from the last frozen stop, when the position was reported.
            resume_time = max(pos.at_time, now, shift_start)
        routes[route.shift_id] = FrozenRoute(
            shift_id=route.shift_id,
            staff_id=route.staff_id,
            profile=route.profile,
            prefix=prefix,
            resume_location=resume_loc,
            resume_time=resume_time,
            travel_time=sum(s.travel_time for s in prefix),
        )
        fixed.extend(
            FixedStop(visit_id=s.visit_id, shift_id=route.shift_id, start=s.start, end=s.end)
            for s in prefix
            if s.kind is StopKind.VISIT and s.visit_id
        )
    released = tuple(
        s.visit_id
        for sid, stops in retimed.items()
        for s in stops[cut[sid] + 1 :]
        if s.kind is StopKind.VISIT and s.visit_id and s.start < horizon
    )
    return Freeze(now=now, freeze_s=freeze_s, routes=routes, fixed=tuple(fixed), released=released)


def _first_pushed_out(
    stops: tuple[Stop, ...],
    actuals: Mapping[str, Actual],
    visits: Mapping[str, Visit],
    shift_end: int | None,
    now: int,
) -> int:
    """Index of the first visit still to start that an overrun pushed out of its windows or
    its shift (one under way by now stays: the carer is there).

    Such a visit is not frozen: kept, it would break a hard rule silently; released, it goes
    to a carer who can still make it, or is unassigned with a reason (and someone phones).
    """
    for i, s in enumerate(stops):
        if s.kind is not StopKind.VISIT or s.visit_id is None or s.visit_id in actuals:
            continue
        if s.start < now:
            continue
        v = visits.get(s.visit_id)
        if v is None:
            continue
        late = v.windows and not any(w.start <= s.start and s.end <= w.end for w in v.windows)
        if late or (shift_end is not None and s.end > shift_end):
            return i
    return len(stops)


def _first_unworkable(
    stops: tuple[Stop, ...],
    happened: Collection[str],
    absent: Sequence[tuple[int, int]],
) -> int:
    """Index of the first visit starting in an absence of its carer (len(stops): none).

    A visit already started when the absence begins stays (the carer is there), and so does one
    that ``happened`` (reported, or fixed by an earlier version).
    """
    for i, s in enumerate(stops):
        if s.kind is not StopKind.VISIT or (s.visit_id is not None and s.visit_id in happened):
            continue
        if any(a <= s.start < b for a, b in absent):
            return i
    return len(stops)


def _synchronised(
    problem: Problem,
    plan: Plan,
    actuals: Mapping[str, Actual],
    removed: frozenset[str],
) -> dict[str, tuple[Stop, ...]]:
    """Every route re-timed, with the two parts of a double visit starting together.

    An overrun pushes the stops behind it; when it pushes one part of a double-staffed visit,
    the partner waits for it (its start moves to the later one, and its own route is pushed on).
    Repeated until no double visit starts apart (starts only grow, so this ends).
    """
    double = {v.id for v in problem.visits if v.carers_required > 1}
    floors: dict[str, int] = {}
    for _ in range(len(plan.routes) + 1):
        retimed = {r.shift_id: _retime(problem, r, actuals, removed, floors) for r in plan.routes}
        starts: dict[str, list[int]] = {}
        for stops in retimed.values():
            for s in stops:
                if s.kind is StopKind.VISIT and s.visit_id in double:
                    starts.setdefault(s.visit_id, []).append(s.start)
        apart = {vid: max(ts) for vid, ts in starts.items() if len(set(ts)) > 1}
        if not apart:
            break
        floors.update(apart)
    return retimed


def _last_frozen_index(stops: tuple[Stop, ...], actuals: Mapping[str, Actual], horizon: int) -> int:
    """Index of the last frozen stop (0 = only the START stop)."""
    last = 0 if stops and stops[0].kind is StopKind.START else -1
    for i, s in enumerate(stops):
        if s.kind is StopKind.END:
            break
        if s.kind is StopKind.START:
            continue
        if (s.visit_id is not None and s.visit_id in actuals) or s.start < horizon:
            last = i
    return last


#: Id prefix of the fixed break that stands for a reported absence in a route.
ABSENCE_BREAK = "absence-"


def is_absence(stop: Stop) -> bool:
    """Whether ``stop`` is a reported absence shown as a fixed break."""
    return stop.kind is StopKind.BREAK and (stop.break_id or "").startswith(ABSENCE_BREAK)


def _retime(
    problem: Problem,
    route: Route,
    actuals: Mapping[str, Actual],
    removed: frozenset[str],
    floors: Mapping[str, int] | None = None,
) -> tuple[Stop, ...]:
    """Route stops after removing ``removed`` visits and applying reported times.

    ``floors`` gives visits that must not start before a time (a double visit's partner
    pushed by an overrun).

    Stops upstream of any change are returned unchanged (the same objects), so a route nobody
    touched stays byte-identical. Downstream of a change, arrival, travel, waiting and start are
    recomputed from the matrix; a stop never starts earlier than planned (clients expect that time).
    """
    matrix = problem.matrices.get(route.profile)
    out: list[Stop] = []
    dirty = False
    prev_end = 0
    prev_loc: int | None = None
    for stop in route.stops:
        if stop.kind is StopKind.VISIT and stop.visit_id in removed:
            dirty = True
            continue
        actual = actuals.get(stop.visit_id) if stop.visit_id is not None else None
        floor = (floors or {}).get(stop.visit_id or "")
        pushed = floor is not None and floor > stop.start and actual is None
        if stop.kind is StopKind.START or not (dirty or actual is not None or pushed):
            new = stop
        else:
            if matrix is None:
                msg = f"no travel matrix for profile {route.profile!r} of shift {route.shift_id}"
                raise UnknownReferenceError("profile", msg)
            travel, distance = 0, 0
            if prev_loc is not None and stop.location is not None:
                travel = int(matrix.durations[prev_loc, stop.location])
                distance = int(matrix.distances[prev_loc, stop.location])
            arrival = prev_end + travel
            length = stop.end - stop.start
            if actual is not None:
                start = actual.start
                end = actual.end if actual.end is not None else start + length
                arrival = min(arrival, start)
            else:
                start = max(stop.start, arrival, floor if floor is not None else 0)
                end = start + length
                if is_absence(stop) and start < stop.end:
                    # A reported absence ends when it was reported to: an overrun into it
                    # shortens it instead of pushing it (and the carer's return) later.
                    end = stop.end
            new = replace(
                stop,
                arrival=arrival,
                start=start,
                end=end,
                travel_time=travel,
                distance=distance,
                waiting=start - arrival,
            )
        dirty = dirty or new != stop
        out.append(new)
        prev_end = new.end
        if new.location is not None:
            prev_loc = new.location
    return tuple(out)


def _reachable(problem: Problem, profile: str, location: int, shift: Shift | None) -> bool:
    """Whether ``location`` joins ``profile``'s roads (it reaches the carer's way home)."""
    matrix = problem.matrices.get(profile)
    home = shift.end_location if shift is not None else None
    if matrix is None or home is None or location >= len(matrix.durations):
        return matrix is not None and location < len(matrix.durations)
    return bool(matrix.durations[location, home] < UNREACHABLE)
