"""The day simulator's events: a seeded timeline of a realistic day, made concrete on the plan.

:func:`timeline` draws what happens when (sick calls, cancellations, urgent visits, delays,
nurses' reports, clients out, a planners' race, a fresh plan, a restart); :func:`make_event` turns
one entry into an API event against the current plan version, or None when the day offers
nothing that fits (e.g. no visit left to cancel).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from bench._sim_check import DayTruth, hhmm, secs

H = 3600
M = 60

#: Urgent visits: every priority of the API's vocabulary once (``mandatory``, ``optional``; a
#: word outside it is a 422, tested in tests/api), then impossible ones (see :func:`_urgent`).
URGENT_PRIORITIES = ("mandatory", "optional")


@dataclass(frozen=True, slots=True)
class Step:
    """One thing that happens at ``at`` seconds since midnight."""

    at: int
    kind: str
    variant: str = ""


def timeline(rng: random.Random, truth: DayTruth, *, visits: int, staff: int) -> list[Step]:
    """A day's steps from the first shift start to the last shift end, in time order."""
    first = min(s.start for s in truth.shifts.values())
    last = max(s.end for s in truth.shifts.values())

    def at(lo: int, hi: int) -> int:
        lo, hi = max(lo, first), min(hi, last - 30 * M)
        return rng.randrange(lo, max(lo + 1, hi)) // M * M

    steps = [
        Step(first, "carer_absent", "before_shift_whole_day"),
        Step(at(11 * H, 13 * H + 30 * M), "carer_absent", "before_late_shift"),
    ]
    for _ in range(max(1, staff // 12)):
        steps.append(
            Step(at(8 * H, 19 * H), "carer_absent", rng.choice(["partial", "rest_of_day"]))
        )
    steps.append(Step(at(10 * H, 16 * H), "carer_available", "back"))
    for _ in range(max(2, visits // 30)):
        steps.append(Step(at(first, 20 * H), "visit_cancelled"))
    for p in URGENT_PRIORITIES:
        steps.append(Step(at(8 * H, 18 * H), "urgent_visit_added", p))
    for v in ("no_competence", "after_all_shifts", "window_too_soon"):
        steps.append(Step(at(8 * H, 18 * H), "urgent_visit_added", v))
    for _ in range(max(2, staff // 4)):
        steps.append(Step(at(8 * H, 21 * H), "visit_delayed"))
    for _ in range(max(3, staff // 3)):
        steps.append(Step(at(8 * H, last), "actual_times_reported"))
    for _ in range(2):
        steps.append(Step(at(8 * H, 18 * H), "client_unavailable"))
    steps.append(Step(at(9 * H, 17 * H), "race"))
    fresh_at = at(11 * H, 15 * H)
    steps.append(Step(at(12 * H, 15 * H), "restart", rng.choice(["SIGTERM", "SIGKILL"])))
    # A planner re-plans mid-day either from the clock (``now``) or the whole day around its
    # facts (no ``now``); drawn last so the earlier draws of a seed stay as they were.
    steps.append(Step(fresh_at, "fresh_plan", rng.choice(["now", "whole_day"])))
    for _ in range(max(2, staff // 8)):  # drawn after the rest, like the fresh plan's variant
        steps.append(Step(at(first, 18 * H), "carer_position_reported"))
    steps.append(Step(last, "end_of_day"))
    return sorted(steps, key=lambda s: s.at)


def _visit_stops(plan: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(r["staff"], s) for r in plan["routes"] for s in r["stops"] if s["kind"] == "visit"]


def _single(truth: DayTruth, vid: str) -> bool:
    v = truth.visits.get(vid)
    return v is not None and v.carers == 1


def make_event(
    step: Step, rng: random.Random, plan: dict[str, Any], truth: DayTruth, clients: list[str]
) -> dict[str, Any] | None:
    """The API event for ``step`` against ``plan`` at ``step.at``, or None if nothing fits."""
    now = step.at
    stops = _visit_stops(plan)
    if step.kind == "carer_absent":
        return _absent(step, rng, stops, truth)
    if step.kind == "carer_available":
        back = [
            (s, a)
            for s, lst in truth.availability.items()
            for a in lst
            if a.kind == "absent" and truth.shifts[s].end > now + 2 * H
        ]
        if not back:
            return None
        staff, _ = rng.choice(back)
        start = now + 30 * M
        return {
            "kind": "carer_available",
            "staff": staff,
            "from_time": hhmm(start),
            "until_time": hhmm(truth.shifts[staff].end),
        }
    if step.kind in ("visit_cancelled", "race"):
        later = [
            s["visit"]
            for _, s in stops
            if secs(s["start"]) >= now + 40 * M and s["visit"] not in truth.actuals
        ]
        return {"kind": "visit_cancelled", "visit": rng.choice(later)} if later else None
    if step.kind == "urgent_visit_added":
        return _urgent(step, rng, truth, clients)
    if step.kind == "visit_delayed":
        # The visit under way, or the one just done: its carer overruns it.
        cands = [
            (st, s) for st, s, _ in _between(plan, truth, now) if secs(s["end"]) + 20 * M >= now
        ]
        if not cands:
            return None
        _, s = rng.choice(cands)
        start = min(secs(s["start"]) + rng.randrange(0, 16) * M, now)
        dur = truth.visits[s["visit"]].duration
        return {
            "kind": "visit_delayed",
            "visit": s["visit"],
            "actual_start": hhmm(start),
            "actual_end": hhmm(max(start + dur + rng.randrange(10, 41) * M, now + M)),
        }
    if step.kind == "actual_times_reported":
        return _actuals(rng, plan, truth, now)
    if step.kind == "carer_position_reported":
        return _position(rng, plan, truth, now)
    if step.kind == "client_unavailable":
        later = [
            s for _, s in stops if secs(s["start"]) >= now + 60 * M and s["visit"] in truth.visits
        ]
        if not later:
            return None
        s = rng.choice(later)
        return {
            "kind": "client_unavailable",
            "client": truth.visits[s["visit"]].client,
            "from_time": hhmm(secs(s["start"]) - 15 * M),
            "until_time": hhmm(min(secs(s["end"]) + 30 * M, 24 * H - M)),
        }
    return None


def _absent(
    step: Step, rng: random.Random, stops: list[tuple[str, dict[str, Any]]], truth: DayTruth
) -> dict[str, Any] | None:
    now = step.at
    absent = {s for s, lst in truth.availability.items() if any(a.kind == "absent" for a in lst)}
    if step.variant == "before_shift_whole_day":
        cands = [s for s, sh in truth.shifts.items() if sh.start <= now + H and s not in absent]
        return {"kind": "carer_absent", "staff": rng.choice(cands)} if cands else None
    if step.variant == "before_late_shift":
        cands = [s for s, sh in truth.shifts.items() if sh.start > now + H and s not in absent]
        return {"kind": "carer_absent", "staff": rng.choice(cands)} if cands else None
    busy = sorted({st for st, s in stops if secs(s["start"]) > now + 30 * M} - absent)
    if not busy:
        return None
    staff = rng.choice(busy)
    ev: dict[str, Any] = {"kind": "carer_absent", "staff": staff, "from_time": hhmm(now)}
    if step.variant == "partial":
        ev["until_time"] = hhmm(min(now + rng.randrange(2, 5) * H, truth.shifts[staff].end))
        if secs(ev["until_time"]) <= now:
            del ev["until_time"]
    return ev


def _urgent(step: Step, rng: random.Random, truth: DayTruth, clients: list[str]) -> dict[str, Any]:
    now = step.at
    n = sum(1 for v in truth.visits.values() if v.urgent_event is not None) + 1
    ev: dict[str, Any] = {
        "kind": "urgent_visit_added",
        "visit": f"urgent-{now // M:04d}-{n}-{rng.randrange(1000):03d}",
        "client": rng.choice(clients),
        "duration_minutes": rng.choice([15, 20, 30, 45]),
        "competences": rng.choice([["level2"], ["level3", "insulin"], ["level3", "injection"]]),
    }
    start = now + 30 * M
    ev["windows"] = [{"start": hhmm(start), "end": hhmm(min(start + 3 * H, 24 * H - M))}]
    if step.variant in URGENT_PRIORITIES:
        ev["priority"] = step.variant
    elif step.variant == "no_competence":
        # No generated carer holds palliative care.
        ev["competences"] = ["palliative"]
    elif step.variant == "after_all_shifts":
        ev["windows"] = [{"start": "23:00", "end": "23:59"}]
    else:  # window_too_soon: nobody can be there within 5 minutes of now
        ev["duration_minutes"] = 10
        ev["windows"] = [{"start": hhmm(now), "end": hhmm(now + 15 * M)}]
    return ev


def _between(
    plan: dict[str, Any], truth: DayTruth, now: int
) -> list[tuple[str, dict[str, Any], int]]:
    """Per carer, the last visit started by ``now`` when the next has not started yet.

    (staff, stop, end of the stop before it); only unreported single-carer visits.
    """
    out = []
    for r in plan["routes"]:
        stops = r["stops"]
        for i, s in enumerate(stops):
            if s["kind"] != "visit" or i == 0 or secs(s["start"]) > now:
                continue
            nxt = next((x for x in stops[i + 1 :] if x["kind"] == "visit"), None)
            if nxt is not None and secs(nxt["start"]) <= now:
                continue
            if s["visit"] not in truth.actuals and _single(truth, s["visit"]):
                out.append((r["staff"], s, secs(stops[i - 1]["end"])))
    return out


def _actuals(
    rng: random.Random, plan: dict[str, Any], truth: DayTruth, now: int
) -> dict[str, Any] | None:
    """A nurse's phone reports the visit just done: start a little off the plan, end too."""
    cands = [c for c in _between(plan, truth, now) if secs(c[1]["end"]) <= now]
    if not cands:
        return None
    staff, s, prev_end = rng.choice(cands)
    start = max(secs(s["start"]) + rng.randrange(-5, 11) * M, prev_end + M)
    end = min(start + truth.visits[s["visit"]].duration + rng.randrange(-5, 11) * M, now)
    if end <= start:
        end = start + M
    return {
        "kind": "actual_times_reported",
        "visit": s["visit"],
        "actual_start": hhmm(start),
        "actual_end": hhmm(end),
        "_staff": staff,
    }


def _position(
    rng: random.Random, plan: dict[str, Any], truth: DayTruth, now: int
) -> dict[str, Any] | None:
    """A nurse's phone says where she is: near her last stop begun by now (or her start)."""
    absent = {
        s
        for s, lst in truth.availability.items()
        if any(a.kind == "absent" and a.start <= now < a.end for a in lst)
    }
    cands = []
    for r in plan["routes"]:
        shift = truth.shifts.get(r["staff"])
        if shift is None or r["staff"] in absent or not shift.start <= now < shift.end:
            continue
        begun = [s for s in r["stops"] if s.get("location") and secs(s["start"]) <= now]
        if begun and (begun[-1]["kind"] != "visit" or _single(truth, begun[-1]["visit"])):
            cands.append((r["staff"], begun[-1]["location"]))
    if not cands:
        return None
    staff, where = rng.choice(cands)
    return {
        "kind": "carer_position_reported",
        "staff": staff,
        # A phone's fix: within ~30 m of the place.
        "lat": round(where["lat"] + rng.uniform(-3e-4, 3e-4), 6),
        "lon": round(where["lon"] + rng.uniform(-3e-4, 3e-4), 6),
        "at": hhmm(now),
        "_staff": staff,
    }
