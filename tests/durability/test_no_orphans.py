"""Stopping or killing the server leaves no solver process behind (issue 11).

A real server (``python -m app serve``, SQLite file) plans a district with a long solver budget;
while its worker solves, the server gets SIGTERM, SIGINT or SIGKILL. Every process that was the
server's descendant before the signal (forkserver, resource tracker, solver workers), and every
process of the server's session, must be gone within 5 s: a dead requester's job does not go on
solving. Processes are counted from ``/proc``, not through the code under test.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from app.routing import Region
from app.store import migrate
from app.store.db import make_engine
from app.store.models import JobStatus, SolveJob
from bench._server import serve
from tests.conftest import make_tenant
from tests.planning.district import DISTRICT, district_batch

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="counts processes in /proc")

DAY = dt.date(2026, 12, 1)
GRACE_S = 5.0
#: How long a stopping server may take to exit (draining, freeing its region).
SERVER_EXIT_S = 20.0


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state first); None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw[raw.rindex(")") + 2 :].split()


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid in _all_pids():
        fields = _stat(pid)
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(pid)
    out: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _session(sid: int) -> set[int]:
    out = set()
    for pid in _all_pids():
        fields = _stat(pid)
        if fields is not None and int(fields[3]) == sid:
            out.add(pid)
    return out


def _describe(pid: int) -> str:
    """Parent, state and command line of a process, for the failure message."""
    fields = _stat(pid) or ["?", "?"]
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:120]
    except FileNotFoundError:
        cmd = "?"
    return f"(ppid {fields[1]}, state {fields[0]}): {cmd}"


def _left(server: int, recorded: set[int]) -> set[int]:
    """Recorded processes and members of the server's session still running (not the server)."""
    return {p for p in recorded | _session(server) if p != server and _alive(p)}


def _threads(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        return 0


@contextlib.contextmanager
def _server(url: str, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    env = {
        "DATABASE_URL": url,
        "DEV_MODE": "true",
        "SOLVER_TIME_LIMIT_S": "120",
        "SOLVER_EXPLORATION_LEVEL": "5",  # 24 VROOM search threads: see _solving_worker
        "JOB_HEARTBEAT_S": "0.5",
        "PLANNING_WORKERS": "1",
    }
    with serve(env, log) as (proc, base):
        try:
            yield proc, base
        finally:  # the process group may be gone; members that left it are not
            for pid in _session(proc.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _solving_worker(server: int, timeout_s: float) -> int | None:
    """A solver worker of ``server`` running VROOM's searches (many threads), or None.

    Workers are the forkserver's children, so grandchildren of the server; at the default
    exploration level VROOM starts 24 search threads, far above anything else in a worker.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for pid in _descendants(server):
            fields = _stat(pid)
            if fields is not None and int(fields[1]) != server and _threads(pid) >= 8:
                return pid
        time.sleep(0.2)
    return None


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    """A migrated SQLite file of its own (the server and the test share it)."""
    url = f"sqlite:///{tmp_path / 'orphans.sqlite3'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    yield url, engine
    engine.dispose()


SIGNALS = [signal.SIGTERM, signal.SIGINT, signal.SIGKILL]


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_no_solver_process_outlives_the_server(
    sig: signal.Signals, sqlite_db: tuple[str, Engine], region: Region, tmp_path: Path
) -> None:
    url, engine = sqlite_db
    tenant = make_tenant(engine, "Orphans")
    batch = district_batch(region, DAY, visits=150, staff=12, seed=5)
    with _server(url, tmp_path / "server.log") as (proc, base):
        r = httpx.post(f"{base}/v1/import", json=batch, headers=tenant.headers, timeout=60)
        assert r.status_code == 200, r.text
        answers: list[Any] = []

        def request_plan() -> None:
            try:
                answers.append(
                    httpx.post(
                        f"{base}/v1/plans?wait=60",
                        json={"district": DISTRICT, "date": DAY.isoformat()},
                        headers=tenant.headers,
                        timeout=90,
                    )
                )
            except httpx.HTTPError as exc:
                answers.append(exc)

        requester = threading.Thread(target=request_plan)
        requester.start()
        worker = _solving_worker(proc.pid, timeout_s=60)
        assert worker is not None, (tmp_path / "server.log").read_text(errors="replace")[-2000:]
        before = _descendants(proc.pid) | _session(proc.pid)
        assert worker in before
        assert len(before) >= 3  # forkserver, resource tracker, worker at least
        worker_stat = _stat(worker)
        assert worker_stat is not None
        assert int(worker_stat[1]) in before  # a grandchild: the forkserver's child

        t0 = time.monotonic()
        os.kill(proc.pid, sig)
        # The solver worker stops at once, whatever the signal.
        while _alive(worker) and time.monotonic() - t0 < GRACE_S:
            time.sleep(0.1)
        assert not _alive(worker), f"{sig.name}: the worker still solves after {GRACE_S} s"
        # The server drains and exits (it frees a large region first: allow it some time);
        # within 5 s of that at the latest, nothing of its process tree is left.
        if sig is not signal.SIGKILL:
            proc.wait(timeout=SERVER_EXIT_S)
        gone_at = time.monotonic()
        while time.monotonic() - gone_at < GRACE_S:
            if not _left(proc.pid, before):
                break
            time.sleep(0.1)
        left = _left(proc.pid, before)
        assert left == set(), (
            f"{sig.name}: {time.monotonic() - t0:.1f} s after the signal, "
            f"{time.monotonic() - gone_at:.1f} s after the server's exit: "
            + "; ".join(f"{p} {_describe(p)}" for p in sorted(left))
        )

        if sig is not signal.SIGKILL:
            # The waiting request got the (re-queued) job.
            requester.join(timeout=GRACE_S)
            assert answers, "the waiting plan request got no answer"
            assert isinstance(answers[0], httpx.Response), answers[0]
            assert answers[0].status_code == 202, answers[0].text
            # Stopped, not failed: the next start plans it.
            with engine.connect() as conn:
                job = conn.execute(
                    select(SolveJob.status, SolveJob.error).where(
                        SolveJob.id == answers[0].json()["id"]
                    )
                ).one()
            assert job.status is JobStatus.QUEUED, job
        requester.join(timeout=GRACE_S)
