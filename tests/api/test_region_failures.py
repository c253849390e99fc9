"""A region that cannot be loaded is reported, not retried per request; REGION_MODES is honoured."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api.app import create_app
from app.planning import pool
from app.settings import Settings
from tests.conftest import Tenant


@pytest.fixture
def broken_extract(tmp_path: Path) -> Path:
    """A file named like an extract that holds no OSM data."""
    path = tmp_path / "broken.osm.pbf"
    path.write_bytes(b"this is not a protocol buffer")
    return path


def _wait_for(client: TestClient, state: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        body: dict[str, Any] = client.get("/readyz").json()
        if body["checks"].get("region") == state or time.monotonic() > deadline:
            return body
        time.sleep(0.05)


def test_readyz_says_failed_with_the_reason(
    settings: Settings, broken_extract: Path, tmp_path: Path
) -> None:
    warm = settings.model_copy(
        update={
            "region_warmup": True,
            "region_file": broken_extract,
            "osm_cache_dir": tmp_path / "cache",
        }
    )
    with TestClient(create_app(warm)) as client:
        body = _wait_for(client, "failed")
        response = client.get("/readyz")
    assert response.status_code == 503
    assert body["status"] == "unavailable"
    assert body["checks"]["region"] == "failed"
    assert "RegionSourceError" in body["reasons"]["region"]
    assert "broken.osm.pbf" in body["reasons"]["region"]


def test_region_and_geocoding_answer_503_with_the_reason_and_build_once(
    settings: Settings,
    tenant: Tenant,
    broken_extract: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[Path] = []
    real = pool.load_region

    def counting(source: Path, **kwargs: Any) -> Any:
        calls.append(source)
        return real(source, **kwargs)

    monkeypatch.setattr(pool, "load_region", counting)
    broken = settings.model_copy(
        update={"region_file": broken_extract, "osm_cache_dir": tmp_path / "cache"}
    )
    with TestClient(create_app(broken), raise_server_exceptions=False) as client:
        answers = [client.get("/v1/region", headers=tenant.headers) for _ in range(3)]
        answers.append(
            client.post("/v1/clients/geocode", json={}, headers=tenant.headers),
        )
    for response in answers:
        assert response.status_code == 503, response.text
        error = response.json()["error"]
        assert error["code"] == "region_unavailable"
        assert "RegionSourceError" in error["message"]
    assert len(calls) == 1  # the failure is kept, not rebuilt on every call


def test_region_modes_drive_only_loads_and_reports_only_drive(
    settings: Settings, tenant: Tenant
) -> None:
    if not settings.region_file.is_file():
        pytest.skip(f"shared OSM data not found at {settings.region_file}")
    drive = settings.model_copy(update={"region_modes": ("drive",)})
    with TestClient(create_app(drive)) as client:
        response = client.get("/v1/region", headers=tenant.headers)
    assert response.status_code == 200
    assert set(response.json()["modes"]) == {"drive"}


@pytest.mark.parametrize(
    ("raw", "expected"), [("drive", ("drive",)), ("walk, drive", ("walk", "drive"))]
)
def test_region_modes_reads_a_comma_separated_list(
    raw: str, expected: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REGION_MODES", raw)
    assert tuple(m.value for m in Settings(dev_mode=True).region_modes) == expected


@pytest.mark.parametrize("raw", ["car", ""])
def test_region_modes_refuses_unknown_or_no_mode(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGION_MODES", raw)
    with pytest.raises(ValueError, match=r"region_modes|REGION_MODES"):
        Settings(dev_mode=True)
