"""Fuzzing: schemathesis generates requests from the app's own OpenAPI schema.

Every operation (region and geocoding included: the region is loaded once per test session) is
called with generated (valid and edge-case) parameters and bodies as an admin of a tenant holding
the sample data. Every answer is counted: a 5xx is a failure, and so is an answer that does not
match its documented schema or accepts data the schema forbids. A stateful run then chains
operations through the links schemathesis infers (create a webhook, key or user, then read or
delete it by the id it returned).

Bounded by ``FUZZ_EXAMPLES`` per operation (default 8) and ``FUZZ_STATEFUL`` scenarios (default
10) so the run stays near a minute; raise them locally for a deeper search
(``FUZZ_EXAMPLES=200 pytest tests/security/test_fuzz.py``). The counts are printed as one JSON
line (``fuzz {...}``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.checks import negative_data_rejection, response_schema_conformance
from sqlalchemy import Engine

from app.api.app import create_app
from app.routing import Region
from app.settings import Settings
from app.store import importing
from app.store.db import make_sessionmaker
from app.store.inputs import ImportBatch
from tests.api.batches import sample_batch
from tests.conftest import Tenant

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "8"))
FUZZ_STATEFUL = int(os.environ.get("FUZZ_STATEFUL", "10"))

_SETTINGS = {
    "deadline": None,
    "database": None,
    "derandomize": True,
    "suppress_health_check": list(hypothesis.HealthCheck),
}


@dataclass
class Tally:
    """What the fuzzer sent and what came back."""

    operations: int = 0
    cases: int = 0
    server_errors: int = 0
    schema_violations: int = 0
    accepted_invalid: int = 0
    failures: list[str] = field(default_factory=list)

    def check(self, case: schemathesis.Case, response: Any, headers: dict[str, str]) -> None:
        """Count one answer and every way it is wrong."""
        self.cases += 1
        label = f"{case.method.upper()} {case.operation.path}"
        if response.status_code >= 500:
            self.server_errors += 1
            self.failures.append(f"{label}: {response.status_code} {response.text[:300]}")
        for check, counter in (
            (response_schema_conformance, "schema_violations"),
            (negative_data_rejection, "accepted_invalid"),
        ):
            try:
                case.validate_response(response, checks=[check], headers=headers)
            except Exception as exc:  # a check failure: counted and reported, never hidden
                setattr(self, counter, getattr(self, counter) + 1)
                self.failures.append(f"{label}: {counter}: {str(exc)[:600]}")

    def summary(self) -> dict[str, Any]:
        """The counts, for the JSON line."""
        return {
            "operations": self.operations,
            "cases": self.cases,
            "server_errors": self.server_errors,
            "schema_violations": self.schema_violations,
            "accepted_invalid": self.accepted_invalid,
        }


@pytest.fixture
def fuzz_app(settings: Settings, region: Region) -> Iterator[FastAPI]:
    """The app without per-credential rate limits (the fuzzer is one very busy caller).

    Depends on the session's loaded region, so the region and geocoding operations answer at
    once instead of loading the road graphs inside the fuzzer.
    """
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


def _fuzz_operation(operation: Any, headers: dict[str, str], tally: Tally) -> None:
    @hypothesis.given(case=operation.as_strategy())
    @hypothesis.settings(
        max_examples=FUZZ_EXAMPLES,
        phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        **_SETTINGS,  # type: ignore[arg-type]
    )
    def run(case: schemathesis.Case) -> None:
        tally.check(case, case.call(headers=headers), headers)

    run()


def test_no_server_errors_and_responses_match_the_schema(
    fuzz_app: FastAPI, fuzz_tenant: Tenant
) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    tally = Tally()
    for result in schema.get_all_operations():
        operation = result.ok()
        tally.operations += 1
        _fuzz_operation(operation, fuzz_tenant.headers, tally)
    print("fuzz " + json.dumps({"phase": "stateless", **tally.summary()}, sort_keys=True))
    assert tally.operations == len(
        [m for item in fuzz_app.openapi()["paths"].values() for m in item]
    )
    assert tally.cases >= tally.operations
    assert tally.failures == [], "\n\n".join(tally.failures[:20])


def test_stateful_links_never_give_a_server_error(fuzz_app: FastAPI, fuzz_tenant: Tenant) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    headers = fuzz_tenant.headers
    tally = Tally()
    base: type[Any] = schema.as_state_machine()
    links = len(base.bundles) if hasattr(base, "bundles") else 0

    class Machine(base):  # type: ignore[misc, valid-type]
        def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
            return {"headers": headers}

        def validate_response(
            self, response: Any, case: schemathesis.Case, *args: Any, **kwargs: Any
        ) -> None:
            tally.check(case, response, headers)

    run: Callable[..., None] = Machine.run
    run(
        settings=hypothesis.settings(
            max_examples=FUZZ_STATEFUL,
            stateful_step_count=6,
            phases=[hypothesis.Phase.generate],
            **_SETTINGS,  # type: ignore[arg-type]
        )
    )
    print("fuzz " + json.dumps({"phase": "stateful", "links": links, **tally.summary()}))
    assert tally.cases > 0
    assert tally.failures == [], "\n\n".join(tally.failures[:20])
