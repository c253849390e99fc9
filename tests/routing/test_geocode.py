"""Offline geocoder: normalisation, ambiguity, and a round trip over the Liechtenstein extract."""

from __future__ import annotations

import pytest

from app.domain import Address, LatLon
from app.routing import AddressQuery, GeocodeStatus, OfflineGeocoder, Region
from app.routing.geocode import distance_m, number_key, street_key


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Hauptstraße", "hauptstrasse"),
        ("Hauptstr.", "Haupt-Strasse"),
        ("Haupt Str", "HAUPTSTRASSE"),
        ("Kerkstraat", "Kerkstr."),
        ("Im Städtle", "im stadtle"),
        ("Mannerheimintie", "  Mannerheimintie "),
        ("Pohjoisesplanadi", "Pohjoisesplanadi"),
        ("Fronleichnamsg.", "Fronleichnamsgasse"),
        ("St. Florinsgasse", "Sankt Florinsgasse"),
        ("Marktpl.", "Marktplatz"),
    ],
)
def test_street_spellings_share_a_key(a: str, b: str) -> None:
    assert street_key(a) == street_key(b)


def test_different_streets_keep_different_keys() -> None:
    assert street_key("Landstrasse") != street_key("Lindenstrasse")
    assert number_key("12 A") == number_key("12a") != number_key("12")


def test_parse_free_text() -> None:
    q = AddressQuery.parse("Städtle 43, 9490 Vaduz")
    assert q == AddressQuery(street="Städtle", housenumber="43", postcode="9490", city="Vaduz")
    q = AddressQuery.parse("Am Rain 12 b, Schaan")
    assert (q.street, q.housenumber, q.postcode, q.city) == ("Am Rain", "12 b", None, "Schaan")
    assert AddressQuery.parse(q.text()) == q


def _addr(street: str, number: str, lat: float, lon: float, **kw: str) -> Address:
    return Address(street=street, housenumber=number, location=LatLon(lat=lat, lon=lon), **kw)


@pytest.fixture
def small() -> OfflineGeocoder:
    return OfflineGeocoder(
        [
            _addr("Landstrasse", "19", 47.1660, 9.5093, postcode="9494", city="Schaan"),
            _addr("Landstrasse", "19", 47.0950, 9.5150, postcode="9495", city="Triesen"),
            _addr("Dorfstrasse", "5", 47.1000, 9.5000),
            _addr("Dorfstrasse", "5", 47.10005, 9.50005),  # same house as node and way
            _addr("Kirchgasse", "7a", 47.2000, 9.5500),
        ]
    )


def test_same_street_in_two_towns_is_ambiguous_until_the_postcode_decides(
    small: OfflineGeocoder,
) -> None:
    ambiguous = small.geocode(AddressQuery("Landstr.", "19"))
    assert ambiguous.status is GeocodeStatus.AMBIGUOUS
    assert ambiguous.location is None
    assert {c.city for c in ambiguous.candidates} == {"Schaan", "Triesen"}
    matched = small.geocode(AddressQuery("Landstraße", "19", postcode="9495"))
    assert matched.status is GeocodeStatus.MATCHED
    assert matched.location == LatLon(lat=47.0950, lon=9.5150)
    assert matched.quality == 1.0
    by_city = small.geocode(AddressQuery("landstrasse", "19", city="SCHAAN"))
    assert by_city.location == LatLon(lat=47.1660, lon=9.5093)


def test_one_house_tagged_twice_is_one_match(small: OfflineGeocoder) -> None:
    result = small.geocode(AddressQuery("Dorfstr", "5"))
    assert result.status is GeocodeStatus.MATCHED
    assert len(result.candidates) == 2
    assert 0.8 < result.quality < 1.0  # no postcode or city confirmed it


def test_weaker_matches_say_so(small: OfflineGeocoder) -> None:
    typo = small.geocode(AddressQuery("Kirchgase", "7a"))
    assert typo.status is GeocodeStatus.MATCHED
    assert typo.quality == pytest.approx(0.8)
    no_suffix = small.geocode(AddressQuery("Kirchgasse", "7"))
    assert no_suffix.status is GeocodeStatus.MATCHED
    assert no_suffix.quality == pytest.approx(0.6)
    missing = small.geocode(AddressQuery("Nowhere Road", "1"))
    assert missing.status is GeocodeStatus.NOT_FOUND
    assert missing.location is None
    assert missing.candidates == ()


def test_round_trip_over_the_extract(liechtenstein: Region) -> None:
    geocoder = liechtenstein.geocoder
    texts = [
        AddressQuery(a.street, a.housenumber, a.postcode, a.city).text()
        for a in liechtenstein.addresses
    ]
    close = unique = unique_close = 0
    for address, text in zip(liechtenstein.addresses, texts, strict=True):
        result = geocoder.geocode(AddressQuery.parse(text))
        hit = result.location is not None and distance_m(result.location, address.location) <= 25
        close += hit
        if result.status is GeocodeStatus.AMBIGUOUS:
            assert address in result.candidates
        if texts.count(text) == 1:
            unique += 1
            unique_close += hit
    # The rest are the same text on objects 50 m to 6 km apart: ambiguous, and reported as such.
    assert close / len(texts) >= 0.97
    assert unique_close / unique >= 0.99
