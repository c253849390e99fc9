"""``python -m bench.load``: the nurses' route and plan reads under concurrent load, over HTTP.

Creates a PostgreSQL database for the run (``--db``, dropped and created again), starts the real
server (``python -m app serve`` on 127.0.0.1, rate limits off), imports a generated district on
the Liechtenstein extract, computes a plan, then drives with ``--concurrency`` clients for
``--duration`` seconds each:

- ``route``: ``GET /v1/staff/{id}/route?date=`` over every carer of the plan;
- ``plan``: ``GET /v1/plans/{id}``;
- ``route_during_replan``: the route endpoint while a new plan of the same day is being solved.

The load generator runs on the same machine (and cores) as the server. The last line is JSON:
the route scenario's figures at the top level plus a per-scenario breakdown.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.planning.pool import get_region
from app.settings import PROJECT_ROOT, Settings
from app.store import migrate, tenants
from app.store.db import make_engine, make_sessionmaker
from bench._load_district import DISTRICT, district_batch

DAY = dt.date(2026, 12, 1)
SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True, slots=True)
class Figures:
    """One scenario's result."""

    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    duration_s: float
    concurrency: int


def fresh_database(name: str) -> str:
    """An empty database ``name`` on the local server (dropped first if it exists); its URL."""
    admin = create_engine(SERVER, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(SERVER).set(database=name).render_as_string(hide_password=False)


def seed_tenant(url: str) -> tuple[int, str]:
    """Migrate the database and create an organisation with an admin key: (org id, key)."""
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        with make_sessionmaker(engine).begin() as session:
            org = tenants.create_organisation(session, "Load", timezone="Europe/Vaduz")
            return org.id, tenants.create_api_key(session, org.id, name="bench").plaintext
    finally:
        engine.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def _server(url: str) -> Iterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DEV_MODE": "true",
        "RATE_LIMIT_PER_S": "0",
        "LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "app", "serve", "--port", str(port)],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                msg = "the server did not start"
                raise RuntimeError(msg)
            time.sleep(0.2)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


async def _drive(
    client: httpx.AsyncClient, paths: list[str], *, concurrency: int, duration: float
) -> Figures:
    latencies: list[float] = []
    errors = 0
    t_end = time.monotonic() + duration

    async def one(k: int) -> None:
        nonlocal errors
        i = k
        while time.monotonic() < t_end:
            t0 = time.perf_counter()
            try:
                r = await client.get(paths[i % len(paths)])
                if r.status_code != 200:
                    errors += 1
            except httpx.HTTPError:
                errors += 1
            latencies.append(time.perf_counter() - t0)
            i += concurrency

    t0 = time.monotonic()
    await asyncio.gather(*(one(k) for k in range(concurrency)))
    took = time.monotonic() - t0
    latencies.sort()

    def pct(q: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))], 1)

    return Figures(
        rps=round(len(latencies) / took, 1),
        p50_ms=pct(0.50),
        p99_ms=pct(0.99),
        errors=errors,
        requests=len(latencies),
        duration_s=round(took, 1),
        concurrency=concurrency,
    )


async def _run(base: str, key: str, args: argparse.Namespace) -> dict[str, Figures]:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) as c:
        region = get_region(
            Settings(dev_mode=True).region_file, Settings(dev_mode=True).osm_cache_dir
        )
        batch = district_batch(region, DAY, visits=args.visits, staff=args.staff)
        r = await c.post("/v1/import", json=batch)
        r.raise_for_status()
        body = {"district": DISTRICT, "date": DAY.isoformat(), "options": {"time_limit_s": 5}}
        r = await c.post("/v1/plans?wait=120", json=body)
        r.raise_for_status()
        plan_id = r.json()["id"]
        routes = [f"/v1/staff/{s['external_id']}/route?date={DAY}" for s in batch["staff"]]
        out: dict[str, Figures] = {}
        kw = {"concurrency": args.concurrency, "duration": args.duration}
        out["route"] = await _drive(c, routes, **kw)
        out["plan"] = await _drive(c, [f"/v1/plans/{plan_id}"], **kw)
        # A re-plan of the same day solving in the server's worker process meanwhile.
        replan = {**body, "options": {"time_limit_s": args.duration + 5}}
        r = await c.post("/v1/plans", json=replan)
        r.raise_for_status()
        await asyncio.sleep(1)
        out["route_during_replan"] = await _drive(c, routes, **kw)
        return out


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios and print one JSON line last."""
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per scenario")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--visits", type=int, default=120)
    parser.add_argument("--staff", type=int, default=12)
    parser.add_argument("--db", default="bench_load")
    args = parser.parse_args(argv)
    url = fresh_database(args.db)
    _, key = seed_tenant(url)
    with _server(url) as base:
        result = asyncio.run(_run(base, key, args))
    for name, fig in result.items():
        print(
            f"{name:>20}: {fig.rps:8.1f} req/s  p50 {fig.p50_ms:6.1f} ms  "
            f"p99 {fig.p99_ms:6.1f} ms  errors {fig.errors}"
        )
    route = result["route"]
    line: dict[str, Any] = {
        **asdict(route),
        "endpoint": "route",
        "scenarios": {name: asdict(fig) for name, fig in result.items()},
    }
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
