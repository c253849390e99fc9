"""A whole day through the real service (the short version of ``python -m bench.simulate``).

Two seeds, one small day each, on the shipped Liechtenstein extract and SQLite: the real server
runs as a subprocess, events of every kind are posted as the day goes by, and the simulator's
own checker (``bench._sim_check``, no code shared with the service) looks at every version.
The floor is the issue's: no 5xx, no invalid plan, no frozen stop changed, no event lost.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest

from app.settings import Settings
from bench import simulate

REGION = Settings(dev_mode=True).region_file


@pytest.mark.skipif(not REGION.is_file(), reason="shared Liechtenstein extract not found")
def test_a_simulated_day_keeps_the_floor(tmp_path: Path) -> None:
    findings = tmp_path / "findings.jsonl"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        simulate.main(
            [
                "--osm",
                str(REGION),
                "--visits",
                "30",
                "--staff",
                "4",
                "--seed",
                "1",
                "2",
                "--plan-time-limit",
                "2",
                "--findings",
                str(findings),
            ]
        )
    result = json.loads(out.getvalue().strip().splitlines()[-1])
    floor_categories = ("errors_5xx", "invalid_plans", "frozen_changes", "lost_events")
    failures = [
        line
        for line in findings.read_text().splitlines()
        if json.loads(line)["category"] in floor_categories
    ][:15]
    assert result["days"] == 2
    assert result["events"] >= 20, result["by_kind"]
    floor = {k: result[k] for k in ("errors_5xx", "invalid_plans", "frozen_changes", "lost_events")}
    assert floor == dict.fromkeys(floor, 0), "\n".join([json.dumps(result), *failures])
