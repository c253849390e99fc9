"""The day simulator's own checker: plan versions read through the API against what was sent.

It shares no code with ``app/scheduling`` (``validate.py`` included) or any other part of the
service: the truth it checks against is the import batch the simulator sent and the events the
service accepted (201), and the only figures it takes from a plan are the plan's own times and
``travel_s`` per stop. Times in the API are ``"HH:MM"`` rounded down to the minute, so every
comparison that mixes a displayed time with a duration allows one minute.

Hard rules checked on every stored version (a failure makes the version *invalid*):

- ``unknown_visit``: a stop or unassigned entry names a visit the day does not have;
- ``visit_missing``: a visit of the day (not cancelled) is neither on a route nor unassigned;
- ``routed_and_unassigned``, ``duplicate_visit``: a visit is on a route and unassigned, or on one
  carer's route twice / on more routes than it needs carers;
- ``double_visit``: a two-carer visit is not on two different carers' routes at one start;
- ``competence``: the carer lacks a competence the visit needs;
- ``time_window``: a visit does not start and end inside one of its windows;
- ``duration``: a visit's end is not its start plus its duration;
- ``travel``: a stop's arrival is not the previous stop's end plus the stop's own ``travel_s``,
  or a stop starts before it is reached (overlap);
- ``travel_inconsistent``: two versions give different ``travel_s`` for the same place pair and
  travel mode;
- ``shift_bounds``: a stop lies outside the carer's shift (widened by ``carer_available``);
- ``break_window``, ``break_missing``: a break not taken in full inside its window (unless it
  follows a reported visit whose end left no window room for it: then in full right after), or
  a route whose work runs into a break window without its break (work that ends before the
  windows open, or a day that starts after they close, owes none);
- ``dependency``: a second visit's start is not within the gap its first visit requires;
- ``unassigned_without_reason``: an unassigned visit with an empty reason.

Visits whose actual times were reported are facts: they are exempt from window, travel,
duration and absence rules (a visit done five minutes early happened), but must show the
reported times.

Effects of accepted events (a failure counts the *event* as lost):

- ``cancelled_in_route``: a cancelled visit is still on a route;
- ``absent_carer_visit``: an absent carer has a visit starting after the absence starts
  (frozen or not: a carer who is not there cannot make it);
- ``client_unavailable``: a visit of a client during the hours they said they are out, unless it
  had started when they said so;
- ``urgent_missing``: an urgent visit is neither on a route nor unassigned;
- ``actual_times_ignored``: a visit with reported times does not show them (or changed carer).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

H = 3600
#: Displayed times are rounded down to the minute.
TOL = 60
#: Latest time an interval may reach: two days (night shifts).
END_OF_TIME = 48 * H

#: Violation codes that make a plan version invalid (hard rules).
HARD = frozenset(
    {
        "unknown_visit",
        "visit_missing",
        "routed_and_unassigned",
        "duplicate_visit",
        "double_visit",
        "competence",
        "time_window",
        "duration",
        "travel",
        "travel_inconsistent",
        "shift_bounds",
        "break_window",
        "break_missing",
        "dependency",
        "unassigned_without_reason",
    }
)
#: Violation codes that mean an accepted event's effect is not in the stored plan.
EFFECT = frozenset(
    {
        "cancelled_in_route",
        "absent_carer_visit",
        "client_unavailable",
        "urgent_missing",
        "actual_times_ignored",
    }
)


def secs(hhmm: str) -> int:
    """``"07:30"`` -> 27000."""
    h, m = hhmm.split(":")
    return int(h) * H + int(m) * 60


def hhmm(seconds: int) -> str:
    """27000 -> ``"07:30"`` (rounded down to the minute)."""
    return f"{seconds // H:02d}:{seconds % H // 60:02d}"


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule: its code, the visit and carer it concerns, and the event it belongs to."""

    code: str
    visit: str | None = None
    staff: str | None = None
    event: int | None = None
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (ids only, never names or addresses)."""
        out: dict[str, Any] = {"code": self.code}
        for k in ("visit", "staff", "event"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        if self.note:
            out["note"] = self.note
        return out


@dataclass(slots=True)
class VisitTruth:
    """A visit as the simulator sent it (import or urgent event)."""

    id: str
    client: str
    windows: list[tuple[int, int]]
    duration: int
    competences: frozenset[str]
    carers: int
    depends: tuple[str, int, int | None] | None = None
    urgent_event: int | None = None


@dataclass(slots=True)
class ShiftTruth:
    """A carer's shift as imported."""

    staff: str
    start: int
    end: int
    breaks: list[tuple[list[tuple[int, int]], int]]


@dataclass(slots=True)
class Availability:
    """A carer's absence (``absent``) or extra hours (``available``), in the order reported."""

    kind: str
    start: int
    end: int
    event: int


@dataclass(slots=True)
class DayTruth:
    """What the simulator knows about one day: the import and every accepted event."""

    visits: dict[str, VisitTruth]
    shifts: dict[str, ShiftTruth]
    competences: dict[str, frozenset[str]]
    cancelled: dict[str, int] = field(default_factory=dict)
    availability: dict[str, list[Availability]] = field(default_factory=dict)
    unavailable: dict[str, list[tuple[int, int, int, int]]] = field(default_factory=dict)
    actuals: dict[str, tuple[int, int | None, str, int]] = field(default_factory=dict)
    #: (from, until) in the displayed plan of visits that had started when an event was reported.
    started_at_report: dict[int, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_batch(cls, batch: dict[str, Any], day: str) -> DayTruth:
        """The truth of ``day`` from an import batch."""
        visits = {}
        for v in batch["visits"]:
            if v["date"] != day:
                continue
            dep = v.get("depends_on")
            visits[v["external_id"]] = VisitTruth(
                id=v["external_id"],
                client=v["client"],
                windows=[(secs(w["start"]), secs(w["end"])) for w in v["windows"]],
                duration=int(v["duration_minutes"]) * 60,
                competences=frozenset(v.get("competences", [])),
                carers=int(v.get("carers_required", 1)),
                depends=None
                if dep is None
                else (
                    dep["visit"],
                    int(dep["min_gap_minutes"]) * 60,
                    None if dep.get("max_gap_minutes") is None else dep["max_gap_minutes"] * 60,
                ),
            )
        shifts = {
            s["staff"]: ShiftTruth(
                staff=s["staff"],
                start=secs(s["start"]),
                end=secs(s["end"]),
                breaks=[
                    (
                        [(secs(w["start"]), secs(w["end"])) for w in b["windows"]],
                        60 * b["duration_minutes"],
                    )
                    for b in s.get("breaks", [])
                ],
            )
            for s in batch["shifts"]
            if s["date"] == day
        }
        comps = {s["external_id"]: frozenset(s.get("competences", [])) for s in batch["staff"]}
        return cls(visits=visits, shifts=shifts, competences=comps)

    # -- what the carer may do ------------------------------------------------------------------

    def allowed(self, staff: str) -> list[tuple[int, int]]:
        """Intervals the carer may work: the shift, minus absences, plus extra hours, in order."""
        sh = self.shifts.get(staff)
        out: list[tuple[int, int]] = [] if sh is None else [(sh.start, sh.end)]
        for a in self.availability.get(staff, []):
            if a.kind == "absent":
                out = _subtract(out, a.start, a.end)
            else:
                out = _merge([*out, (a.start, a.end)])
        return out

    def hull(self, staff: str) -> tuple[int, int] | None:
        """Earliest start and latest end the carer could ever have (shift and extra hours)."""
        sh = self.shifts.get(staff)
        spans = [] if sh is None else [(sh.start, sh.end)]
        spans += [(a.start, a.end) for a in self.availability.get(staff, []) if a.kind != "absent"]
        if not spans:
            return None
        return min(s for s, _ in spans), max(e for _, e in spans)

    def absent_throughout(self, staff: str, start: int, end: int) -> bool:
        """Whether the carer is absent (by the events) for all of ``[start, end)``."""
        if end <= start:
            return False
        allowed = self.allowed(staff)
        absent = [(a.start, a.end) for a in self.availability.get(staff, []) if a.kind == "absent"]
        for t in range(start, end, 60):
            if any(a <= t < b for a, b in allowed) or not any(a <= t < b for a, b in absent):
                return False
        return True

    def absence_at(self, staff: str, t: int) -> Availability | None:
        """The absence that makes ``t`` a forbidden time for the carer, if any."""
        if any(a <= t < b for a, b in self.allowed(staff)):
            return None
        return next(
            (
                a
                for a in reversed(self.availability.get(staff, []))
                if a.kind == "absent" and a.start <= t < a.end
            ),
            None,
        )


def _merge(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _subtract(spans: list[tuple[int, int]], a: int, b: int) -> list[tuple[int, int]]:
    out = []
    for s, e in spans:
        if e <= a or s >= b:
            out.append((s, e))
            continue
        if s < a:
            out.append((s, a))
        if e > b:
            out.append((b, e))
    return out


# -- one plan version --------------------------------------------------------------------------


def _visit_stops(plan: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(r["staff"], s) for r in plan["routes"] for s in r["stops"] if s["kind"] == "visit"]


def _loc_key(stop: dict[str, Any]) -> str:
    loc = stop.get("location")
    return "none" if loc is None else f"{loc['lat']:.6f},{loc['lon']:.6f}"


@dataclass(slots=True)
class TravelBook:
    """``travel_s`` seen per (from place, to place, mode) over every version of a run."""

    seen: dict[tuple[str, str, str], int] = field(default_factory=dict)


def check_plan(plan: dict[str, Any], truth: DayTruth, book: TravelBook) -> list[Violation]:
    """Every hard rule and every accepted event's effect on one stored plan version."""
    out: list[Violation] = []
    routed: dict[str, list[tuple[str, int]]] = {}
    for route in plan["routes"]:
        out += _check_route(route, truth, book, routed)
    unassigned = {u["visit"]: u for u in plan["unassigned"]}
    for vid, u in unassigned.items():
        if vid not in truth.visits:
            out.append(Violation("unknown_visit", vid, note="unassigned"))
        elif not str(u.get("reason") or "").strip():
            out.append(Violation("unassigned_without_reason", vid))
        if vid in routed:
            out.append(Violation("routed_and_unassigned", vid))
    for vid, v in truth.visits.items():
        places = routed.get(vid, [])
        if vid in truth.cancelled:
            for staff, _ in places:
                out.append(Violation("cancelled_in_route", vid, staff, truth.cancelled[vid]))
            continue
        if not places and vid not in unassigned:
            code = "urgent_missing" if v.urgent_event is not None else "visit_missing"
            out.append(Violation(code, vid, event=v.urgent_event))
            continue
        if not places:
            continue
        staff_set = {s for s, _ in places}
        if len(staff_set) < len(places) or len(places) > v.carers:
            out.append(Violation("duplicate_visit", vid, note=f"{len(places)} stops"))
        elif v.carers == 2 and (len(places) != 2 or abs(places[0][1] - places[1][1]) >= TOL):
            out.append(Violation("double_visit", vid, note=f"{len(places)} of 2 carers"))
        out += _check_dependency(v, places, routed, truth)
    return out


def _check_dependency(
    v: VisitTruth,
    places: list[tuple[str, int]],
    routed: dict[str, list[tuple[str, int]]],
    truth: DayTruth,
) -> list[Violation]:
    if v.depends is None:
        return []
    first, lo, hi = v.depends
    before = routed.get(first)
    if not before or first in truth.cancelled or {first, v.id} & set(truth.actuals):
        return []
    gap = places[0][1] - before[0][1]
    if gap < lo - TOL or (hi is not None and gap > hi + TOL):
        return [Violation("dependency", v.id, note=f"gap {gap // 60} min")]
    return []


def _check_route(
    route: dict[str, Any],
    truth: DayTruth,
    book: TravelBook,
    routed: dict[str, list[tuple[str, int]]],
) -> list[Violation]:
    staff = route["staff"]
    out: list[Violation] = []
    comps = truth.competences.get(staff, frozenset())
    hull = truth.hull(staff)
    shift = truth.shifts.get(staff)
    prev: dict[str, Any] | None = None
    # Reported times are facts: a carer who overran past the shift end did so.
    fact_ends = [secs(s["end"]) for s in route["stops"] if s.get("visit") in truth.actuals]
    if hull is not None and fact_ends and route["stops"]:
        home = int(route["stops"][-1]["travel_s"])
        hull = (hull[0], max(hull[1], max(fact_ends) + home))
    breaks_taken = 0
    works = False
    last_work = 0
    day_starts = secs(route["stops"][0]["start"]) if route["stops"] else 0
    for stop in route["stops"]:
        start, end, arrival = secs(stop["start"]), secs(stop["end"]), secs(stop["arrival"])
        vid = stop.get("visit")
        fact = vid in truth.actuals
        late = end > hull[1] + TOL if hull is not None else False
        if hull is not None and (start < hull[0] or (late and not fact)):
            out.append(
                Violation("shift_bounds", vid, staff, note=f"{stop['kind']} {stop['start']}")
            )
        if prev is not None:
            key = (_loc_key(prev), _loc_key(stop), str(route.get("profile")))
            travel = int(stop["travel_s"])
            if key[0] != "none" and key[1] != "none":
                seen = book.seen.setdefault(key, travel)
                if seen != travel:
                    out.append(
                        Violation("travel_inconsistent", vid, staff, note=f"{seen} vs {travel} s")
                    )
            if not fact:
                expect = secs(prev["end"]) + travel
                if abs(arrival - expect) >= TOL or start < arrival or start < secs(prev["end"]):
                    out.append(Violation("travel", vid, staff, note=f"at {stop['start']}"))
        before, prev = prev, stop
        if stop["kind"] == "break":
            if truth.absent_throughout(staff, start, end):
                continue  # the carer's reported absence, shown as a fixed break: no lunch
            breaks_taken += 1
            if shift is not None and shift.breaks:
                ok = any(
                    ws <= start and end <= we + TOL and end - start >= dur - TOL
                    for windows, dur in shift.breaks
                    for ws, we in windows
                )
                # A reported overrun that leaves no window room for the break: the carer takes
                # it in full right after that visit (the overrun is a fact, not the planner's).
                fact_end = (
                    secs(before["end"])
                    if before is not None and before.get("visit") in truth.actuals
                    else None
                )
                forced = fact_end is not None and any(
                    abs(start - fact_end) < TOL
                    and end - start >= dur - TOL
                    and all(max(fact_end, ws) + dur > we + TOL for ws, we in windows)
                    for windows, dur in shift.breaks
                )
                if not ok and not forced:
                    out.append(Violation("break_window", None, staff, note=stop["start"]))
            continue
        if stop["kind"] != "visit" or vid is None:
            continue
        works = True
        last_work = max(last_work, end)
        v = truth.visits.get(vid)
        if v is None:
            out.append(Violation("unknown_visit", vid, staff))
            continue
        routed.setdefault(vid, []).append((staff, start))
        if not v.competences <= comps:
            missing = ",".join(sorted(v.competences - comps))
            out.append(Violation("competence", vid, staff, note=missing))
        absence = truth.absence_at(staff, start)
        # A visit the nurse reported doing is a fact, absence or not.
        if absence is not None and not fact:
            out.append(Violation("absent_carer_visit", vid, staff, absence.event, stop["start"]))
        for a, b, reported, ev in truth.unavailable.get(v.client, []):
            if start < b and end > a and not (start < reported or fact):
                out.append(Violation("client_unavailable", vid, staff, ev, stop["start"]))
        if fact:
            a_start, a_end, a_staff, ev = truth.actuals[vid]
            shown_ok = start == a_start - a_start % 60 and (
                a_end is None or end == a_end - a_end % 60
            )
            if not shown_ok or (a_staff != staff and v.carers == 1):
                out.append(Violation("actual_times_ignored", vid, staff, ev, stop["start"]))
            continue
        if not any(
            ws <= start + TOL - 1 and start + v.duration <= we + TOL for ws, we in v.windows
        ):
            shown = ",".join(f"{hhmm(a)}-{hhmm(b)}" for a, b in v.windows)
            note = f"{stop['start']}+{v.duration // 60}min in {shown}"
            out.append(Violation("time_window", vid, staff, note=note))
        if abs(end - start - v.duration) >= TOL:
            out.append(Violation("duration", vid, staff, note=f"{(end - start) // 60} min"))
    plain = shift is not None and not truth.availability.get(staff)
    # A carer whose work ends before any break window opens goes home without one; one whose
    # day starts after every window has closed (called in late) was not working through it.
    windows_all = [w for windows, _d in shift.breaks for w in windows] if shift else []
    opens = min((ws for ws, _we in windows_all), default=0)
    closes = max((we for _ws, we in windows_all), default=END_OF_TIME)
    if (
        works
        and plain
        and shift is not None
        and shift.breaks
        and breaks_taken == 0
        and last_work > opens
        and day_starts < closes
    ):
        out.append(Violation("break_missing", None, staff))
    return out


# -- between two versions ----------------------------------------------------------------------


def stop_signature(route: dict[str, Any]) -> list[tuple[Any, ...]]:
    """What a carer sees of their route in a plan version (the route endpoint's content)."""
    return [
        (
            s["kind"],
            s.get("visit"),
            s["arrival"],
            s["start"],
            s["end"],
            s["travel_s"],
            s["distance_m"],
            s["waiting_s"],
        )
        for s in route["stops"]
    ]


def routes_by_staff(plan: dict[str, Any]) -> dict[str, list[tuple[Any, ...]]]:
    """Each carer's route signature (a carer with two shifts gets them concatenated)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    for r in plan["routes"]:
        out.setdefault(r["staff"], []).extend(stop_signature(r))
    return out


def changed_staff(base: dict[str, Any], new: dict[str, Any]) -> set[str]:
    """Carers whose route content differs between two versions."""
    a, b = routes_by_staff(base), routes_by_staff(new)
    return {s for s in set(a) | set(b) if a.get(s) != b.get(s)}


def check_frozen(
    base: dict[str, Any],
    new: dict[str, Any],
    *,
    now: int,
    freeze_s: int,
    exempt_visits: set[str],
    exempt_from: dict[str, int],
) -> list[Violation]:
    """Stops that were done, under way or within the freeze of ``now`` must stay as they were.

    ``exempt_visits`` (cancelled by this request) and each carer's stops from ``exempt_from[staff]``
    on (an absence starts, or reported times push the rest of the route) may change.
    """
    horizon = now + freeze_s
    new_stops: dict[tuple[str, str], dict[str, Any]] = {
        (staff, s["visit"]): s for staff, s in _visit_stops(new)
    }
    out = []
    for staff, s in _visit_stops(base):
        start = secs(s["start"])
        if start >= horizon or s["visit"] in exempt_visits:
            continue
        if staff in exempt_from and start >= exempt_from[staff]:
            continue
        now_stop = new_stops.get((staff, s["visit"]))
        if now_stop is None:
            out.append(Violation("frozen_changed", s["visit"], staff, note="left the route"))
        elif (now_stop["start"], now_stop["end"]) != (s["start"], s["end"]):
            note = f"{s['start']}-{s['end']} -> {now_stop['start']}-{now_stop['end']}"
            out.append(Violation("frozen_changed", s["visit"], staff, note=note))
    return out


def check_facts(plan: dict[str, Any], truth: DayTruth) -> list[Violation]:
    """Reported times kept in a plan that the service computed without a ``now`` (a fresh plan)."""
    where = {s["visit"]: (staff, s) for staff, s in _visit_stops(plan)}
    out = []
    for vid, (a_start, a_end, staff, ev) in truth.actuals.items():
        if vid in truth.cancelled:
            continue
        got = where.get(vid)
        if got is None:
            out.append(Violation("frozen_changed", vid, staff, ev, "reported visit not on a route"))
            continue
        g_staff, s = got
        if g_staff != staff and truth.visits[vid].carers == 1:
            out.append(Violation("frozen_changed", vid, staff, ev, "reported visit changed carer"))
        elif secs(s["start"]) != a_start - a_start % 60 or (
            a_end is not None and secs(s["end"]) != a_end - a_end % 60
        ):
            out.append(Violation("frozen_changed", vid, staff, ev, "reported times not kept"))
    return out
