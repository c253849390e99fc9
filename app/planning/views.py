"""Read views of stored plans: a carer's work list with its ETag, and a plan as GeoJSON.

The carer's route is built from the current published version only. Its ETag is the SHA-256 of
the carer's own content (stops, times, addresses, tasks), not of the plan id or version: a
re-plan that leaves this carer's day as it was keeps the ETag, so the phone keeps its copy.

Built routes are cached (:class:`RouteCache`) by (plan id, staff id): a plan version never
changes once stored, and a new version has a new id, so a re-plan is seen at once. Each request
still runs one query (:func:`route_target`) to find the carer and the day's current version.
The addresses and tasks in a route are read from the live client and visit rows when it is
built, so an edit to those without a new plan shows once the entry is older than the cache's
``ttl_s`` (``ROUTE_CACHE_TTL_S``, default 10 s).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, select
from sqlalchemy.orm import Session, undefer

from app.errors import NotFound
from app.store.inputs import format_time_of_day
from app.store.models import Client, District, Plan, PlanStatus, Staff, Visit


@dataclass(frozen=True, slots=True)
class RouteTarget:
    """Who a route request is about and which plan version it reads (one query's answer)."""

    staff_id: int
    district_id: int
    external_id: str
    #: The current published plan of the carer's district that day; None if there is none.
    plan_id: int | None


#: Built once: the carer and the newest published version of their district's day.
_ROUTE_TARGET = (
    select(Staff.id, Staff.district_id, Plan.id)
    .outerjoin(
        Plan,
        and_(
            Plan.org_id == Staff.org_id,
            Plan.district_id == Staff.district_id,
            Plan.date == bindparam("day"),
            Plan.status == PlanStatus.PUBLISHED,
        ),
    )
    .where(Staff.org_id == bindparam("org_id"), Staff.external_id == bindparam("external_id"))
    .order_by(Plan.version.desc())
    .limit(1)
)


def route_target(conn: Connection, org_id: int, external_id: str, day: dt.date) -> RouteTarget:
    """The staff member ``external_id`` and the id of their district's current plan on ``day``.

    One Core statement (no ORM session, no plan JSON): the plan's routes are only read when
    the route is not cached yet.

    Raises
    ------
    NotFound
        No such staff member in the organisation.
    """
    row = conn.execute(
        _ROUTE_TARGET, {"day": day, "org_id": org_id, "external_id": external_id}
    ).first()
    if row is None:
        msg = f"no staff with external_id {external_id!r}"
        raise NotFound(msg)
    return RouteTarget(staff_id=row[0], district_id=row[1], external_id=external_id, plan_id=row[2])


@dataclass(frozen=True, slots=True)
class CachedRoute:
    """A built route: the JSON body ready to send and its ETag."""

    body: bytes
    etag: str
    built_at: float


class RouteCache:
    """Built routes by (plan id, staff id): a bounded LRU whose entries are fresh for ``ttl_s``.

    Thread-safe (route handlers run in the thread pool). ``max_entries`` 0 or ``ttl_s`` 0
    disables it. Plan versions are immutable, so the key changes with every new version; the TTL
    only bounds how long an edited address or task (same plan) may be shown as it was.
    """

    def __init__(
        self,
        *,
        max_entries: int = 4096,
        ttl_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: OrderedDict[tuple[int, int], CachedRoute] = OrderedDict()
        self._lock = threading.Lock()
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.clock = clock

    def get(self, plan_id: int, staff_id: int) -> CachedRoute | None:
        """The fresh entry of this carer in this plan version, if any."""
        key = (plan_id, staff_id)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if self.clock() - entry.built_at >= self.ttl_s:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry

    def put(self, plan_id: int, staff_id: int, body: bytes, etag: str) -> CachedRoute:
        """Store a built route (evicting the least recently used beyond ``max_entries``)."""
        entry = CachedRoute(body=body, etag=etag, built_at=self.clock())
        if self.max_entries <= 0 or self.ttl_s <= 0:
            return entry
        with self._lock:
            self._entries[(plan_id, staff_id)] = entry
            self._entries.move_to_end((plan_id, staff_id))
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return entry

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()


def _nav(prev: dict[str, Any] | None, stop: dict[str, Any]) -> dict[str, str] | None:
    if stop.get("lat") is None:
        return None
    to = f"{stop['lat']:.6f},{stop['lon']:.6f}"
    if prev is not None and prev.get("lat") is not None:
        route = f"{prev['lat']:.6f},{prev['lon']:.6f};{to}"
    else:
        route = f";{to}"
    return {"osm": f"https://www.openstreetmap.org/directions?route={route}", "geo": f"geo:{to}"}


def carer_route(session: Session, org_id: int, target: RouteTarget, day: dt.date) -> dict[str, Any]:
    """The carer's stops on ``day`` in the current published plan of their district.

    Reads the plan's routes (the only place the whole plan JSON is decoded) and the carer's
    clients and visits; callers cache the result (:class:`RouteCache`).

    Raises
    ------
    NotFound
        No published plan for the carer's district on ``day``.
    """
    row = None
    if target.plan_id is not None:
        row = session.execute(
            select(Plan.routes, Plan.version, District.external_id)
            .join(District, Plan.district_id == District.id)
            .where(Plan.org_id == org_id, Plan.id == target.plan_id)
        ).first()
    if row is None:
        msg = f"no published plan for staff {target.external_id!r} on {day.isoformat()}"
        raise NotFound(msg)
    plan_routes: list[dict[str, Any]] = row[0]
    version: int = row[1]
    district: str = row[2]
    routes = sorted(
        (r for r in plan_routes if r["staff"] == target.external_id),
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
    places = _staff_places(session, org_id, target.staff_id)
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
                "display_name": None if client is None else client.display_name,
                "location_precision": None
                if client is None or client.geocode_precision is None
                else client.geocode_precision.value,
                "address": places.get(s["kind"])
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
        "staff": target.external_id,
        "date": day,
        "district": district or "",
        "plan_id": target.plan_id,
        "plan_version": version,
        "shifts": [r["shift"] for r in routes],
        "profile": routes[0]["profile"] if routes else None,
        "stops": out,
    }


def _staff_places(session: Session, org_id: int, staff_id: int) -> dict[str, dict[str, Any]]:
    """The carer's start and end addresses as the care record gave them, by stop kind."""
    row = session.execute(
        select(Staff.start_address, Staff.end_address).where(
            Staff.org_id == org_id, Staff.id == staff_id
        )
    ).first()
    if row is None:
        return {}
    start, end = row[0], row[1]
    out: dict[str, dict[str, Any]] = {}
    for kind, place in (("start", start), ("end", end if end is not None else start)):
        if place is not None:
            out[kind] = {k: place.get(k) for k in ("street", "housenumber", "postcode", "city")}
    return out


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
