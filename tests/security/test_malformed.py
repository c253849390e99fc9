"""Bad bytes are the caller's error, never a 500 (issue 10, defect 4).

Every operation of the OpenAPI schema that takes a body, and every other operation through its
path and query, is sent invalid UTF-8 and deeply nested JSON, with and without a credential. The
answer must be a 400 or 422 with the common error body and a code naming the problem.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.conftest import Tenant

JSON = {"content-type": "application/json"}

#: Bodies that are not UTF-8, or nest deeper than any real request.
BAD_BODIES: dict[str, bytes] = {
    "latin-1 byte in a string": b'{"districts": "\xff"}',
    "lone continuation byte": b'{"name": "\x80abc"}',
    "overlong encoding": b'{"a": "\xc0\xaf"}',
    "truncated sequence": b'["\xe2\x82"]',
    "arrays 600 deep": b"[" * 600 + b"]" * 600,
    "objects 600 deep": b'{"a":' * 600 + b"1" + b"}" * 600,
    "arrays 100000 deep": b"[" * 100_000 + b"]" * 100_000,
    "mixed 5000 deep": b'{"a":[' * 2500 + b"0" + b"]}" * 2500,
}
EXPECTED_CODES = {"invalid_utf8", "too_deeply_nested"}


def _operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (m.upper(), path, spec)
        for path, item in app.openapi()["paths"].items()
        for m, spec in item.items()
        if m in {"get", "post", "put", "patch", "delete"}
    ]


def _url(path: str) -> str:
    return re.sub(r"{(\w+)}", lambda m: "1" if m.group(1).endswith("_id") else "x", path)


@pytest.mark.parametrize("authenticated", [False, True])
def test_bad_bytes_in_any_body_are_a_4xx_with_a_code(
    client: TestClient, app: FastAPI, tenant: Tenant, authenticated: bool
) -> None:
    headers = {**JSON, **(tenant.headers if authenticated else {})}
    problems = []
    tried = 0
    for method, path, spec in _operations(app):
        if "requestBody" not in spec:
            continue
        for name, body in BAD_BODIES.items():
            r = client.request(method, _url(path), content=body, headers=headers)
            tried += 1
            label = f"{method} {path} with {name} -> {r.status_code}"
            if r.status_code not in (400, 422):
                problems.append(label)
                continue
            codes = {d["code"] for d in r.json()["error"]["details"]}
            if not codes & EXPECTED_CODES:
                problems.append(f"{label}: codes {codes}")
    assert tried > 100
    assert problems == []


def test_deep_nesting_to_sign_in_is_422_naming_the_body(client: TestClient) -> None:
    r = client.post("/v1/auth/token", content=b"[" * 600 + b"]" * 600, headers=JSON)
    assert r.status_code == 422, r.text
    detail = r.json()["error"]["details"][0]
    assert (detail["code"], detail["loc"]) == ("too_deeply_nested", ["body"])


def test_invalid_utf8_to_import_without_credentials_is_422(client: TestClient) -> None:
    r = client.post("/v1/import", content=b'{"districts": "\xff"}', headers=JSON)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["details"][0]["code"] == "invalid_utf8"


def test_reasonable_nesting_still_parses(client: TestClient, tenant: Tenant) -> None:
    # A real batch nests about six levels; the limit leaves plenty of room.
    batch = {"districts": [{"external_id": "d1", "name": "D"}]}
    r = client.post("/v1/import", json=batch, headers=tenant.headers)
    assert r.status_code == 200, r.text


def test_bad_bytes_in_paths_and_queries_are_never_a_500(
    client: TestClient, app: FastAPI, tenant: Tenant
) -> None:
    problems = []
    for method, path, spec in _operations(app):
        url = re.sub(r"{\w+}", "%FF%FE", path)
        query = {p["name"]: "\udcff" for p in spec.get("parameters", []) if p["in"] == "query"}
        raw = "&".join(f"{k}=%FF%C0%AF" for k in query)
        r = client.request(method, f"{url}?{raw}", headers=tenant.headers)
        if r.status_code >= 500:
            problems.append(f"{method} {path} -> {r.status_code}")
    assert problems == []
