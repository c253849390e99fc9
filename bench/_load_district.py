"""A generated sample district on the region's addresses, as one ``POST /v1/import`` batch.

Used by ``bench.load`` and ``bench.replan_api`` to seed a tenant, and by the tests (through
``tests.planning.district``), so benchmarks never import from ``tests``. The batch itself is built
by :func:`app.store.seed.sample_batch`, the same code that seeds the demo.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from app.routing import Region
from app.scheduling.sample import generate_district
from app.store.seed import sample_batch

DISTRICT = "north"


def district_batch(
    region: Region, day: dt.date, *, visits: int = 30, staff: int = 5, seed: int = 3
) -> dict[str, Any]:
    """An import batch: one district, its staff, clients (with coordinates), visits, shifts."""
    sample = generate_district(region.addresses, visits=visits, staff=staff, seed=seed)
    return sample_batch(sample, day, district=DISTRICT, district_name="North")
