"""The loaded region (road graphs, address index) and geocoding of clients."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from app.api import authz
from app.api.deps import Reader, SessionDep, SettingsDep, Writer
from app.api.errors import ErrorBody
from app.api.plan_schemas import (
    Coordinates,
    GeocodeCandidate,
    GeocodeItem,
    GeocodeOut,
    GeocodeRequest,
    RegionOut,
    RoadsOut,
)
from app.api.routers._items import AUTH_ERRORS, ITEM_ERRORS
from app.api.routing import StrictJSONRoute
from app.domain import TravelMode
from app.planning import geocoding, pool, roads
from app.planning.loading import district_by_external_id
from app.routing import GeocodeStatus
from app.store import audit

router = APIRouter(prefix="/v1", tags=["region"], route_class=StrictJSONRoute)


@router.get("/region", summary="The loaded region", response_model=RegionOut, responses=AUTH_ERRORS)
def get_region(principal: Reader, settings: SettingsDep) -> RegionOut:
    """Which extract, travel modes, node and edge counts, cache state and address count."""
    region = pool.get_region(settings.region_file, settings.osm_cache_dir, settings.region_modes)
    status = region.status()
    return RegionOut(
        source=settings.region_file.name,
        source_sha256=status["source_sha256"],
        modes=status["modes"],
        addresses=status["addresses"],
        load_s=status["load_s"],
    )


@router.get(
    "/region/roads",
    summary="The region's roads for an offline map",
    response_model=RoadsOut,
    responses=AUTH_ERRORS,
)
def get_region_roads(
    principal: Reader,
    settings: SettingsDep,
    mode: Annotated[
        TravelMode, Query(description="Whose roads: drive (default), bike or walk.")
    ] = TravelMode.DRIVE,
) -> JSONResponse:
    """Every road of the loaded extract once, simplified to a few metres: a base map that needs
    no tile server. Public map data only (no tenant data); people who plan only (not nurses).
    """
    authz.ensure_not_nurse(principal)
    region = pool.get_region(settings.region_file, settings.osm_cache_dir, settings.region_modes)
    lines = roads.road_lines(region.network(mode), mode=mode.value)
    body = {"mode": lines.mode, "bbox": list(lines.bbox), "lines": lines.lines, "main": lines.main}
    return JSONResponse(body, headers={"Cache-Control": "private, max-age=3600"})


@router.post(
    "/clients/geocode",
    summary="Geocode clients without coordinates",
    response_model=GeocodeOut,
    tags=["clients"],
    responses={**ITEM_ERRORS, 422: {"model": ErrorBody, "description": "Invalid request."}},
)
def geocode_clients(
    body: GeocodeRequest, principal: Writer, session: SessionDep, settings: SettingsDep
) -> GeocodeOut:
    """Look up clients' addresses in the region's offline index and store matched coordinates.

    Care-record coordinates are never replaced. An address whose house number is missing or not
    in the index gets its street's position, stored with `precision: street`, a lower `quality`
    and the `candidates` it came from. Ambiguous addresses and unknown streets are reported and
    stay without coordinates (their visits are unassigned with reason `not_geocoded`).
    Storing coordinates writes care data, so this needs an organisation-wide credential
    (admin or API key; 403 for planners, like every other care-data write).
    """
    authz.ensure_org_wide(principal)
    district_id = None
    if body.district is not None:
        district_id = district_by_external_id(session, principal.org_id, body.district).id
    region = pool.get_region(settings.region_file, settings.osm_cache_dir, settings.region_modes)
    outcomes = geocoding.geocode_clients(
        session,
        principal.org_id,
        region.geocoder,
        district_id=district_id,
        only_missing=body.only_missing,
    )
    items = [
        GeocodeItem(
            client=o.client,
            status=o.status.value,
            quality=o.quality,
            precision=o.precision.value,
            stored=o.stored,
            coordinates=None
            if o.lat is None or o.lon is None
            else Coordinates(lat=o.lat, lon=o.lon),
            candidates=[]
            if o.status is GeocodeStatus.MATCHED and o.precision.value == "address"
            else [
                GeocodeCandidate(
                    street=c.street,
                    housenumber=c.housenumber,
                    postcode=c.postcode,
                    city=c.city,
                    coordinates=Coordinates(lat=c.location.lat, lon=c.location.lon),
                )
                for c in o.candidates[:10]
            ],
        )
        for o in outcomes
    ]
    street = sum(1 for o in outcomes if o.stored and o.precision.value == "street")
    counts = {s: sum(1 for o in outcomes if o.status is s) for s in GeocodeStatus}
    audit.record(
        session,
        principal.org_id,
        actor=principal.actor,
        action="clients.geocoded",
        target_type="district" if body.district else "organisation",
        target_id=body.district,
        details={**{s.value: n for s, n in counts.items()}, "street": street},
    )
    return GeocodeOut(
        items=items,
        matched=counts[GeocodeStatus.MATCHED],
        ambiguous=counts[GeocodeStatus.AMBIGUOUS],
        not_found=counts[GeocodeStatus.NOT_FOUND],
        street=street,
    )
