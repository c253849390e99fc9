"""Fuzzing: schemathesis generates requests from the app's own OpenAPI schema.

Every operation is called with generated (valid and edge-case) parameters and bodies as an admin
of a tenant holding the sample data; no answer may be a 5xx, and every documented answer must
match its schema. Bounded by ``FUZZ_EXAMPLES`` per operation (default 8) so the run stays short;
raise it locally (``FUZZ_EXAMPLES=200 pytest tests/security/test_fuzz.py``) for a deeper search.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.checks import (
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
)
from sqlalchemy import Engine

from app.api.app import create_app
from app.settings import Settings
from app.store import importing
from app.store.db import make_sessionmaker
from app.store.inputs import ImportBatch
from tests.api.batches import sample_batch
from tests.conftest import Tenant

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))

#: Operations left out, and why: they load the whole OSM region (seconds to minutes on a cold
#: cache) and are fuzzed by tests/api on a small region instead.
SKIPPED = r"^/v1/(region|clients/geocode)$"


@pytest.fixture
def fuzz_app(settings: Settings) -> Iterator[FastAPI]:
    """The app without per-credential rate limits (the fuzzer is one very busy caller)."""
    app = create_app(settings.model_copy(update={"rate_limit_per_s": 0.0}))
    yield app
    # The fuzzer calls the app without its lifespan, so close the pool here.
    app.state.engine.dispose()


@pytest.fixture
def fuzz_tenant(db: Engine, tenant: Tenant) -> Tenant:
    """The tenant with the sample district loaded, so generated ids sometimes hit real rows."""
    with make_sessionmaker(db).begin() as session:
        importing.import_batch(session, tenant.org_id, ImportBatch.model_validate(sample_batch()))
    return tenant


def _fuzz_operation(operation: Any, headers: dict[str, str]) -> None:
    @hypothesis.given(case=operation.as_strategy())
    @hypothesis.settings(
        max_examples=FUZZ_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(hypothesis.HealthCheck),
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(
            headers=headers,
            checks=[not_a_server_error, response_schema_conformance, negative_data_rejection],
        )

    run()


def test_no_server_errors_and_responses_match_the_schema(
    fuzz_app: FastAPI, fuzz_tenant: Tenant
) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app).exclude(path_regex=SKIPPED)
    failures = []
    fuzzed = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        fuzzed += 1
        try:
            _fuzz_operation(operation, fuzz_tenant.headers)
        except Exception as exc:  # every operation's failure is reported, not just the first
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:1500]}")
    assert fuzzed > 20
    assert failures == [], "\n\n".join(failures)
