"""A generated sample district on the region's addresses, as one ``POST /v1/import`` batch.

Used by ``bench.load``, ``bench.replan_api`` and ``bench.district_api`` to seed a tenant, by
``bench.district`` (through :func:`stored_plan_input`) and by the tests (through
``tests.planning.district``), so benchmarks never import from ``tests``. The batch itself is built
by :func:`app.store.seed.sample_batch`, the same code that seeds the demo.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import Any

from app.planning.inputs import PlanInput
from app.planning.loading import district_by_external_id, load_plan_input
from app.routing import Region
from app.scheduling.sample import generate_district
from app.store import importing, migrate, tenants
from app.store.db import make_engine, make_sessionmaker
from app.store.inputs import ImportBatch
from app.store.seed import sample_batch

DISTRICT = "north"
#: The day every district benchmark plans.
DAY = dt.date(2026, 12, 1)


def district_batch(
    region: Region, day: dt.date, *, visits: int = 30, staff: int = 5, seed: int = 3
) -> dict[str, Any]:
    """An import batch: one district, its staff, clients (with coordinates), visits, shifts."""
    sample = generate_district(region.addresses, visits=visits, staff=staff, seed=seed)
    return sample_batch(sample, day, district=DISTRICT, district_name="North")


def stored_plan_input(batch: dict[str, Any], day: dt.date) -> PlanInput:
    """The planner's input for ``batch``'s district on ``day``, the way the service gets it.

    The batch is validated and imported into a fresh SQLite file by the import service, then
    loaded by :func:`app.planning.loading.load_plan_input`: the same path a ``POST /v1/import``
    followed by ``POST /v1/plans`` takes, without HTTP.
    """
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
        try:
            migrate.upgrade(engine)
            with make_sessionmaker(engine).begin() as session:
                org = tenants.create_organisation(session, "bench", timezone="Europe/Vaduz")
                importing.import_batch(session, org.id, ImportBatch.model_validate(batch))
                district = district_by_external_id(session, org.id, DISTRICT)
                return load_plan_input(session, org.id, district.id, day)
        finally:
            engine.dispose()
