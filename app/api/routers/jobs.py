"""Solve jobs: read one, cancel one."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool

from app.api import authz
from app.api.deps import Planner, Principal, Reader, SessionDep
from app.api.errors import ErrorBody
from app.api.plan_schemas import JobOut, job_out
from app.api.routers._items import ITEM_ERRORS
from app.api.routers.plans import backend_of
from app.api.routing import StrictJSONRoute
from app.jobs import store as jobs
from app.store import audit
from app.store.models import SolveJob

router = APIRouter(prefix="/v1/jobs", tags=["plans"], route_class=StrictJSONRoute)


def _visible_job(session: SessionDep, principal: Principal, job_id: str) -> SolveJob:
    authz.ensure_not_nurse(principal)
    job = jobs.get_job(session, principal.org_id, job_id)
    district_id = (job.params or {}).get("district_id")
    if district_id is not None:
        authz.ensure_district(principal, int(district_id), what="job")
    return job


@router.get("/{job_id}", summary="Get a solve job", response_model=JobOut, responses=ITEM_ERRORS)
def get_job(job_id: str, principal: Reader, session: SessionDep) -> JobOut:
    """Status, progress, attempts, the plan it produced or why it failed."""
    return job_out(_visible_job(session, principal, job_id))


@router.post(
    "/{job_id}/cancel",
    summary="Cancel a solve job",
    response_model=JobOut,
    responses={**ITEM_ERRORS, 409: {"model": ErrorBody, "description": "Already finished."}},
)
async def cancel_job(
    job_id: str, request: Request, principal: Planner, session: SessionDep
) -> JobOut:
    """Cancel a queued or running job: its worker is stopped and no plan is stored."""

    def cancel() -> JobOut:
        _visible_job(session, principal, job_id)
        job = jobs.cancel(session, principal.org_id, job_id)
        audit.record(
            session,
            principal.org_id,
            actor=principal.actor,
            action="cancel",
            target_type="job",
            target_id=job_id,
        )
        session.commit()
        return job_out(job)

    out = await run_in_threadpool(cancel)
    await backend_of(request).cancel(job_id)
    return out
