"""Request and response bodies of the planning endpoints (plans, jobs, routes, region, geocoding).

Times of day are ``"HH:MM"`` (the organisation's timezone) as everywhere in the API; travel,
waiting and distances keep their exact units in the field name (``travel_s``, ``distance_m``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.api.schemas import PlanSummary
from app.store.inputs import PlanningDate, TimeOfDay, format_time_of_day
from app.store.models import JobStatus, SolveJob


class PlanOptionsIn(BaseModel):
    """Solver knobs for this plan only (omitted ones come from the service settings)."""

    model_config = ConfigDict(extra="forbid")

    time_limit_s: float | None = Field(
        default=None, gt=0, le=300, description="Solver time limit in seconds.", examples=[10]
    )
    exploration_level: int | None = Field(
        default=None, ge=1, le=5, description="VROOM exploration level (1-5)."
    )
    continuity_penalty_s: int | None = Field(
        default=None,
        ge=0,
        le=86400,
        description="Extra seconds of travel a non-preferred carer costs per visit (0 = off).",
    )


class PlanRequest(BaseModel):
    """Plan one district's day."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"district": "vaduz-north", "date": "2026-11-25"}]},
    )

    district: str = Field(min_length=1, max_length=100, description="District external id.")
    date: PlanningDate = Field(description="The day to plan.")
    options: PlanOptionsIn | None = None
    now: TimeOfDay | None = Field(
        default=None,
        description=(
            "Time of day the plan is made. Visits the current version has starting before "
            "now + REPLAN_FREEZE_MINUTES stay with their carers at their times, as do reported "
            "ones. Default: the organisation's local time when the date is today, else none."
        ),
        examples=["10:30"],
    )


class JobLinks(BaseModel):
    """Where to look next."""

    self: str
    plan: str | None = None


class JobOut(BaseModel):
    """A stored solve job."""

    id: str = Field(examples=["0b7c6a52-3f0e-4f7e-9d65-5d0f7a1c2e11"])
    kind: str = Field(examples=["plan"])
    status: JobStatus
    progress: float = Field(ge=0, le=1, description="Rough share done (1 when done).")
    attempts: int = Field(description="Runs started (a lost worker's job runs again).")
    district: str | None
    date: dt.date | None
    result_plan_id: int | None
    error: str | None = Field(description="Why it failed or was re-queued; no client data.")
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    links: JobLinks


def job_out(job: SolveJob) -> JobOut:
    """API view of a job row."""
    params = job.params or {}
    day = params.get("date")
    plan = f"/v1/plans/{job.result_plan_id}" if job.result_plan_id is not None else None
    return JobOut(
        id=job.id,
        kind=job.kind,
        status=job.status,
        progress=round(float(job.progress), 3),
        attempts=job.attempts,
        district=params.get("district"),
        date=dt.date.fromisoformat(day) if day else None,
        result_plan_id=job.result_plan_id,
        error=job.error,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        links=JobLinks(self=f"/v1/jobs/{job.id}", plan=plan),
    )


class Coordinates(BaseModel):
    """A WGS84 point."""

    lat: float
    lon: float


class StopOut(BaseModel):
    """One step of a route."""

    kind: Literal["start", "visit", "break", "end"]
    visit: str | None = Field(description="Visit external id (visit stops).")
    client: str | None = Field(description="Client external id (visit stops).")
    arrival: str = Field(examples=["08:05"])
    start: str = Field(examples=["08:10"])
    end: str = Field(examples=["08:40"])
    travel_s: int = Field(description="Travel from the previous stop, seconds.")
    distance_m: int = Field(description="Distance from the previous stop, metres.")
    waiting_s: int = Field(description="Waiting before the start, seconds.")
    location: Coordinates | None


class RouteOut(BaseModel):
    """One carer's shift in a plan."""

    shift: str
    staff: str
    profile: str = Field(description="Travel mode: drive, bike or walk.")
    stops: list[StopOut]
    kpis: dict[str, Any]


class UnassignedOut(BaseModel):
    """A visit not in any route, with the reason found by checking."""

    visit: str = Field(examples=["V-1001@2026-11-25"])
    client: str | None = Field(examples=["C-17"])
    reason: str = Field(examples=["no_qualified_staff"])
    detail: str = Field(examples=["No carer on shift holds: level5."])


class PlanDetailOut(PlanSummary):
    """A plan version with routes, unassigned visits with reasons, and figures."""

    routes: list[RouteOut]
    unassigned: list[UnassignedOut]
    diff: dict[str, Any] | None


class UnassignedList(BaseModel):
    """The unassigned visits of a plan version."""

    plan_id: int
    version: int
    items: list[UnassignedOut]
    total: int


def _loc(stop: dict[str, Any]) -> Coordinates | None:
    if stop.get("lat") is None or stop.get("lon") is None:
        return None
    return Coordinates(lat=stop["lat"], lon=stop["lon"])


def stop_out(stop: dict[str, Any]) -> StopOut:
    """API view of a stored stop."""
    return StopOut(
        kind=stop["kind"],
        visit=stop.get("visit"),
        client=stop.get("client"),
        arrival=format_time_of_day(int(stop["arrival"])),
        start=format_time_of_day(int(stop["start"])),
        end=format_time_of_day(int(stop["end"])),
        travel_s=int(stop["travel_s"]),
        distance_m=int(stop["distance_m"]),
        waiting_s=int(stop["waiting_s"]),
        location=_loc(stop),
    )


def route_out(route: dict[str, Any]) -> RouteOut:
    """API view of a stored route."""
    return RouteOut(
        shift=route["shift"],
        staff=route["staff"],
        profile=route["profile"],
        stops=[stop_out(s) for s in route["stops"]],
        kpis=route.get("kpis", {}),
    )


def unassigned_out(items: list[dict[str, Any]]) -> list[UnassignedOut]:
    """API view of stored unassigned visits."""
    return [
        UnassignedOut(
            visit=u["visit"], client=u.get("client"), reason=u["reason"], detail=u["detail"]
        )
        for u in items
    ]


class GeoJSONFeatureCollection(BaseModel):
    """A GeoJSON FeatureCollection (RFC 7946): a LineString per route, a Point per stop."""

    type: Literal["FeatureCollection"] = "FeatureCollection"
    features: list[dict[str, Any]]


# -- the nurses' route ----------------------------------------------------------------------


class AddressOut(BaseModel):
    """Where the stop is: the client's home, or the carer's start or end address."""

    street: str
    housenumber: str
    postcode: str | None
    city: str | None


class TaskOut(BaseModel):
    """What to do at the visit."""

    duration_minutes: int
    competences: list[str]
    carers_required: int
    windows: list[dict[str, str]] = Field(examples=[[{"start": "07:30", "end": "08:30"}]])


class NavigationOut(BaseModel):
    """Links that open a navigation app at this stop."""

    osm: str = Field(
        description="OpenStreetMap directions from the previous stop.",
        examples=["https://www.openstreetmap.org/directions?route=47.1398,9.5215;47.1362,9.5228"],
    )
    geo: str = Field(description="A geo: URI (RFC 5870).", examples=["geo:47.1362,9.5228"])


class CarerStopOut(StopOut):
    """One stop of a carer's work list."""

    sequence: int = Field(description="1-based position in the route.")
    display_name: str | None = Field(
        default=None,
        description="The client's display name from the care record (visit stops only).",
        examples=["Mrs. M. Beck"],
    )
    location_precision: Literal["address", "street"] | None = Field(
        default=None,
        description="For a geocoded client: `street` when the position is only on the right "
        "street (house number missing or unknown), so look for the house; None for "
        "coordinates from the care record.",
    )
    address: AddressOut | None = Field(
        description="Visit stops: the client's address. Start and end stops: the carer's start "
        "or end address when the care record gave one as an address."
    )
    task: TaskOut | None = Field(description="Visit stops only.")
    navigation: NavigationOut | None


class CarerRouteOut(BaseModel):
    """A carer's day in the current published plan (what the nurses' app shows)."""

    staff: str
    date: dt.date
    district: str
    plan_id: int
    plan_version: int
    shifts: list[str]
    profile: str | None
    stops: list[CarerStopOut]


# -- region and geocoding --------------------------------------------------------------------


class RegionOut(BaseModel):
    """The loaded road network and address index (no client data)."""

    source: str = Field(description="The extract's file name.")
    source_sha256: str
    modes: dict[str, Any] = Field(description="Per travel mode: nodes, edges, cache state.")
    addresses: int = Field(description="Addressed objects in the offline geocoder.")
    load_s: float


class GeocodeRequest(BaseModel):
    """Which clients to geocode."""

    model_config = ConfigDict(extra="forbid")

    district: str | None = Field(default=None, description="Only this district (external id).")
    only_missing: bool = Field(
        default=True,
        description="Only clients without coordinates; false re-geocodes every client whose "
        "coordinates came from geocoding (care-record coordinates are never replaced).",
    )


class GeocodeCandidate(BaseModel):
    """An addressed object of the region's index that the answer was derived from."""

    street: str
    housenumber: str
    postcode: str | None
    city: str | None
    coordinates: Coordinates


class GeocodeItem(BaseModel):
    """The outcome for one client."""

    client: str
    status: Literal["matched", "ambiguous", "not_found"]
    quality: float
    precision: Literal["address", "street"] = Field(
        default="address",
        description="`address`: the house was found. `street`: the house number is missing or "
        "unknown, so the position is on the street (between the neighbouring numbers, or the "
        "street's middle) and `candidates` lists the addresses it came from.",
    )
    stored: bool = Field(description="Coordinates were stored (matched only).")
    coordinates: Coordinates | None
    candidates: list[GeocodeCandidate] = Field(
        default_factory=list,
        description="Street fallbacks and ambiguous answers: the addresses found (at most 10).",
    )


class GeocodeOut(BaseModel):
    """Outcome per client and counts."""

    items: list[GeocodeItem]
    matched: int
    ambiguous: int
    not_found: int
    street: int = Field(default=0, description="Of the matched: positions of the street only.")


class RoadsOut(BaseModel):
    """The region's roads as simplified polylines (the console's offline base map)."""

    mode: str = Field(examples=["drive"])
    bbox: list[float] = Field(description="min lon, min lat, max lon, max lat.")
    lines: list[list[list[float]]] = Field(description="Polylines of [lon, lat] points.")
    main: list[bool] = Field(description="Per line: a main road (drawn wider).")
