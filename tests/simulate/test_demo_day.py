"""The README's demo at real times of the day: the issue's sick call, cancellation and return.

``make run`` seeds the demo district and plans tomorrow; a planner then reports events as the
day goes by. Each answer must be a new version (201) that the simulator's own checker finds
valid: every hard rule kept and the event's effect in the plan.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.app import create_app
from app.settings import Settings
from app.store import migrate, seed
from app.store.db import make_engine
from bench._sim_check import Availability, DayTruth, TravelBook, check_plan, secs

DAY = dt.date(2027, 3, 2)


@pytest.fixture
def demo(tmp_path: Path) -> tuple[Settings, str, dict[str, Any]]:
    """The seeded demo (SQLite in tmp_path): settings, its API key, the import batch."""
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        data_dir=tmp_path,
        dev_mode=True,
        replan_time_limit_s=1,
        rate_limit_per_s=0,
    )
    if not settings.region_file.is_file():
        pytest.skip(f"shared OSM data not found at {settings.region_file}")
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    engine.dispose()
    result = seed.seed_demo(settings, day=DAY)
    batch = seed.generated_batch(settings, DAY)
    assert result.plan_id is not None
    assert batch is not None
    return settings, result.api_key, batch


def test_the_demo_day_replans_at_real_times(demo: tuple[Settings, str, dict[str, Any]]) -> None:
    settings, key, batch = demo
    truth = DayTruth.from_batch(batch, DAY.isoformat())
    headers = {"Authorization": f"Bearer {key}"}
    steps: list[tuple[str, dict[str, Any]]] = [
        ("07:30", {"kind": "carer_absent", "staff": "staff-002"}),
        ("09:00", {"kind": "visit_cancelled", "visit": None}),
        (
            "10:15",
            {
                "kind": "carer_available",
                "staff": "staff-002",
                "from_time": "10:30",
                "until_time": "15:00",
            },
        ),
        ("13:00", {"kind": "visit_cancelled", "visit": None}),
    ]
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        r = client.get(
            f"/v1/districts/{seed.DEMO_DISTRICT}/plans/current",
            params={"date": DAY.isoformat()},
            headers=headers,
        )
        assert r.status_code == 200, r.text
        plan = r.json()
        for n, (now, event) in enumerate(steps, start=1):
            if event["kind"] == "visit_cancelled":
                event["visit"] = next(
                    s["visit"]
                    for route in plan["routes"]
                    for s in route["stops"]
                    if s["kind"] == "visit" and secs(s["start"]) > secs(now) + 3600
                )
            r = client.post(
                f"/v1/plans/{plan['id']}/events",
                json={"events": [event], "now": now},
                headers={**headers, "If-Match": f'"{plan["version"]}"'},
            )
            assert r.status_code == 201, (now, event["kind"], r.text[:300])
            plan = r.json()
            if event["kind"] == "carer_absent":
                truth.availability.setdefault(event["staff"], []).append(
                    Availability("absent", 0, 48 * 3600, n)
                )
            elif event["kind"] == "carer_available":
                truth.availability[event["staff"]].append(
                    Availability(
                        "available", secs(event["from_time"]), secs(event["until_time"]), n
                    )
                )
            else:
                truth.cancelled[event["visit"]] = n
            found = check_plan(plan, truth, TravelBook())
            assert [v.as_dict() for v in found] == [], now
