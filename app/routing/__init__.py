"""Routing core: OSM road graphs per travel mode, travel matrices, route geometry, geocoding.

Pure: no web framework, no ORM. The only package that imports osmnx, pyosmium and networkx.
"""

from app.routing.errors import (
    GeocodingFailed,
    NoRoute,
    OffRoadLocation,
    RegionSourceError,
    RoutingError,
    UnknownMode,
    UnreachableLocation,
)
from app.routing.geocode import (
    AddressQuery,
    GeocodePrecision,
    Geocoder,
    GeocodeResult,
    GeocodeStatus,
    OfflineGeocoder,
)
from app.routing.http_geocoder import (
    ChainGeocoder,
    GeocodeCache,
    MemoryGeocodeCache,
    NominatimGeocoder,
)
from app.routing.region import ALL_MODES, Region, Snap, load_region, load_region_from_place
from app.routing.settings import RoutingSettings

__all__ = [
    "ALL_MODES",
    "AddressQuery",
    "ChainGeocoder",
    "GeocodeCache",
    "GeocodePrecision",
    "GeocodeResult",
    "GeocodeStatus",
    "Geocoder",
    "GeocodingFailed",
    "MemoryGeocodeCache",
    "NoRoute",
    "NominatimGeocoder",
    "OffRoadLocation",
    "OfflineGeocoder",
    "Region",
    "RegionSourceError",
    "RoutingError",
    "RoutingSettings",
    "Snap",
    "UnknownMode",
    "UnreachableLocation",
    "load_region",
    "load_region_from_place",
]
