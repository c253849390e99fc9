"""Solve jobs on procrastinate with real worker processes on PostgreSQL.

The API (JOB_BACKEND=procrastinate) only stores and defers jobs; ``python -m app worker``
subprocesses run them. A worker killed with SIGKILL mid-solve leaves its job "running" with a
stopped heartbeat: another worker's reconciliation runs it again, or fails it with the reason
after ``JOB_MAX_ATTEMPTS`` runs.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, text

from app.routing import Region
from tests.conftest import Tenant, make_tenant
from tests.durability.conftest import Workers
from tests.planning.district import DISTRICT, district_batch

pytestmark = pytest.mark.postgres

DAY = dt.date(2026, 12, 1)


@pytest.fixture
def tenant_q(pg_engine: Engine) -> Tenant:
    """The organisation acting in the queue tests."""
    return make_tenant(pg_engine, "Thuiszorg Queue")


@pytest.fixture
def district(queue_client: TestClient, tenant_q: Tenant, region: Region) -> None:
    """A small generated district imported through the API."""
    batch = district_batch(region, DAY, visits=20, staff=4)
    r = queue_client.post("/v1/import", json=batch, headers=tenant_q.headers)
    assert r.status_code == 200, r.text


def submit(client: TestClient, tenant: Tenant) -> str:
    """POST a plan request; the job id (it is queued, nothing runs it in the API)."""
    r = client.post(
        "/v1/plans", json={"district": DISTRICT, "date": DAY.isoformat()}, headers=tenant.headers
    )
    assert r.status_code == 202, r.text
    body: dict[str, Any] = r.json()
    assert body["status"] == "queued"
    return str(body["id"])


def job(client: TestClient, tenant: Tenant, job_id: str) -> dict[str, Any]:
    """The job as the API shows it."""
    r = client.get(f"/v1/jobs/{job_id}", headers=tenant.headers)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def wait_for(
    client: TestClient, tenant: Tenant, job_id: str, statuses: set[str], timeout: float = 60
) -> dict[str, Any]:
    """Poll the job until its status is one of ``statuses``."""
    deadline = time.monotonic() + timeout
    while True:
        body = job(client, tenant, job_id)
        if body["status"] in statuses:
            return body
        if time.monotonic() > deadline:
            pytest.fail(f"job still {body['status']} after {timeout} s: {body}")
        time.sleep(0.1)


def queue_rows(engine: Engine, job_id: str) -> list[str]:
    """procrastinate's job statuses for ``job_id``."""
    with engine.connect() as conn:
        return list(
            conn.scalars(
                text("SELECT status::text FROM procrastinate_jobs WHERE queueing_lock = :j"),
                {"j": job_id},
            )
        )


@pytest.mark.usefixtures("district")
def test_a_worker_process_runs_the_job_and_the_plan_is_stored(
    queue_client: TestClient, tenant_q: Tenant, workers: Workers, pg_engine: Engine
) -> None:
    workers.start()
    job_id = submit(queue_client, tenant_q)
    done = wait_for(queue_client, tenant_q, job_id, {"done", "failed"})
    assert done["status"] == "done", done
    assert done["attempts"] == 1
    plan = queue_client.get(f"/v1/plans/{done['result_plan_id']}", headers=tenant_q.headers)
    assert plan.status_code == 200
    assert plan.json()["routes"]
    assert queue_rows(pg_engine, job_id) == ["succeeded"]


@pytest.mark.usefixtures("district")
def test_sigkill_mid_solve_then_a_restarted_worker_runs_it_again(
    queue_client: TestClient, tenant_q: Tenant, workers: Workers
) -> None:
    first = workers.start()
    job_id = submit(queue_client, tenant_q)
    running = wait_for(queue_client, tenant_q, job_id, {"running", "done", "failed"})
    assert running["status"] == "running", running
    workers.kill(first)
    assert job(queue_client, tenant_q, job_id)["status"] == "running"  # nobody knows yet

    workers.start()
    done = wait_for(queue_client, tenant_q, job_id, {"done", "failed"})
    assert done["status"] == "done", (done, workers.log(1))
    assert done["attempts"] == 2
    assert done["result_plan_id"] is not None


@pytest.mark.usefixtures("district")
def test_sigkill_on_the_last_attempt_fails_the_job_with_the_reason(
    queue_client: TestClient, tenant_q: Tenant, workers: Workers
) -> None:
    first = workers.start(JOB_MAX_ATTEMPTS="1")
    job_id = submit(queue_client, tenant_q)
    running = wait_for(queue_client, tenant_q, job_id, {"running", "done", "failed"})
    assert running["status"] == "running", running
    workers.kill(first)

    workers.start(JOB_MAX_ATTEMPTS="1")
    failed = wait_for(queue_client, tenant_q, job_id, {"done", "failed"})
    assert failed["status"] == "failed"
    assert failed["attempts"] == 1
    assert "no heartbeat" in failed["error"]
    assert "not retried" in failed["error"]


@pytest.mark.usefixtures("district")
def test_cancel_of_a_queued_job_takes_it_off_the_queue_and_no_worker_runs_it(
    queue_client: TestClient, tenant_q: Tenant, workers: Workers, pg_engine: Engine
) -> None:
    job_id = submit(queue_client, tenant_q)
    assert queue_rows(pg_engine, job_id) == ["todo"]
    r = queue_client.post(f"/v1/jobs/{job_id}/cancel", headers=tenant_q.headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled"
    assert queue_rows(pg_engine, job_id) == []

    workers.start()
    time.sleep(3)  # several reconciliation rounds: a cancelled job is never deferred again
    body = job(queue_client, tenant_q, job_id)
    assert body["status"] == "cancelled"
    assert body["attempts"] == 0
    assert queue_rows(pg_engine, job_id) == []


@pytest.mark.usefixtures("district")
def test_cancel_of_a_running_job_stops_its_solve_and_stores_no_plan(
    queue_client: TestClient, tenant_q: Tenant, workers: Workers
) -> None:
    workers.start(SOLVER_TIME_LIMIT_S="20")
    job_id = submit(queue_client, tenant_q)
    running = wait_for(queue_client, tenant_q, job_id, {"running", "done", "failed"})
    assert running["status"] == "running", running
    r = queue_client.post(f"/v1/jobs/{job_id}/cancel", headers=tenant_q.headers)
    assert r.status_code == 200, r.text
    time.sleep(2)
    body = job(queue_client, tenant_q, job_id)
    assert body["status"] == "cancelled"
    assert body["result_plan_id"] is None
    # The worker lives on and takes the next job.
    nxt = submit(queue_client, tenant_q)
    assert wait_for(queue_client, tenant_q, nxt, {"done", "failed"})["status"] == "done"
