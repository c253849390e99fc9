"""Re-plan latency through the API: ``POST /v1/plans/{id}/events`` to the stored new version.

Runs the whole service in-process (ASGI test client, a fresh SQLite file, the solver pool):
imports a sample district, plans the day, then replays a morning of events (a sick call at
07:10, cancellations at 08:00 and 08:30, an urgent visit at 09:00, a 40-minute overrun at 09:30),
each based on the previous version. ``latency_s`` is the wall time of one POST, which includes
loading the version, the matrices from the warm cache, the re-solve, validation, geometry and the
commit. The last line is a JSON summary with ``api_latency_s`` per event and ``max_api_latency_s``.

    python -m bench.replan_api --visits 100 --staff 10 --seed 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.api.app import create_app
from app.planning.pool import get_region
from app.settings import Settings
from bench._load_district import district_batch
from bench._server import tenant_database

DAY = dt.date(2026, 12, 1)


def _secs(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 3600 + int(m) * 60


def _hhmm(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"


def _visits(plan: dict[str, Any]) -> list[tuple[str, str, int, int]]:
    """(visit, staff, start, end) of every planned visit stop, by start."""
    out = [
        (s["visit"], r["staff"], _secs(s["start"]), _secs(s["end"]))
        for r in plan["routes"]
        for s in r["stops"]
        if s["kind"] == "visit"
    ]
    return sorted(out, key=lambda x: x[2])


def _next_event(kind: str, at: int, plan: dict[str, Any], batch: dict[str, Any]) -> dict[str, Any]:
    """The morning's event of ``kind`` at ``at`` seconds, chosen from the current plan."""
    later = [v for v in _visits(plan) if v[2] > at + 1800]
    if kind == "carer_absent":
        staff = max({v[1] for v in later}, key=lambda s: sum(v[1] == s for v in later))
        return {"kind": kind, "staff": staff, "from_time": _hhmm(at)}
    if kind == "visit_cancelled":
        return {"kind": kind, "visit": later[len(later) // 2][0]}
    if kind == "urgent_visit_added":
        return {
            "kind": kind,
            "visit": f"urgent-{at}",
            "client": batch["clients"][0]["external_id"],
            "windows": [{"start": _hhmm(at + 1800), "end": _hhmm(at + 4 * 3600)}],
            "duration_minutes": 30,
        }
    running = next(v for v in _visits(plan) if v[2] <= at < v[3] or v[2] > at)
    return {
        "kind": "visit_delayed",
        "visit": running[0],
        "actual_start": _hhmm(running[2]),
        "actual_end": _hhmm(running[3] + 40 * 60),
    }


MORNING = (
    ("carer_absent", 7 * 3600 + 600),
    ("visit_cancelled", 8 * 3600),
    ("visit_cancelled", 8 * 3600 + 1800),
    ("urgent_visit_added", 9 * 3600),
    ("visit_delayed", 9 * 3600 + 1800),
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print one JSON line per event, then the summary."""
    ap = argparse.ArgumentParser(description="Re-plan latency through the API")
    ap.add_argument("--visits", type=int, default=100)
    ap.add_argument("--staff", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--time-limit", type=float, default=2.0, help="re-plan solver seconds")
    ap.add_argument("--base-time-limit", type=float, default=5.0, help="day plan seconds")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        settings = Settings(
            database_url=url,
            dev_mode=True,
            solver_time_limit_s=args.base_time_limit,
            replan_time_limit_s=args.time_limit,
            rate_limit_per_s=0,
        )
        key = tenant_database(url)
        headers = {"Authorization": f"Bearer {key}"}
        region = get_region(settings.region_file, settings.osm_cache_dir)
        batch = district_batch(region, DAY, visits=args.visits, staff=args.staff, seed=args.seed)
        with TestClient(create_app(settings)) as client:
            r = client.post("/v1/import", json=batch, headers=headers)
            r.raise_for_status()
            r = client.post(
                "/v1/plans?wait=600",
                json={"district": batch["districts"][0]["external_id"], "date": DAY.isoformat()},
                headers=headers,
            )
            r.raise_for_status()
            plan: dict[str, Any] = r.json()
            # The day plan ran in the same solver pool: its worker holds the region (warm).
            results = []
            for kind, at in MORNING:
                event = _next_event(kind, at, plan, batch)
                t0 = time.perf_counter()
                r = client.post(
                    f"/v1/plans/{plan['id']}/events",
                    json={"events": [event], "now": _hhmm(at)},
                    headers={**headers, "If-Match": f'"{plan["version"]}"'},
                )
                latency = time.perf_counter() - t0
                r.raise_for_status()
                plan = r.json()
                line = {
                    "kind": kind,
                    "at": _hhmm(at),
                    "version": plan["version"],
                    "api_latency_s": round(latency, 3),
                    "mutations": plan["diff"]["mutations"],
                    "affected_staff": len(plan["diff"]["affected_staff"]),
                    "orphaned": len(plan["diff"]["orphaned"]),
                    "replaced": len(plan["diff"]["replaced"]),
                }
                results.append(line)
                print(json.dumps(line))
    summary = {
        "visits": args.visits,
        "staff": args.staff,
        "seed": args.seed,
        "time_limit_s": args.time_limit,
        "events": results,
        "api_latency_s": [e["api_latency_s"] for e in results],
        "max_api_latency_s": max(e["api_latency_s"] for e in results),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
