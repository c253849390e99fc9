"""Solve jobs on procrastinate: a PostgreSQL-backed queue with separate worker processes.

procrastinate delivers; the ``solve_jobs`` row stays the record (status, progress, heartbeat,
attempts, result). A plan request commits its job row, then :meth:`ProcrastinateBackend.enqueue`
defers one procrastinate job ``solve_plan(job_id=...)`` with ``queueing_lock=job_id``, so a job
waits in the queue at most once. A worker (:mod:`app.jobs.worker`) runs it through the same
claim / compute-in-a-process / store path as the embedded runner.

Nothing is lost between the two commits: :func:`reconcile` (at API start-up and periodically in
every worker) re-queues or fails jobs whose worker died (stale heartbeat, via
:func:`app.jobs.store.recover_stale`) and defers every queued row again (the queueing lock makes
that a no-op for a job already waiting).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass

from procrastinate import App, PsycopgConnector
from procrastinate.exceptions import AlreadyEnqueued
from procrastinate.jobs import Status
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from app.jobs import store
from app.jobs.backend import JobBackend
from app.settings import Settings

log = logging.getLogger(__name__)

#: procrastinate's name of the solve task and its queue.
TASK = "solve_plan"
QUEUE = "solve"


def conninfo(database_url: str) -> str:
    """The libpq URI of a SQLAlchemy PostgreSQL URL (the driver suffix dropped, query kept)."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        msg = "the procrastinate job backend needs a PostgreSQL database"
        raise ValueError(msg)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def make_queue_app(settings: Settings) -> App:
    """A procrastinate app on the service's database (not opened)."""
    connector = PsycopgConnector(conninfo=conninfo(settings.database_url))
    return App(connector=connector)


async def defer(queue_app: App, job_id: str) -> bool:
    """Put ``job_id`` on the queue; False if it is already waiting there."""
    task = queue_app.configure_task(name=TASK, queue=QUEUE, queueing_lock=job_id)
    try:
        await task.defer_async(job_id=job_id)
    except AlreadyEnqueued:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Reconciled:
    """What one reconciliation pass did."""

    requeued: tuple[str, ...]
    failed: tuple[str, ...]
    deferred: tuple[str, ...]


def _recover(
    factory: sessionmaker[Session], settings: Settings
) -> tuple[store.Recovery, list[str]]:
    with factory.begin() as session:
        rec = store.recover_stale(
            session,
            stale_after=dt.timedelta(seconds=settings.job_stale_s),
            max_attempts=settings.job_max_attempts,
        )
        return rec, store.queued_ids(session, kind=store.PLAN)


async def _close_stalled(queue_app: App, settings: Settings) -> None:
    """Mark procrastinate jobs of dead workers failed, so their job ids can be deferred again."""
    manager = queue_app.job_manager
    stalled = await manager.get_stalled_jobs(
        task_name=TASK, seconds_since_heartbeat=settings.job_stale_s
    )
    for job in stalled:
        if job.id is not None:
            await manager.finish_job_by_id_async(job.id, Status.FAILED, delete_job=False)


async def _delivered(queue_app: App, job_id: str) -> bool:
    """Whether a live procrastinate job (waiting or being run) exists for ``job_id``."""
    manager = queue_app.job_manager
    for status in ("todo", "doing"):
        if list(await manager.list_jobs_async(task=TASK, queueing_lock=job_id, status=status)):
            return True
    return False


async def reconcile(
    queue_app: App, factory: sessionmaker[Session], settings: Settings
) -> Reconciled:
    """Recover jobs of dead workers and make sure every queued job is on the queue.

    Dead workers are noticed twice, by the library and by the job row: procrastinate's jobs of
    workers without a heartbeat are closed as failed, and ``solve_jobs`` rows whose heartbeat
    stopped are re-queued (or failed after the maximum attempts). Then every queued row without
    a live procrastinate job is deferred.
    """
    await _close_stalled(queue_app, settings)
    rec, queued = await asyncio.to_thread(_recover, factory, settings)
    deferred = [
        job_id
        for job_id in queued
        if not await _delivered(queue_app, job_id) and await defer(queue_app, job_id)
    ]
    if rec.requeued or rec.failed:
        log.warning(
            "job recovery: %d re-queued, %d failed (stale heartbeat)",
            len(rec.requeued),
            len(rec.failed),
        )
    return Reconciled(rec.requeued, rec.failed, tuple(deferred))


class ProcrastinateBackend(JobBackend):
    """The API side: defers jobs to procrastinate; workers elsewhere run them."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings) -> None:
        super().__init__(factory)
        self.settings = settings
        self.queue_app = make_queue_app(settings)

    async def start(self) -> None:
        """Open the queue's connection pool and reconcile once (jobs a crash left behind)."""
        await self.queue_app.open_async()
        await reconcile(self.queue_app, self.factory, self.settings)

    async def stop(self) -> None:
        """Close the queue's connection pool."""
        await self.queue_app.close_async()

    async def enqueue(self, job_id: str) -> None:
        """Defer the committed job to the workers."""
        await defer(self.queue_app, job_id)

    async def cancel(self, job_id: str) -> None:
        """Drop the job from the queue if it still waits there.

        A running job's worker notices the cancelled row at its next heartbeat and stops the
        solver process; a queued one that a worker picks up anyway is not claimed.
        """
        manager = self.queue_app.job_manager
        for job in await manager.list_jobs_async(task=TASK, queueing_lock=job_id, status="todo"):
            if job.id is not None:
                await manager.cancel_job_by_id_async(job.id, delete_job=True)
