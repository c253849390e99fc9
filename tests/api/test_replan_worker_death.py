"""A solver worker that dies (out of memory, killed) does not take the re-plans with it."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from fastapi.testclient import TestClient

from app.planning.pool import get_pool
from app.settings import Settings
from tests.api.test_replan import planned, post_events, settings
from tests.conftest import Tenant

__all__ = ["planned", "settings"]  # fixtures reused


def _kill_workers(settings: Settings) -> int:
    pool = get_pool(
        settings.region_file,
        settings.osm_cache_dir,
        settings.planning_workers,
        settings.region_modes,
    )
    pids = list((getattr(pool._executor, "_processes", None) or {}).keys())
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)  # the executor's manager thread notices and marks the pool broken
    return len(pids)


def test_re_plans_go_on_after_the_solver_worker_was_killed(
    client: TestClient, tenant: Tenant, planned: dict[str, Any], settings: Settings
) -> None:
    """Every event answered 500 (BrokenProcessPool) after a worker died, until a restart."""
    assert _kill_workers(settings) >= 1
    sick = planned["routes"][0]["staff"]
    r = post_events(client, tenant, planned, [{"kind": "carer_absent", "staff": sick}])
    assert r.status_code == 201, r.text
    r = client.post(
        "/v1/plans",
        json={"district": planned["district"], "date": planned["date"]},
        params={"wait": "60"},
        headers=tenant.headers,
    )
    assert r.status_code == 201, r.text
