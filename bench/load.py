"""``python -m bench.load``: the nurses' route and plan reads under concurrent load, over HTTP.

Creates a PostgreSQL database for the run (``--db``, dropped and created again), starts the real
server (``python -m app serve --workers N`` on 127.0.0.1, rate limits off; with more than one
worker also a ``python -m app worker`` for solve jobs, as in production, at niceness
``--solver-nice`` (default 10: batch work below the API on shared cores)), imports a generated
district on the Liechtenstein extract, computes a plan, then drives each scenario with
``--concurrency`` keep-alive connections spread over ``--clients`` processes for ``--duration``
seconds:

- ``route``: ``GET /v1/staff/{id}/route?date=`` over every carer of the plan;
- ``plan``: ``GET /v1/plans/{id}``;
- ``route_during_replan``: the route endpoint while re-plans of the same day are solved one after
  another (``replans_finished_during`` counts those that finished inside the scenario).

The load generator (:mod:`bench._load_client`, raw HTTP/1.1 on asyncio streams) runs on the same
machine and cores as the server and the database. Besides latency each scenario reports the CPU
time per request of the API processes and of the database backends serving them, and the share
of the machine's cores the load generator itself used (``client_cpu_share``), read from
``/proc``. The last line is JSON: the route scenario's figures at the top level plus a
per-scenario breakdown and the load average before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import threading
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
from bench import _load_client
from bench._load_district import DISTRICT, district_batch

DAY = dt.date(2026, 12, 1)
SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
_TICKS = os.sysconf("SC_CLK_TCK")


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
    #: CPU time of the API processes (all workers) per request, in ms.
    api_cpu_ms_per_req: float
    #: CPU time of the PostgreSQL backends connected to the run's database per request, in ms.
    db_cpu_ms_per_req: float
    #: CPU of the load generator over (duration x cores): how much of the machine it took.
    client_cpu_share: float
    statuses: dict[str, int]


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


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _descendants(pid: int) -> list[int]:
    """``pid`` and every process below it (uvicorn's workers and their helpers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError), open(f"/proc/{entry}/stat", encoding="ascii") as f:
            ppid = int(f.read().rpartition(")")[2].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


class CpuMeter:
    """CPU seconds of a process tree and of the database backends of one database."""

    def __init__(self, api_pid: int, admin_url: str, database: str) -> None:
        self.api_pid = api_pid
        self.database = database
        self.engine = create_engine(admin_url, isolation_level="AUTOCOMMIT", pool_size=1)

    def _db_pids(self) -> list[int]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": self.database}
            )
            return [int(r[0]) for r in rows]

    def sample(self) -> tuple[dict[int, float], dict[int, float]]:
        """(API processes, database backends): CPU seconds per pid now."""
        api = {p: _cpu_s(p) for p in _descendants(self.api_pid)}
        db = {p: _cpu_s(p) for p in self._db_pids()}
        return api, db

    @staticmethod
    def delta(before: dict[int, float], after: dict[int, float]) -> float:
        """CPU seconds used between two samples (processes started meanwhile count whole)."""
        return sum(v - before.get(p, 0.0) for p, v in after.items())

    def close(self) -> None:
        """Release the monitoring connection."""
        self.engine.dispose()


def _spawn(args: list[str], env: dict[str, str], nice: int = 0) -> subprocess.Popen[bytes]:
    prefix = ["nice", "-n", str(nice)] if nice else []
    return subprocess.Popen(
        [*prefix, sys.executable, "-m", "app", *args],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextlib.contextmanager
def _server(url: str, workers: int, solver_nice: int) -> Iterator[tuple[str, int, int]]:
    """The API on a free port (and a solve worker when ``workers`` > 1): (base, port, pid)."""
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DEV_MODE": "true",
        "RATE_LIMIT_PER_S": "0",
        "LOG_LEVEL": "WARNING",
    }
    if workers > 1:
        env["JOB_BACKEND"] = "procrastinate"
    api = _spawn(["serve", "--port", str(port), "--workers", str(workers)], env)
    # Batch work below the API's priority, as on any machine shared by API and solver.
    solver = _spawn(["worker", "--concurrency", "1"], env, solver_nice) if workers > 1 else None
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline or api.poll() is not None:
                msg = "the server did not start"
                raise RuntimeError(msg)
            time.sleep(0.2)
        yield base, port, api.pid
    finally:
        _stop(api)
        if solver is not None:
            _stop(solver)


def _drive(
    port: int,
    key: str,
    paths: list[str],
    meter: CpuMeter,
    args: argparse.Namespace,
) -> Figures:
    per = [
        args.concurrency // args.clients + (k < args.concurrency % args.clients)
        for k in range(args.clients)
    ]
    plans = [
        _load_client.Plan(
            host="127.0.0.1",
            port=port,
            paths=paths,
            headers={"Authorization": f"Bearer {key}", "Accept": "application/json"},
            connections=n,
            duration_s=args.duration,
            first=sum(per[:k]),
        )
        for k, n in enumerate(per)
        if n > 0
    ]
    api0, db0 = meter.sample()
    t0 = time.monotonic()
    results = _load_client.run(plans)
    took = time.monotonic() - t0
    api1, db1 = meter.sample()
    latencies = sorted(x for r in results for x in r[0])
    statuses: dict[str, int] = {}
    for r in results:
        for code, n in r[3].items():
            statuses[str(code)] = statuses.get(str(code), 0) + n
    n = max(1, len(latencies))

    def pct(q: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(q * len(latencies)))], 1)

    cores = os.cpu_count() or 1
    return Figures(
        rps=round(len(latencies) / took, 1),
        p50_ms=pct(0.50),
        p99_ms=pct(0.99),
        errors=sum(r[1] for r in results),
        requests=len(latencies),
        duration_s=round(took, 1),
        concurrency=args.concurrency,
        api_cpu_ms_per_req=round(1000 * meter.delta(api0, api1) / n, 3),
        db_cpu_ms_per_req=round(1000 * meter.delta(db0, db1) / n, 3),
        client_cpu_share=round(sum(r[2] for r in results) / (took * cores), 3),
        statuses=statuses,
    )


def _run(
    base: str, port: int, pid: int, url: str, key: str, args: argparse.Namespace
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}"}
    meter = CpuMeter(pid, SERVER, make_url(url).database or "")
    with httpx.Client(base_url=base, headers=headers, timeout=180) as c:
        settings = Settings(dev_mode=True)
        region = get_region(settings.region_file, settings.osm_cache_dir)
        batch = district_batch(region, DAY, visits=args.visits, staff=args.staff)
        c.post("/v1/import", json=batch).raise_for_status()
        body = {"district": DISTRICT, "date": DAY.isoformat(), "options": {"time_limit_s": 5}}
        r = c.post("/v1/plans?wait=120", json=body)
        r.raise_for_status()
        plan_id = r.json()["id"]
        routes = [f"/v1/staff/{s['external_id']}/route?date={DAY}" for s in batch["staff"]]
        out: dict[str, Any] = {}
        try:
            out["route"] = _drive(port, key, routes, meter, args)
            out["plan"] = _drive(port, key, [f"/v1/plans/{plan_id}"], meter, args)
            # Re-plans of the same day solving all along (in the solve worker, or in the API
            # process with one worker): a new one is posted as soon as the previous is done,
            # and each new version also invalidates the cached routes.
            replan = {**body, "options": {"time_limit_s": args.duration + 5}}
            stop = threading.Event()
            done: list[str] = []
            first_running = threading.Event()

            def keep_replanning() -> None:
                with httpx.Client(base_url=base, headers=headers, timeout=60) as rc:
                    while not stop.is_set():
                        r = rc.post("/v1/plans", json=replan)
                        r.raise_for_status()
                        job = r.headers["location"]
                        status = "queued"
                        while status in ("queued", "running") and not stop.is_set():
                            time.sleep(0.2)
                            status = rc.get(job).json()["status"]
                            if status == "running":
                                first_running.set()
                        if status not in ("queued", "running"):
                            done.append(status)

            replanner = threading.Thread(target=keep_replanning, daemon=True)
            replanner.start()
            first_running.wait(60)
            out["route_during_replan"] = _drive(port, key, routes, meter, args)
            stop.set()
            replanner.join(120)
            out["replans_finished_during"] = len(done)
        finally:
            meter.close()
        return out


def main(argv: list[str] | None = None) -> int:
    """Run the scenarios and print one JSON line last."""
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per scenario")
    parser.add_argument("--concurrency", type=int, default=16, help="connections in all")
    parser.add_argument("--clients", type=int, default=2, help="load generator processes")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="API processes (default: cores)"
    )
    parser.add_argument(
        "--solver-nice", type=int, default=10, help="niceness of the solve worker (0 = same)"
    )
    parser.add_argument("--visits", type=int, default=120)
    parser.add_argument("--staff", type=int, default=12)
    parser.add_argument("--db", default="bench_load")
    args = parser.parse_args(argv)
    url = fresh_database(args.db)
    _, key = seed_tenant(url)
    load_before = os.getloadavg()
    with _server(url, args.workers, args.solver_nice) as (base, port, pid):
        result = _run(base, port, pid, url, key, args)
    load_after = os.getloadavg()
    replans = result.pop("replans_finished_during")
    figures: dict[str, Figures] = result
    for name, fig in figures.items():
        print(
            f"{name:>20}: {fig.rps:8.1f} req/s  p50 {fig.p50_ms:6.1f} ms  "
            f"p99 {fig.p99_ms:6.1f} ms  errors {fig.errors}  "
            f"API {fig.api_cpu_ms_per_req:.2f} + DB {fig.db_cpu_ms_per_req:.2f} ms CPU/request  "
            f"client {100 * fig.client_cpu_share:.0f}% of the cores"
        )
    line: dict[str, Any] = {
        **asdict(figures["route"]),
        "endpoint": "route",
        "workers": args.workers,
        "clients": args.clients,
        "cores": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "replans_finished_during": replans,
        "solver_nice": args.solver_nice,
        "scenarios": {name: asdict(fig) for name, fig in figures.items()},
    }
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
