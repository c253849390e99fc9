"""The region endpoint and geocoding of clients (care-record coordinates always win)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.routing import Region
from tests.conftest import Tenant


def test_region_status_names_the_extract_modes_and_address_count(
    client: TestClient, tenant: Tenant, region: Region
) -> None:
    r = client.get("/v1/region", headers=tenant.headers)
    assert r.status_code == 200
    body = r.json()
    assert body["source"] == "liechtenstein.osm.pbf"
    assert set(body["modes"]) == {"drive", "bike", "walk"}
    assert all(m["nodes"] > 0 and m["cache"] in {"warm", "built"} for m in body["modes"].values())
    assert body["addresses"] == len(region.addresses)
    assert client.get("/v1/region").status_code == 401


def test_geocode_stores_matches_reports_the_rest_and_keeps_care_record_coordinates(
    client: TestClient, tenant: Tenant, other_tenant: Tenant, region: Region
) -> None:
    known = region.addresses[42]
    batch = {
        "districts": [{"external_id": "d", "name": "D"}],
        "clients": [
            {
                "external_id": "known",
                "district": "d",
                "street": known.street,
                "housenumber": known.housenumber,
                "postcode": known.postcode,
                "city": known.city,
            },
            {"external_id": "unknown", "district": "d", "street": "Nirgendweg", "housenumber": "9"},
            {
                "external_id": "recorded",
                "district": "d",
                "street": known.street,
                "housenumber": known.housenumber,
                "coordinates": {"lat": 47.1, "lon": 9.5},
            },
        ],
    }
    assert client.post("/v1/import", json=batch, headers=tenant.headers).status_code == 200
    r = client.post("/v1/clients/geocode", json={"district": "d"}, headers=tenant.headers)
    assert r.status_code == 200, r.text
    body = r.json()
    items = {i["client"]: i for i in body["items"]}
    assert set(items) == {"known", "unknown"}  # "recorded" has care-record coordinates
    assert items["known"]["status"] == "matched"
    assert items["known"]["stored"] is True
    assert items["known"]["quality"] > 0.5
    assert items["unknown"]["status"] == "not_found"
    assert items["unknown"]["stored"] is False
    assert (body["matched"], body["not_found"]) == (1, 1)

    stored = client.get("/v1/clients/known", headers=tenant.headers).json()
    assert stored["coordinate_source"] == "geocoded"
    assert stored["coordinates"]["lat"] == known.location.lat
    recorded = client.get("/v1/clients/recorded", headers=tenant.headers).json()
    assert (recorded["coordinate_source"], recorded["coordinates"]["lat"]) == ("care_record", 47.1)

    # Nothing is left to geocode; another tenant's district does not exist for them.
    again = client.post("/v1/clients/geocode", json={"district": "d"}, headers=tenant.headers)
    assert [i["client"] for i in again.json()["items"]] == ["unknown"]
    r = client.post("/v1/clients/geocode", json={"district": "d"}, headers=other_tenant.headers)
    assert r.status_code == 404
