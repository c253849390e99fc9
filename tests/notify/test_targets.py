"""Webhooks reach public addresses only, unless the operator allows internal receivers."""

from __future__ import annotations

import httpx
import pytest
from fastapi.testclient import TestClient

from app.api.app import create_app
from app.notify.targets import PublicOnlyTransport, target_problem
from app.settings import Settings
from tests.conftest import Tenant


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://localhost:9000/hook",
        "http://api.localhost/hook",
    ],
)
def test_non_public_targets_are_refused(url: str) -> None:
    assert target_problem(url, allow_private=False) is not None
    assert target_problem(url, allow_private=True) is None


@pytest.mark.parametrize("url", ["https://ecd.example.com/hooks", "http://93.184.216.34/x"])
def test_public_targets_and_names_pass_at_subscription(url: str) -> None:
    assert target_problem(url, allow_private=False) is None


def test_subscribing_an_internal_address_is_422_naming_the_url(
    client: TestClient, tenant: Tenant
) -> None:
    r = client.post("/v1/webhooks", json={"url": "http://127.0.0.1:5432/x"}, headers=tenant.headers)
    assert r.status_code == 422
    detail = r.json()["error"]["details"][0]
    assert (detail["path"], detail["code"]) == ("url", "webhook_target_not_allowed")
    listed = client.get("/v1/webhooks", headers=tenant.headers).json()
    assert listed["total"] == 0


def test_the_operator_may_allow_internal_receivers(settings: Settings, tenant: Tenant) -> None:
    internal = create_app(settings.model_copy(update={"webhook_allow_private_targets": True}))
    with TestClient(internal) as c:
        r = c.post("/v1/webhooks", json={"url": "http://10.0.0.7/hook"}, headers=tenant.headers)
    assert r.status_code == 201, r.text


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/hook", "http://localhost:9/hook"])
def test_sending_to_a_name_or_address_inside_is_refused_before_connecting(url: str) -> None:
    refused = pytest.raises(httpx.ConnectError, match="webhook target refused")
    with httpx.Client(transport=PublicOnlyTransport()) as http, refused:
        http.post(url, content=b"{}")
