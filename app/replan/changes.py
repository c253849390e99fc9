"""What a re-plan changed, told for people: each changed visit with old and new carer and times,
its cause, and a one-line summary in plain words.

A planner reads this to phone the carers and clients concerned, so the kinds are kept apart:

- ``moved``: another carer now (``old`` and ``new`` name both, times included);
- ``retimed``: same carer, other times;
- ``added``: a visit new to the day (an urgent visit) that found a carer;
- ``cancelled``: a visit an event cancelled (it will not take place);
- ``unassigned``: a visit still to be done that has no carer now (planned before, or an urgent
  visit that could not be placed), with the reason found by checking;
- ``removed``: a visit that left the day without being cancelled or unassigned (none today:
  every visit of the day stays in the plan's routes or its unassigned list).

The cause is the event that made the change: the visit's own event (its cancellation, its urgent
insertion, its reported delay), else the sick call of its previous carer, else an urgent visit or
a delay on its carer's route, else the first event of the request.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

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
from app.scheduling.model import Plan, StopKind, UnassignedReason

#: Cause of a change, by event kind (the words a planner uses).
CAUSES = {
    "carer_absent": "sick_call",
    "carer_available": "carer_available",
    "visit_cancelled": "cancellation",
    "urgent_visit_added": "urgent_insertion",
    "visit_delayed": "delay",
    "actual_times_reported": "delay",
    "client_unavailable": "client_unavailable",
    "carer_position_reported": "position",
}


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a visit is in one version: its carers (a double visit has two) and times."""

    staff: tuple[str, ...]
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class VisitChange:
    """One visit as it changed between two versions."""

    visit_id: str
    change: str
    cause: str
    old: Placement | None
    new: Placement | None
    reason: str | None = None
    detail: str | None = None
    #: Someone must phone: the visit was about to start with a carer who is now absent.
    phone_call: bool = False


@dataclass(frozen=True, slots=True)
class Changes:
    """Every changed visit and the summary line."""

    summary: str
    visits: tuple[VisitChange, ...]

    def ids(self, change: str) -> list[str]:
        """Visit ids with this kind of change."""
        return [c.visit_id for c in self.visits if c.change == change]


def _placements(plan: Plan) -> dict[str, Placement]:
    staff: dict[str, list[str]] = {}
    times: dict[str, tuple[int, int]] = {}
    for route in plan.routes:
        for s in route.stops:
            if s.kind is StopKind.VISIT and s.visit_id is not None:
                staff.setdefault(s.visit_id, []).append(route.staff_id)
                times.setdefault(s.visit_id, (s.start, s.end))
    return {v: Placement(tuple(sorted(staff[v])), *times[v]) for v in staff}


def _event_visit(event: Event) -> str | None:
    if isinstance(event, VisitCancelled | VisitDelayed | ActualTimesReported):
        return event.visit_id
    if isinstance(event, UrgentVisitAdded):
        return event.visit.id
    return None


def describe_changes(
    old: Plan,
    new: Plan,
    events: Sequence[Event],
    *,
    released: Collection[str] = (),
    time_text: Callable[[int], str] | None = None,
) -> Changes:
    """The changes from ``old`` to ``new`` that ``events`` caused, for people.

    Parameters
    ----------
    old, new
        The previous and the new version.
    events
        The request's events, in order.
    released
        Visits about to start whose carer is absent (they need a phone call).
    time_text
        Formats seconds since midnight for the summary (default ``HH:MM``).

    Returns
    -------
    Changes
        One entry per changed visit (sorted by old or new start) and the summary.
    """
    fmt = time_text or _hhmm
    before, after = _placements(old), _placements(new)
    left = {u.visit_id: u for u in new.unassigned}
    was_left = {u.visit_id for u in old.unassigned}
    own = {vid: e for e in events if (vid := _event_visit(e)) is not None}
    absent = {e.staff_id for e in events if isinstance(e, CarerAbsent)}
    urgent_on = {
        s for e in events if isinstance(e, UrgentVisitAdded) for s in _staff_of(e.visit.id, after)
    }
    delayed_on = {
        s
        for e in events
        if isinstance(e, VisitDelayed | ActualTimesReported)
        for s in _staff_of(e.visit_id, before)
    }
    default = CAUSES[events[0].kind] if events else "replan"
    phone = set(released)

    def cause(vid: str) -> str:
        if vid in own:
            return CAUSES[own[vid].kind]
        was = set(before[vid].staff) if vid in before else set()
        if was & absent:
            return "sick_call"
        now = set(after[vid].staff) if vid in after else set()
        if (was | now) & urgent_on:
            return "urgent_insertion"
        if (was | now) & delayed_on:
            return "delay"
        return default

    out: list[VisitChange] = []
    for vid in sorted(before.keys() | after.keys() | (left.keys() - was_left)):
        b, a = before.get(vid), after.get(vid)
        u = left.get(vid)
        reason = u.reason.value if u is not None else None
        detail = u.detail if u is not None else None
        if a is None and u is not None and u.reason is UnassignedReason.CANCELLED:
            kind = "cancelled"
        elif a is None and u is not None:
            kind = "unassigned"
        elif a is None:
            kind = "removed"
        elif b is None:
            kind = "added"
        elif a.staff != b.staff:
            kind = "moved"
        elif (a.start, a.end) != (b.start, b.end):
            kind = "retimed"
        else:
            continue
        out.append(
            VisitChange(vid, kind, cause(vid), b, a, reason, detail, phone_call=vid in phone)
        )
    out.sort(key=_when)
    return Changes(_summary(events, out, fmt), tuple(out))


def _when(c: VisitChange) -> tuple[int, str]:
    where = c.old or c.new
    return (where.start if where is not None else 0, c.visit_id)


def _staff_of(vid: str, where: dict[str, Placement]) -> tuple[str, ...]:
    p = where.get(vid)
    return p.staff if p is not None else ()


def _hhmm(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def _event_words(event: Event, fmt: Callable[[int], str]) -> str:
    if isinstance(event, CarerAbsent):
        until = f" until {fmt(event.until_time)}" if event.until_time is not None else ""
        return f"{event.staff_id} absent from {fmt(event.from_time)}{until}"
    if isinstance(event, CarerAvailable):
        span = f"{fmt(event.from_time)}-{fmt(event.until_time)}"
        return f"{event.staff_id} available {span}"
    if isinstance(event, VisitCancelled):
        return f"{event.visit_id} cancelled"
    if isinstance(event, UrgentVisitAdded):
        return f"urgent visit {event.visit.id} added"
    if isinstance(event, VisitDelayed | ActualTimesReported):
        end = f" (ends {fmt(event.actual_end)})" if event.actual_end is not None else ""
        return f"{event.visit_id} started {fmt(event.actual_start)}{end}"
    if isinstance(event, ClientUnavailable):
        span = f"{fmt(event.from_time)}-{fmt(event.until_time)}"
        return f"client {event.client_id} away {span}"
    if isinstance(event, CarerPositionReported):
        return f"{event.staff_id} reported a position"
    return str(event.kind)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _summary(
    events: Sequence[Event], changes: Sequence[VisitChange], fmt: Callable[[int], str]
) -> str:
    """``"staff-002 absent from 07:30: 4 visits moved to another carer, 1 unassigned, ..."``."""
    what = "; ".join(_event_words(e, fmt) for e in events) or "re-plan"
    count = {
        k: sum(1 for c in changes if c.change == k)
        for k in ("moved", "retimed", "added", "cancelled", "unassigned", "removed")
    }
    parts = []
    if count["moved"]:
        parts.append(f"{_plural(count['moved'], 'visit')} moved to another carer")
    if count["retimed"]:
        parts.append(f"{count['retimed']} at other times")
    if count["added"]:
        parts.append(f"{count['added']} added")
    if count["cancelled"]:
        parts.append(f"{count['cancelled']} cancelled")
    if count["unassigned"]:
        parts.append(f"{count['unassigned']} without a carer")
    if count["removed"]:
        parts.append(f"{count['removed']} removed")
    calls = sum(1 for c in changes if c.phone_call)
    if calls:
        parts.append(f"{calls} to phone about now")
    return f"{what}: {', '.join(parts) if parts else 'no visit changed'}."


__all__ = ["CAUSES", "Changes", "Placement", "VisitChange", "describe_changes"]
