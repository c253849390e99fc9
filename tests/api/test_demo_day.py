"""The README's demo, walked through a real day of events over the API (issue 9).

The demo district is seeded in-process exactly as ``python -m app serve --demo`` seeds it, then
events of every kind are posted at real times of day, each based on the version before. Every
answer must be 201 with a new version that this file's own checker accepts (it shares no code
with ``app.scheduling.validate``): windows, shifts, competences, double visits, every visit
accounted for once, frozen stops unchanged, absent carers without visits.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.api.app import create_app
from app.routing import Region
from app.settings import Settings
from app.store import seed

DAY = dt.date(2026, 12, 1)
FREEZE_MIN = 20
#: Rounding of times to whole minutes in the API, in minutes.
SLACK = 1


def minutes(hhmm: str) -> int:
    """``"10:30"`` -> minutes since midnight."""
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def hhmm(total: int) -> str:
    """Minutes since midnight -> ``"HH:MM"``."""
    return f"{total // 60:02d}:{total % 60:02d}"


@dataclass
class Day:
    """What the checker knows of the day: the seeded batch plus every event sent so far."""

    batch: dict[str, Any]
    visits: dict[str, dict[str, Any]] = field(default_factory=dict)
    staff: dict[str, set[str]] = field(default_factory=dict)
    shifts: dict[str, tuple[int, int]] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)
    #: staff -> minute from which they are absent (the rest of the day).
    absent: dict[str, int] = field(default_factory=dict)
    #: visits with reported times (they may overrun a window: they are facts).
    reported: set[str] = field(default_factory=set)
    #: (carer, visit) of an overrun just reported: the carer's later stops may be pushed.
    overrun: tuple[str, str] | None = None

    def __post_init__(self) -> None:
        self.visits = {v["external_id"]: dict(v) for v in self.batch["visits"]}
        self.staff = {s["external_id"]: set(s["competences"]) for s in self.batch["staff"]}
        self.shifts = {
            s["staff"]: (minutes(s["start"]), minutes(s["end"])) for s in self.batch["shifts"]
        }


def pushed_by_overrun(day: Day, old: dict[str, Any]) -> set[str]:
    """Stops behind an overrun just reported on its carer's route.

    They may move (pushed past the horizon, or out of their window: then they are released),
    so the frozen check skips them; the window check too for those pushed into the past
    (history: the carer did them late), not for those still to come.
    """
    if day.overrun is None:
        return set()
    staff, vid = day.overrun
    day.overrun = None
    out: set[str] = set()
    for route in old["routes"]:
        if route["staff"] != staff:
            continue
        ids = [s["visit"] for s in route["stops"] if s["kind"] == "visit"]
        if vid in ids:
            out.update(ids[ids.index(vid) + 1 :])
    return out


def check_version(day: Day, old: dict[str, Any], new: dict[str, Any], now: int) -> list[str]:
    """Every rule the new version must keep, as a list of findings (empty: valid)."""
    bad: list[str] = []
    pushed = pushed_by_overrun(day, old)
    if new["version"] != old["version"] + 1 or new["based_on_version"] != old["version"]:
        bad.append(f"version {new['version']} does not follow {old['version']}")
    carers: dict[str, list[str]] = {}
    starts: dict[str, set[int]] = {}
    for route in new["routes"]:
        staff = route["staff"]
        first, last = day.shifts.get(staff, (0, 24 * 60))
        prev_end = None
        for stop in route["stops"]:
            start, end, arrival = minutes(stop["start"]), minutes(stop["end"]), stop["arrival"]
            if start < minutes(arrival):
                bad.append(f"{staff}: a stop starts before it is reached")
            if prev_end is not None and start + SLACK < prev_end:
                bad.append(f"{staff}: stops overlap at {stop['start']}")
            prev_end = end
            if stop["kind"] != "visit":
                continue
            vid = stop["visit"]
            carers.setdefault(vid, []).append(staff)
            starts.setdefault(vid, set()).add(start)
            visit = day.visits.get(vid)
            if visit is None:
                bad.append(f"{vid}: planned but not part of the day")
                continue
            if vid in pushed and start < now:
                day.reported.add(vid)  # pushed into the past: history, as the carer did it
            if vid in day.reported:
                continue
            if abs((end - start) - visit["duration_minutes"]) > SLACK:
                bad.append(f"{vid}: lasts {end - start} min, not {visit['duration_minutes']}")
            if not any(
                minutes(w["start"]) - SLACK <= start and end <= minutes(w["end"]) + SLACK
                for w in visit["windows"]
            ):
                bad.append(f"{vid}: {stop['start']}-{stop['end']} outside its windows")
            if start < first - SLACK or end > last + SLACK:
                bad.append(f"{vid}: outside the shift of {staff}")
            if not set(visit["competences"]) <= day.staff[staff]:
                bad.append(f"{vid}: {staff} lacks a competence")
            if staff in day.absent and start >= day.absent[staff]:
                bad.append(f"{vid}: {staff} is absent from {hhmm(day.absent[staff])}")
    left = {u["visit"]: u for u in new["unassigned"]}
    for vid, visit in day.visits.items():
        placed = carers.get(vid, [])
        if placed and vid in left:
            bad.append(f"{vid}: both planned and unassigned")
        elif placed:
            need = visit.get("carers_required", 1)
            if len(placed) != need or len(set(placed)) != need or len(starts[vid]) != 1:
                bad.append(f"{vid}: needs {need} carers at one time, has {placed}")
            if vid in day.cancelled:
                bad.append(f"{vid}: cancelled but still planned")
        elif vid not in left:
            bad.append(f"{vid}: neither planned nor unassigned")
        elif not left[vid]["reason"] or not left[vid]["detail"]:
            bad.append(f"{vid}: unassigned without a reason")
        elif vid in day.cancelled and left[vid]["reason"] != "cancelled":
            bad.append(f"{vid}: cancelled but reported {left[vid]['reason']}")
    horizon = now + FREEZE_MIN
    before = {
        (s["visit"], r["staff"]): (s["start"], s["end"])
        for r in old["routes"]
        for s in r["stops"]
        if s["kind"] == "visit"
    }
    after = {
        (s["visit"], r["staff"]): (s["start"], s["end"])
        for r in new["routes"]
        for s in r["stops"]
        if s["kind"] == "visit"
    }
    for (vid, staff), times in before.items():
        if vid in pushed:
            continue
        if minutes(times[0]) >= horizon or vid in day.cancelled or vid in day.reported:
            continue
        if staff in day.absent and minutes(times[0]) >= day.absent[staff]:
            continue
        if after.get((vid, staff)) != times:
            bad.append(f"{vid}: frozen at {times} with {staff}, now {after.get((vid, staff))}")
    return bad


@pytest.fixture
def settings(db: Engine, database_url: str, tmp_path: Path) -> Settings:
    """The service's settings, a short re-plan budget, the demo's files in a temporary dir."""
    return Settings(
        database_url=database_url,
        dev_mode=True,
        data_dir=tmp_path,
        region_warmup=False,
        replan_time_limit_s=1,
    )


def visit_stops(plan: dict[str, Any]) -> list[tuple[str, str, int, int]]:
    """(visit, staff, start, end) of every visit stop, in time order."""
    out = [
        (s["visit"], r["staff"], minutes(s["start"]), minutes(s["end"]))
        for r in plan["routes"]
        for s in r["stops"]
        if s["kind"] == "visit"
    ]
    return sorted(out, key=lambda x: x[2])


def event_for(kind: str, day: Day, plan: dict[str, Any], now: int, step: int) -> dict[str, Any]:
    """A realistic event of ``kind`` at ``now`` on the current version ``plan``."""
    stops = visit_stops(plan)
    later = [s for s in stops if s[2] >= now + FREEZE_MIN + 30]
    working = sorted({s[1] for s in stops if s[2] >= now} - set(day.absent))
    if kind == "carer_absent":
        staff = working[step % len(working)]
        day.absent[staff] = now
        return {"kind": kind, "staff": staff, "from_time": hhmm(now)}
    if kind == "visit_cancelled":
        vid = later[step % len(later)][0]
        day.cancelled.add(vid)
        return {"kind": kind, "visit": vid}
    if kind == "carer_available":
        resting = sorted(set(day.shifts) - set(day.absent))
        staff = resting[step % len(resting)]
        first, last = day.shifts[staff]
        until = min(max(last, now) + 120, 23 * 60)
        day.shifts[staff] = (min(first, now), until)
        return {"kind": kind, "staff": staff, "from_time": hhmm(now), "until_time": hhmm(until)}
    if kind == "urgent_visit_added":
        vid = f"urgent-{step}@{DAY}"
        client = day.batch["clients"][step % len(day.batch["clients"])]["external_id"]
        windows = [{"start": hhmm(now + 30), "end": hhmm(min(now + 240, 23 * 60))}]
        day.visits[vid] = {
            "external_id": vid,
            "windows": windows,
            "duration_minutes": 20,
            "competences": [],
            "carers_required": 1,
        }
        return {
            "kind": kind,
            "visit": vid,
            "client": client,
            "windows": windows,
            "duration_minutes": 20,
        }
    if kind == "client_unavailable":
        vid = later[step % len(later)][0]
        client = next(v["client"] for v in day.batch["visits"] if v["external_id"] == vid)
        return {
            "kind": kind,
            "client": client,
            "from_time": hhmm(now + 30),
            "until_time": hhmm(min(now + 120, 23 * 60)),
        }
    # visit_delayed / actual_times_reported: a visit under way or done reports its times.
    started = [s for s in stops if s[2] <= now and s[1] not in day.absent]
    vid, _staff, start, end = started[-(step % len(started)) - 1]
    day.reported.add(vid)
    overrun = 25 if kind == "visit_delayed" else 0
    day.overrun = (_staff, vid) if overrun else None
    return {
        "kind": kind,
        "visit": vid,
        "actual_start": hhmm(start),
        "actual_end": hhmm(max(end + overrun, start + 1)),
    }


#: A real day: (time of day, event kinds posted then, one request each).
DAY_OF_EVENTS = [
    ("07:30", ("carer_absent", "visit_cancelled")),
    ("08:15", ("carer_available", "urgent_visit_added")),
    ("09:00", ("visit_delayed", "client_unavailable")),
    ("10:15", ("actual_times_reported", "carer_absent")),
    ("11:30", ("visit_cancelled", "urgent_visit_added")),
    ("13:00", ("client_unavailable", "carer_available")),
    ("14:30", ("visit_delayed", "actual_times_reported")),
    ("16:00", ("urgent_visit_added", "visit_cancelled")),
]


def test_the_demo_day_replans_at_every_time_of_day(settings: Settings, region: Region) -> None:
    demo = seed.seed_demo(settings, day=DAY)
    assert demo.plan_id is not None, demo.summary
    day = Day(seed.generated_batch(settings, DAY) or {})
    headers = {"X-API-Key": demo.api_key}
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        plan = client.get(f"/v1/plans/{demo.plan_id}", headers=headers).json()
        assert check_version(day, {**plan, "version": 0}, {**plan, "based_on_version": 0}, 0) == []
        step = 0
        for at, kinds in DAY_OF_EVENTS:
            now = minutes(at)
            for kind in kinds:
                step += 1
                event = event_for(kind, day, plan, now, step)
                r = client.post(
                    f"/v1/plans/{plan['id']}/events",
                    json={"now": at, "events": [event]},
                    headers={**headers, "If-Match": f'"{plan["version"]}"'},
                )
                assert r.status_code == 201, (at, event, r.text)
                new = r.json()
                assert check_version(day, plan, new, now) == [], (at, event)
                if kind == "carer_absent":  # visits about to start: someone must phone
                    soon = {
                        vid
                        for vid, staff, start, _end in visit_stops(plan)
                        if staff == event["staff"] and now <= start < now + FREEZE_MIN
                    }
                    assert soon <= set(new["diff"]["phone_calls"]), (at, event)
                assert r.headers["etag"] == f'"{new["version"]}"'
                plan = new
        assert plan["version"] == 1 + sum(len(k) for _, k in DAY_OF_EVENTS)
