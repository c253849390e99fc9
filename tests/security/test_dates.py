"""Dates outside the planning range are refused with a 422 naming the field (issue 10, defect 5).

Generated, not listed: every query parameter of the OpenAPI schema whose format is ``date``, and
every ISO date inside the valid request bodies of the isolation matrix (plus an import batch of
every kind of row), is replaced by dates at the edges of the calendar and by things that only
look like dates to a lax parser (``0``, a Unix timestamp). Each must be a 422 whose details name
exactly that parameter or field; nothing may be stored, and no request may be a 500.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.conftest import count_rows
from tests.security.conftest import DAY, World, district_batch
from tests.security.test_isolation import BODIES, build_request, operations

#: Outside any sane planning range, or not an ISO date at all.
BAD_DATES = ["0001-01-01", "1900-01-01", "1970-01-01", "9999-12-31", "2200-01-01", "0", 86400]
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _date_places(doc: Any, loc: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """Paths of every ISO date string in ``doc``."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _date_places(v, (*loc, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _date_places(v, (*loc, i))
    elif isinstance(doc, str) and ISO.match(doc):
        yield loc


def _replace(doc: Any, loc: tuple[str | int, ...], value: Any) -> Any:
    if not loc:
        return value
    if isinstance(doc, dict):
        return {k: _replace(v, loc[1:], value) if k == loc[0] else v for k, v in doc.items()}
    return [_replace(v, loc[1:], value) if i == loc[0] else v for i, v in enumerate(doc)]


def _named(response: Any, loc: list[Any]) -> bool:
    return any(d["loc"] == loc for d in response.json()["error"]["details"])


def test_dates_outside_the_planning_range_are_422_naming_the_field(
    client: TestClient, app: FastAPI, world: World, db: Engine
) -> None:
    headers = world.t1.headers
    problems: list[str] = []
    tried = 0
    before = count_rows(db)
    bodies = dict(BODIES)
    bodies[("POST", "/v1/import")] = lambda d: district_batch("A")
    for op in operations(app):
        request = build_request(op, world, "A")
        date_params = [
            p["name"]
            for p in op.spec.get("parameters", [])
            if p["in"] == "query" and _is_date(p.get("schema", {}))
        ]
        for name in date_params:
            for bad in BAD_DATES:
                r = client.request(
                    op.method,
                    request["url"],
                    params={**request["params"], name: bad},
                    json=request.get("json"),
                    headers=headers,
                )
                tried += 1
                if r.status_code != 422 or not _named(r, ["query", name]):
                    problems.append(f"{op.method} {op.path} ?{name}={bad} -> {r.status_code}")
        if (op.method, op.path) not in bodies or "requestBody" not in op.spec:
            continue
        body = bodies[(op.method, op.path)]("A")
        for place in _date_places(body):
            for bad in BAD_DATES:
                r = client.request(
                    op.method,
                    request["url"],
                    params=request["params"],
                    json=_replace(body, place, bad),
                    headers=headers,
                )
                tried += 1
                if r.status_code != 422 or not _named(r, list(place)):
                    where = ".".join(map(str, place))
                    problems.append(f"{op.method} {op.path} {where}={bad} -> {r.status_code}")
    print(f"dates: {tried} out-of-range dates tried")
    assert tried > 100
    assert problems == []
    assert count_rows(db) == before


def _is_date(schema: dict[str, Any]) -> bool:
    if schema.get("format") == "date":
        return True
    return any(_is_date(s) for s in schema.get("anyOf", []))


def test_expanding_templates_at_the_end_of_the_calendar_is_422(
    client: TestClient, world: World
) -> None:
    r = client.post(
        "/v1/visit-templates/expand",
        json={"from": "9999-12-30", "to": "9999-12-31"},
        headers=world.t1.headers,
    )
    assert r.status_code == 422, r.text
    assert {tuple(d["loc"]) for d in r.json()["error"]["details"]} == {("from",), ("to",)}


def test_date_to_zero_is_not_1970(client: TestClient, world: World) -> None:
    r = client.get("/v1/visits", params={"date_to": "0"}, headers=world.t1.headers)
    assert r.status_code == 422, r.text
    assert _named(r, ["query", "date_to"])


def test_dates_inside_the_range_still_work(client: TestClient, world: World) -> None:
    r = client.get(
        "/v1/visits",
        params={"date_from": DAY, "date_to": "2099-12-31"},
        headers=world.t1.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["total"] == 2
