"""POST /v1/import: idempotent upsert, all-or-nothing refusal with field paths, Idempotency-Key."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from app.store.db import make_sessionmaker
from app.store.models import Client, ClientPreferredStaff, Shift, Staff, Visit
from tests.api.batches import row_total, sample_batch
from tests.conftest import Tenant, count_rows


def _post(client: TestClient, tenant: Tenant, body: Any, **headers: str) -> Any:
    return client.post("/v1/import", json=body, headers={**tenant.headers, **headers})


class TestUpsert:
    def test_first_import_creates_every_row(
        self, client: TestClient, tenant: Tenant, db: Engine
    ) -> None:
        batch = sample_batch()
        response = _post(client, tenant, batch)
        assert response.status_code == 200, response.text
        report = response.json()
        assert report["total"] == {"created": row_total(batch), "updated": 0, "unchanged": 0}
        assert report["sections"]["visits"]["created"] == 4
        rows = count_rows(db)
        assert rows["visits"] == 4
        assert rows["clients"] == 3
        assert rows["client_preferred_staff"] == 1
        assert rows["audit_log"] == 1

    def test_stored_values_use_seconds_and_resolve_references(
        self, client: TestClient, tenant: Tenant, db: Engine
    ) -> None:
        assert _post(client, tenant, sample_batch()).status_code == 200
        with make_sessionmaker(db)() as session:
            v2 = session.scalars(select(Visit).where(Visit.external_id == "V-2")).one()
            v1 = session.scalars(select(Visit).where(Visit.external_id == "V-1")).one()
            assert v2.windows == [[11 * 3600 + 1800, 13 * 3600]]
            assert v2.duration_s == 900
            assert v2.depends_on_visit_id == v1.id
            assert v2.dependency_min_gap_s == 240 * 60
            shift = session.scalars(select(Shift).where(Shift.external_id == "SH-1")).one()
            assert (shift.start_s, shift.end_s) == (7 * 3600, 15 * 3600)
            assert shift.breaks == [{"windows": [[41400, 46800]], "duration_s": 1800}]
            s2 = session.scalars(select(Staff).where(Staff.external_id == "S-2")).one()
            assert (s2.end_lat, s2.end_lon) == (47.14, 9.52)
            c1 = session.scalars(select(Client).where(Client.external_id == "C-1")).one()
            assert c1.coordinate_source == "care_record"

    def test_same_batch_twice_changes_nothing(
        self, client: TestClient, tenant: Tenant, db: Engine
    ) -> None:
        batch = sample_batch()
        assert _post(client, tenant, batch).status_code == 200
        before = count_rows(db)
        with make_sessionmaker(db)() as session:
            stamps = dict(session.execute(select(Visit.external_id, Visit.updated_at)).all())
        response = _post(client, tenant, batch)
        assert response.status_code == 200
        assert response.json()["total"] == {
            "created": 0,
            "updated": 0,
            "unchanged": row_total(batch),
        }
        after = count_rows(db)
        assert {k: v for k, v in after.items() if k != "audit_log"} == {
            k: v for k, v in before.items() if k != "audit_log"
        }
        with make_sessionmaker(db)() as session:
            assert dict(session.execute(select(Visit.external_id, Visit.updated_at)).all()) == (
                stamps
            )

    def test_changed_rows_are_updated_and_counted(
        self, client: TestClient, tenant: Tenant, db: Engine
    ) -> None:
        assert _post(client, tenant, sample_batch()).status_code == 200
        batch = sample_batch()
        batch["visits"][0]["duration_minutes"] = 20
        batch["clients"][0]["preferred_carers"] = ["S-2", "S-1"]
        batch["visits"][1]["depends_on"] = None
        response = _post(client, tenant, batch)
        assert response.status_code == 200
        sections = response.json()["sections"]
        assert sections["visits"] == {"created": 0, "updated": 2, "unchanged": 2}
        assert sections["clients"] == {"created": 0, "updated": 1, "unchanged": 2}
        with make_sessionmaker(db)() as session:
            links = session.execute(
                select(Staff.external_id)
                .join(ClientPreferredStaff, ClientPreferredStaff.staff_id == Staff.id)
                .order_by(ClientPreferredStaff.rank)
            ).all()
            assert [r[0] for r in links] == ["S-2", "S-1"]

    def test_references_to_rows_stored_earlier_resolve(
        self, client: TestClient, tenant: Tenant, db: Engine
    ) -> None:
        assert _post(client, tenant, sample_batch()).status_code == 200
        later = {
            "visits": [
                {
                    "external_id": "V-9",
                    "client": "C-3",
                    "date": "2025-03-05",
                    "windows": [{"start": "09:00", "end": "10:00"}],
                    "duration_minutes": 20,
                    "pinned_carer": "S-3",
                }
            ]
        }
        response = _post(client, tenant, later)
        assert response.status_code == 200, response.text
        assert response.json()["sections"]["visits"]["created"] == 1

    def test_missing_credentials_are_401_with_the_error_body(self, client: TestClient) -> None:
        response = client.post("/v1/import", json=sample_batch())
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthenticated"
        assert response.headers["WWW-Authenticate"] == "Bearer"

    def test_x_api_key_header_works_too(self, client: TestClient, tenant: Tenant) -> None:
        response = client.post("/v1/import", json={}, headers={"X-API-Key": tenant.key})
        assert response.status_code == 200
        assert response.json()["total"] == {"created": 0, "updated": 0, "unchanged": 0}


def _bad(batch: dict[str, Any], section: str, index: int, **changes: Any) -> dict[str, Any]:
    batch[section][index].update(changes)
    return batch


def _visit(**over: Any) -> dict[str, Any]:
    base = {
        "external_id": "V-X",
        "client": "C-1",
        "date": "2025-03-03",
        "windows": [{"start": "09:00", "end": "10:00"}],
        "duration_minutes": 30,
    }
    return {**base, **over}


BAD_CASES: list[tuple[str, Any, str, str]] = [
    (
        "latitude out of range",
        lambda b: _bad(b, "clients", 1, coordinates={"lat": 91.0, "lon": 9.5}),
        "clients[1].coordinates.lat",
        "less_than_equal",
    ),
    (
        "longitude out of range",
        lambda b: _bad(b, "staff", 2, start={"lat": 47.0, "lon": -181}),
        "staff[2].start.lon",
        "greater_than_equal",
    ),
    (
        "window ends before it starts",
        lambda b: _bad(b, "visits", 3, windows=[{"start": "10:00", "end": "09:00"}]),
        "visits[3].windows[0].end",
        "window_end_before_start",
    ),
    (
        "visit longer than every window",
        lambda b: _bad(b, "visits", 2, duration_minutes=150),
        "visits[2].duration_minutes",
        "duration_exceeds_windows",
    ),
    (
        "unknown competence",
        lambda b: _bad(b, "visits", 0, competences=["insulin", "brain_surgery"]),
        "visits[0].competences[1]",
        "unknown_competence",
    ),
    (
        "unknown client",
        lambda b: _bad(b, "visits", 1, client="C-404"),
        "visits[1].client",
        "unknown_client",
    ),
    (
        "unknown staff in a shift",
        lambda b: _bad(b, "shifts", 2, staff="S-404"),
        "shifts[2].staff",
        "unknown_staff",
    ),
    (
        "unknown visit in a dependency",
        lambda b: _bad(b, "visits", 1, depends_on={"visit": "V-404"}),
        "visits[1].depends_on.visit",
        "unknown_visit",
    ),
    (
        "unknown preferred carer",
        lambda b: _bad(b, "clients", 0, preferred_carers=["S-1", "S-404"]),
        "clients[0].preferred_carers[1]",
        "unknown_staff",
    ),
    (
        "duplicate external id in one batch",
        lambda b: _bad(b, "visits", 3, external_id="V-1"),
        "visits[3].external_id",
        "duplicate_external_id",
    ),
    (
        "wrong type",
        lambda b: _bad(b, "visits", 0, duration_minutes="a quarter of an hour"),
        "visits[0].duration_minutes",
        "int_parsing",
    ),
    (
        "time that is not HH:MM",
        lambda b: _bad(b, "shifts", 0, start="7am"),
        "shifts[0].start",
        "time_of_day",
    ),
    (
        "three carers",
        lambda b: _bad(b, "visits", 2, carers_required=3),
        "visits[2].carers_required",
        "literal_error",
    ),
    (
        "unknown field",
        lambda b: _bad(b, "clients", 2, favourite_colour="blue"),
        "clients[2].favourite_colour",
        "extra_forbidden",
    ),
    (
        "dependency on another client's visit",
        lambda b: _bad(b, "visits", 3, depends_on={"visit": "V-1"}),
        "visits[3].depends_on.visit",
        "dependency_other_client",
    ),
]


class TestBadInput:
    @pytest.mark.parametrize(
        ("mutate", "path", "code"),
        [pytest.param(m, p, c, id=name) for name, m, p, c in BAD_CASES],
    )
    def test_is_422_with_the_field_path_and_stores_nothing(
        self, client: TestClient, tenant: Tenant, db: Engine, mutate: Any, path: str, code: str
    ) -> None:
        before = count_rows(db)
        response = _post(client, tenant, mutate(sample_batch()))
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_input"
        assert {"path": path, "code": code} in [
            {"path": d["path"], "code": d["code"]} for d in error["details"]
        ]
        assert count_rows(db) == before

    def test_every_bad_row_is_listed(self, client: TestClient, tenant: Tenant, db: Engine) -> None:
        batch = sample_batch()
        batch["visits"][0]["client"] = "C-404"
        batch["visits"][2]["competences"] = ["nope"]
        batch["shifts"][1]["staff"] = "S-404"
        before = count_rows(db)
        response = _post(client, tenant, batch)
        assert response.status_code == 422
        paths = {d["path"] for d in response.json()["error"]["details"]}
        assert paths == {"visits[0].client", "visits[2].competences[0]", "shifts[1].staff"}
        assert count_rows(db) == before

    def test_every_type_error_is_listed(self, client: TestClient, tenant: Tenant) -> None:
        batch = sample_batch()
        batch["visits"][0]["windows"][0]["end"] = "07:00"
        batch["visits"][3]["date"] = "not a date"
        batch["clients"][2]["coordinates"]["lat"] = "north"
        response = _post(client, tenant, batch)
        assert response.status_code == 422
        paths = {d["path"] for d in response.json()["error"]["details"]}
        assert paths == {
            "visits[0].windows[0].end",
            "visits[3].date",
            "clients[2].coordinates.lat",
        }

    @pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
    def test_non_finite_numbers_are_refused_with_their_path(
        self, client: TestClient, tenant: Tenant, db: Engine, literal: str
    ) -> None:
        text = json.dumps(sample_batch()).replace("47.1398", literal, 1)
        before = count_rows(db)
        response = client.post(
            "/v1/import",
            content=text,
            headers={**tenant.headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 422
        details = response.json()["error"]["details"]
        assert [(d["path"], d["code"]) for d in details] == [
            ("clients[0].coordinates.lat", "non_finite_number")
        ]
        assert count_rows(db) == before

    def test_malformed_json_is_422(self, client: TestClient, tenant: Tenant) -> None:
        response = client.post(
            "/v1/import",
            content=b'{"visits": [',
            headers={**tenant.headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 422
        assert response.json()["error"]["details"][0]["code"] == "json_invalid"

    def test_oversize_body_is_413(self, client: TestClient, tenant: Tenant, db: Engine) -> None:
        batch = sample_batch()
        batch["clients"][0]["notes"] = "x" * 9000
        batch["clients"] = [
            {**batch["clients"][0], "external_id": f"C-{i}"} for i in range(100)
        ]  # ~1 MB, over the 256 KiB test limit
        before = count_rows(db)
        response = _post(client, tenant, batch)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "payload_too_large"
        assert count_rows(db) == before


class TestIdempotencyKey:
    def test_same_key_and_body_replays_the_first_response(
        self, client: TestClient, tenant: Tenant, db: Engine
    ) -> None:
        first = _post(client, tenant, sample_batch(), **{"Idempotency-Key": "k-1"})
        assert first.status_code == 200
        rows = count_rows(db)
        again = _post(client, tenant, sample_batch(), **{"Idempotency-Key": "k-1"})
        assert again.status_code == 200
        assert again.json() == first.json()  # "created" counts, not "unchanged": a replay
        assert again.headers["Idempotent-Replayed"] == "true"
        assert count_rows(db) == rows

    def test_same_key_with_another_body_is_refused(
        self, client: TestClient, tenant: Tenant, db: Engine
    ) -> None:
        assert _post(client, tenant, sample_batch(), **{"Idempotency-Key": "k-2"}).status_code == (
            200
        )
        rows = count_rows(db)
        other = sample_batch()
        other["visits"][0]["duration_minutes"] = 25
        response = _post(client, tenant, other, **{"Idempotency-Key": "k-2"})
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "idempotency_key_reused"
        assert count_rows(db) == rows

    def test_keys_are_per_organisation(
        self, client: TestClient, tenant: Tenant, other_tenant: Tenant
    ) -> None:
        assert _post(client, tenant, sample_batch(), **{"Idempotency-Key": "k-3"}).status_code == (
            200
        )
        response = _post(client, other_tenant, sample_batch(), **{"Idempotency-Key": "k-3"})
        assert response.status_code == 200
        assert response.json()["total"]["created"] == row_total(sample_batch())

    def test_a_refused_batch_does_not_burn_the_key(
        self, client: TestClient, tenant: Tenant
    ) -> None:
        bad = sample_batch()
        bad["visits"][0]["client"] = "C-404"
        assert _post(client, tenant, bad, **{"Idempotency-Key": "k-4"}).status_code == 422
        good = _post(client, tenant, sample_batch(), **{"Idempotency-Key": "k-4"})
        assert good.status_code == 200


def test_tenants_do_not_share_external_ids(
    client: TestClient, tenant: Tenant, other_tenant: Tenant, db: Engine
) -> None:
    assert _post(client, tenant, sample_batch()).status_code == 200
    # The other organisation cannot refer to the first one's rows.
    response = _post(client, other_tenant, {"visits": [_visit()]})
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["code"] == "unknown_client"


def test_an_oversize_body_without_content_length_is_413(
    client: TestClient, tenant: Tenant, db: Engine
) -> None:
    def chunks() -> Any:
        yield b'{"clients": ['
        for i in range(400):
            yield json.dumps(_visit(external_id=f"X-{i}", notes="y" * 1000)).encode() + b","
        yield b"{}]}"

    before = count_rows(db)
    response = client.post(
        "/v1/import",
        content=chunks(),
        headers={**tenant.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert count_rows(db) == before
