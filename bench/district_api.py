"""The ``bench.district`` day planned through the API of a real server.

Usage::

    python -m bench.district_api --visits 1000 --staff 80 --seed 1 [--time-limit S]

Starts ``python -m app serve`` on a free port with a fresh SQLite file (the service's default
settings; ``--time-limit``, ``--exploration`` and ``--threads`` are passed as the environment
variables the settings read), creates an organisation and an API key, imports the same generated
day as ``bench.district`` (same ``--visits``, ``--staff``, ``--seed``) with ``POST /v1/import``,
and plans it with ``POST /v1/plans?wait=`` (then ``GET /v1/jobs/{id}`` until done if the wait ran
out). The last line is a JSON summary with the same keys as ``bench.district``'s: ``solve_s`` is
the solver time the plan reports, ``wall_s`` the plan request's wall time (it includes the start
of the server's solver process, about 3 s, on this first job), ``matrix_s`` is not reported by
the API (null). The server is killed at the end.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from app.planning.pool import get_region
from bench._load_district import DAY, DISTRICT, district_batch
from bench._server import serve, tenant_database
from bench.district import add_day_arguments, service_settings, summary


def _plan(base: str, headers: dict[str, str], wait_s: float) -> dict[str, Any]:
    """Plan the district's day; the stored plan (follows the job past ``wait_s``)."""
    r = httpx.post(
        f"{base}/v1/plans?wait={wait_s:g}",
        json={"district": DISTRICT, "date": DAY.isoformat()},
        headers=headers,
        timeout=wait_s + 60,
    )
    r.raise_for_status()
    body: dict[str, Any] = r.json()
    if r.status_code == 201:
        return body
    while body["status"] in ("queued", "running"):
        time.sleep(1)
        r = httpx.get(f"{base}/v1/jobs/{body['id']}", headers=headers, timeout=60)
        r.raise_for_status()
        body = r.json()
    if body["status"] != "done":
        msg = f"plan job {body['id']} {body['status']}: {body.get('error')}"
        raise RuntimeError(msg)
    r = httpx.get(f"{base}{body['links']['plan']}", headers=headers, timeout=60)
    r.raise_for_status()
    plan: dict[str, Any] = r.json()
    return plan


def main(argv: list[str] | None = None) -> int:
    """Run the API district benchmark; print KPIs and a JSON line."""
    ap = argparse.ArgumentParser(description="District plan through the API of a real server")
    add_day_arguments(ap)
    args = ap.parse_args(argv)
    settings = service_settings(args)
    env = {
        "DEV_MODE": "true",
        "REGION_FILE": str(args.osm),
        "OSM_CACHE_DIR": str(args.cache_dir),
        "SOLVER_TIME_LIMIT_S": str(settings.solver_time_limit_s),
        "SOLVER_EXPLORATION_LEVEL": str(settings.solver_exploration_level),
        "SOLVER_THREADS": str(settings.solver_threads),
    }
    region = get_region(args.osm, args.cache_dir)
    batch = district_batch(region, DAY, visits=args.visits, staff=args.staff, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        key = tenant_database(url)
        headers = {"Authorization": f"Bearer {key}"}
        server_env = {**env, "DATABASE_URL": url}
        with serve(server_env, Path(tmp) / "server.log", ready="/readyz", timeout_s=120) as (
            _,
            base,
        ):
            r = httpx.post(f"{base}/v1/import", json=batch, headers=headers, timeout=300)
            r.raise_for_status()
            t0 = time.perf_counter()
            plan = _plan(base, headers, settings.plan_wait_max_s)
            wall_s = time.perf_counter() - t0
    for key_, value in plan["kpis"].items():
        print(f"  {key_:32} {value:.3f}" if isinstance(value, float) else f"  {key_:32} {value}")
    line = summary(
        "api",
        settings,
        plan["kpis"],
        visits=len(batch["visits"]),
        staff=len(batch["shifts"]),
        solve_s=round(float(plan["solve_time_s"]), 3),
        wall_s=round(wall_s, 3),
        # The service stores only plans its independent validator passed.
        violations=0,
        unassigned=len(plan["unassigned"]),
    )
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
