"""Optional HTTP geocoder (Nominatim-compatible) and the chain that prefers record coordinates.

Results are cached through an injected :class:`GeocodeCache`, so the database adapter can persist
them without this package importing an ORM.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import httpx

from app.domain import Address, LatLon
from app.routing.errors import GeocodingFailed
from app.routing.geocode import (
    AddressQuery,
    GeocodePrecision,
    Geocoder,
    GeocodeResult,
    GeocodeStatus,
    decide,
    fold,
)

log = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class GeocodeCache(Protocol):
    """Where HTTP geocoding results are kept (the store implements it with a table)."""

    def get(self, key: str) -> GeocodeResult | None:
        """The cached result for ``key``, if any."""
        ...

    def put(self, key: str, result: GeocodeResult) -> None:
        """Remember ``result`` for ``key``."""
        ...


@dataclass
class MemoryGeocodeCache:
    """A :class:`GeocodeCache` in a dict (tests, single-process use)."""

    entries: dict[str, GeocodeResult] = field(default_factory=dict)

    def get(self, key: str) -> GeocodeResult | None:
        """The cached result for ``key``, if any."""
        return self.entries.get(key)

    def put(self, key: str, result: GeocodeResult) -> None:
        """Remember ``result`` for ``key``."""
        self.entries[key] = result


def cache_key(query: AddressQuery) -> str:
    """Normalised key of a query, so spelling variants share a cache entry."""
    parts = (query.street, query.housenumber, query.postcode or "", query.city or "")
    return "|".join(fold(p) for p in parts)


class NominatimGeocoder:
    """Geocoder for a Nominatim-compatible ``/search`` endpoint.

    Parameters
    ----------
    base_url
        E.g. ``"https://nominatim.openstreetmap.org"`` (respect its usage policy) or your own.
    user_agent
        Identifies the service to the provider, as Nominatim's policy asks.
    cache
        Where results are kept; a query found there makes no request.
    timeout_s, retries, backoff_s
        Per-request timeout; retries after a network error, 429 or 5xx, waiting
        ``backoff_s * 2**attempt`` before each.
    min_interval_s
        At most one request per this many seconds (1 request/s by default), across threads.
    country_codes
        Optional ``countrycodes`` filter, e.g. ``"li,ch"``.
    transport, clock, sleep
        Injected for tests (``httpx.MockTransport``, a fake clock).
    """

    def __init__(
        self,
        base_url: str,
        *,
        user_agent: str = "homecare-planner",
        cache: GeocodeCache | None = None,
        timeout_s: float = 10.0,
        retries: int = 3,
        backoff_s: float = 1.0,
        min_interval_s: float = 1.0,
        country_codes: str | None = None,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"User-Agent": user_agent},
            timeout=timeout_s,
            transport=transport,
        )
        self._cache = cache if cache is not None else MemoryGeocodeCache()
        self._retries = retries
        self._backoff_s = backoff_s
        self._min_interval_s = min_interval_s
        self._country_codes = country_codes
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._last_request: float | None = None
        self.requests = 0

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._client.close()

    def geocode(self, query: AddressQuery) -> GeocodeResult:
        """Geocode ``query`` via the cache or one (rate-limited, retried) request.

        Raises
        ------
        GeocodingFailed
            The provider could not be reached or answered with an error after all retries.
        """
        key = cache_key(query)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        params: dict[str, str] = {
            "street": f"{query.housenumber} {query.street}".strip(),
            "format": "jsonv2",
            "limit": "5",
        }
        if query.postcode:
            params["postalcode"] = query.postcode
        if query.city:
            params["city"] = query.city
        if self._country_codes:
            params["countrycodes"] = self._country_codes
        result = self._interpret(query, self._get(params))
        self._cache.put(key, result)
        return result

    def _wait_turn(self) -> None:
        # Called with the lock held, so concurrent callers queue up one interval apart.
        if self._last_request is not None:
            wait = self._last_request + self._min_interval_s - self._clock()
            if wait > 0:
                self._sleep(wait)
        self._last_request = self._clock()

    def _get(self, params: dict[str, str]) -> list[dict[str, Any]]:
        problem = "no attempt made"
        for attempt in range(self._retries + 1):
            if attempt:
                self._sleep(self._backoff_s * 2 ** (attempt - 1))
            with self._lock:
                self._wait_turn()
                self.requests += 1
                try:
                    response = self._client.get("/search", params=params)
                except httpx.HTTPError as exc:
                    problem = type(exc).__name__
                    log.warning("geocoder request failed (%s), attempt %d", problem, attempt + 1)
                    continue
            if response.status_code in _RETRY_STATUS:
                problem = f"HTTP {response.status_code}"
                log.warning("geocoder answered %s, attempt %d", problem, attempt + 1)
                continue
            if response.status_code != 200:
                msg = f"geocoder answered HTTP {response.status_code}"
                raise GeocodingFailed(msg)
            try:
                body = response.json()
            except ValueError as exc:
                msg = "geocoder answered with invalid JSON"
                raise GeocodingFailed(msg) from exc
            if not isinstance(body, list):
                msg = "geocoder answered with an unexpected document"
                raise GeocodingFailed(msg)
            return body
        msg = f"geocoder unavailable after {self._retries + 1} attempts ({problem})"
        raise GeocodingFailed(msg)

    @staticmethod
    def _interpret(query: AddressQuery, hits: list[dict[str, Any]]) -> GeocodeResult:
        candidates = []
        for hit in hits:
            try:
                location = LatLon(lat=float(hit["lat"]), lon=float(hit["lon"]))
            except (KeyError, TypeError, ValueError):
                continue
            candidates.append(
                Address(
                    street=query.street,
                    housenumber=query.housenumber,
                    location=location,
                    postcode=query.postcode,
                    city=query.city,
                )
            )
        exact = [h for h in hits if h.get("addresstype") in {"building", "house", "place"}]
        quality = 0.9 if exact else 0.7
        result = decide(candidates, quality, source="http")
        if hits and all(h.get("addresstype") in {"road", "street"} for h in hits):
            return replace(result, precision=GeocodePrecision.STREET)
        return result


class ChainGeocoder:
    """Coordinates from the care record win, then the offline index, then HTTP if configured."""

    def __init__(self, offline: Geocoder, http: Geocoder | None = None) -> None:
        self.offline = offline
        self.http = http

    def geocode(self, query: AddressQuery, coordinates: LatLon | None = None) -> GeocodeResult:
        """Resolve one address.

        Parameters
        ----------
        query
            The address.
        coordinates
            Coordinates already in the care record; returned as they are (quality 1.0).
        """
        if coordinates is not None:
            return GeocodeResult(GeocodeStatus.MATCHED, coordinates, 1.0, source="record")
        first = self.offline.geocode(query)
        exact = first.precision is GeocodePrecision.ADDRESS
        if (first.status is GeocodeStatus.MATCHED and exact) or self.http is None:
            return first
        # The offline index only knows the street (or nothing): the provider may know the house.
        second = self.http.geocode(query)
        if second.status is GeocodeStatus.MATCHED and (
            second.precision is GeocodePrecision.ADDRESS
            or first.status is not GeocodeStatus.MATCHED
        ):
            return second
        if first.status is GeocodeStatus.MATCHED:
            return first
        return first if first.status is GeocodeStatus.AMBIGUOUS else second
