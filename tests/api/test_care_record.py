"""Data the care record has (issue 9, item 6): competence codes in errors, display names,
staff start and end given as an address."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.routing import Region
from tests.api.batches import sample_batch
from tests.conftest import Tenant


def _post(client: TestClient, tenant: Tenant, body: Any) -> Any:
    return client.post("/v1/import", json=body, headers=tenant.headers)


def _organisation_codes(client: TestClient, tenant: Tenant) -> list[str]:
    r = client.get("/v1/organisation/competences", headers=tenant.headers)
    assert r.status_code == 200, r.text
    return sorted(item["code"] for item in r.json()["competences"])


class TestUnknownCompetenceListsTheCodes:
    @pytest.mark.parametrize(("section", "index"), [("visits", 0), ("staff", 1), ("templates", 0)])
    def test_import_error_names_every_allowed_code(
        self, client: TestClient, tenant: Tenant, section: str, index: int
    ) -> None:
        batch = sample_batch()
        batch[section][index]["competences"] = ["brain_surgery"]
        r = _post(client, tenant, batch)
        assert r.status_code == 422, r.text
        details = [d for d in r.json()["error"]["details"] if d["code"] == "unknown_competence"]
        assert [d["path"] for d in details] == [f"{section}[{index}].competences[0]"]
        assert details[0]["ctx"]["allowed"] == _organisation_codes(client, tenant)

    def test_put_of_one_visit_lists_the_codes_after_the_vocabulary_changed(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        assert _post(client, tenant, sample_batch()).status_code == 200
        codes = _organisation_codes(client, tenant)
        r = client.put(
            "/v1/organisation/competences",
            json={"competences": [{"code": c} for c in [*codes, "hoist_two"]]},
            headers=tenant.headers,
        )
        assert r.status_code == 200, r.text
        visit = copy.deepcopy(sample_batch()["visits"][0])
        visit["competences"] = ["injection", "telepathy"]
        r = client.put(f"/v1/visits/{visit['external_id']}", json=visit, headers=tenant.headers)
        assert r.status_code == 422, r.text
        (detail,) = r.json()["error"]["details"]
        assert detail["code"] == "unknown_competence"
        assert detail["ctx"]["allowed"] == sorted([*codes, "hoist_two"])

    def test_other_errors_carry_no_context(self, client: TestClient, tenant: Tenant) -> None:
        batch = sample_batch()
        batch["visits"][1]["client"] = "C-404"
        r = _post(client, tenant, batch)
        assert r.status_code == 422
        (detail,) = r.json()["error"]["details"]
        assert detail["code"] == "unknown_client"
        assert "ctx" not in detail


class TestStreetFallbackThroughTheApi:
    def test_a_client_without_or_with_an_unknown_number_is_placed_on_the_street(
        self, client: TestClient, tenant: Tenant, region: Region
    ) -> None:
        known = next(a for a in region.addresses if a.postcode and a.city and a.housenumber)
        rows = [
            {"external_id": "exact", "housenumber": known.housenumber},
            {"external_id": "no-number"},
            {"external_id": "unknown-number", "housenumber": "9999"},
        ]
        batch = {
            "districts": [{"external_id": "d", "name": "D"}],
            "clients": [
                {
                    "district": "d",
                    "street": known.street,
                    "postcode": known.postcode,
                    "city": known.city,
                    **row,
                }
                for row in rows
            ],
        }
        assert _post(client, tenant, batch).status_code == 200
        r = client.post("/v1/clients/geocode", json={"district": "d"}, headers=tenant.headers)
        assert r.status_code == 200, r.text
        body = r.json()
        items = {i["client"]: i for i in body["items"]}
        assert items["exact"]["precision"] == "address"
        assert items["exact"]["candidates"] == []
        for name in ("no-number", "unknown-number"):
            item = items[name]
            assert (item["status"], item["precision"], item["stored"]) == (
                "matched",
                "street",
                True,
            )
            assert item["quality"] < items["exact"]["quality"]
            assert item["candidates"]
            assert all(c["street"] == known.street for c in item["candidates"])
            stored = client.get(f"/v1/clients/{name}", headers=tenant.headers).json()
            assert stored["geocode_precision"] == "street"
            assert stored["coordinate_source"] == "geocoded"
            assert stored["geocode_quality"] == pytest.approx(item["quality"], abs=1e-3)
        assert (body["matched"], body["street"], body["not_found"]) == (3, 2, 0)
        exact = client.get("/v1/clients/exact", headers=tenant.headers).json()
        assert exact["geocode_precision"] == "address"
