"""The simulator's checker finds what it claims to find, on small hand-made plans."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from bench._sim_check import (
    Availability,
    DayTruth,
    TravelBook,
    changed_staff,
    check_facts,
    check_frozen,
    check_plan,
)

DAY = "2027-03-01"
BATCH: dict[str, Any] = {
    "staff": [
        {"external_id": "s1", "competences": ["level2", "level3", "insulin"]},
        {"external_id": "s2", "competences": ["level2"]},
    ],
    "visits": [
        {
            "external_id": "v1",
            "client": "c1",
            "date": DAY,
            "windows": [{"start": "08:00", "end": "09:00"}],
            "duration_minutes": 20,
            "competences": ["level3", "insulin"],
        },
        {
            "external_id": "v2",
            "client": "c2",
            "date": DAY,
            "windows": [{"start": "08:00", "end": "12:00"}],
            "duration_minutes": 30,
            "competences": ["level2"],
        },
        {
            "external_id": "v3",
            "client": "c3",
            "date": DAY,
            "windows": [{"start": "09:00", "end": "12:00"}],
            "duration_minutes": 30,
            "competences": ["level2"],
        },
    ],
    "shifts": [
        {"staff": "s1", "date": DAY, "start": "07:00", "end": "15:00", "breaks": []},
        {"staff": "s2", "date": DAY, "start": "07:00", "end": "15:00", "breaks": []},
    ],
}


def _stop(
    kind: str, visit: str | None, arrival: str, start: str, end: str, travel: int, lat: float
) -> dict[str, Any]:
    return {
        "kind": kind,
        "visit": visit,
        "client": None,
        "arrival": arrival,
        "start": start,
        "end": end,
        "travel_s": travel,
        "distance_m": travel * 5,
        "waiting_s": 0,
        "location": {"lat": lat, "lon": 9.5},
    }


def _plan() -> dict[str, Any]:
    return {
        "version": 1,
        "routes": [
            {
                "staff": "s1",
                "shift": "sh1",
                "profile": "drive",
                "stops": [
                    _stop("start", None, "07:00", "07:00", "07:00", 0, 47.0),
                    _stop("visit", "v1", "07:10", "08:00", "08:20", 600, 47.1),
                    _stop("visit", "v2", "08:30", "08:30", "09:00", 600, 47.2),
                    _stop("end", None, "09:10", "09:10", "09:10", 600, 47.0),
                ],
            },
            {
                "staff": "s2",
                "shift": "sh2",
                "profile": "bike",
                "stops": [
                    _stop("start", None, "07:00", "07:00", "07:00", 0, 47.5),
                    _stop("visit", "v3", "07:20", "09:00", "09:30", 1200, 47.3),
                    _stop("end", None, "09:50", "09:50", "09:50", 1200, 47.5),
                ],
            },
        ],
        "unassigned": [],
    }


def _codes(plan: dict[str, Any], truth: DayTruth | None = None) -> list[str]:
    truth = truth or DayTruth.from_batch(BATCH, DAY)
    return sorted(v.code for v in check_plan(plan, truth, TravelBook()))


def test_a_plan_that_keeps_every_rule_passes() -> None:
    assert _codes(_plan()) == []


@pytest.mark.parametrize(
    ("edit", "code"),
    [
        (lambda p: p["routes"][0]["stops"][1].update(start="07:40", end="08:00"), "time_window"),
        (lambda p: p["routes"][0]["stops"][2].update(end="08:50"), "duration"),
        (
            lambda p: p["routes"][0]["stops"][2].update(
                arrival="08:20", start="08:20", end="08:50"
            ),
            "travel",
        ),
        (
            lambda p: p["routes"][1]["stops"].insert(1, copy.deepcopy(p["routes"][0]["stops"][1])),
            "competence",
        ),
        (lambda p: p["routes"][1]["stops"].pop(1), "visit_missing"),
        (
            lambda p: p["unassigned"].append({"visit": "v3", "reason": "", "detail": ""}),
            "routed_and_unassigned",
        ),
        (lambda p: p["routes"][1]["stops"][2].update(start="15:30", end="15:30"), "shift_bounds"),
    ],
)
def test_each_broken_rule_is_found(edit: Any, code: str) -> None:
    plan = _plan()
    edit(plan)
    assert code in _codes(plan)


def test_event_effects_are_checked() -> None:
    truth = DayTruth.from_batch(BATCH, DAY)
    truth.cancelled["v3"] = 1
    truth.availability["s1"] = [Availability("absent", 8 * 3600 + 10 * 60, 48 * 3600, 2)]
    truth.unavailable["c1"] = [(7 * 3600, 9 * 3600, 7 * 3600, 3)]
    codes = _codes(_plan(), truth)
    # v1 started 08:00, before the absence (08:10): only v2 (08:30) is the absent carer's.
    assert codes == ["absent_carer_visit", "cancelled_in_route", "client_unavailable"]


def test_frozen_stops_and_reported_times() -> None:
    base, new = _plan(), _plan()
    new["routes"][0]["stops"][2].update(arrival="08:40", start="08:40", end="09:10")
    now = 8 * 3600
    moved = check_frozen(base, new, now=now, freeze_s=20 * 60, exempt_visits=set(), exempt_from={})
    assert moved == []  # v2 starts 08:30, after the 20-minute freeze
    moved = check_frozen(base, new, now=now, freeze_s=40 * 60, exempt_visits=set(), exempt_from={})
    assert [v.visit for v in moved] == ["v2"]
    assert changed_staff(base, new) == {"s1"}
    truth = DayTruth.from_batch(BATCH, DAY)
    truth.actuals["v1"] = (8 * 3600 + 5 * 60, 8 * 3600 + 30 * 60, "s1", 1)
    assert [v.code for v in check_facts(base, truth)] == ["frozen_changed"]
