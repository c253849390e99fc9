"""Geocode a tenant's clients with the region's offline geocoder and store the coordinates.

Coordinates from the care record always win: a client whose coordinates came from the record is
never geocoded. Only a *matched* address is stored (``coordinate_source = geocoded`` with the
geocoder's quality); ambiguous and unknown addresses are reported and left without coordinates,
so their visits are unassigned with reason ``not_geocoded`` until someone fixes the address.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.routing import AddressQuery, ChainGeocoder, Geocoder, GeocodeStatus
from app.store.models import Client, CoordinateSource, utcnow


@dataclass(frozen=True, slots=True)
class GeocodeOutcome:
    """What happened to one client's address."""

    client: str
    status: GeocodeStatus
    quality: float
    stored: bool
    lat: float | None = None
    lon: float | None = None


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
            client.updated_at = utcnow()
        out.append(
            GeocodeOutcome(
                client=client.external_id,
                status=result.status,
                quality=round(result.quality, 3),
                stored=stored,
                lat=result.location.lat if result.location else None,
                lon=result.location.lon if result.location else None,
            )
        )
    session.flush()
    return out
