"""The real service as a subprocess for the day simulator: database, process, HTTP calls.

``python -m app serve`` runs on a free 127.0.0.1 port with a fresh SQLite file or a fresh
PostgreSQL schema (database ``test`` on 127.0.0.1:5432), the default job backend, and the region
given; organisations are made with ``python -m app create-org``. :class:`Api` is an HTTP client
that times every call and counts answers by status.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, make_url, text

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def fresh_database(kind: str, workdir: Path) -> tuple[str, str | None]:
    """(URL, PostgreSQL schema or None) of an empty database of ``kind`` (sqlite|postgresql)."""
    if kind == "sqlite":
        return f"sqlite:///{workdir / 'sim.sqlite3'}", None
    schema = f"sim_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False), schema


def drop_schema(schema: str) -> None:
    """Drop a schema made by :func:`fresh_database`."""
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


class Server:
    """``python -m app serve`` in its own process group, restartable on the same database."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start_s: list[float] = []

    def cli(self, *args: str) -> str:
        """Run ``python -m app <args>`` with the server's environment; its stdout."""
        done = subprocess.run(
            [sys.executable, "-m", "app", *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=300,
        )
        return done.stdout.decode()

    def start(self, timeout_s: float = 600) -> float:
        """Start and wait until ``/readyz`` answers 200; seconds it took."""
        t0 = time.perf_counter()
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "app",
                    "serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                ],
                env=self.env,
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        while time.perf_counter() - t0 < timeout_s:
            if self.proc.poll() is not None:
                msg = f"the server exited with {self.proc.returncode}; see {self.log}"
                raise RuntimeError(msg)
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base}/readyz", timeout=2).status_code == 200:
                    self.start_s.append(round(time.perf_counter() - t0, 1))
                    return self.start_s[-1]
            time.sleep(0.3)
        msg = f"the server was not ready within {timeout_s} s; see {self.log}"
        raise RuntimeError(msg)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the process group this object started (SIGKILL after 30 s)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        self.proc = None


class Stats:
    """Answers by status, 5xx count and event latencies, shared by threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.statuses: Counter[str] = Counter()
        self.errors_5xx = 0
        self.dropped = 0
        self.event_latency: list[float] = []
        self.route_latency: list[float] = []

    def record(self, status: int, latency: float, what: str) -> None:
        """Count one answer; keep its latency in the list for ``what``."""
        with self.lock:
            self.statuses[str(status)] += 1
            if status >= 500:
                self.errors_5xx += 1
            if what == "event":
                self.event_latency.append(latency)
            elif what == "route":
                self.route_latency.append(latency)


class Api:
    """A keep-alive HTTP client for one credential."""

    def __init__(self, base: str, token: str, stats: Stats) -> None:
        self.client = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=180
        )
        self.stats = stats

    def call(
        self,
        method: str,
        path: str,
        *,
        what: str = "other",
        json: Any = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One request; a dropped connection (server restart) is answered as status 599."""
        t0 = time.perf_counter()
        for attempt in range(2):
            try:
                r = self.client.request(method, path, json=json, headers=headers, params=params)
                break
            except httpx.TransportError as exc:
                # The server closed a kept-alive connection (it does so after a 500): counted,
                # then sent once more on a new connection. A stale version would get 409.
                r = httpx.Response(599, json={"error": {"message": type(exc).__name__}})
                if attempt == 0:
                    with self.stats.lock:
                        self.stats.dropped += 1
        self.stats.record(r.status_code, time.perf_counter() - t0, what)
        return r

    def reset(self) -> None:
        """Drop pooled connections (after a server restart they point at a dead process)."""
        headers = dict(self.client.headers)
        base = self.client.base_url
        self.client.close()
        self.client = httpx.Client(base_url=base, headers=headers, timeout=180)

    def close(self) -> None:
        """Close the connections."""
        self.client.close()


def message(r: httpx.Response) -> str:
    """The error message of an answer (ids only in this service's messages), shortened."""
    try:
        body = r.json()
    except ValueError:
        return r.text[:300]
    err = body.get("error", {}) if isinstance(body, dict) else {}
    return str(err.get("message", ""))[:300]
