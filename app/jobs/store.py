"""Stored solve jobs: create, claim, heartbeat, finish, fail, cancel, recover.

Every state change is one conditional UPDATE (``WHERE status = ...``), so two runners (two API
processes, or an API process and a queue worker) can never both claim or both finish one job.
Functions only flush; callers commit.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.errors import Conflict, NotFound
from app.store.models import JobStatus, SolveJob, utcnow

#: Job kinds this service runs.
PLAN = "plan"

FINAL = frozenset({JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED})


def create_job(
    session: Session, org_id: int, *, kind: str, params: dict[str, Any], created_by: str
) -> SolveJob:
    """Add a queued job (flushes)."""
    job = SolveJob(
        id=str(uuid.uuid4()),
        org_id=org_id,
        kind=kind,
        status=JobStatus.QUEUED,
        progress=0.0,
        params=params,
        attempts=0,
        created_by=created_by,
    )
    session.add(job)
    session.flush()
    return job


def get_job(session: Session, org_id: int, job_id: str) -> SolveJob:
    """One job of the organisation; :class:`NotFound` otherwise (also for other tenants)."""
    job = session.scalar(select(SolveJob).where(SolveJob.org_id == org_id, SolveJob.id == job_id))
    if job is None:
        msg = f"no job {job_id}"
        raise NotFound(msg)
    return job


def load_job(session: Session, job_id: str) -> SolveJob | None:
    """A job by id, whatever its organisation (for runners, never for handlers)."""
    return session.get(SolveJob, job_id, populate_existing=True)


def claim(session: Session, job_id: str) -> bool:
    """queued -> running (attempts + 1, heartbeat now); False if someone else has it."""
    now = utcnow()
    result = session.execute(
        update(SolveJob)
        .where(SolveJob.id == job_id, SolveJob.status == JobStatus.QUEUED)
        .values(
            status=JobStatus.RUNNING,
            attempts=SolveJob.attempts + 1,
            started_at=now,
            heartbeat_at=now,
            progress=0.05,
            error=None,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def heartbeat(session: Session, job_id: str, *, progress: float | None = None) -> JobStatus | None:
    """Refresh a running job's heartbeat; returns its status (to notice a cancel), None if gone."""
    values: dict[str, Any] = {"heartbeat_at": utcnow()}
    if progress is not None:
        values["progress"] = progress
    session.execute(
        update(SolveJob)
        .where(SolveJob.id == job_id, SolveJob.status == JobStatus.RUNNING)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return session.scalar(select(SolveJob.status).where(SolveJob.id == job_id))


def finish(session: Session, job_id: str, plan_id: int) -> bool:
    """running -> done with the plan; False if the job was cancelled or lost meanwhile."""
    result = session.execute(
        update(SolveJob)
        .where(SolveJob.id == job_id, SolveJob.status == JobStatus.RUNNING)
        .values(status=JobStatus.DONE, progress=1.0, result_plan_id=plan_id, finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def fail(session: Session, job_id: str, error: str) -> bool:
    """queued/running -> failed with ``error`` (a sentence without client data)."""
    result = session.execute(
        update(SolveJob)
        .where(SolveJob.id == job_id, SolveJob.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]))
        .values(status=JobStatus.FAILED, error=error[:2000], finished_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def requeue(session: Session, job_id: str, reason: str) -> bool:
    """running -> queued again (after a lost worker); the reason stays in ``error``."""
    result = session.execute(
        update(SolveJob)
        .where(SolveJob.id == job_id, SolveJob.status == JobStatus.RUNNING)
        .values(status=JobStatus.QUEUED, error=reason[:2000], progress=0.0, heartbeat_at=None)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def cancel(session: Session, org_id: int, job_id: str) -> SolveJob:
    """Cancel a queued or running job of the organisation.

    Raises
    ------
    NotFound
        No such job in the organisation.
    Conflict
        The job has already finished (done, failed or cancelled before).
    """
    job = get_job(session, org_id, job_id)
    if job.status in FINAL:
        msg = f"job {job_id} is already {job.status.value}"
        raise Conflict(msg)
    session.execute(
        update(SolveJob)
        .where(
            SolveJob.id == job_id,
            SolveJob.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
        )
        .values(status=JobStatus.CANCELLED, finished_at=utcnow(), error="cancelled on request")
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return get_job_fresh(session, org_id, job_id)


def get_job_fresh(session: Session, org_id: int, job_id: str) -> SolveJob:
    """:func:`get_job` bypassing the session's identity map (after a bulk UPDATE)."""
    job = session.scalar(
        select(SolveJob)
        .where(SolveJob.org_id == org_id, SolveJob.id == job_id)
        .execution_options(populate_existing=True)
    )
    if job is None:
        msg = f"no job {job_id}"
        raise NotFound(msg)
    return job


@dataclass(frozen=True, slots=True)
class Recovery:
    """What start-up recovery did."""

    requeued: tuple[str, ...]
    failed: tuple[str, ...]


def recover_stale(
    session: Session,
    *,
    stale_after: dt.timedelta,
    max_attempts: int,
    now: dt.datetime | None = None,
) -> Recovery:
    """Re-queue running jobs whose heartbeat stopped, or fail them after ``max_attempts`` runs.

    A job whose heartbeat is older than ``stale_after`` belonged to a process that died (crash,
    kill, deploy). It runs again unless it already ran ``max_attempts`` times, in which case it
    fails with a reason: no job stays "running" forever.
    """
    cutoff = (now or utcnow()) - stale_after
    stale = session.scalars(
        select(SolveJob).where(
            SolveJob.status == JobStatus.RUNNING,
            (SolveJob.heartbeat_at.is_(None)) | (SolveJob.heartbeat_at < cutoff),
        )
    ).all()
    requeued: list[str] = []
    failed: list[str] = []
    for job in stale:
        if job.attempts >= max_attempts:
            reason = (
                f"the worker running this job stopped (no heartbeat since "
                f"{_iso(job.heartbeat_at)}) and the job has run {job.attempts} time(s), "
                f"the maximum; not retried"
            )
            if fail(session, job.id, reason):
                failed.append(job.id)
        else:
            reason = (
                f"the worker running attempt {job.attempts} stopped (no heartbeat since "
                f"{_iso(job.heartbeat_at)}); queued again"
            )
            if requeue(session, job.id, reason):
                requeued.append(job.id)
    session.flush()
    return Recovery(tuple(requeued), tuple(failed))


def queued_ids(session: Session, *, kind: str | None = None) -> list[str]:
    """Queued jobs, oldest first."""
    stmt = select(SolveJob.id).where(SolveJob.status == JobStatus.QUEUED)
    if kind is not None:
        stmt = stmt.where(SolveJob.kind == kind)
    return list(session.scalars(stmt.order_by(SolveJob.created_at)))


def _iso(value: dt.datetime | None) -> str:
    return "never" if value is None else value.isoformat(timespec="seconds")
