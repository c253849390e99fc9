"""Offline geocoder: normalisation, ambiguity, and a round trip over the Liechtenstein extract."""

from __future__ import annotations

import pytest
from shapely.geometry import Point, Polygon

from app.domain import Address, LatLon
from app.routing import AddressQuery, GeocodeStatus, OfflineGeocoder, Region
from app.routing._osm import _centroid, representative_point
from app.routing.geocode import GeocodePrecision, distance_m, number_key, number_keys, street_key


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


@pytest.mark.parametrize(
    ("a", "b"),
    [("5a", "5 A"), ("5 B 12", "5b12"), ("14\u201320", "14 - 20"), ("6, 1. krs. / Floor 1", "6")],
)
def test_house_numbers_normalise(a: str, b: str) -> None:
    assert number_key(a) == number_key(b)


def test_ranges_and_notes_keep_their_meaning() -> None:
    assert number_key("1-5") != number_key("15")
    assert number_keys("76;76a") == ["76", "76a"]
    assert number_keys("33 Keskuskatu 5") == ["33"]
    assert number_keys("2, 2. krs./Floor 2") == ["2"]


def test_letters_units_and_ranges_find_their_own_object() -> None:
    geocoder = OfflineGeocoder(
        [
            _addr("Uudenmaankatu", "1-5", 60.1650, 24.9400),
            _addr("Uudenmaankatu", "15", 60.1640, 24.9380),
            _addr("Erottajankatu", "7", 60.1660, 24.9440),
            _addr("Erottajankatu", "7 B", 60.1665, 24.9450),
            _addr("Mannerheimintie", "14-20", 60.1700, 24.9400),
        ]
    )
    one_to_five = geocoder.geocode(AddressQuery("Uudenmaankatu", "1-5"))
    assert one_to_five.location == LatLon(lat=60.1650, lon=24.9400)
    fifteen = geocoder.geocode(AddressQuery("Uudenmaankatu", "15"))
    assert fifteen.location == LatLon(lat=60.1640, lon=24.9380)
    staircase = geocoder.geocode(AddressQuery("Erottajankatu", "7b"))
    assert staircase.location == LatLon(lat=60.1665, lon=24.9450)
    assert staircase.quality == pytest.approx(0.9)
    flat = geocoder.geocode(AddressQuery.parse("Erottajankatu 7 B 12"))
    assert flat.location == LatLon(lat=60.1665, lon=24.9450)
    assert flat.quality == pytest.approx(0.95)
    in_range = geocoder.geocode(AddressQuery("Mannerheimintie", "16"))
    assert in_range.location == LatLon(lat=60.1700, lon=24.9400)
    assert in_range.quality == pytest.approx(0.8)
    odd = geocoder.geocode(AddressQuery("Mannerheimintie", "17"))  # other side of the street
    # Not in the range: the street answers, at its nearest number, and says so.
    assert odd.status is GeocodeStatus.MATCHED
    assert odd.precision is GeocodePrecision.STREET
    assert odd.location == LatLon(lat=60.1700, lon=24.9400)
    assert odd.quality < in_range.quality


def test_building_name_in_the_street_tag() -> None:
    geocoder = OfflineGeocoder(
        [
            _addr("Kaivopiha, Mannerheimintie", "3", 60.1690, 24.9400),
            _addr("Mannerheimintie", "3", 60.1697, 24.9410),
        ]
    )
    query = AddressQuery.parse("Kaivopiha, Mannerheimintie 3")
    assert query.name == "Kaivopiha"
    assert AddressQuery.parse(query.text()) == query
    named = geocoder.geocode(query)
    assert named.location == LatLon(lat=60.1690, lon=24.9400)
    plain = geocoder.geocode(AddressQuery("Mannerheimintie", "3"))
    assert plain.status is GeocodeStatus.MATCHED  # both objects: one place, ~95 m apart
    assert len(plain.candidates) == 2


def test_shared_address_serves_the_group_and_far_duplicates_stay_ambiguous() -> None:
    # Three entrances of one block: two 10 m apart, one 60 m away; the answer serves the pair.
    block = [
        _addr("Yrjönkatu", "29", 60.16600, 24.93700),
        _addr("Yrjönkatu", "29", 60.16609, 24.93700),
        _addr("Yrjönkatu", "29", 60.16654, 24.93700),
    ]
    # Two towns, no city on either: km apart.
    towns = [_addr("Landstrasse", "7", 47.1660, 9.5093), _addr("Landstrasse", "7", 47.0950, 9.515)]
    geocoder = OfflineGeocoder([*block, *towns])
    shared = geocoder.geocode(AddressQuery("Yrjönkatu", "29"))
    assert shared.status is GeocodeStatus.MATCHED
    assert shared.location is not None
    assert sum(distance_m(shared.location, a.location) <= 25 for a in block) == 2
    assert shared.quality == pytest.approx(0.9 * 0.8)  # no town confirmed it, spread > 50 m
    far = geocoder.geocode(AddressQuery("Landstrasse", "7"))
    assert far.status is GeocodeStatus.AMBIGUOUS
    assert far.location is None
    assert len(far.candidates) == 2


def test_two_entrances_are_served_from_between_them() -> None:
    pair = [_addr("Simonkatu", "7", 60.1680, 24.9350), _addr("Simonkatu", "7", 60.1684, 24.9350)]
    result = OfflineGeocoder(pair).geocode(AddressQuery("Simonkatu", "7"))
    assert result.location is not None
    assert all(distance_m(result.location, a.location) <= 25 for a in pair)


def test_city_disambiguates_far_duplicates(small: OfflineGeocoder) -> None:
    result = small.geocode(AddressQuery.parse("Landstrasse 19, Triesen"))
    assert result.status is GeocodeStatus.MATCHED
    assert result.location == LatLon(lat=47.0950, lon=9.5150)


def test_representative_point_lies_inside_an_l_shaped_building() -> None:
    ring = [(0.0, 0.0), (0.001, 0.0), (0.001, 0.0002), (0.0002, 0.0002), (0.0002, 0.001)]
    ring += [(0.0, 0.001), (0.0, 0.0)]
    assert not Polygon(ring).contains(Point(_centroid(ring)))
    assert Polygon(ring).contains(Point(representative_point(ring)))
    square = [(0.0, 0.0), (0.001, 0.0), (0.001, 0.001), (0.0, 0.001), (0.0, 0.0)]
    assert representative_point(square) == _centroid(square)
