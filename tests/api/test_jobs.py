"""Solve jobs: queued -> done, recovery of jobs a crashed process left running, cancel, timeout."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.api.app import create_app
from app.jobs import store as jobs
from app.planning.loading import district_by_external_id
from app.routing import Region
from app.settings import Settings
from app.store import importing
from app.store.db import make_sessionmaker
from app.store.inputs import ImportBatch
from app.store.models import JobStatus, utcnow
from tests.api.test_plans import DAY, load, settings
from tests.conftest import Tenant
from tests.planning.district import DISTRICT, district_batch

__all__ = ["settings"]  # the module's settings fixture (small solver budget)


def wait_for(client: TestClient, tenant: Tenant, job_id: str, *, until: set[str]) -> dict[str, Any]:
    """Poll the job until its status is in ``until`` (at most 60 s)."""
    deadline = time.monotonic() + 60
    while True:
        r = client.get(f"/v1/jobs/{job_id}", headers=tenant.headers)
        assert r.status_code == 200, r.text
        job: dict[str, Any] = r.json()
        if job["status"] in until or time.monotonic() > deadline:
            return job
        time.sleep(0.05)


def test_a_plan_request_without_wait_is_a_job_that_ends_done_with_the_plan(
    client: TestClient, tenant: Tenant, other_tenant: Tenant, region: Region
) -> None:
    load(client, tenant, district_batch(region, DAY))
    r = client.post(
        "/v1/plans", json={"district": DISTRICT, "date": str(DAY)}, headers=tenant.headers
    )
    assert r.status_code == 202
    job = r.json()
    assert r.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] in {"queued", "running"}
    assert (job["district"], job["date"], job["result_plan_id"]) == (DISTRICT, str(DAY), None)

    done = wait_for(client, tenant, job["id"], until={"done", "failed"})
    assert done["status"] == "done", done["error"]
    assert (done["attempts"], done["progress"]) == (1, 1.0)
    assert done["links"]["plan"] == f"/v1/plans/{done['result_plan_id']}"
    plan = client.get(done["links"]["plan"], headers=tenant.headers)
    assert plan.status_code == 200
    assert plan.json()["version"] == 1

    # Another organisation sees neither the job nor can cancel it.
    for method, path in (
        ("GET", f"/v1/jobs/{job['id']}"),
        ("POST", f"/v1/jobs/{job['id']}/cancel"),
    ):
        r = client.request(method, path, headers=other_tenant.headers)
        assert r.status_code == 404
        assert set(r.json()) == {"error"}

    # Finished jobs cannot be cancelled; unknown jobs are 404.
    r = client.post(f"/v1/jobs/{job['id']}/cancel", headers=tenant.headers)
    assert r.status_code == 409
    assert client.get("/v1/jobs/not-a-job", headers=tenant.headers).status_code == 404


def _stale_job(
    session: Any, org_id: int, params: dict[str, Any], attempts: int, age_s: float
) -> str:
    job = jobs.create_job(session, org_id, kind=jobs.PLAN, params=params, created_by="test")
    job.status = JobStatus.RUNNING
    job.attempts = attempts
    job.started_at = job.heartbeat_at = utcnow() - dt.timedelta(seconds=age_s)
    session.flush()
    return job.id


def test_jobs_left_running_by_a_crash_are_requeued_or_failed_at_start_up(
    app: FastAPI, db: Engine, tenant: Tenant, region: Region
) -> None:
    with make_sessionmaker(db).begin() as session:
        importing.import_batch(
            session, tenant.org_id, ImportBatch.model_validate(district_batch(region, DAY))
        )
        did = district_by_external_id(session, tenant.org_id, DISTRICT).id
        params = {"district": DISTRICT, "district_id": did, "date": str(DAY), "options": {}}
        exhausted = _stale_job(session, tenant.org_id, params, attempts=3, age_s=3600)
        retried = _stale_job(session, tenant.org_id, params, attempts=1, age_s=3600)
        alive = _stale_job(session, tenant.org_id, params, attempts=1, age_s=1)

    with TestClient(app) as client:
        failed = wait_for(client, tenant, exhausted, until={"failed"})
        assert failed["status"] == "failed"
        assert "no heartbeat" in failed["error"]
        assert failed["attempts"] == 3
        again = wait_for(client, tenant, retried, until={"done", "failed"})
        assert again["status"] == "done", again["error"]
        assert again["attempts"] == 2
        running = client.get(f"/v1/jobs/{alive}", headers=tenant.headers).json()
        assert running["status"] == "running"  # its process may still be alive


@pytest.fixture
def big_district(db: Engine, tenant: Tenant, region: Region) -> dict[str, Any]:
    """A district big enough that a 30 s solve is still running when the test acts."""
    if db.dialect.name != "sqlite":
        pytest.skip("worker-killing cases run on one backend to keep the suite fast")
    batch = district_batch(region, DAY, visits=250, staff=20, seed=5)
    with make_sessionmaker(db).begin() as session:
        importing.import_batch(session, tenant.org_id, ImportBatch.model_validate(batch))
    return batch


def _slow_plan(client: TestClient, tenant: Tenant) -> str:
    body = {"district": DISTRICT, "date": str(DAY), "options": {"time_limit_s": 30}}
    r = client.post("/v1/plans", json=body, headers=tenant.headers)
    assert r.status_code == 202
    job_id: str = r.json()["id"]
    assert wait_for(client, tenant, job_id, until={"running"})["status"] == "running"
    return job_id


def test_cancel_stops_the_worker_and_stores_no_plan(
    client: TestClient, tenant: Tenant, big_district: dict[str, Any]
) -> None:
    running = _slow_plan(client, tenant)
    queued = client.post(
        "/v1/plans", json={"district": DISTRICT, "date": str(DAY)}, headers=tenant.headers
    ).json()["id"]
    assert client.get(f"/v1/jobs/{queued}", headers=tenant.headers).json()["status"] == "queued"

    t0 = time.monotonic()
    for job_id in (queued, running):
        r = client.post(f"/v1/jobs/{job_id}/cancel", headers=tenant.headers)
        assert r.status_code == 200
        assert r.json()["status"] == "cancelled"
    # The worker is gone long before the solver's 30 s: a new plan comes back quickly.
    plan = client.post(
        "/v1/plans?wait=60",
        json={"district": DISTRICT, "date": str(DAY), "options": {"time_limit_s": 1}},
        headers=tenant.headers,
    )
    assert plan.status_code == 201, plan.text
    assert time.monotonic() - t0 < 25
    assert plan.json()["version"] == 1  # the cancelled jobs stored nothing
    for job_id in (queued, running):
        job = client.get(f"/v1/jobs/{job_id}", headers=tenant.headers).json()
        assert (job["status"], job["result_plan_id"]) == ("cancelled", None)


@pytest.fixture
def strict_app(settings: Settings) -> Iterator[TestClient]:
    """An app whose hard job timeout (2 s) is far below the solver's own limit."""
    strict = settings.model_copy(update={"job_timeout_s": 2.0})
    with TestClient(create_app(strict)) as client:
        yield client


def test_hard_timeout_kills_the_worker_and_fails_the_job(
    strict_app: TestClient, tenant: Tenant, big_district: dict[str, Any]
) -> None:
    job_id = _slow_plan(strict_app, tenant)
    job = wait_for(strict_app, tenant, job_id, until={"failed", "done"})
    assert job["status"] == "failed"
    assert "timed out" in job["error"]
    assert job["result_plan_id"] is None
