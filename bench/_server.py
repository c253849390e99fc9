"""A real ``python -m app serve`` in a subprocess, for benchmarks and process-level tests."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

from app.settings import PROJECT_ROOT
from app.store import migrate, tenants
from app.store.db import make_engine, make_sessionmaker


def tenant_database(url: str) -> str:
    """Migrate the empty database at ``url`` and add an organisation; its admin API key."""
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        with make_sessionmaker(engine).begin() as session:
            org = tenants.create_organisation(session, "Bench", timezone="Europe/Vaduz")
            return tenants.create_api_key(session, org.id, name="bench").plaintext
    finally:
        engine.dispose()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def serve(
    env: Mapping[str, str], log: Path, *, ready: str = "/healthz", timeout_s: float = 60.0
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Start the server (``env`` added to this environment) in a session of its own.

    Yields the process and its base URL once ``GET ready`` answers 200; output goes to ``log``.
    At the end whatever is left of its process group gets SIGKILL.

    Raises
    ------
    RuntimeError
        The server exited or did not get ready within ``timeout_s``.
    """
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(port)],
            cwd=PROJECT_ROOT,
            env={**os.environ, **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}{ready}", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline or proc.poll() is not None:
                msg = f"server did not start: {log.read_text(errors='replace')[-2000:]}"
                raise RuntimeError(msg)
            time.sleep(0.2)
        yield proc, base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
