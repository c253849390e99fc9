"""The planning service: plan requests become stored jobs, jobs become stored plan versions.

One job runs in three steps so that any runner can drive it:

1. :func:`start_job` (database): claim the queued job and load the district's day;
2. :func:`app.planning.compute.compute_plan` (CPU, a worker process): matrices, solve, validate,
   geometry;
3. :func:`complete_job` (database): store the next plan version and mark the job done, in one
   transaction; a job cancelled meanwhile stores nothing.

:func:`run_solve_job` does all three in the calling process: what a queue worker (or the demo
seeding) calls. The embedded in-process runner (:mod:`app.jobs.runner`) does steps 1 and 3 in a
thread and step 2 in the process pool, with heartbeats, a hard timeout and cancellation.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from app.errors import InvalidInput, NotFound
from app.jobs import store as jobs
from app.planning.compute import PlanResult, compute_plan
from app.planning.inputs import PlanInput, PlanOptions
from app.planning.loading import district_by_external_id, load_plan_input
from app.planning.versions import store_plan_version
from app.routing import Region
from app.settings import Settings
from app.store import audit
from app.store.models import JobStatus, Organisation, SolveJob

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OptionOverrides:
    """What a plan request may change of the settings' solver knobs (None = the setting)."""

    time_limit_s: float | None = None
    exploration_level: int | None = None
    continuity_penalty_s: int | None = None

    def to_params(self) -> dict[str, Any]:
        """The JSON form stored in the job's params."""
        return {
            "time_limit_s": self.time_limit_s,
            "exploration_level": self.exploration_level,
            "continuity_penalty_s": self.continuity_penalty_s,
        }


def plan_options(settings: Settings, params: dict[str, Any] | None = None) -> PlanOptions:
    """The solver options of a job: the settings, overridden by the request's options."""
    given = params or {}

    def pick(name: str, default: Any) -> Any:
        value = given.get(name)
        return default if value is None else value

    return PlanOptions(
        time_limit_s=float(pick("time_limit_s", settings.solver_time_limit_s)),
        exploration_level=max(1, int(pick("exploration_level", settings.solver_exploration_level))),
        threads=settings.solver_threads,
        continuity_penalty_s=int(pick("continuity_penalty_s", settings.continuity_penalty_s)),
    )


def submit_plan(
    session: Session,
    org_id: int,
    *,
    district: str,
    day: dt.date,
    options: OptionOverrides,
    actor: str,
    now_s: int | None = None,
    freeze_s: int = 0,
) -> SolveJob:
    """Queue a plan computation for ``district`` on ``day`` (flushes; the caller commits).

    ``now_s`` (seconds since midnight; None: the organisation's local time when the job starts,
    if ``day`` is today there) and ``freeze_s`` say which visits of the current version have
    started or are about to: they stay as they are in the new plan
    (:func:`app.planning.loading.load_plan_input`).

    Raises
    ------
    NotFound
        The district does not exist in the organisation.
    """
    row = district_by_external_id(session, org_id, district)
    job = jobs.create_job(
        session,
        org_id,
        kind=jobs.PLAN,
        params={
            "district": row.external_id,
            "district_id": row.id,
            "date": day.isoformat(),
            "options": options.to_params(),
            "now_s": now_s,
            "freeze_s": freeze_s,
        },
        created_by=actor,
    )
    audit.record(
        session,
        org_id,
        actor=actor,
        action="plan.requested",
        target_type="job",
        target_id=job.id,
        details={"district": row.external_id, "date": day.isoformat()},
    )
    return job


@dataclass(frozen=True, slots=True)
class StartedJob:
    """A claimed job with its input."""

    job_id: str
    org_id: int
    input: PlanInput
    params: dict[str, Any]


def start_job(factory: sessionmaker[Session], job_id: str) -> StartedJob | None:
    """Claim a queued job and load its input (commits); None if it is not queued any more.

    A job whose district vanished fails here with the reason.
    """
    with factory.begin() as session:
        if not jobs.claim(session, job_id):
            return None
        job = jobs.load_job(session, job_id)
        if job is None:  # pragma: no cover - just claimed
            return None
        params = dict(job.params)
        org_id = job.org_id
    try:
        with factory() as session:
            day = dt.date.fromisoformat(params["date"])
            now_s = params.get("now_s")
            if now_s is None:
                now_s = local_now_if_today(session, org_id, day)
            inp = load_plan_input(
                session,
                org_id,
                int(params["district_id"]),
                day,
                now_s=int(now_s or 0),
                freeze_s=int(params.get("freeze_s") or 0),
            )
    except (NotFound, InvalidInput, KeyError, ValueError) as exc:
        fail_job(factory, job_id, f"could not load the district's day: {exc}")
        return None
    return StartedJob(job_id, org_id, inp, params)


def local_now_if_today(session: Session, org_id: int, day: dt.date) -> int | None:
    """Seconds since local midnight now, if ``day`` is today in the organisation's timezone."""
    org = session.get(Organisation, org_id)
    zone = ZoneInfo(org.timezone if org else "UTC")
    now = dt.datetime.now(zone)
    if now.date() != day:
        return None
    return now.hour * 3600 + now.minute * 60 + now.second


def complete_job(
    factory: sessionmaker[Session], started: StartedJob, result: PlanResult
) -> int | None:
    """Store the plan version and mark the job done, atomically; None if it was cancelled."""
    with factory.begin() as session:
        job = jobs.load_job(session, started.job_id)
        if job is None or job.status is not JobStatus.RUNNING:
            return None
        plan = store_plan_version(
            session,
            org_id=started.org_id,
            district_id=started.input.district_id,
            day=started.input.date,
            result=result,
            created_by=job.created_by or "job",
        )
        if not jobs.finish(session, started.job_id, plan.id):
            session.rollback()
            return None
        audit.record(
            session,
            started.org_id,
            actor=job.created_by or "job",
            action="plan.published",
            target_type="plan",
            target_id=str(plan.id),
            details={
                "district": started.input.district,
                "date": started.input.date.isoformat(),
                "version": plan.version,
                "job": started.job_id,
            },
        )
        return plan.id


def fail_job(factory: sessionmaker[Session], job_id: str, error: str) -> None:
    """Mark a job failed with ``error`` (commits)."""
    with factory.begin() as session:
        jobs.fail(session, job_id, error)
    log.warning("job %s failed: %s", job_id, error.splitlines()[0] if error else "")


def run_solve_job(
    job_id: str, *, factory: sessionmaker[Session], region: Region, settings: Settings
) -> int | None:
    """Run one queued plan job to the end in this process; the plan id, or None.

    The entry point for a queue worker process (which loads the region once at start-up) and
    for the demo's first plan. Errors end the job as failed with the reason, never re-raised:
    the job row is the record.
    """
    started = start_job(factory, job_id)
    if started is None:
        return None
    try:
        result = compute_plan(
            started.input, region, plan_options(settings, started.params.get("options"))
        )
    except Exception as exc:  # any failure of the computation ends the job with the reason
        fail_job(factory, job_id, f"{type(exc).__name__}: {exc}")
        return None
    return complete_job(factory, started, result)


def plan_now(
    factory: sessionmaker[Session],
    settings: Settings,
    region: Region,
    *,
    org_id: int,
    district: str,
    day: dt.date,
    actor: str,
    options: OptionOverrides | None = None,
) -> int | None:
    """Plan a district's day synchronously in this process, as a stored job; the plan id.

    For command-line use (the demo's first plan) where no job runner is up yet: the same job
    row, input loading, computation and versioning as every other plan.
    """
    with factory.begin() as session:
        job = submit_plan(
            session,
            org_id,
            district=district,
            day=day,
            options=options or OptionOverrides(),
            actor=actor,
        )
        job_id = job.id
    return run_solve_job(job_id, factory=factory, region=region, settings=settings)
