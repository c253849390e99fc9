"""The smaller defects of issue 10 (item 6): geocoding by planners, expansion of unknown
districts, ``Allow`` on 405 (``date_to=0`` is in test_dates, the httpx logger in test_ssrf)."""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import count_rows
from tests.security.conftest import DAY, World, tenant_fingerprint

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def test_a_district_planner_may_not_geocode_even_their_own_district(
    client: TestClient, world: World, db: Engine
) -> None:
    before = tenant_fingerprint(db, world.t1.org_id)
    for body in ({"district": "dA"}, {"district": "dB"}, {}):
        r = client.post("/v1/clients/geocode", json=body, headers=world.planner_a.headers)
        assert r.status_code == 403, (body, r.text)
        assert r.json()["error"]["code"] == "forbidden"
    assert tenant_fingerprint(db, world.t1.org_id) == before


def test_expanding_templates_of_an_unknown_or_foreign_district_is_404(
    client: TestClient, world: World, db: Engine
) -> None:
    before = count_rows(db)
    foreign = client.post(
        "/v1/import",
        json={"districts": [{"external_id": "t2-only", "name": "T2"}]},
        headers=world.t2.headers,
    )
    assert foreign.status_code == 200, foreign.text
    before = count_rows(db)
    for district in ("no-such-district", "t2-only"):
        r = client.post(
            "/v1/visit-templates/expand",
            json={"from": DAY, "to": DAY, "district": district},
            headers=world.t1.headers,
        )
        assert r.status_code == 404, (district, r.text)
        assert r.json()["error"]["code"] == "not_found"
    # Like plans: the same answer for "elsewhere" and "nowhere".
    plans = client.post(
        "/v1/plans", json={"district": "t2-only", "date": DAY}, headers=world.t1.headers
    )
    assert plans.status_code == 404
    assert count_rows(db) == before
    ok = client.post(
        "/v1/visit-templates/expand",
        json={"from": DAY, "to": DAY, "district": "dA"},
        headers=world.t1.headers,
    )
    assert ok.status_code == 200, ok.text


def test_every_405_lists_every_method_of_the_path_in_allow(
    client: TestClient, app: FastAPI, world: World
) -> None:
    problems = []
    tried = 0
    paths = app.openapi()["paths"]
    shapes = {p: re.compile("^" + re.sub(r"{\w+}", "[^/]+", p) + "$") for p in paths}
    for path in paths:
        url = re.sub(r"{\w+}", "1", path)
        # Every operation whose path template matches the URL (/v1/clients/geocode is also
        # /v1/clients/{external_id}).
        declared = {
            m.upper()
            for other, item in paths.items()
            if shapes[other].match(url)
            for m in item
            if m.upper() in METHODS
        }
        for method in sorted(set(METHODS) - declared):
            r = client.request(method, url, headers=world.t1.headers)
            if r.status_code != 405:
                continue  # another route of the same shape answers (e.g. PUT /v1/clients/1)
            tried += 1
            allow = {m.strip() for m in r.headers.get("allow", "").split(",") if m.strip()}
            expected = declared  # FastAPI routes answer HEAD with 405 too
            if allow != expected:
                problems.append(
                    f"{method} {path}: Allow {sorted(allow)}, expected {sorted(expected)}"
                )
            if r.json()["error"]["code"] != "method_not_allowed":
                problems.append(f"{method} {path}: code {r.json()['error']['code']}")
    assert tried > 50
    assert problems == []


def test_an_absurd_offset_is_a_422_not_a_database_overflow(
    client: TestClient, world: World, app: FastAPI
) -> None:
    """Schemathesis found ``?offset=1274009451596958924800`` -> 500 (SQLite OverflowError)."""
    lists = sorted(
        p
        for p, ops in app.openapi()["paths"].items()
        if "get" in ops
        and "{" not in p
        and any(q.get("name") == "offset" for q in ops["get"].get("parameters", []))
    )
    assert len(lists) >= 6
    for path in lists:
        r = client.get(path, params={"offset": 2**70}, headers=world.admin.headers)
        assert r.status_code == 422, (path, r.text)
        assert r.json()["error"]["details"][0]["loc"][-1] == "offset"
