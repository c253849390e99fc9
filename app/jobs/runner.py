"""The embedded job backend: an asyncio runner in the API process feeding the solver pool.

- Start-up: running jobs whose heartbeat stopped (their process crashed) are re-queued, or failed
  after ``job_max_attempts`` runs; queued jobs (also those left by a previous process) are run.
- Each job: claim and load in a thread, compute in a worker process, store in a thread. While it
  computes, the runner writes a heartbeat every ``job_heartbeat_s`` and reads the job's status;
  a cancel (or the hard ``job_timeout_s`` guard) terminates the worker processes.
- ``planning_workers`` jobs run at once. Killing the pool to stop one job also stops the others
  running beside it; they are re-queued (not failed) because nothing was wrong with them.
- Shutdown (SIGTERM/SIGINT calls :func:`app.planning.pool.close_pools`): the solver processes
  are killed at once, running jobs go back to ``queued`` for the next start, and no job is
  claimed any more (docs/decisions/jobs-no-orphans.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from app.jobs import store
from app.jobs.backend import JobBackend
from app.planning import pool as solver_pool
from app.planning import service
from app.planning.compute import PlanResult
from app.planning.pool import PoolClosed, SolverPool
from app.settings import Settings
from app.store.models import JobStatus

log = logging.getLogger(__name__)

T = TypeVar("T")


class InProcessBackend(JobBackend):
    """Runs jobs in this process's solver pool (the embedded default)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        settings: Settings,
        pool: Callable[[], SolverPool],
    ) -> None:
        super().__init__(factory)
        self.settings = settings
        self._pool = pool
        #: Created by :meth:`start` inside the loop that consumes it.
        self._queue: asyncio.Queue[str] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        #: Thread work in flight; shutdown waits for it, so no database call is cut off.
        self._inflight: set[asyncio.Future[Any]] = set()
        self._running: dict[str, Future[PlanResult]] = {}
        #: Jobs whose worker this runner killed on purpose (cancel or timeout).
        self._stopped: dict[str, str] = {}
        self._done: dict[str, asyncio.Event] = {}

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the sweeper (stale-job recovery, queued jobs) and the consumers.

        The first sweep runs at once; a database that is not reachable yet does not stop the
        app from starting: the sweep logs it and tries again every ``job_stale_s``.
        """
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._pending.clear()
        self._tasks.append(asyncio.create_task(self._sweep(), name="job-sweeper"))
        for k in range(self.settings.planning_workers):
            self._tasks.append(asyncio.create_task(self._consume(), name=f"job-runner-{k}"))

    async def _sweep(self) -> None:
        while True:
            try:
                ids = await self._thread(self._recover)
            except Exception as exc:  # the database may be down; the next sweep retries
                log.warning("job recovery failed (%s); retrying later", type(exc).__name__)
                ids = []
            for job_id in ids:
                self._put(job_id)
            await asyncio.sleep(self.settings.job_stale_s)

    async def _thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking ``fn`` in a thread; a cancelled caller leaves it to finish (see stop)."""
        fut: asyncio.Future[T] = asyncio.ensure_future(asyncio.to_thread(fn, *args))
        self._inflight.add(fut)
        fut.add_done_callback(self._inflight.discard)
        return await asyncio.shield(fut)

    def _in_loop(self) -> bool:
        try:
            return self._loop is not None and asyncio.get_running_loop() is self._loop
        except RuntimeError:
            return False

    def _put(self, job_id: str) -> None:
        """Queue a job for the consumers; without a started runner it stays queued in the table."""
        if self._queue is None or not self._in_loop() or solver_pool.closing():
            log.info("job %s stays queued until a runner starts", job_id)
            return
        if job_id not in self._pending:
            self._pending.add(job_id)
            self._queue.put_nowait(job_id)

    def _recover(self) -> list[str]:
        with self.factory.begin() as session:
            rec = store.recover_stale(
                session,
                stale_after=dt.timedelta(seconds=self.settings.job_stale_s),
                max_attempts=self.settings.job_max_attempts,
            )
            if rec.requeued or rec.failed:
                log.warning(
                    "job recovery: %d re-queued, %d failed", len(rec.requeued), len(rec.failed)
                )
            return store.queued_ids(session, kind=store.PLAN)

    async def stop(self) -> None:
        """Stop the consumers; running jobs are left for the next start's recovery.

        When the process is shutting down (:func:`app.planning.pool.close_pools` killed the
        solvers), jobs still running here go back to ``queued`` at once.
        """
        running = list(self._running)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)
        if solver_pool.closing():
            for job_id in running:
                await asyncio.to_thread(self._requeue_stopped, job_id)
        self._queue = None
        self._loop = None

    # -- interface ---------------------------------------------------------------------------

    async def enqueue(self, job_id: str) -> None:
        """Queue ``job_id`` for the consumers."""
        self._put(job_id)

    async def cancel(self, job_id: str) -> None:
        """Kill the worker of ``job_id`` if this process runs it."""
        if job_id in self._running:
            self._stopped[job_id] = "cancelled"
            await self._thread(self._kill_workers)

    def _kill_workers(self) -> None:
        """Stop the solver processes (a cancel or a timeout); nothing to do once shut down."""
        with contextlib.suppress(PoolClosed):  # close_pools already killed them
            self._pool().kill()

    async def _sleep(self, job_id: str, seconds: float) -> None:
        if not self._in_loop():
            await asyncio.sleep(seconds)
            return
        event = self._done.setdefault(job_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)

    # -- running -----------------------------------------------------------------------------

    async def _consume(self) -> None:
        queue = self._queue
        if queue is None:  # pragma: no cover - start() creates it first
            return
        while True:
            job_id = await queue.get()
            self._pending.discard(job_id)
            try:
                await self.run_one(job_id)
            finally:
                queue.task_done()

    async def run_one(self, job_id: str) -> None:
        """Run one queued job to its end here (also what a queue worker's task calls)."""
        try:
            await self._run(job_id)
        except Exception as exc:  # keep running whatever one job did
            log.exception("job %s: runner error", job_id)
            why = f"internal error ({type(exc).__name__})"
            await self._thread(service.fail_job, self.factory, job_id, why)
        finally:
            self._running.pop(job_id, None)
            self._stopped.pop(job_id, None)
            event = self._done.pop(job_id, None)
            if event is not None:
                event.set()

    async def _run_again(self, job_id: str) -> None:
        """Hand a re-queued job (its worker process was lost) back to whoever runs jobs."""
        self._put(job_id)

    async def _run(self, job_id: str) -> None:
        if solver_pool.closing():
            return  # stays queued for the next start
        started = await self._thread(service.start_job, self.factory, job_id)
        if started is None:
            return
        options = service.plan_options(self.settings, started.params.get("options"))
        try:
            future = self._pool().submit(started.input, options)
        except PoolClosed:
            await self._thread(self._requeue_stopped, job_id)
            return
        self._running[job_id] = future
        result = await self._watch(job_id, future)
        if result is None:
            return
        plan_id = await self._thread(service.complete_job, self.factory, started, result)
        if plan_id is not None:
            log.info("job %s done: plan %d", job_id, plan_id)

    async def _watch(self, job_id: str, future: Future[PlanResult]) -> PlanResult | None:
        """Heartbeat until the worker answers; None when the job ended otherwise."""
        wrapped = asyncio.wrap_future(future)
        t0 = time.monotonic()
        while True:
            done, _ = await asyncio.wait({wrapped}, timeout=self.settings.job_heartbeat_s)
            if done:
                break
            status = await self._thread(self._beat, job_id, t0)
            if status is not JobStatus.RUNNING and job_id not in self._stopped:
                self._stopped[job_id] = "cancelled"
                await self._thread(self._kill_workers)
            elif time.monotonic() - t0 > self.settings.job_timeout_s:
                self._stopped[job_id] = "timeout"
                await self._thread(self._kill_workers)
        try:
            return wrapped.result()
        except BrokenProcessPool:
            if await self._thread(self._after_kill, job_id):
                await self._run_again(job_id)
            return None
        except Exception as exc:  # the computation failed: the reason goes on the job
            msg = f"{type(exc).__name__}: {exc}"
            await self._thread(service.fail_job, self.factory, job_id, msg)
            return None

    def _beat(self, job_id: str, t0: float) -> JobStatus | None:
        # Progress is an estimate: time used of the solver's budget, capped below done.
        budget = max(self.settings.solver_time_limit_s * 1.5, 1.0)
        progress = min(0.9, 0.1 + 0.8 * (time.monotonic() - t0) / budget)
        with self.factory.begin() as session:
            return store.heartbeat(session, job_id, progress=progress)

    def _requeue_stopped(self, job_id: str) -> None:
        with self.factory.begin() as session:
            store.requeue(session, job_id, "the service stopped during the solve; queued again")

    def _after_kill(self, job_id: str) -> bool:
        """Record why a job's worker went away; True when the job should run again."""
        why = self._stopped.get(job_id)
        if why == "cancelled":
            return False  # the row already says cancelled
        if solver_pool.closing():  # the service is stopping: the next start runs it
            self._requeue_stopped(job_id)
            return False
        if why == "timeout":
            service.fail_job(
                self.factory,
                job_id,
                f"timed out: no result within {self.settings.job_timeout_s:g} s; "
                "the worker was stopped",
            )
            return False
        # Killed for another job, or the worker died (out of memory, crash).
        with self.factory.begin() as session:
            job = store.load_job(session, job_id)
            attempts = job.attempts if job is not None else 0
            if attempts >= self.settings.job_max_attempts:
                store.fail(session, job_id, f"the worker process stopped {attempts} time(s)")
                return False
            return store.requeue(session, job_id, "the worker process stopped; queued again")
