"""A generated sample district on the region's addresses, as one ``POST /v1/import`` batch.

Used by ``bench.load`` and ``bench.replan_api`` to seed a tenant, and by the tests (through
``tests.planning.district``), so benchmarks never import from ``tests``.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from app.routing import Region
from app.scheduling.sample import generate_district
from app.store.inputs import format_time_of_day

DISTRICT = "north"


def _window(w: Any) -> dict[str, str]:
    return {"start": format_time_of_day(w.start), "end": format_time_of_day(w.end)}


def district_batch(
    region: Region, day: dt.date, *, visits: int = 30, staff: int = 5, seed: int = 3
) -> dict[str, Any]:
    """An import batch: one district, its staff, clients (with coordinates), visits, shifts."""
    sample = generate_district(region.addresses, visits=visits, staff=staff, seed=seed)
    d = day.isoformat()
    return {
        "districts": [{"external_id": DISTRICT, "name": "North"}],
        "staff": [
            {
                "external_id": s.id,
                "name": f"Carer {s.id}",
                "district": DISTRICT,
                "competences": sorted(s.competences),
                "travel_mode": s.mode.value,
                "start": {"lat": s.home.location.lat, "lon": s.home.location.lon},
            }
            for s in sample.staff
        ],
        "clients": [
            {
                "external_id": c.id,
                "district": DISTRICT,
                "street": c.address.street,
                "housenumber": c.address.housenumber,
                "postcode": c.address.postcode,
                "city": c.address.city,
                "coordinates": {"lat": c.address.location.lat, "lon": c.address.location.lon},
                "preferred_carers": list(c.preferred_staff),
            }
            for c in sample.clients
        ],
        "visits": [
            {
                "external_id": f"{v.id}@{d}",
                "client": v.client_id,
                "date": d,
                "windows": [_window(w) for w in v.windows],
                "duration_minutes": max(1, math.ceil(v.duration / 60)),
                "competences": sorted(v.competences),
                "priority": v.priority.value,
                "carers_required": v.carers_required,
                "depends_on": None
                if v.depends_on is None
                else {
                    "visit": f"{v.depends_on.visit_id}@{d}",
                    "min_gap_minutes": v.depends_on.min_gap // 60,
                    "max_gap_minutes": None
                    if v.depends_on.max_gap is None
                    else v.depends_on.max_gap // 60,
                },
            }
            for v in sample.visits
        ],
        "shifts": [
            {
                "external_id": f"{sh.id}@{d}",
                "staff": sh.staff_id,
                "date": d,
                "start": format_time_of_day(sh.start),
                "end": format_time_of_day(sh.end),
                "breaks": [
                    {
                        "windows": [_window(w) for w in b.windows],
                        "duration_minutes": max(1, math.ceil(b.duration / 60)),
                    }
                    for b in sh.breaks
                ],
            }
            for sh in sample.shifts
        ],
    }
