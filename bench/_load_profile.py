"""``python -m bench._load_profile``: CPU cost of one route request, in process, without HTTP.

Seeds a PostgreSQL database like ``bench.load`` (fresh ``--db``, generated district, one plan),
then sends ``--requests`` requests straight into the ASGI app (no socket, no HTTP parser, no
client), one after another on one event loop, and reports per request: the API process' CPU
time (all its threads: event loop and thread pool), the wall time and the SQL statements sent.
The database server's CPU is not included; the statement count stands in for it.

Cases: ``route`` (200 with body, cycling over the carers), ``route_304`` (``If-None-Match``
with the current ETag), ``route_nurse`` (a nurse's sign-in token on their own route) and
``plan`` (``GET /v1/plans/{id}``), and ``healthz`` as the floor of the middleware, routing and
thread-pool hop every request pays. ``--profile CASE`` prints the top of a cProfile of that case.
The last line is JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import pstats
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import event
from starlette.types import Message

from app.api import security
from app.api.app import create_app
from app.planning.pool import get_region
from app.settings import Settings
from app.store import users
from app.store.db import make_sessionmaker
from app.store.models import Role
from bench._load_district import DISTRICT, district_batch
from bench.load import DAY, fresh_database, seed_tenant

NURSE_PASSWORD = "bench-nurse-password-1"


@dataclass(frozen=True, slots=True)
class Cost:
    """One case's per-request figures."""

    requests: int
    cpu_us: float
    wall_us: float
    sql_per_request: float
    status: int


class _Counter:
    """Counts statements an engine sends."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self, *_args: Any, **_kw: Any) -> None:
        self.n += 1


async def _call(app: FastAPI, path: str, headers: list[tuple[bytes, bytes]]) -> int:
    raw_path, _, query = path.partition("?")
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    status = 0
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    await app(scope, receive, send)
    return status


def _cycle(paths: list[str], n: int) -> Iterator[str]:
    for i in range(n):
        yield paths[i % len(paths)]


async def _measure(
    app: FastAPI, counter: _Counter, paths: list[str], headers: list[tuple[bytes, bytes]], n: int
) -> Cost:
    for p in paths[:20]:  # warm caches and the connection pool
        await _call(app, p, headers)
    statuses: set[int] = set()
    before_sql = counter.n
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for p in _cycle(paths, n):
        statuses.add(await _call(app, p, headers))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    if len(statuses) != 1:
        msg = f"mixed statuses {sorted(statuses)}"
        raise RuntimeError(msg)
    return Cost(
        requests=n,
        cpu_us=round(1e6 * cpu / n, 1),
        wall_us=round(1e6 * wall / n, 1),
        sql_per_request=round((counter.n - before_sql) / n, 2),
        status=statuses.pop(),
    )


def _seed(
    app: FastAPI, org_id: int, key: str, settings: Settings, args: argparse.Namespace
) -> dict[str, Any]:
    region = get_region(settings.region_file, settings.osm_cache_dir)
    batch = district_batch(region, DAY, visits=args.visits, staff=args.staff)
    auth = {"Authorization": f"Bearer {key}"}
    with TestClient(app) as c:
        c.post("/v1/import", json=batch, headers=auth).raise_for_status()
        body = {"district": DISTRICT, "date": DAY.isoformat(), "options": {"time_limit_s": 3}}
        r = c.post("/v1/plans?wait=120", json=body, headers=auth)
        r.raise_for_status()
        plan: dict[str, Any] = r.json()
        nurse_staff = next(rt["staff"] for rt in plan["routes"] if rt["stops"])
        etag = c.get(f"/v1/staff/{nurse_staff}/route?date={DAY}", headers=auth).headers["etag"]
    with make_sessionmaker(app.state.engine).begin() as session:
        user = users.create_user(
            session,
            org_id,
            email="nurse@bench.invalid",
            role=Role.NURSE,
            password=NURSE_PASSWORD,
            staff=nurse_staff,
        )
        token, _ = security.issue_token(settings, user)
    return {
        "plan_id": plan["id"],
        "staff": [s["external_id"] for s in batch["staff"]],
        "nurse_staff": nurse_staff,
        "nurse_token": token,
        "etag": etag,
    }


def main(argv: list[str] | None = None) -> int:
    """Seed, measure every case, print a table and one JSON line."""
    parser = argparse.ArgumentParser(prog="python -m bench._load_profile", description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--visits", type=int, default=120)
    parser.add_argument("--staff", type=int, default=12)
    parser.add_argument("--db", default="bench_load_profile")
    parser.add_argument("--profile", default=None, help="cProfile this case and print the top")
    parser.add_argument("--cases", nargs="*", default=None, help="only these cases")
    args = parser.parse_args(argv)
    url = fresh_database(args.db)
    org_id, key = seed_tenant(url)
    settings = Settings(database_url=url, dev_mode=True, rate_limit_per_s=0, log_level="WARNING")
    app = create_app(settings)
    seeded = _seed(app, org_id, key, settings, args)
    counter = _Counter()
    event.listen(app.state.engine, "before_cursor_execute", counter)
    api = [(b"authorization", f"Bearer {key}".encode())]
    nurse = [(b"authorization", f"Bearer {seeded['nurse_token']}".encode())]
    routes = [f"/v1/staff/{s}/route?date={DAY}" for s in seeded["staff"]]
    own = [f"/v1/staff/{seeded['nurse_staff']}/route?date={DAY}"]
    cases: dict[str, tuple[list[str], list[tuple[bytes, bytes]]]] = {
        "route": (routes, api),
        "route_304": (own, [*api, (b"if-none-match", seeded["etag"].encode())]),
        "route_nurse": (own, nurse),
        "plan": ([f"/v1/plans/{seeded['plan_id']}"], api),
        # The framework's floor: middleware, routing and one sync handler, no auth, no SQL.
        "healthz": (["/healthz"], []),
    }

    async def run() -> dict[str, Cost]:
        out: dict[str, Cost] = {}
        for name, (paths, headers) in cases.items():
            if args.cases is not None and name not in args.cases:
                continue
            if name == args.profile:
                prof = cProfile.Profile()
                prof.enable()
                out[name] = await _measure(app, counter, paths, headers, args.requests)
                prof.disable()
                buf = io.StringIO()
                pstats.Stats(prof, stream=buf).sort_stats("cumulative").print_stats(45)
                print(buf.getvalue())
            else:
                out[name] = await _measure(app, counter, paths, headers, args.requests)
        return out

    result = asyncio.run(run())
    app.state.engine.dispose()
    for name, cost in result.items():
        print(
            f"{name:>12}: {cost.cpu_us:8.1f} us CPU  {cost.wall_us:8.1f} us wall  "
            f"{cost.sql_per_request:4.1f} SQL/request  status {cost.status}"
        )
    print(json.dumps({name: asdict(cost) for name, cost in result.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
