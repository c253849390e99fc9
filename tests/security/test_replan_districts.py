"""A planner's re-plan events reach their own districts only (issue 10, defect 1).

An urgent visit names a client by external id. For a planner limited to the plan's district, a
client of another district must be answered exactly like a client that does not exist: the same
422, the same code, so the answer neither places another district's client on their carers nor
tells them which client ids exist elsewhere.
"""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from app.api import security
from app.settings import Settings
from app.store import users
from app.store.db import make_sessionmaker
from app.store.models import Plan, Role
from tests.api.test_replan import planned, settings
from tests.conftest import Tenant
from tests.planning.district import DISTRICT

__all__ = ["planned", "settings"]  # fixtures reused from test_replan

ELSEWHERE = "elsewhere"


def _planner_of(
    engine: Engine, settings: Settings, tenant: Tenant, district: str
) -> dict[str, str]:
    with make_sessionmaker(engine).begin() as session:
        user = users.create_user(
            session,
            tenant.org_id,
            email=f"planner-{district}@test.example",
            role=Role.PLANNER,
            password="correct horse battery staple",
            districts=[district],
        )
        token, _ = security.issue_token(settings, user)
    return {"Authorization": f"Bearer {token}"}


def _urgent(client_id: str, visit: str) -> dict[str, Any]:
    return {
        "kind": "urgent_visit_added",
        "visit": visit,
        "client": client_id,
        "windows": [{"start": "11:00", "end": "16:00"}],
        "duration_minutes": 15,
    }


def _post(client: TestClient, headers: dict[str, str], plan: dict[str, Any], ev: Any) -> Any:
    return client.post(
        f"/v1/plans/{plan['id']}/events",
        json={"events": [ev], "now": "10:00"},
        headers={**headers, "If-Match": f'"{plan["version"]}"'},
    )


def _plans(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(select(func.count()).select_from(Plan)) or 0)


def test_a_planner_cannot_add_an_urgent_visit_for_another_districts_client(
    client: TestClient,
    tenant: Tenant,
    planned: dict[str, Any],
    db: Engine,
    settings: Settings,
) -> None:
    # A client of another district, at the very place of one of the planned clients (so the
    # re-plan would succeed if it were allowed).
    home = planned["batch"]["clients"][0]
    other = {
        "districts": [{"external_id": ELSEWHERE, "name": "Elsewhere"}],
        "clients": [
            {
                **{k: v for k, v in home.items() if k not in {"external_id", "district"}},
                "external_id": "ELSEWHERE-C1",
                "district": ELSEWHERE,
            }
        ],
    }
    r = client.post("/v1/import", json=other, headers=tenant.headers)
    assert r.status_code == 200, r.text
    planner = _planner_of(db, settings, tenant, DISTRICT)
    assert client.get("/v1/clients/ELSEWHERE-C1", headers=planner).status_code == 404

    before = _plans(db)
    elsewhere = _post(client, planner, planned, _urgent("ELSEWHERE-C1", "URG-1"))
    missing = _post(client, planner, planned, _urgent("NO-SUCH-CLIENT", "URG-1"))
    assert elsewhere.status_code == 422, elsewhere.text
    assert _plans(db) == before
    # No id oracle: "exists in another district" and "does not exist" read the same.
    assert missing.status_code == elsewhere.status_code
    assert elsewhere.json() == {
        "error": {
            **missing.json()["error"],
            "details": [
                {**d, "msg": d["msg"].replace("NO-SUCH-CLIENT", "ELSEWHERE-C1")}
                for d in missing.json()["error"]["details"]
            ],
        }
    }
    assert elsewhere.json()["error"]["details"][0]["loc"] == ["events", 0, "client"]


def test_a_planner_still_adds_an_urgent_visit_for_their_own_client(
    client: TestClient,
    tenant: Tenant,
    planned: dict[str, Any],
    db: Engine,
    settings: Settings,
) -> None:
    planner = _planner_of(db, settings, tenant, DISTRICT)
    own = planned["batch"]["clients"][0]["external_id"]
    r = _post(client, planner, planned, _urgent(own, "URG-OWN"))
    assert r.status_code == 201, r.text
    assert "URG-OWN" in {s.get("visit") for route in r.json()["routes"] for s in route["stops"]} | {
        u["visit"] for u in r.json()["unassigned"]
    }
