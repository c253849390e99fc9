"""The loaded region (road graphs, address index) and geocoding of clients."""

from __future__ import annotations

from fastapi import APIRouter

from app.api import authz
from app.api.deps import Reader, SessionDep, SettingsDep, Writer
from app.api.errors import ErrorBody
from app.api.plan_schemas import (
    Coordinates,
    GeocodeItem,
    GeocodeOut,
    GeocodeRequest,
    RegionOut,
)
from app.api.routers._items import AUTH_ERRORS, ITEM_ERRORS
from app.api.routing import StrictJSONRoute
from app.planning import geocoding, pool
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

    Care-record coordinates are never replaced. Ambiguous and unknown addresses are reported and
    stay without coordinates (their visits are unassigned with reason `not_geocoded`).
    """
    authz.ensure_not_nurse(principal)
    district_id = None
    if body.district is not None:
        district_id = district_by_external_id(session, principal.org_id, body.district).id
        authz.ensure_district(principal, district_id)
    elif principal.district_ids is not None:
        authz.ensure_org_wide(principal)
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
            stored=o.stored,
            coordinates=None
            if o.lat is None or o.lon is None
            else Coordinates(lat=o.lat, lon=o.lon),
        )
        for o in outcomes
    ]
    counts = {s: sum(1 for o in outcomes if o.status is s) for s in GeocodeStatus}
    audit.record(
        session,
        principal.org_id,
        actor=principal.actor,
        action="clients.geocoded",
        target_type="district" if body.district else "organisation",
        target_id=body.district,
        details={s.value: n for s, n in counts.items()},
    )
    return GeocodeOut(
        items=items,
        matched=counts[GeocodeStatus.MATCHED],
        ambiguous=counts[GeocodeStatus.AMBIGUOUS],
        not_found=counts[GeocodeStatus.NOT_FOUND],
    )
