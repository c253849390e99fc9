"""Keep the old times of stops whose order the re-plan did not change.

VROOM returns *a* feasible schedule for each route, not the one closest to yesterday's; left as
it is, a re-plan would report start moves for visits nobody touched. Given a route's order, this
module picks for each stop the feasible start closest to its previous start (new stops as early
as possible): a backward pass finds each stop's latest start that keeps every later stop and the
shift end feasible, a forward pass clamps the old start into what is left. Order, carers and
travel do not change; only waiting moves.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace

from app.scheduling.model import Problem, Route, Shift, Stop, StopKind

Range = tuple[int, int]
_ANY: tuple[Range, ...] = ((0, 10**9),)


def keep_times(
    problem: Problem,
    shift: Shift,
    route: Route,
    old_starts: Mapping[str, int],
    *,
    depart: int,
    ready: int,
    pinned: Collection[str] = (),
) -> Route:
    """Re-time ``route`` so that each stop starts as close as possible to ``old_starts``.

    Parameters
    ----------
    problem
        The problem the route was solved for (visits, breaks, matrices).
    shift
        The route's shift (working window, end location, breaks).
    route
        A feasible route from the solver.
    old_starts
        Previous start by visit id and by break id; stops without one start as early as possible.
    depart
        Departure shown on the START stop (the previous plan's, so an untouched route stays
        byte-identical even though its carer is already idle at ``ready``).
    ready
        When the carer can really leave: no stop starts before ``ready`` plus the travel to it.
    pinned
        Visit ids whose solver start must not change (double-staffed visits, dependencies).

    Returns
    -------
    Route
        Same order, same travel; start, arrival, end and waiting re-computed. The route is
        returned unchanged if no feasible re-timing is found.
    """
    stops = route.stops
    if len(stops) < 2 or stops[0].kind is not StopKind.START:
        return route
    visits = {v.id: v for v in problem.visits}
    breaks = {b.id: b for b in shift.breaks}
    matrix = problem.matrices[shift.profile]

    def travel(a: int | None, b: int | None) -> int:
        return 0 if a is None or b is None else int(matrix.durations[a, b])

    # Each inner stop: (length, start ranges, location used for travel, target start).
    inner = stops[1:-1]
    specs: list[tuple[int, tuple[Range, ...], int | None]] = []
    loc = stops[0].location
    for s in inner:
        if s.kind is StopKind.VISIT and s.visit_id in visits:
            v = visits[s.visit_id]
            length = s.end - s.start
            if s.visit_id in pinned:
                ranges: tuple[Range, ...] = ((s.start, s.start),)
            elif v.windows:
                ranges = tuple(
                    (w.start, w.end - length) for w in v.windows if w.end - w.start >= length
                )
            else:
                ranges = _ANY
            loc = s.location
        elif s.kind is StopKind.BREAK and s.break_id in breaks:
            b = breaks[s.break_id]
            length = b.duration
            ranges = tuple(
                (w.start, w.end - length) for w in b.windows if w.end - w.start >= length
            )
        else:
            return route
        specs.append((length, ranges, loc))

    # Backward: latest start of each inner stop keeping the rest (and the shift end) feasible.
    end_loc = shift.end_location if shift.end_location is not None else loc
    latest_next = shift.end - travel(loc, end_loc)  # latest moment the last inner stop may end
    latest: list[int] = [0] * len(specs)
    for i in range(len(specs) - 1, -1, -1):
        length, ranges, here = specs[i]
        cap = latest_next - length
        best = max((min(b, cap) for a, b in ranges if min(b, cap) >= a), default=None)
        if best is None:
            return route
        latest[i] = best
        prev_loc = specs[i - 1][2] if i > 0 else stops[0].location
        latest_next = best - travel(prev_loc, here)

    # Forward: clamp the target into the feasible part of each range.
    start_stop = replace(stops[0], arrival=depart, start=depart, end=depart)
    out: list[Stop] = [start_stop]
    now, here = depart, start_stop.location
    for s, (length, ranges, loc_i), hi in zip(inner, specs, latest, strict=True):
        t = travel(here, loc_i)
        arrival = now + t
        low = max(arrival, ready + t) if len(out) == 1 else arrival
        key = s.visit_id if s.kind is StopKind.VISIT else s.break_id
        target = old_starts.get(key or "", arrival)
        options = [(max(a, low), min(b, hi)) for a, b in ranges if max(a, low) <= min(b, hi)]
        if not options:
            return route
        start = min(
            (min(max(target, a), b) for a, b in options), key=lambda x: (abs(x - target), x)
        )
        out.append(
            replace(s, arrival=arrival, start=start, end=start + length, waiting=start - arrival)
        )
        now, here = start + length, loc_i
    end = stops[-1]
    t = travel(here, end.location)
    out.append(replace(end, arrival=now + t, start=now + t, end=now + t))
    return replace(route, stops=tuple(out))
