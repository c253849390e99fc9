"""HTTP geocoder with a mock transport and a fake clock: retries, backoff, rate limit, cache."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import httpx
import pytest

from app.domain import Address, LatLon
from app.routing import (
    AddressQuery,
    ChainGeocoder,
    GeocodeStatus,
    GeocodingFailed,
    MemoryGeocodeCache,
    NominatimGeocoder,
    OfflineGeocoder,
)

HIT = [{"lat": "47.1381", "lon": "9.5227", "addresstype": "building"}]
QUERY = AddressQuery("Städtle", "43", "9490", "Vaduz")


class FakeClock:
    """A clock that only moves when the code sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _geocoder(
    handler: Callable[[httpx.Request], httpx.Response], clock: FakeClock, **kw: object
) -> NominatimGeocoder:
    return NominatimGeocoder(
        "https://nominatim.test",
        transport=httpx.MockTransport(handler),
        clock=clock.time,
        sleep=clock.sleep,
        **kw,  # type: ignore[arg-type]
    )


def test_structured_query_and_match() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=HIT)

    result = _geocoder(handler, FakeClock()).geocode(QUERY)
    assert result.status is GeocodeStatus.MATCHED
    assert result.location == LatLon(lat=47.1381, lon=9.5227)
    assert result.source == "http"
    params = seen[0].url.params
    assert params["street"] == "43 Städtle"
    assert params["postalcode"] == "9490"
    assert params["city"] == "Vaduz"
    assert seen[0].headers["user-agent"] == "homecare-planner"


def test_retries_with_exponential_backoff_then_succeeds() -> None:
    answers = iter([503, 429, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(answers)
        return httpx.Response(status, json=HIT if status == 200 else {})

    clock = FakeClock()
    geocoder = _geocoder(handler, clock, backoff_s=2.0, min_interval_s=0.0)
    assert geocoder.geocode(QUERY).status is GeocodeStatus.MATCHED
    assert geocoder.requests == 3
    assert clock.sleeps == [2.0, 4.0]


def test_network_errors_exhaust_retries_into_a_named_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectTimeout("timed out", request=request)

    clock = FakeClock()
    geocoder = _geocoder(handler, clock, retries=2, backoff_s=1.0, min_interval_s=0.0)
    with pytest.raises(GeocodingFailed, match="3 attempts"):
        geocoder.geocode(QUERY)
    assert geocoder.requests == 3
    assert clock.sleeps == [1.0, 2.0]


def test_client_errors_are_not_retried() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(403)

    geocoder = _geocoder(handler, FakeClock())
    with pytest.raises(GeocodingFailed, match="403"):
        geocoder.geocode(QUERY)
    assert geocoder.requests == 1


def test_one_request_per_second() -> None:
    stamps: list[float] = []
    clock = FakeClock()

    def handler(request: httpx.Request) -> httpx.Response:
        stamps.append(clock.now)
        clock.now += 0.2  # the request itself takes 200 ms
        return httpx.Response(200, json=HIT)

    geocoder = _geocoder(handler, clock)
    for number in ("1", "2", "3"):
        geocoder.geocode(AddressQuery("Städtle", number))
    assert [round(b - a, 6) for a, b in itertools.pairwise(stamps)] == [1.0, 1.0]


def test_results_are_cached_by_normalised_query() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, json=[])

    cache = MemoryGeocodeCache()
    geocoder = _geocoder(handler, FakeClock(), cache=cache)
    first = geocoder.geocode(AddressQuery("Hauptstraße", "1"))
    second = geocoder.geocode(AddressQuery("HAUPTSTRASSE", "1"))
    assert first.status is second.status is GeocodeStatus.NOT_FOUND
    assert calls == 1
    assert len(cache.entries) == 1


def test_far_apart_hits_are_ambiguous() -> None:
    hits = [{"lat": "47.10", "lon": "9.50"}, {"lat": "47.20", "lon": "9.55"}]
    geocoder = _geocoder(lambda r: httpx.Response(200, json=hits), FakeClock())
    result = geocoder.geocode(QUERY)
    assert result.status is GeocodeStatus.AMBIGUOUS
    assert len(result.candidates) == 2


def test_chain_prefers_record_then_offline_then_http() -> None:
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return httpx.Response(200, json=HIT)

    offline = OfflineGeocoder(
        [Address("Landstrasse", "1", LatLon(lat=47.16, lon=9.51), "9494", "Schaan")]
    )
    chain = ChainGeocoder(offline, _geocoder(handler, FakeClock()))
    record = LatLon(lat=47.0, lon=9.4)
    assert chain.geocode(QUERY, coordinates=record).location == record
    assert chain.geocode(QUERY, coordinates=record).source == "record"
    assert chain.geocode(AddressQuery("Landstr.", "1")).source == "offline"
    assert calls == 0
    fallback = chain.geocode(QUERY)
    assert fallback.source == "http"
    assert fallback.status is GeocodeStatus.MATCHED
    assert calls == 1
    assert ChainGeocoder(offline).geocode(QUERY).status is GeocodeStatus.NOT_FOUND
