"""Demo data for ``python -m app serve --demo`` (``make run``), seeded idempotently.

The demo organisation gets one district with clients on real addresses of the sample region
(``REGION_FILE``, Liechtenstein by default), staff, shifts and visits for tomorrow, made by
:func:`app.scheduling.sample.generate_district`, and is written through the same import service
vendors use. Running it again changes nothing (the same seed gives the same rows) except that a new
day adds that day's shifts and visits. Without the region file a small hand-built Vaduz dataset is
used instead.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.settings import Settings
from app.store import importing, tenants
from app.store.db import make_engine, make_sessionmaker
from app.store.inputs import ImportBatch, format_time_of_day
from app.store.models import Organisation

if TYPE_CHECKING:
    from app.scheduling.sample import SampleDistrict

log = logging.getLogger(__name__)

DEMO_ORG_NAME = "Demo home care (sample region)"
DEMO_DISTRICT = "demo"
DEMO_VISITS = 120
DEMO_STAFF = 12
DEMO_SEED = 7


@dataclass(frozen=True, slots=True)
class DemoResult:
    """What the seeding did and the key to try the API with."""

    org_id: int
    api_key: str
    key_file: Path
    summary: str
    plan_id: int | None = None


#: The demo's first plan gets this solver budget, so ``make run`` serves within seconds.
DEMO_TIME_LIMIT_S = 5.0


def ensure_demo_plan(
    settings: Settings, org_id: int, day: dt.date, api_key: str
) -> tuple[int | None, str]:
    """Plan the demo district's day through the planning pipeline unless a plan exists.

    Returns the current plan id and console lines that say what happened and how to look.
    """
    from app.planning import pool, service, versions
    from app.planning.loading import district_by_external_id

    engine = make_engine(settings.database_url)
    try:
        factory = make_sessionmaker(engine)
        with factory() as session:
            district = district_by_external_id(session, org_id, DEMO_DISTRICT)
            current = versions.current_plan(session, org_id, district.id, day)
            plan_id = current.id if current is not None else None
        lines = []
        if plan_id is None:
            print(
                "loading the region (a cold osm_cache builds the road graphs first: ~15-30 s)...",
                flush=True,
            )
            region = pool.get_region(
                settings.region_file, settings.osm_cache_dir, settings.region_modes
            )
            print(
                f"computing the first plan of district {DEMO_DISTRICT!r} for {day} "
                f"(solver limit {DEMO_TIME_LIMIT_S:g} s)...",
                flush=True,
            )
            plan_id = service.plan_now(
                factory,
                settings,
                region,
                org_id=org_id,
                district=DEMO_DISTRICT,
                day=day,
                actor="demo",
                options=service.OptionOverrides(time_limit_s=DEMO_TIME_LIMIT_S),
            )
        if plan_id is None:
            return None, "the demo plan could not be computed (see GET /v1/jobs)"
        with factory() as session:
            plan = versions.get_plan(session, org_id, plan_id)
            staff = next((r["staff"] for r in plan.routes if r["stops"]), None)
            lines.append(
                f"plan {plan.id} (version {plan.version}): {len(plan.routes)} routes, "
                f"{len(plan.unassigned)} unassigned"
            )
    finally:
        engine.dispose()
    base = f"http://{settings.host}:{settings.port}"
    lines.append(f"  curl -H 'X-API-Key: {api_key}' {base}/v1/plans/{plan_id}")
    if staff is not None:
        lines.append(f"  curl -H 'X-API-Key: {api_key}' '{base}/v1/staff/{staff}/route?date={day}'")
    return plan_id, "\n".join(lines)


def _minutes(seconds: int) -> int:
    return max(1, math.ceil(seconds / 60))


def _window(w: Any) -> dict[str, str]:
    return {"start": format_time_of_day(w.start), "end": format_time_of_day(w.end)}


def generated_batch(settings: Settings, day: dt.date) -> dict[str, Any] | None:
    """A batch from the sample generator on the region's addresses; None if unavailable."""
    try:
        from app.routing.region import load_region
        from app.scheduling.sample import generate_district
    except ImportError:
        return None
    if not settings.region_file.is_file():
        log.warning("region file %s not found; seeding the hand-built demo", settings.region_file)
        return None
    region = load_region(settings.region_file, modes=(), cache_dir=settings.osm_cache_dir)
    sample = generate_district(
        region.addresses, visits=DEMO_VISITS, staff=DEMO_STAFF, seed=DEMO_SEED
    )
    name = settings.region_file.name.split(".")[0].title()
    return sample_batch(sample, day, district=DEMO_DISTRICT, district_name=name)


def sample_batch(
    sample: SampleDistrict, day: dt.date, *, district: str, district_name: str
) -> dict[str, Any]:
    """One ``POST /v1/import`` batch of a generated district for ``day``.

    Visits and shifts get the external id ``<id>@<date>``, so seeding another day adds that
    day's rows and seeding the same day again changes nothing.
    """
    suffix = day.isoformat()
    return {
        "districts": [{"external_id": district, "name": district_name}],
        "staff": [
            {
                "external_id": s.id,
                "name": f"Carer {s.id} ({s.level})",
                "district": district,
                "competences": sorted(s.competences),
                "travel_mode": s.mode.value,
                "start": {"lat": s.home.location.lat, "lon": s.home.location.lon},
            }
            for s in sample.staff
        ],
        "clients": [
            {
                "external_id": c.id,
                "district": district,
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
                "external_id": f"{v.id}@{suffix}",
                "client": v.client_id,
                "date": suffix,
                "windows": [_window(w) for w in v.windows],
                "duration_minutes": _minutes(v.duration),
                "competences": sorted(v.competences),
                "priority": v.priority.value,
                "carers_required": v.carers_required,
                "depends_on": None
                if v.depends_on is None
                else {
                    "visit": f"{v.depends_on.visit_id}@{suffix}",
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
                "external_id": f"{sh.id}@{suffix}",
                "staff": sh.staff_id,
                "date": suffix,
                "start": format_time_of_day(sh.start),
                "end": format_time_of_day(sh.end),
                "breaks": [
                    {
                        "windows": [_window(w) for w in b.windows],
                        "duration_minutes": _minutes(b.duration),
                    }
                    for b in sh.breaks
                ],
            }
            for sh in sample.shifts
        ],
    }


def handbuilt_batch(day: dt.date) -> dict[str, Any]:
    """A small realistic Vaduz day: 3 carers, 6 clients, 10 visits (used without a region)."""
    d = day.isoformat()
    homes = [
        ("Aeulestrasse", "5", 47.1398, 9.5215),
        ("Herrengasse", "12", 47.1362, 9.5228),
        ("Kirchstrasse", "8", 47.1421, 9.5197),
        ("Landstrasse", "40", 47.1310, 9.5240),
        ("Schaanerstrasse", "21", 47.1485, 9.5160),
        ("Zollstrasse", "3", 47.1385, 9.5180),
    ]
    clients = [
        {
            "external_id": f"DC-{i + 1}",
            "district": DEMO_DISTRICT,
            "street": street,
            "housenumber": no,
            "postcode": "9490",
            "city": "Vaduz",
            "coordinates": {"lat": lat, "lon": lon},
            "preferred_carers": [f"DS-{i % 3 + 1}"],
        }
        for i, (street, no, lat, lon) in enumerate(homes)
    ]
    staff = [
        ("DS-1", "level3", ["level2", "level3", "insulin", "injection"], "drive"),
        (
            "DS-2",
            "level4",
            ["level2", "level3", "level4", "insulin", "injection", "wound_care"],
            "bike",
        ),
        ("DS-3", "level2", ["level2"], "walk"),
    ]
    visits = []
    for i in range(10):
        client = clients[i % len(clients)]["external_id"]
        early = i < 6
        needs = ["level3", "insulin"] if i % 3 == 0 else ["level2"]
        visits.append(
            {
                "external_id": f"DV-{i + 1}@{d}",
                "client": client,
                "date": d,
                "windows": [
                    {"start": "07:30", "end": "10:30"}
                    if early
                    else {"start": "11:00", "end": "13:30"}
                ],
                "duration_minutes": 15 if "insulin" in needs else 30,
                "competences": needs,
            }
        )
    return {
        "districts": [{"external_id": DEMO_DISTRICT, "name": "Vaduz"}],
        "staff": [
            {
                "external_id": sid,
                "name": f"Carer {sid} ({level})",
                "district": DEMO_DISTRICT,
                "competences": comps,
                "travel_mode": mode,
                "start": {"lat": 47.1405, "lon": 9.5210},
            }
            for sid, level, comps, mode in staff
        ],
        "clients": clients,
        "visits": visits,
        "shifts": [
            {
                "external_id": f"DSH-{sid}@{d}",
                "staff": sid,
                "date": d,
                "start": "07:00",
                "end": "14:00",
                "breaks": [
                    {"windows": [{"start": "11:00", "end": "12:30"}], "duration_minutes": 30}
                ],
            }
            for sid, _, _, _ in staff
        ],
    }


def _demo_org(session: Session, settings: Settings) -> Organisation:
    org = session.scalars(
        select(Organisation).where(Organisation.name == DEMO_ORG_NAME).order_by(Organisation.id)
    ).first()
    return org or tenants.create_organisation(
        session, DEMO_ORG_NAME, timezone=settings.default_timezone
    )


def _demo_key(session: Session, org_id: int, key_file: Path) -> str:
    if key_file.is_file():
        existing = key_file.read_text(encoding="utf-8").strip()
        key = tenants.find_active_key(session, existing)
        if key is not None and key.org_id == org_id:
            return existing
    new = tenants.create_api_key(session, org_id, name="demo admin")
    key_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text(new.plaintext + "\n", encoding="utf-8")
    key_file.chmod(0o600)
    return new.plaintext


def seed_demo(settings: Settings, *, day: dt.date | None = None) -> DemoResult:
    """Create (or refresh) the demo organisation, its data for ``day`` and a demo API key.

    ``day`` defaults to tomorrow in the demo organisation's timezone, the day a planner plans.
    """
    key_file = settings.data_dir / "demo-api-key.txt"
    engine = make_engine(settings.database_url)
    try:
        with make_sessionmaker(engine).begin() as session:
            org = _demo_org(session, settings)
            if day is None:
                day = dt.datetime.now(ZoneInfo(org.timezone)).date() + dt.timedelta(days=1)
            raw = generated_batch(settings, day)
            source = "sample generator on the region's addresses"
            if raw is None:
                raw, source = handbuilt_batch(day), "hand-built Vaduz dataset"
            result = importing.import_batch(session, org.id, ImportBatch.model_validate(raw))
            api_key = _demo_key(session, org.id, key_file)
            org_id = org.id
    finally:
        engine.dispose()
    t = result.total
    summary = (
        f"{len(raw['visits'])} visits and {len(raw['shifts'])} shifts on {day.isoformat()} "
        f"from the {source} (created {t.created}, updated {t.updated}, unchanged {t.unchanged})"
    )
    plan_id = None
    if settings.region_file.is_file():
        plan_id, lines = ensure_demo_plan(settings, org_id, day, api_key)
        summary += "\n" + lines
    return DemoResult(
        org_id=org_id, api_key=api_key, key_file=key_file, summary=summary, plan_id=plan_id
    )
