"""``python -m app worker``: a procrastinate worker process that runs solve jobs.

- Each job runs through :meth:`app.jobs.runner.InProcessBackend.run_one`: claim and load in a
  thread, matrices and solve in this worker's solver process pool, store in a thread; a heartbeat
  every ``job_heartbeat_s``; a cancelled row or the ``job_timeout_s`` guard stops the solver
  process. ``planning_workers`` jobs run at once.
- Every ``worker_reap_s`` the worker reconciles (:func:`app.jobs.queue_procrastinate.reconcile`):
  jobs whose worker died (heartbeat older than ``job_stale_s``) run again, or fail with the
  reason after ``job_max_attempts`` runs; queued rows missing from the queue are deferred.
- SIGTERM/SIGINT: procrastinate stops fetching and waits ``worker_shutdown_s`` for running jobs;
  a job still running then is stopped and queued again for another worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from procrastinate import App
from sqlalchemy.orm import Session, sessionmaker

from app.jobs import queue_procrastinate as queue
from app.jobs import store
from app.jobs.runner import InProcessBackend
from app.planning.pool import get_pool
from app.settings import Settings
from app.store.db import make_engine, make_sessionmaker

log = logging.getLogger(__name__)


class QueueRunner(InProcessBackend):
    """The embedded runner's job path, fed by procrastinate instead of an in-memory queue."""

    def __init__(self, factory: sessionmaker[Session], settings: Settings, queue_app: App) -> None:
        super().__init__(
            factory,
            settings,
            lambda: get_pool(
                settings.region_file,
                settings.osm_cache_dir,
                settings.planning_workers,
                settings.region_modes,
            ),
        )
        self.queue_app = queue_app

    async def _run_again(self, job_id: str) -> None:
        await queue.defer(self.queue_app, job_id)

    async def run_task(self, job_id: str) -> None:
        """The body of the ``solve_plan`` task; a job cut short by shutdown is queued again."""
        try:
            await self.run_one(job_id)
        except asyncio.CancelledError:
            await asyncio.to_thread(self._requeue_on_shutdown, job_id)
            raise

    def _requeue_on_shutdown(self, job_id: str) -> None:
        self._kill_workers()
        with self.factory.begin() as session:
            store.requeue(session, job_id, "the worker shut down during the solve; queued again")


def register(queue_app: App, runner: QueueRunner) -> None:
    """Register the solve task on ``queue_app``, bound to ``runner``."""

    @queue_app.task(name=queue.TASK, queue=queue.QUEUE)
    async def solve_plan(job_id: str) -> None:
        await runner.run_task(job_id)


async def _reap_forever(queue_app: App, factory: sessionmaker[Session], settings: Settings) -> None:
    while True:
        try:
            done = await queue.reconcile(queue_app, factory, settings)
            if done.deferred:
                log.info("reconcile: %d queued job(s) deferred", len(done.deferred))
        except Exception:  # a database hiccup must not stop the worker
            log.exception("reconcile failed; trying again in %g s", settings.worker_reap_s)
        await asyncio.sleep(settings.worker_reap_s)


async def run_worker(settings: Settings) -> None:
    """Run solve jobs until SIGTERM/SIGINT."""
    engine = make_engine(settings.database_url, echo=settings.database_echo)
    factory = make_sessionmaker(engine)
    queue_app = queue.make_queue_app(settings)
    runner = QueueRunner(factory, settings, queue_app)
    register(queue_app, runner)
    try:
        async with queue_app.open_async():
            reaper = asyncio.create_task(_reap_forever(queue_app, factory, settings))
            log.info("worker started: %d job(s) at once", settings.planning_workers)
            try:
                await queue_app.run_worker_async(
                    queues=[queue.QUEUE],
                    concurrency=settings.planning_workers,
                    name="solver",
                    shutdown_graceful_timeout=settings.worker_shutdown_s,
                    install_signal_handlers=True,
                    # procrastinate's own liveness of workers, on the job heartbeat's clock.
                    update_heartbeat_interval=settings.job_heartbeat_s,
                    stalled_worker_timeout=settings.job_stale_s,
                )
            finally:
                reaper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reaper
    finally:
        engine.dispose()
        log.info("worker stopped")
