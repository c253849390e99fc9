"""Operations: no personal data in logs, request ids, Prometheus metrics, readiness, secrets."""

from __future__ import annotations

import json
import logging
import sys
import threading
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from app.api import metrics
from app.api.app import create_app
from app.logging_setup import JsonFormatter
from app.settings import Settings
from tests.conftest import Tenant

NAME = "Wilhelmina Zwanenburg-Quist"
STREET = "Zonnebloemhof"
CITY = "Oosterwolde-Xylo"
NOTES = "diabetic, key behind the blue flowerpot"
SECRET_STRINGS = (NAME, STREET, CITY, NOTES, "Wilhelmina", "flowerpot")


def _batch(*, broken: bool = False) -> dict[str, Any]:
    client: dict[str, Any] = {
        "external_id": "C-PII",
        "district": "pii",
        "street": STREET,
        "housenumber": "7",
        "city": CITY,
        "coordinates": {"lat": 47.14, "lon": 9.52},
        "notes": NOTES,
    }
    if broken:
        client["coordinates"] = {"lat": 123.0, "lon": 9.52}
    return {
        "districts": [{"external_id": "pii", "name": "PII test"}],
        "staff": [
            {
                "external_id": "S-PII",
                "name": NAME,
                "district": "pii",
                "travel_mode": "walk",
                "start": {"lat": 47.14, "lon": 9.52},
            }
        ],
        "clients": [client],
    }


def test_logs_hold_no_names_addresses_or_notes(
    client: TestClient, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    assert client.post("/v1/import", json=_batch(), headers=tenant.headers).status_code == 200
    refused = client.post("/v1/import", json=_batch(broken=True), headers=tenant.headers)
    assert refused.status_code == 422
    assert client.get("/v1/clients/C-PII", headers=tenant.headers).status_code == 200
    assert client.get("/v1/staff", headers=tenant.headers).status_code == 200
    put = client.put(
        "/v1/clients/C-PII",
        json={**_batch()["clients"][0], "housenumber": "8"},
        headers=tenant.headers,
    )
    assert put.status_code == 200
    assert caplog.records, "the requests should have been logged"
    formatter = JsonFormatter()
    for record in caplog.records:
        rendered = record.getMessage() + formatter.format(record) + repr(record.__dict__)
        for secret in SECRET_STRINGS:
            assert secret not in rendered, f"{secret!r} logged by {record.name}"


def test_every_request_is_logged_once_with_its_id(
    client: TestClient, tenant: Tenant, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.access")
    response = client.get(
        "/v1/clients/C-404", headers={**tenant.headers, "X-Request-ID": "trace-123"}
    )
    assert response.headers["X-Request-ID"] == "trace-123"
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records]
    access = [line for line in lines if line["logger"] == "app.access"]
    assert len(access) == 1
    line = access[0]
    assert line["request_id"] == "trace-123"
    assert line["route"] == "/v1/clients/{external_id}"  # the template, never the raw path
    assert line["status"] == 404
    assert line["org_id"] == tenant.org_id
    assert line["actor"].startswith("api_key:hc_")
    assert "C-404" not in json.dumps(line)


def test_an_unsafe_request_id_is_replaced(client: TestClient) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"})
    assert response.headers["X-Request-ID"] != "bad id\twith spaces"
    assert len(response.headers["X-Request-ID"]) == 32
    fresh = client.get("/healthz")
    assert fresh.headers["X-Request-ID"] != response.headers["X-Request-ID"]


def test_exceptions_are_logged_without_their_message() -> None:
    try:
        msg = f"INSERT failed for street {STREET}"
        raise ValueError(msg)
    except ValueError:
        record = logging.getLogger("t").makeRecord(
            "t", logging.ERROR, __file__, 1, "unhandled %s", ("ValueError",), sys.exc_info()
        )
    line = json.loads(JsonFormatter().format(record))
    assert line["exc_type"] == "builtins.ValueError"
    assert line["stack"]
    assert STREET not in json.dumps(line)


def test_metrics_expose_latency_solves_and_queue_depth(client: TestClient, tenant: Tenant) -> None:
    client.get("/v1/clients", headers=tenant.headers)
    client.get("/v1/clients/does-not-exist", headers=tenant.headers)
    metrics.observe_solve(1.5, kind="replan")
    metrics.set_queue_depth(4)
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert (
        'homecare_http_request_duration_seconds_count{method="GET",'
        'route="/v1/clients/{external_id}",status="404"}'
    ) in text
    assert "does-not-exist" not in text
    assert 'homecare_solve_duration_seconds_count{kind="replan"}' in text
    assert "homecare_job_queue_depth 4.0" in text


def test_readyz_reports_the_region_when_the_app_tracks_it(client: TestClient, app: FastAPI) -> None:
    app.state.region_ready = lambda: False
    loading = client.get("/readyz")
    assert loading.status_code == 503
    assert loading.json()["checks"] == {"database": "ok", "region": "loading"}
    app.state.region_ready = True
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "region": "ok"}


@pytest.mark.parametrize("secret", ["dev-insecure-change-me", "too-short"])
def test_default_or_weak_secrets_are_refused_outside_dev_mode(secret: str) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(dev_mode=False, secret_key=secret)  # type: ignore[arg-type]
    assert Settings(dev_mode=True, secret_key=secret).dev_mode  # type: ignore[arg-type]


def test_readyz_reports_the_region_warm_up(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With warm-up on, /readyz waits for the region and then says it is there."""
    import app.api.app as app_module

    loaded = threading.Event()
    release = threading.Event()

    def slow_region(region_file: object, cache_dir: object, modes: object) -> object:
        release.wait(5)
        loaded.set()
        return object()

    monkeypatch.setattr(app_module, "get_region", slow_region)
    monkeypatch.setattr(
        app_module,
        "region_state",
        lambda *_: ("ok", None) if loaded.is_set() else ("loading", None),
    )
    warm = create_app(settings.model_copy(update={"region_warmup": True}))
    with TestClient(warm) as c:
        first = c.get("/readyz")
        assert first.status_code == 503
        assert first.json()["checks"]["region"] == "loading"
        release.set()
        assert loaded.wait(5)
        second = c.get("/readyz")
        assert second.status_code == 200
        assert second.json()["checks"] == {"database": "ok", "region": "ok"}
