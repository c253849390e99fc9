"""Re-plans through the API, the defects of issue 9: one vocabulary, logs, metrics, no 500."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.scheduling.model import Priority
from tests.api.test_replan import planned, post_events, settings
from tests.conftest import Tenant

__all__ = ["planned", "settings"]  # fixtures


def urgent(vid: str, client_id: str, **extra: Any) -> dict[str, Any]:
    """An urgent visit of 20 minutes between 10:30 and 16:00."""
    return {
        "kind": "urgent_visit_added",
        "visit": vid,
        "client": client_id,
        "windows": [{"start": "10:30", "end": "16:00"}],
        "duration_minutes": 20,
        **extra,
    }


def test_every_priority_the_schema_offers_is_accepted_found_item_2(
    client: TestClient, tenant: Tenant, planned: dict[str, Any]
) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    field = schema["UrgentVisitIn"]["properties"]["priority"]
    if "enum" in field:
        offered = field["enum"]
    else:
        ref = field.get("$ref") or next(a["$ref"] for a in field.get("allOf", []))
        offered = schema[ref.rsplit("/", 1)[1]]["enum"]
    assert offered, "the schema names its priorities"
    plan = planned
    client_id = planned["batch"]["clients"][0]["external_id"]
    for i, priority in enumerate(offered):
        event = urgent(f"urgent-{i}", client_id, priority=priority)
        r = post_events(client, tenant, plan, [event])
        assert r.status_code == 201, (priority, r.text)
        plan = r.json()
    assert set(offered) == {p.value for p in Priority}  # one vocabulary with the core


@pytest.mark.parametrize("word", ["high", "normal", "low", "urgent"])
def test_a_priority_the_core_does_not_know_is_a_422_naming_the_field(
    client: TestClient, tenant: Tenant, planned: dict[str, Any], word: str
) -> None:
    client_id = planned["batch"]["clients"][0]["external_id"]
    r = post_events(client, tenant, planned, [urgent("urgent-x", client_id, priority=word)])
    assert r.status_code == 422, r.text
    path = r.json()["error"]["details"][0]["path"]
    assert path.startswith("events[0]"), path
    assert path.endswith(".priority"), path
