"""Fixtures for durability tests: a PostgreSQL schema of their own and real worker processes."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.api.app import create_app
from app.settings import PROJECT_ROOT, Settings
from app.store import migrate
from app.store.db import make_engine

#: Fast heartbeats and reconciliation so that a lost worker is noticed within seconds.
QUEUE_KNOBS: dict[str, Any] = {
    "job_heartbeat_s": 0.3,
    # Above the worker's start of its solver pool (seconds on a busy machine).
    "job_stale_s": 6.0,
    "worker_reap_s": 0.5,
    "solver_time_limit_s": 1.0,
    "worker_shutdown_s": 5.0,
}


@pytest.fixture
def pg_url(fresh_database_factory: Callable[[str], str]) -> str:
    """A new, migrated PostgreSQL schema (procrastinate's tables included)."""
    url = fresh_database_factory("postgresql")
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    return url


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    """An engine on :func:`pg_url`."""
    engine = make_engine(pg_url)
    yield engine
    engine.dispose()


@pytest.fixture
def queue_settings(pg_url: str) -> Settings:
    """API settings with jobs on procrastinate."""
    return Settings(database_url=pg_url, dev_mode=True, job_backend="procrastinate", **QUEUE_KNOBS)


@pytest.fixture
def queue_client(queue_settings: Settings) -> Iterator[TestClient]:
    """A client of an app whose plan requests go to the procrastinate queue."""
    with TestClient(create_app(queue_settings), raise_server_exceptions=False) as c:
        yield c


class Workers:
    """Starts ``python -m app worker`` processes, each in its own process group."""

    def __init__(self, url: str, log_dir: Path) -> None:
        self.url = url
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, **env: str) -> subprocess.Popen[bytes]:
        """A new worker process; ``env`` adds settings (e.g. ``JOB_MAX_ATTEMPTS="1"``)."""
        environ = {
            **os.environ,
            "DATABASE_URL": self.url,
            "DEV_MODE": "true",
            **{k.upper(): str(v) for k, v in QUEUE_KNOBS.items()},
            **env,
        }
        with (self.log_dir / f"worker-{len(self.procs)}.log").open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "app", "worker"],
                cwd=PROJECT_ROOT,
                env=environ,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and its solver processes at once (a lost machine or container)."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def log(self, index: int) -> str:
        """What worker ``index`` printed."""
        return (self.log_dir / f"worker-{index}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        """SIGTERM every live worker, then SIGKILL what is left of its process group."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def workers(pg_url: str, tmp_path: Path) -> Iterator[Workers]:
    """Worker processes on the test schema, all stopped at the end."""
    w = Workers(pg_url, tmp_path)
    yield w
    w.stop_all()
