"""Read/CRUD endpoints: shapes, pagination, filters, tenant isolation, template expansion."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from app.store.db import make_sessionmaker
from app.store.models import District, Plan, PlanStatus
from tests.api.batches import sample_batch
from tests.conftest import Tenant, count_rows


@pytest.fixture
def loaded(client: TestClient, tenant: Tenant) -> Tenant:
    """The tenant with the sample batch imported."""
    response = client.post("/v1/import", json=sample_batch(), headers=tenant.headers)
    assert response.status_code == 200, response.text
    return tenant


def _get(client: TestClient, tenant: Tenant, url: str, **params: Any) -> Any:
    response = client.get(url, params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return response.json()


class TestReads:
    def test_a_visit_reads_back_in_the_import_shape(
        self, client: TestClient, loaded: Tenant
    ) -> None:
        body = _get(client, loaded, "/v1/visits/V-2")
        sent = sample_batch()["visits"][1]
        assert body["windows"] == sent["windows"]
        assert body["depends_on"] == {
            "visit": "V-1",
            "min_gap_minutes": 240,
            "max_gap_minutes": None,
        }
        assert body["client"] == "C-1"
        assert body["status"] == "planned"
        assert "created_at" in body

    def test_a_client_reads_back_with_references(self, client: TestClient, loaded: Tenant) -> None:
        body = _get(client, loaded, "/v1/clients/C-1")
        assert body["preferred_carers"] == ["S-1"]
        assert body["coordinates"] == {"lat": 47.1398, "lon": 9.5215}
        assert body["coordinate_source"] == "care_record"
        assert _get(client, loaded, "/v1/clients/C-2")["allowed_team"] == "vaduz-north"

    def test_a_shift_reads_back_with_breaks(self, client: TestClient, loaded: Tenant) -> None:
        body = _get(client, loaded, "/v1/shifts/SH-1")
        assert (body["start"], body["end"]) == ("07:00", "15:00")
        assert body["breaks"] == sample_batch()["shifts"][0]["breaks"]

    def test_unknown_external_id_is_404(self, client: TestClient, loaded: Tenant) -> None:
        response = client.get("/v1/staff/S-404", headers=loaded.headers)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"

    def test_read_then_put_back_changes_nothing(self, client: TestClient, loaded: Tenant) -> None:
        body = _get(client, loaded, "/v1/visits/V-3")
        for stamp in ("created_at", "updated_at"):
            body.pop(stamp)
        response = client.put("/v1/visits/V-3", json=body, headers=loaded.headers)
        assert response.status_code == 200, response.text
        assert response.json()["updated_at"] == _get(client, loaded, "/v1/visits/V-3")["updated_at"]


class TestPaginationAndFilters:
    def test_limit_offset_and_total(self, client: TestClient, loaded: Tenant) -> None:
        first = _get(client, loaded, "/v1/visits", limit=3, offset=0)
        second = _get(client, loaded, "/v1/visits", limit=3, offset=3)
        assert first["total"] == second["total"] == 4
        ids = [v["external_id"] for v in first["items"] + second["items"]]
        assert ids == ["V-1", "V-2", "V-3", "V-4"]

    def test_visits_by_district_and_date(self, client: TestClient, loaded: Tenant) -> None:
        vaduz = _get(client, loaded, "/v1/visits", district="vaduz")
        assert {v["external_id"] for v in vaduz["items"]} == {"V-1", "V-2", "V-3"}
        day = _get(client, loaded, "/v1/visits", date="2025-03-04")
        assert [v["external_id"] for v in day["items"]] == ["V-4"]
        both = _get(client, loaded, "/v1/visits", district="schaan", date="2025-03-03")
        assert both["total"] == 0
        ranged = _get(client, loaded, "/v1/visits", date_from="2025-03-04", date_to="2025-03-31")
        assert ranged["total"] == 1

    def test_shifts_by_district_and_date(self, client: TestClient, loaded: Tenant) -> None:
        page = _get(client, loaded, "/v1/shifts", district="vaduz", date="2025-03-03")
        assert [s["external_id"] for s in page["items"]] == ["SH-1", "SH-2"]

    def test_staff_clients_and_teams_by_district(self, client: TestClient, loaded: Tenant) -> None:
        assert _get(client, loaded, "/v1/staff", district="schaan")["total"] == 1
        assert _get(client, loaded, "/v1/clients", district="vaduz")["total"] == 2
        assert _get(client, loaded, "/v1/teams", district="vaduz")["total"] == 1
        assert _get(client, loaded, "/v1/districts")["total"] == 2

    def test_an_unknown_district_filters_to_nothing(
        self, client: TestClient, loaded: Tenant
    ) -> None:
        assert _get(client, loaded, "/v1/visits", district="nowhere")["total"] == 0

    def test_a_bad_limit_is_422_with_its_path(self, client: TestClient, loaded: Tenant) -> None:
        response = client.get("/v1/visits", params={"limit": 0}, headers=loaded.headers)
        assert response.status_code == 422
        assert response.json()["error"]["details"][0]["path"] == "query.limit"

    def test_plans_by_district_date_and_status(
        self, client: TestClient, loaded: Tenant, db: Engine
    ) -> None:
        with make_sessionmaker(db).begin() as session:
            district = session.query(District).filter_by(external_id="vaduz").one()
            for version, status in ((1, PlanStatus.SUPERSEDED), (2, PlanStatus.PUBLISHED)):
                session.add(
                    Plan(
                        org_id=loaded.org_id,
                        district_id=district.id,
                        date=dt.date(2025, 3, 3),
                        version=version,
                        status=status,
                        created_by="test",
                    )
                )
        page = _get(client, loaded, "/v1/plans", district="vaduz", date="2025-03-03")
        assert [p["version"] for p in page["items"]] == [2, 1]
        published = _get(client, loaded, "/v1/plans", status="published")
        assert published["total"] == 1
        plan = _get(client, loaded, f"/v1/plans/{published['items'][0]['id']}")
        assert plan["routes"] == []
        assert plan["district"] == "vaduz"


class TestWrites:
    def test_put_creates_then_replaces(self, client: TestClient, loaded: Tenant) -> None:
        visit = {
            "external_id": "V-10",
            "client": "C-3",
            "date": "2025-03-05",
            "windows": [{"start": "09:00", "end": "10:00"}],
            "duration_minutes": 20,
        }
        created = client.put("/v1/visits/V-10", json=visit, headers=loaded.headers)
        assert created.status_code == 201, created.text
        visit["status"] = "cancelled"
        replaced = client.put("/v1/visits/V-10", json=visit, headers=loaded.headers)
        assert replaced.status_code == 200
        assert replaced.json()["status"] == "cancelled"

    def test_put_errors_name_fields_of_the_body(
        self, client: TestClient, loaded: Tenant, db: Engine
    ) -> None:
        before = count_rows(db)
        visit = {
            "external_id": "V-11",
            "client": "C-404",
            "date": "2025-03-05",
            "windows": [{"start": "09:00", "end": "10:00"}],
            "duration_minutes": 20,
            "competences": ["telepathy"],
        }
        response = client.put("/v1/visits/V-11", json=visit, headers=loaded.headers)
        assert response.status_code == 422
        paths = {d["path"] for d in response.json()["error"]["details"]}
        assert paths == {"client", "competences[0]"}
        assert count_rows(db) == before

    def test_put_with_mismatching_external_id_is_422(
        self, client: TestClient, loaded: Tenant
    ) -> None:
        body = _get(client, loaded, "/v1/clients/C-3")
        response = client.put("/v1/clients/C-999", json=body, headers=loaded.headers)
        assert response.status_code == 422
        assert response.json()["error"]["details"][0]["code"] in {
            "external_id_mismatch",
            "extra_forbidden",
        }

    def test_delete_and_conflict_while_referenced(
        self, client: TestClient, loaded: Tenant, db: Engine
    ) -> None:
        response = client.delete("/v1/clients/C-3", headers=loaded.headers)
        assert response.status_code == 409  # V-4 still refers to C-3
        assert count_rows(db)["clients"] == 3
        assert client.delete("/v1/visits/V-4", headers=loaded.headers).status_code == 204
        assert client.delete("/v1/clients/C-3", headers=loaded.headers).status_code == 204
        assert client.get("/v1/clients/C-3", headers=loaded.headers).status_code == 404


class TestTemplates:
    def test_expand_creates_dated_visits_once(
        self, client: TestClient, loaded: Tenant, db: Engine
    ) -> None:
        body = {"from": "2025-03-03", "to": "2025-03-09"}
        first = client.post("/v1/visit-templates/expand", json=body, headers=loaded.headers)
        assert first.status_code == 200, first.text
        assert first.json() == {"created": 3, "existing": 0}  # Mon, Wed, Fri
        rows = count_rows(db)["visits"]
        again = client.post("/v1/visit-templates/expand", json=body, headers=loaded.headers)
        assert again.json() == {"created": 0, "existing": 3}
        assert count_rows(db)["visits"] == rows
        visit = _get(client, loaded, "/v1/visits/T-1@2025-03-05")
        assert visit["template"] == "T-1"
        assert visit["competences"] == ["insulin"]

    def test_expand_respects_validity(self, client: TestClient, loaded: Tenant) -> None:
        body = {"from": "2025-03-28", "to": "2025-04-06"}
        response = client.post("/v1/visit-templates/expand", json=body, headers=loaded.headers)
        assert response.json()["created"] == 2  # Fri 28 and Mon 31 March; T-1 ends 31 March

    def test_a_backwards_range_is_422(self, client: TestClient, loaded: Tenant) -> None:
        body = {"from": "2025-03-09", "to": "2025-03-03"}
        response = client.post("/v1/visit-templates/expand", json=body, headers=loaded.headers)
        assert response.status_code == 422


class TestOrganisation:
    def test_competences_are_seeded_and_replaceable(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        codes = [
            c["code"] for c in _get(client, tenant, "/v1/organisation/competences")["competences"]
        ]
        assert "insulin" in codes
        new = {"competences": [{"code": "sosu_assistent", "label": "SOSU-assistent"}]}
        response = client.put("/v1/organisation/competences", json=new, headers=tenant.headers)
        assert response.status_code == 200
        assert response.json() == new

    def test_a_competence_in_use_cannot_be_removed(
        self, client: TestClient, loaded: Tenant
    ) -> None:
        new = {"competences": [{"code": "adl", "label": ""}]}
        response = client.put("/v1/organisation/competences", json=new, headers=loaded.headers)
        assert response.status_code == 409

    def test_api_keys_are_shown_once_and_revocable(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        response = client.post(
            "/v1/api-keys", json={"name": "vendor", "role": "planner"}, headers=tenant.headers
        )
        assert response.status_code == 201
        created = response.json()
        key = created["key"]
        assert client.get("/v1/visits", headers={"X-API-Key": key}).status_code == 200
        listed = client.get("/v1/api-keys", headers=tenant.headers).json()
        assert all("key" not in k for k in listed)
        # A planner key cannot manage keys.
        assert client.get("/v1/api-keys", headers={"X-API-Key": key}).status_code == 403
        revoke = client.delete(f"/v1/api-keys/{created['id']}", headers=tenant.headers)
        assert revoke.status_code == 204
        assert client.get("/v1/visits", headers={"X-API-Key": key}).status_code == 401

    def test_a_read_only_key_cannot_import(self, client: TestClient, tenant: Tenant) -> None:
        response = client.post(
            "/v1/api-keys",
            json={"name": "reader", "role": "nurse", "scopes": ["read"]},
            headers=tenant.headers,
        )
        key = response.json()["key"]
        refused = client.post("/v1/import", json=sample_batch(), headers={"X-API-Key": key})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "forbidden"


ISOLATED_READS = [
    "/v1/clients/C-1",
    "/v1/staff/S-1",
    "/v1/shifts/SH-1",
    "/v1/visits/V-1",
    "/v1/visit-templates/T-1",
    "/v1/districts/vaduz",
]
LISTS = [
    "/v1/clients",
    "/v1/staff",
    "/v1/shifts",
    "/v1/visits",
    "/v1/visit-templates",
    "/v1/districts",
    "/v1/teams",
    "/v1/plans",
]


class TestTenantIsolation:
    @pytest.mark.parametrize("url", ISOLATED_READS)
    def test_another_tenant_gets_404(
        self, client: TestClient, loaded: Tenant, other_tenant: Tenant, url: str
    ) -> None:
        assert client.get(url, headers=loaded.headers).status_code == 200
        response = client.get(url, headers=other_tenant.headers)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "not_found"
        assert "Aeulestrasse" not in response.text

    @pytest.mark.parametrize("url", LISTS)
    def test_another_tenant_lists_nothing(
        self, client: TestClient, loaded: Tenant, other_tenant: Tenant, url: str
    ) -> None:
        assert client.get(url, headers=other_tenant.headers).json()["total"] == 0

    def test_another_tenant_cannot_change_or_delete(
        self, client: TestClient, loaded: Tenant, other_tenant: Tenant, db: Engine
    ) -> None:
        before = count_rows(db)
        assert client.delete("/v1/visits/V-1", headers=other_tenant.headers).status_code == 404
        response = client.delete("/v1/api-keys/1", headers=other_tenant.headers)
        assert response.status_code == 404
        assert count_rows(db)["visits"] == before["visits"]
        assert client.get("/v1/visits", headers=loaded.headers).status_code == 200

    def test_another_tenants_plan_is_404(
        self, client: TestClient, loaded: Tenant, other_tenant: Tenant, db: Engine
    ) -> None:
        with make_sessionmaker(db).begin() as session:
            district = session.query(District).filter_by(external_id="vaduz").one()
            plan = Plan(
                org_id=loaded.org_id,
                district_id=district.id,
                date=dt.date(2025, 3, 3),
                version=1,
                created_by="test",
            )
            session.add(plan)
            session.flush()
            plan_id = plan.id
        assert client.get(f"/v1/plans/{plan_id}", headers=loaded.headers).status_code == 200
        assert client.get(f"/v1/plans/{plan_id}", headers=other_tenant.headers).status_code == 404


def test_openapi_has_stable_operation_ids_and_tags(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    ops = {
        op["operationId"]: op
        for path in schema["paths"].values()
        for op in path.values()
        if isinstance(op, dict) and "operationId" in op
    }
    for expected in ("import_care_records", "list_visits", "get_visit", "put_visit", "get_plan"):
        assert expected in ops
    assert all(op.get("tags") and op.get("summary") for op in ops.values())
    assert all(p.startswith("/v1/") or p in {"/healthz", "/readyz"} for p in schema["paths"])
