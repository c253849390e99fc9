"""Read views of stored plans: a carer's work list with its ETag, and a plan as GeoJSON.

The carer's route is built from the current published version only. Its ETag is the SHA-256 of
the carer's own content (stops, times, addresses, tasks), not of the plan id or version: a
re-plan that leaves this carer's day as it was keeps the ETag, so the phone keeps its copy.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, undefer

from app.errors import NotFound
from app.planning.versions import current_plan
from app.store.inputs import format_time_of_day
from app.store.models import Client, District, Plan, Staff, Visit


def find_staff(session: Session, org_id: int, external_id: str) -> Staff:
    """The organisation's staff member ``external_id``; :class:`NotFound` otherwise."""
    row = session.scalar(
        select(Staff).where(Staff.org_id == org_id, Staff.external_id == external_id)
    )
    if row is None:
        msg = f"no staff with external_id {external_id!r}"
        raise NotFound(msg)
    return row


def _nav(prev: dict[str, Any] | None, stop: dict[str, Any]) -> dict[str, str] | None:
    if stop.get("lat") is None:
        return None
    to = f"{stop['lat']:.6f},{stop['lon']:.6f}"
    if prev is not None and prev.get("lat") is not None:
        route = f"{prev['lat']:.6f},{prev['lon']:.6f};{to}"
    else:
        route = f";{to}"
    return {"osm": f"https://www.openstreetmap.org/directions?route={route}", "geo": f"geo:{to}"}


def carer_route(session: Session, org_id: int, staff: Staff, day: dt.date) -> dict[str, Any]:
    """The carer's stops on ``day`` in the current published plan of their district.

    Raises
    ------
    NotFound
        No published plan for the carer's district on ``day``.
    """
    plan = current_plan(session, org_id, staff.district_id, day)
    if plan is None:
        msg = f"no published plan for staff {staff.external_id!r} on {day.isoformat()}"
        raise NotFound(msg)
    district = session.scalar(select(District.external_id).where(District.id == plan.district_id))
    routes = sorted(
        (r for r in plan.routes if r["staff"] == staff.external_id),
        key=lambda r: r["stops"][0]["start"] if r["stops"] else 0,
    )
    stops = [s for r in routes for s in r["stops"]]
    visit_ids = [s["visit"] for s in stops if s.get("visit")]
    visits = {
        v.external_id: v
        for v in session.scalars(
            select(Visit).where(Visit.org_id == org_id, Visit.external_id.in_(visit_ids))
        )
    }
    client_ids = {s["client"] for s in stops if s.get("client")}
    clients = {
        c.external_id: c
        for c in session.scalars(
            select(Client).where(Client.org_id == org_id, Client.external_id.in_(client_ids))
        )
    }
    out: list[dict[str, Any]] = []
    prev: dict[str, Any] | None = None
    for k, s in enumerate(stops):
        visit = visits.get(s.get("visit") or "")
        client = clients.get(s.get("client") or "")
        out.append(
            {
                "sequence": k + 1,
                "kind": s["kind"],
                "visit": s.get("visit"),
                "client": s.get("client"),
                "arrival": format_time_of_day(int(s["arrival"])),
                "start": format_time_of_day(int(s["start"])),
                "end": format_time_of_day(int(s["end"])),
                "travel_s": int(s["travel_s"]),
                "distance_m": int(s["distance_m"]),
                "waiting_s": int(s["waiting_s"]),
                "location": None if s.get("lat") is None else {"lat": s["lat"], "lon": s["lon"]},
                "address": None
                if client is None
                else {
                    "street": client.street,
                    "housenumber": client.housenumber,
                    "postcode": client.postcode,
                    "city": client.city,
                },
                "task": None
                if visit is None
                else {
                    "duration_minutes": visit.duration_s // 60,
                    "competences": sorted(visit.competences),
                    "carers_required": visit.carers_required,
                    "windows": [
                        {"start": format_time_of_day(a), "end": format_time_of_day(b)}
                        for a, b in visit.windows
                    ],
                },
                "navigation": _nav(prev, s) if s["kind"] != "break" else None,
            }
        )
        if s.get("lat") is not None:
            prev = s
    return {
        "staff": staff.external_id,
        "date": day,
        "district": district or "",
        "plan_id": plan.id,
        "plan_version": plan.version,
        "shifts": [r["shift"] for r in routes],
        "profile": routes[0]["profile"] if routes else None,
        "stops": out,
    }


def route_etag(route: dict[str, Any]) -> str:
    """Strong ETag of a carer's route: a hash of the carer's content, not of the plan version."""
    content = {k: v for k, v in route.items() if k not in ("plan_id", "plan_version")}
    blob = json.dumps(content, sort_keys=True, default=str, separators=(",", ":"))
    return '"' + hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an ``If-None-Match`` header matches ``etag`` (``*`` or any listed tag)."""
    if not if_none_match:
        return False
    tags = [t.strip() for t in if_none_match.split(",")]
    return "*" in tags or etag in tags or f"W/{etag}" in tags


def plan_with_geometry(session: Session, org_id: int, plan_id: int) -> tuple[Plan, str]:
    """A plan row with its geometry loaded, and its district's external id."""
    row = session.execute(
        select(Plan, District.external_id)
        .join(District, Plan.district_id == District.id)
        .where(Plan.org_id == org_id, Plan.id == plan_id)
        .options(undefer(Plan.geometry))
    ).first()
    if row is None:
        msg = f"no plan {plan_id}"
        raise NotFound(msg)
    return row[0], row[1]


def plan_geojson(plan: Plan) -> dict[str, Any]:
    """A FeatureCollection: a LineString per route along the roads and a Point per stop.

    Properties carry external ids, times and figures only; no client names or addresses.
    """
    geometry = plan.geometry or {}
    features: list[dict[str, Any]] = []
    for route in plan.routes:
        stops = route["stops"]
        line = geometry.get(route["shift"]) or [
            [s["lon"], s["lat"]] for s in stops if s.get("lat") is not None
        ]
        kpis = route.get("kpis", {})
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": line},
                "properties": {
                    "feature": "route",
                    "shift": route["shift"],
                    "staff": route["staff"],
                    "profile": route["profile"],
                    "visits": sum(1 for s in stops if s["kind"] == "visit"),
                    "travel_s": kpis.get("travel_s"),
                    "distance_m": kpis.get("distance_m"),
                    "along_roads": route["shift"] in geometry,
                },
            }
        )
        for k, s in enumerate(stops):
            if s.get("lat") is None:
                continue
            features.append(
                {
                    "type": "Feature",
                    "geometry": {"type": "Point", "coordinates": [s["lon"], s["lat"]]},
                    "properties": {
                        "feature": "stop",
                        "kind": s["kind"],
                        "sequence": k + 1,
                        "shift": route["shift"],
                        "staff": route["staff"],
                        "visit": s.get("visit"),
                        "client": s.get("client"),
                        "arrival": format_time_of_day(int(s["arrival"])),
                        "start": format_time_of_day(int(s["start"])),
                        "end": format_time_of_day(int(s["end"])),
                    },
                }
            )
    return {"type": "FeatureCollection", "features": features}
