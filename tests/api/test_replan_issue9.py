"""Re-plans through the API, the defects of issue 9: one vocabulary, logs, metrics, no 500."""

from __future__ import annotations

import json
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.routers import events as events_router
from app.logging_setup import JsonFormatter
from app.planning.compute import PlanNotValid
from app.replan import service as core
from app.routing import Region
from app.scheduling.model import Priority
from app.scheduling.validate import Violation, ViolationKind
from tests.api.test_replan import TEN, busiest_around, planned, post_events, settings, visit_stops
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


class InlinePool:
    """The solver pool, run in this process so a test can plant a defect in the core."""

    def __init__(self, region: Region, fail: Exception | None = None) -> None:
        self.region = region
        self.fail = fail

    def run(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """``fn(region, *args)`` as a finished future (or the planted failure)."""
        done: Future[Any] = Future()
        if self.fail is not None:
            done.set_exception(self.fail)
        else:
            done.set_result(fn(self.region, *args))
        return done


def counter(client: TestClient, **labels: str) -> float:
    """The value of the validation-failure counter with ``labels`` (0 when absent)."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f"homecare_plan_validation_failures_total{{{wanted}}}"):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def counted(client: TestClient, *, kind: str, outcome: str) -> float:
    """The counter summed over every broken rule, for one plan kind and outcome."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in client.get("/metrics").text.splitlines()
        if line.startswith("homecare_plan_validation_failures_total{")
        and f'kind="{kind}"' in line
        and f'outcome="{outcome}"' in line
    )


def json_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """Captured records as the service's JSON log lines."""
    return [json.loads(JsonFormatter().format(r)) for r in caplog.records]


def test_a_repair_that_breaks_a_rule_still_answers_a_valid_version_build_item_2(
    client: TestClient,
    tenant: Tenant,
    planned: dict[str, Any],
    region: Region,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(events_router, "get_pool", lambda *_a: InlinePool(region))
    monkeypatch.setattr(core, "_insert_or_resolve", lambda inp, old, *_a, **_k: (inp.problem, old))
    sick = busiest_around(planned, TEN)
    mine = [v for v, s in visit_stops(planned).items() if s[0] == sick and s[1] >= TEN]
    before = counted(client, kind="replan", outcome="recovered")
    event = {"kind": "carer_absent", "staff": sick, "from_time": "10:00"}
    r = post_events(client, tenant, planned, [event])
    assert r.status_code == 201, r.text
    new = r.json()
    after = visit_stops(new)
    left = {u["visit"]: u for u in new["unassigned"]}
    for vid in mine:  # displaced: unassigned with a reason, never kept with the sick carer
        assert vid not in after, vid
        assert left[vid]["reason"], vid
    planned_ids = [s["visit"] for r in new["routes"] for s in r["stops"] if s["kind"] == "visit"]
    assert not set(planned_ids) & set(left)
    logged = [
        line
        for line in json_lines(caplog)
        if line["level"] == "ERROR" and "fell back" in line["msg"]
    ]
    assert logged, "the inconsistency is logged"
    kinds = {v["kind"] for v in logged[-1]["violations"]["repair"]}
    assert kinds
    assert all(set(v) == {"kind", "visit", "shift"} for v in logged[-1]["violations"]["repair"])
    assert counted(client, kind="replan", outcome="recovered") == before + len(
        logged[-1]["violations"]["repair"]
    )


def test_a_failed_validation_is_logged_with_its_message_and_violations_found_item_3(
    client: TestClient,
    tenant: Tenant,
    planned: dict[str, Any],
    region: Region,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broken = [Violation(ViolationKind.MISSING, "double visit short of carers", "v-7", "sh-2")]
    failure = PlanNotValid("the solver's plan breaks 1 hard rule(s): missing", broken)
    monkeypatch.setattr(events_router, "get_pool", lambda *_a: InlinePool(region, failure))
    kind = ViolationKind.MISSING.value
    before = counter(client, kind="request", outcome="refused", violation=kind)
    # The planted failure stands for any defect the core itself cannot recover from.
    visit = next(iter(visit_stops(planned)))
    r = post_events(client, tenant, planned, [{"kind": "visit_cancelled", "visit": visit}])
    assert r.status_code == 500, r.text
    line = next(x for x in json_lines(caplog) if x.get("exc_type", "").endswith("PlanNotValid"))
    assert line["exc_message"] == str(failure)
    assert line["violations"] == [{"kind": kind, "visit": "v-7", "shift": "sh-2"}]
    after = counter(client, kind="request", outcome="refused", violation=kind)
    assert after == before + 1


def changes_of(new: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The diff's per-visit changes by visit id."""
    return {c["visit"]: c for c in new["diff"]["changes"]}


def test_the_diff_tells_people_what_changed_and_why_build_item_4(
    client: TestClient, tenant: Tenant, planned: dict[str, Any]
) -> None:
    before = visit_stops(planned)
    sick = busiest_around(planned, TEN)
    cancel = next(v for v, s in sorted(before.items()) if s[0] != sick and s[1] > TEN + 3600)
    client_id = planned["batch"]["clients"][0]["external_id"]
    events = [
        {"kind": "carer_absent", "staff": sick, "from_time": "10:00"},
        {"kind": "visit_cancelled", "visit": cancel},
        # Nobody works at night: this urgent visit cannot be placed.
        {**urgent("urgent-night", client_id), "windows": [{"start": "23:00", "end": "23:40"}]},
    ]
    r = post_events(client, tenant, planned, events)
    assert r.status_code == 201, r.text
    new = r.json()
    diff = new["diff"]
    summary = diff["summary"]
    assert "\n" not in summary
    assert summary.startswith(f"{sick} absent from 10:00; {cancel} cancelled; urgent visit")
    changes = changes_of(new)
    after = visit_stops(new)
    left = {u["visit"]: u for u in new["unassigned"]}
    # The cancellation: cancelled, not unassigned, not removed.
    assert changes[cancel]["change"] == "cancelled"
    assert changes[cancel]["cause"] == "cancellation"
    assert cancel in diff["cancelled"]
    assert cancel not in diff["unassigned"] + diff["removed"]
    # The urgent visit that found no place is there with its reason.
    night = changes["urgent-night"]
    assert (night["change"], night["cause"], night["old"], night["new"]) == (
        "unassigned",
        "urgent_insertion",
        None,
        None,
    )
    assert night["reason"] == left["urgent-night"]["reason"]
    assert night["detail"]
    assert "urgent-night" in diff["unassigned"]
    # Every visit of the sick carer from 10:00: old -> new carer and times, or no carer + reason.
    mine = [v for v, s in before.items() if s[0] == sick and s[1] >= TEN]
    assert mine
    for vid in mine:
        c = changes[vid]
        assert c["cause"] == "sick_call", c
        assert c["old"]["staff"] == [sick]
        if vid in after:
            assert c["change"] == "moved"
            assert c["new"]["staff"] == [after[vid][0]]
            assert c["new"]["start"] == hhmm(after[vid][1])
        else:
            assert c["change"] == "unassigned"
            assert c["reason"] == left[vid]["reason"]
    # Nothing unchanged is listed; every changed visit is.
    for c in changes.values():
        if c["change"] in ("moved", "retimed"):
            assert (c["old"]["staff"], c["old"]["start"]) != (c["new"]["staff"], c["new"]["start"])
    for vid, (staff, start, _end) in after.items():
        if vid in before and (before[vid][0], before[vid][1]) != (staff, start):
            assert vid in changes, vid


def test_a_delay_names_its_cause_on_the_carers_later_visits(
    client: TestClient, tenant: Tenant, planned: dict[str, Any]
) -> None:
    stops = sorted(visit_stops(planned).items(), key=lambda kv: kv[1][1])
    vid, (staff, start, end) = next((v, s) for v, s in stops if s[1] >= 9 * 3600)
    event = {
        "kind": "visit_delayed",
        "visit": vid,
        "actual_start": hhmm(start),
        "actual_end": hhmm(end + 45 * 60),
    }
    r = post_events(client, tenant, planned, [event], now=hhmm(start + 600))
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["diff"]["summary"].startswith(f"{vid} started {hhmm(start)} (ends ")
    changes = changes_of(new)
    assert changes[vid]["change"] == "retimed"
    assert changes[vid]["cause"] == "delay"
    for c in changes.values():
        if staff in ((c["old"] or {}).get("staff", []) + (c["new"] or {}).get("staff", [])):
            assert c["cause"] == "delay", c


def hhmm(seconds: int) -> str:
    """Seconds since midnight -> ``"HH:MM"``."""
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}"
