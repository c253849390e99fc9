"""Data the care record has (issue 9, item 6): competence codes in errors, display names,
staff start and end given as an address."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from app.api.app import create_app
from app.domain import Address
from app.logging_setup import JsonFormatter
from app.routing import Region
from app.settings import Settings
from app.store.db import make_sessionmaker
from app.store.models import AuditEntry
from tests.api.batches import sample_batch
from tests.api.test_plans import DAY, load, plan_now, settings
from tests.conftest import Tenant, count_rows
from tests.planning.district import district_batch

__all__ = ["settings"]  # the plan tests' settings fixture (small solver budget)


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

    def test_the_route_tells_the_carer_a_position_is_only_the_street(
        self, client: TestClient, tenant: Tenant, region: Region
    ) -> None:
        batch = district_batch(region, DAY)
        vague = batch["clients"][:3]
        for c in vague:
            del c["coordinates"]
            c["housenumber"] = ""
        load(client, tenant, batch)
        r = client.post("/v1/clients/geocode", json={}, headers=tenant.headers)
        assert r.status_code == 200, r.text
        placed = {i["client"] for i in r.json()["items"] if i["stored"]}
        assert placed
        plan = plan_now(client, tenant)
        seen = 0
        for staff in {route["staff"] for route in plan["routes"]}:
            route = client.get(f"/v1/staff/{staff}/route?date={DAY}", headers=tenant.headers)
            for stop in route.json()["stops"]:
                if stop["kind"] != "visit":
                    assert stop["location_precision"] is None
                elif stop["client"] in placed:
                    assert stop["location_precision"] == "street"
                    seen += 1
                else:  # coordinates from the care record
                    assert stop["location_precision"] is None
        assert seen >= 1


SECRET_NAME = "Mevrouw Zwanette Quirijnsdochter"


class TestDisplayName:
    def test_put_and_import_keep_it_and_it_reads_back(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        batch = sample_batch()
        batch["clients"][0]["display_name"] = SECRET_NAME
        assert _post(client, tenant, batch).status_code == 200
        body = client.get("/v1/clients/C-1", headers=tenant.headers).json()
        assert body["display_name"] == SECRET_NAME
        for stamp in ("created_at", "updated_at"):
            body.pop(stamp)
        again = client.put("/v1/clients/C-1", json=body, headers=tenant.headers)
        assert again.status_code == 200, again.text
        assert _post(client, tenant, batch).json()["sections"]["clients"]["updated"] == 0
        assert client.get("/v1/clients/C-2", headers=tenant.headers).json()["display_name"] is None
        body["display_name"] = "x" * 201
        too_long = client.put("/v1/clients/C-1", json=body, headers=tenant.headers)
        assert too_long.status_code == 422
        assert too_long.json()["error"]["details"][0]["path"] == "display_name"

    def test_the_route_shows_it_and_no_log_or_audit_entry_holds_it(
        self,
        client: TestClient,
        tenant: Tenant,
        region: Region,
        db: Engine,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        caplog.set_level(logging.DEBUG)
        batch = district_batch(region, DAY)
        names = {c["external_id"]: f"{SECRET_NAME} {i}" for i, c in enumerate(batch["clients"])}
        for c in batch["clients"]:
            c["display_name"] = names[c["external_id"]]
        load(client, tenant, batch)
        plan = plan_now(client, tenant)
        staff = next(r["staff"] for r in plan["routes"] if len(r["stops"]) > 3)
        r = client.get(f"/v1/staff/{staff}/route?date={DAY}", headers=tenant.headers)
        assert r.status_code == 200, r.text
        visits = [s for s in r.json()["stops"] if s["kind"] == "visit"]
        assert visits
        for stop in visits:
            assert stop["display_name"] == names[stop["client"]]
        others = [s for s in r.json()["stops"] if s["kind"] != "visit"]
        assert all(s["display_name"] is None for s in others)
        # A rename through PUT goes through the same handlers and logs.
        first = visits[0]["client"]
        one = next(c for c in batch["clients"] if c["external_id"] == first)
        one["display_name"] = f"{SECRET_NAME} renamed"
        renamed = client.put(f"/v1/clients/{first}", json=one, headers=tenant.headers)
        assert renamed.status_code == 200, renamed.text
        # Errors on the way (a bad row) must not echo it either.
        bad = copy.deepcopy(one)
        bad["coordinates"] = {"lat": 95, "lon": 9.5}
        refused = client.put(f"/v1/clients/{first}", json=bad, headers=tenant.headers)
        assert refused.status_code == 422
        assert SECRET_NAME not in refused.text
        assert client.get("/v1/plans", headers=tenant.headers).status_code == 200
        assert SECRET_NAME not in client.get(f"/v1/plans/{plan['id']}", headers=tenant.headers).text
        geojson = client.get(f"/v1/plans/{plan['id']}/geojson", headers=tenant.headers)
        assert SECRET_NAME not in geojson.text

        # As the service writes them (its JSON formatter), plus the raw arguments.
        logged = "\n".join(f"{JsonFormatter().format(rec)} {rec.args!r}" for rec in caplog.records)
        assert caplog.records  # the requests above did log
        assert SECRET_NAME not in logged
        with make_sessionmaker(db)() as session:
            entries = session.scalars(select(AuditEntry)).all()
            assert entries
            assert all(SECRET_NAME not in repr(e.details) for e in entries)


def _unique_addresses(region: Region) -> list[Address]:
    """Addresses that are one object in the extract (the geocoder can only answer with it)."""
    seen: dict[tuple[str, str], list[Address]] = {}
    for a in region.addresses:
        seen.setdefault((a.street.lower(), a.housenumber.lower()), []).append(a)
    return [
        group[0]
        for group in seen.values()
        if len(group) == 1 and group[0].postcode and group[0].housenumber.isdigit()
    ]


def _address(a: Address) -> dict[str, Any]:
    return {"street": a.street, "housenumber": a.housenumber, "postcode": a.postcode}


def _near(got: dict[str, float], want: Address, metres: float = 1.0) -> bool:
    dlat = (got["lat"] - want.location.lat) * 111_320
    dlon = (got["lon"] - want.location.lon) * 111_320 * 0.68  # cos(47 deg)
    return bool((dlat**2 + dlon**2) ** 0.5 <= metres)


class TestStaffStartAndEndAsAddress:
    def test_an_address_is_geocoded_and_coordinates_win(
        self, client: TestClient, tenant: Tenant, region: Region
    ) -> None:
        home, office, other = _unique_addresses(region)[:3]
        batch = sample_batch()
        s1, s2, s3 = batch["staff"]
        del s1["start"]
        s1["start_address"] = _address(home)
        s1["end_address"] = _address(office)
        s2["start_address"] = _address(other)  # s2 keeps its coordinates: they win
        del s3["start"]
        s3["start_address"] = {"street": home.street, "postcode": home.postcode}  # no number
        r = _post(client, tenant, batch)
        assert r.status_code == 200, r.text

        one = client.get("/v1/staff/S-1", headers=tenant.headers).json()
        assert _near(one["start"], home)
        assert _near(one["end"], office)
        assert (one["start_source"], one["end_source"]) == ("geocoded", "geocoded")
        assert one["start_address"]["geocode_precision"] == "address"
        assert one["start_address"]["geocode_quality"] > 0.5
        two = client.get("/v1/staff/S-2", headers=tenant.headers).json()
        assert two["start"] == s2["start"]
        assert two["start_source"] == "care_record"
        assert two["start_address"]["geocode_precision"] is None
        three = client.get("/v1/staff/S-3", headers=tenant.headers).json()
        assert three["start_address"]["geocode_precision"] == "street"
        assert three["end"] == three["start"]  # no end of its own: the day ends at the start

        again = _post(client, tenant, batch).json()
        assert again["sections"]["staff"] == {"created": 0, "updated": 0, "unchanged": 3}
        for stamp in ("created_at", "updated_at"):
            one.pop(stamp)
        put_back = client.put("/v1/staff/S-1", json=one, headers=tenant.headers)
        assert put_back.status_code == 200, put_back.text
        assert (
            put_back.json()["updated_at"]
            == client.get("/v1/staff/S-1", headers=tenant.headers).json()["updated_at"]
        )

    def test_a_start_that_cannot_be_found_refuses_the_batch(
        self, client: TestClient, tenant: Tenant, db: Engine, region: Region
    ) -> None:
        batch = sample_batch()
        del batch["staff"][0]["start"]
        batch["staff"][0]["start_address"] = {"street": "Nirgendweg", "housenumber": "9"}
        del batch["staff"][2]["start"]
        r = _post(client, tenant, batch)
        assert r.status_code == 422, r.text
        details = {d["path"]: d["code"] for d in r.json()["error"]["details"]}
        assert details == {"staff[2].start_address": "place_missing"}
        batch["staff"][2]["start"] = sample_batch()["staff"][2]["start"]
        r = _post(client, tenant, batch)
        assert r.status_code == 422, r.text
        details = {d["path"]: d["code"] for d in r.json()["error"]["details"]}
        assert details == {"staff[0].start_address": "address_not_found"}
        assert "Nirgendweg" not in r.text
        assert count_rows(db)["staff"] == 0

    def test_plans_start_and_end_the_day_at_the_geocoded_places(
        self, client: TestClient, tenant: Tenant, region: Region
    ) -> None:
        batch = district_batch(region, DAY)
        places = _unique_addresses(region)
        where: dict[str, tuple[Address, Address]] = {}
        for k, st in enumerate(batch["staff"]):
            start, end = places[2 * k + 10], places[2 * k + 11]
            del st["start"]
            st.pop("end", None)
            st["start_address"] = _address(start)
            st["end_address"] = _address(end)
            where[st["external_id"]] = (start, end)
        load(client, tenant, batch)
        plan = plan_now(client, tenant)
        checked = 0
        for route in plan["routes"]:
            stops = route["stops"]
            start, end = where[route["staff"]]
            assert stops[0]["kind"] == "start"
            assert stops[-1]["kind"] == "end"
            assert _near(stops[0]["location"], start)
            assert _near(stops[-1]["location"], end)
            r = client.get(f"/v1/staff/{route['staff']}/route?date={DAY}", headers=tenant.headers)
            body = r.json()["stops"]
            assert body[0]["address"]["street"] == start.street
            assert body[-1]["address"]["housenumber"] == end.housenumber
            checked += 1
        assert checked >= 2


def test_without_an_address_index_a_start_address_is_refused_not_a_500(
    db: Engine, database_url: str, tenant: Tenant, tmp_path: Any
) -> None:
    settings = Settings(
        database_url=database_url,
        dev_mode=True,
        region_warmup=False,
        region_file=tmp_path / "missing.osm.pbf",
    )
    batch = sample_batch()
    del batch["staff"][0]["start"]
    batch["staff"][0]["start_address"] = {"street": "Aeulestrasse", "housenumber": "5"}
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        r = _post(client, tenant, batch)
        assert r.status_code == 422, r.text
        (detail,) = r.json()["error"]["details"]
        assert (detail["path"], detail["code"]) == (
            "staff[0].start_address",
            "geocoder_unavailable",
        )
        assert _post(client, tenant, sample_batch()).status_code == 200
