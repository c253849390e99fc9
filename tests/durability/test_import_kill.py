"""Kill the API (SIGKILL) while a bulk import is in flight: the batch is stored whole or not at all.

A real server (``python -m app serve``) on PostgreSQL; the import runs in one transaction that
the request layer commits, so a process killed before the commit leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select, text

from app.settings import PROJECT_ROOT
from app.store.models import Client
from tests.conftest import Tenant, make_tenant

pytestmark = pytest.mark.postgres

N_CLIENTS = 3000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _batch(prefix: str) -> dict[str, Any]:
    return {
        "districts": [{"external_id": "big", "name": "Big"}],
        "clients": [
            {
                "external_id": f"{prefix}{i}",
                "district": "big",
                "street": "Testgasse",
                "housenumber": str(i),
                "postcode": "9490",
                "city": "Vaduz",
                "coordinates": {"lat": 47.14 + i * 1e-6, "lon": 9.52},
            }
            for i in range(N_CLIENTS)
        ],
    }


@contextlib.contextmanager
def _server(url: str, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": url, "DEV_MODE": "true", "MAX_BODY_BYTES": "20000000"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"server did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
        yield proc, base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def _clients(engine: Engine, org_id: int) -> int:
    with engine.connect() as conn:
        return int(
            conn.scalar(select(func.count()).select_from(Client).where(Client.org_id == org_id))
            or 0
        )


def _wait_for_a_writing_transaction(engine: Engine, timeout_s: float) -> bool:
    """Wait until another session holds an open transaction that has written (it has an xid).

    That is the server's import, between its first insert and its commit: the moment to kill it.
    """
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL"
    )
    deadline = time.monotonic() + timeout_s
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            if conn.execute(query).scalar_one() > 0:
                return True
            conn.rollback()  # a fresh snapshot of pg_stat_activity on the next read
            time.sleep(0.002)
    return False


def test_sigkill_during_an_import_leaves_all_of_the_batch_or_none(
    pg_url: str, pg_engine: Engine, tmp_path: Path
) -> None:
    timed: Tenant = make_tenant(pg_engine, "Timed")
    victim: Tenant = make_tenant(pg_engine, "Victim")
    with _server(pg_url, tmp_path / "server.log") as (proc, base):
        # A first whole import warms the server up and shows the batch is valid.
        r = httpx.post(f"{base}/v1/import", json=_batch("a"), headers=timed.headers, timeout=60)
        assert r.status_code == 200, r.text
        assert _clients(pg_engine, timed.org_id) == N_CLIENTS

        outcome: list[object] = []

        def post() -> None:
            try:
                outcome.append(
                    httpx.post(
                        f"{base}/v1/import", json=_batch("b"), headers=victim.headers, timeout=60
                    ).status_code
                )
            except httpx.HTTPError as exc:
                outcome.append(exc)

        sender = threading.Thread(target=post)
        sender.start()
        # Kill once the import has begun writing and before it commits (no timing guess).
        assert _wait_for_a_writing_transaction(pg_engine, timeout_s=30)
        os.killpg(proc.pid, signal.SIGKILL)
        sender.join(timeout=30)
    # The server died with the request in flight (no answer came back) ...
    assert outcome
    assert isinstance(outcome[0], httpx.HTTPError), outcome
    # ... and the database holds the batch whole or not at all.
    stored = _clients(pg_engine, victim.org_id)
    assert stored in (0, N_CLIENTS), f"{stored} of {N_CLIENTS} clients stored"
