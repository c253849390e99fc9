"""Geocode a tenant's clients with the region's offline geocoder and store the coordinates.

Coordinates from the care record always win: a client whose coordinates came from the record is
never geocoded. Only a *matched* address is stored (``coordinate_source = geocoded`` with the
geocoder's quality and precision: ``address`` for the house, ``street`` when the house number is
missing or unknown and the street's position stands in); ambiguous and unknown addresses are
reported and left without coordinates, so their visits are unassigned with reason
``not_geocoded`` until someone fixes the address.

Carers' start and end addresses go through the same index when they are imported
(:func:`place_locator`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain import Address
from app.errors import RegionUnavailable
from app.planning import pool
from app.routing import (
    AddressQuery,
    ChainGeocoder,
    Geocoder,
    GeocodeStatus,
    Region,
    RoutingError,
)
from app.store.importing import PlaceLocator, PlaceLookup
from app.store.inputs import PlaceAddress
from app.store.models import Client, CoordinateSource, GeocodePrecision, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class GeocodeOutcome:
    """What happened to one client's address."""

    client: str
    status: GeocodeStatus
    quality: float
    stored: bool
    lat: float | None = None
    lon: float | None = None
    #: ``address`` or ``street`` (what the position stands for).
    precision: GeocodePrecision = GeocodePrecision.ADDRESS
    #: The addresses found (the neighbours a street position was derived from, or the places
    #: an ambiguous address may be).
    candidates: tuple[Address, ...] = ()


def geocode_clients(
    session: Session,
    org_id: int,
    geocoder: Geocoder,
    *,
    district_id: int | None = None,
    only_missing: bool = True,
) -> list[GeocodeOutcome]:
    """Geocode the organisation's clients (optionally of one district); flushes, never commits.

    Parameters
    ----------
    session
        The request's session.
    org_id
        The tenant.
    geocoder
        Usually ``ChainGeocoder(region.geocoder)``.
    district_id
        Only clients of this district.
    only_missing
        Only clients without coordinates; False also refreshes earlier geocoded coordinates.

    Returns
    -------
    list of GeocodeOutcome
        One per client looked at, by external id.
    """
    stmt = select(Client).where(Client.org_id == org_id)
    if district_id is not None:
        stmt = stmt.where(Client.district_id == district_id)
    if only_missing:
        stmt = stmt.where((Client.lat.is_(None)) | (Client.lon.is_(None)))
    else:
        stmt = stmt.where(
            (Client.coordinate_source.is_(None))
            | (Client.coordinate_source != CoordinateSource.CARE_RECORD)
            | (Client.lat.is_(None))
        )
    chain = geocoder if isinstance(geocoder, ChainGeocoder) else ChainGeocoder(geocoder)
    out: list[GeocodeOutcome] = []
    for client in session.scalars(stmt.order_by(Client.external_id)):
        query = AddressQuery(client.street, client.housenumber, client.postcode, client.city)
        result = chain.geocode(query)
        stored = result.status is GeocodeStatus.MATCHED and result.location is not None
        if stored and result.location is not None:
            client.lat, client.lon = result.location.lat, result.location.lon
            client.coordinate_source = CoordinateSource.GEOCODED
            client.geocode_quality = result.quality
            client.geocode_precision = GeocodePrecision(result.precision.value)
            client.updated_at = utcnow()
        out.append(
            GeocodeOutcome(
                client=client.external_id,
                status=result.status,
                quality=round(result.quality, 3),
                stored=stored,
                lat=result.location.lat if result.location else None,
                lon=result.location.lon if result.location else None,
                precision=GeocodePrecision(result.precision.value),
                candidates=result.candidates,
            )
        )
    session.flush()
    return out


def locate_place(geocoder: Geocoder, address: PlaceAddress) -> PlaceLookup:
    """Geocode one place address (a carer's start or end) like a client's address."""
    query = AddressQuery(address.street, address.housenumber, address.postcode, address.city)
    result = geocoder.geocode(query)
    if result.status is GeocodeStatus.MATCHED and result.location is not None:
        return PlaceLookup(
            "matched",
            result.location.lat,
            result.location.lon,
            result.quality,
            GeocodePrecision(result.precision.value),
            len(result.candidates),
        )
    if result.status is GeocodeStatus.AMBIGUOUS:
        return PlaceLookup("ambiguous", candidates=len(result.candidates))
    return PlaceLookup("not_found", candidates=len(result.candidates))


def place_locator(load: Callable[[], Region]) -> PlaceLocator:
    """A :data:`PlaceLocator` over the region's offline index, loading the region on first use.

    An import without carers' addresses never loads it; a region that cannot be loaded makes
    the lookup ``unavailable`` (the row is refused with ``geocoder_unavailable``), never a 500.
    """
    loaded: list[Region] = []

    def locate(address: PlaceAddress) -> PlaceLookup:
        if not loaded:
            try:
                loaded.append(load())
            except (RoutingError, OSError, RegionUnavailable) as exc:
                log.warning("address index unavailable: %s", type(exc).__name__)
                return PlaceLookup("unavailable")
        return locate_place(loaded[0].geocoder, address)

    return locate


def region_place_locator(region_file: Path, cache_dir: Path) -> PlaceLocator:
    """:func:`place_locator` over the service's region (the one plans are made on)."""
    return place_locator(lambda: pool.get_region(region_file, cache_dir))
