"""The job backend interface: how stored jobs get run.

The job row in ``solve_jobs`` is the truth; a backend only decides *where* a job runs. The
embedded default, :class:`app.jobs.runner.InProcessBackend`, runs jobs in the API process's
worker pool. A queue backend (e.g. procrastinate on PostgreSQL) implements :meth:`enqueue` by
deferring a task whose worker calls :func:`app.planning.service.run_solve_job`, and
:meth:`cancel` by aborting it; :meth:`wait` works for any backend because it reads the row.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.jobs.store import FINAL
from app.planning import pool as solver_pool
from app.store.models import JobStatus, SolveJob


class JobBackend(ABC):
    """Runs stored jobs. Call :meth:`enqueue` only after the job row is committed."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Start consuming (app start-up); recover jobs a crashed process left running."""

    async def stop(self) -> None:  # noqa: B027 - optional hook
        """Stop consuming (app shutdown)."""

    @abstractmethod
    async def enqueue(self, job_id: str) -> None:
        """Arrange for the queued job ``job_id`` to run."""

    @abstractmethod
    async def cancel(self, job_id: str) -> None:
        """Stop the work of ``job_id`` if it is running; its row is already marked cancelled."""

    def _status(self, job_id: str) -> JobStatus | None:
        with self.factory() as session:
            return session.scalar(select(SolveJob.status).where(SolveJob.id == job_id))

    async def wait(self, job_id: str, timeout: float) -> JobStatus | None:
        """Wait up to ``timeout`` seconds for the job to finish; its last status.

        Returns early once the process is shutting down, so a waiting request answers with the
        job (queued again for the next start) instead of holding the shutdown up.
        """
        deadline = time.monotonic() + timeout
        while True:
            status = await asyncio.to_thread(self._status, job_id)
            left = deadline - time.monotonic()
            if status is None or status in FINAL or left <= 0 or solver_pool.closing():
                return status
            await self._sleep(job_id, min(left, 0.25))

    async def _sleep(self, job_id: str, seconds: float) -> None:
        """Pause between two status reads (a backend may wake up early when a job ends)."""
        await asyncio.sleep(seconds)
