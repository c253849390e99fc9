"""Offline geocoding from the ``addr:*`` tags of an OSM extract, and the geocoder protocol."""

from __future__ import annotations

import difflib
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from app.domain import Address, LatLon

#: Candidates this close to their centre are one place (a building tagged as node and way).
SAME_PLACE_M = 30.0
#: Candidates this close to their centre are one address spread over a block (shops and entrances
#: of one building carry its address); beyond it the same text names different places.
SAME_ADDRESS_M = 100.0
_LONE_TOKENS = {"g": "gasse", "pl": "platz", "k": "katu", "sankt": "st", "saint": "st"}
_SUFFIXES = (("strasse", "str"), ("straat", "str"), ("str", "str"))
_ABBREVIATIONS = (
    (re.compile(r"(?<=\w)(?<!we)g\.", re.IGNORECASE), "gasse "),
    (re.compile(r"(?<=\w)pl\.", re.IGNORECASE), "platz "),
)


class GeocodeStatus(StrEnum):
    """Outcome of geocoding one address."""

    MATCHED = "matched"
    AMBIGUOUS = "ambiguous"
    NOT_FOUND = "not_found"


@dataclass(frozen=True, slots=True)
class AddressQuery:
    """An address to geocode, as a care record holds it."""

    street: str
    housenumber: str
    postcode: str | None = None
    city: str | None = None

    @classmethod
    def parse(cls, text: str) -> AddressQuery:
        """Parse ``"[Name,] Street 12a, 9490 City"`` (postcode and city optional).

        The first comma-separated part that ends in a house number is the street; parts before
        it (a building or shop name) are ignored, parts after it give postcode and city.
        """
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts:
            msg = "empty address"
            raise ValueError(msg)
        split = [_split_number(p) for p in parts]
        first = next((i for i, (_, number) in enumerate(split) if number), 0)
        street, number = split[first]
        postcode = city = None
        for part in parts[first + 1 :]:
            match = re.match(r"^(?:[A-Z]{1,3}-)?(\d{4,5})\s*(.*)$", part)
            if match and postcode is None:
                postcode, rest = match.group(1), match.group(2).strip()
                city = rest or city
            elif city is None:
                city = part
        return cls(street=street, housenumber=number, postcode=postcode, city=city)

    def text(self) -> str:
        """The one-line form :meth:`parse` reads."""
        tail = " ".join(p for p in (self.postcode, self.city) if p)
        number = ";".join(p.strip() for p in re.split(r"[;,]", self.housenumber) if p.strip())
        return f"{self.street} {number}" + (f", {tail}" if tail else "")


@dataclass(frozen=True, slots=True)
class GeocodeResult:
    """Coordinates for an address with how sure the geocoder is.

    ``quality`` is 1.0 for an exact street + number match confirmed by postcode or city, lower
    for weaker evidence (a near-miss street spelling, a number without its letter suffix).
    ``location`` is None unless ``status`` is matched; ``candidates`` lists what was found.
    """

    status: GeocodeStatus
    location: LatLon | None = None
    quality: float = 0.0
    candidates: tuple[Address, ...] = ()
    source: str = "offline"


class Geocoder(Protocol):
    """Anything that turns an address into a :class:`GeocodeResult`."""

    def geocode(self, query: AddressQuery) -> GeocodeResult:
        """Geocode one address."""
        ...


def _split_number(part: str) -> tuple[str, str]:
    """``"Am Rain 12 b"`` -> ``("Am Rain", "12 b")``; no number -> ``(part, "")``."""
    tokens = part.split()
    for i in range(1, len(tokens)):
        if tokens[i][0].isdigit():
            return " ".join(tokens[:i]), " ".join(tokens[i:])
    return part, ""


def fold(text: str) -> str:
    """Lower case without diacritics, ß as ss, punctuation as spaces, single spaces."""
    text = unicodedata.normalize("NFKD", text.casefold())
    text = "".join(c for c in text if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^0-9a-z]+", " ", text).split())


def street_key(street: str) -> str:
    """Comparison key of a street name.

    Folds case and diacritics, expands abbreviations ("Hauptstr." = "Haupt-Straße" =
    "hauptstrasse"; "Dorfg." = "Dorfgasse"; "pl." = "platz") and ignores spaces and hyphens.
    """
    for pattern, expansion in _ABBREVIATIONS:
        street = pattern.sub(expansion, street)
    tokens = fold(street).split()
    out = []
    for i, tok in enumerate(tokens):
        if (i > 0 and tok in _LONE_TOKENS) or tok in {"sankt", "saint"}:
            tok = _LONE_TOKENS[tok]
        for long, short in _SUFFIXES:
            if tok.endswith(long):
                tok = tok[: -len(long)] + short
                break
        out.append(tok)
    return "".join(out)


def number_key(housenumber: str) -> str:
    """Comparison key of a house number: "12 A" = "12a"."""
    return fold(housenumber).replace(" ", "")


def number_keys(housenumber: str) -> set[str]:
    """Keys under which an object is found: the whole number and each part of "76;76a"."""
    parts = [p for p in re.split(r"[;,]", housenumber) if p.strip()]
    return {number_key(housenumber)} | {number_key(p) for p in parts}


def _base_number(key: str) -> str:
    match = re.match(r"\d+", key)
    return match.group(0) if match else key


def distance_m(a: LatLon, b: LatLon) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(min(1.0, h)))


def _centre(addresses: Sequence[Address]) -> LatLon:
    return LatLon(
        lat=sum(a.location.lat for a in addresses) / len(addresses),
        lon=sum(a.location.lon for a in addresses) / len(addresses),
    )


def decide(candidates: Sequence[Address], quality: float, source: str = "offline") -> GeocodeResult:
    """Turn the candidates of one query into a result.

    All within :data:`SAME_PLACE_M` of their centre: matched at the centre. All within
    :data:`SAME_ADDRESS_M`: matched at the most central candidate, quality lowered by 10 %.
    Farther apart: ambiguous (no location). None: not found.
    """
    if not candidates:
        return GeocodeResult(GeocodeStatus.NOT_FOUND, source=source)
    centre = _centre(candidates)
    spread = max(distance_m(centre, c.location) for c in candidates)
    if spread <= SAME_PLACE_M:
        return GeocodeResult(GeocodeStatus.MATCHED, centre, quality, tuple(candidates), source)
    if spread <= SAME_ADDRESS_M:
        medoid = min(
            candidates, key=lambda c: sum(distance_m(c.location, o.location) for o in candidates)
        )
        return GeocodeResult(
            GeocodeStatus.MATCHED, medoid.location, quality * 0.9, tuple(candidates), source
        )
    return GeocodeResult(GeocodeStatus.AMBIGUOUS, None, quality, tuple(candidates), source)


class OfflineGeocoder:
    """Geocoder over a fixed list of addressed objects (an extract's ``addr:*`` tags).

    Read-only after construction, so one instance serves many threads.
    """

    def __init__(self, addresses: Iterable[Address]) -> None:
        self.addresses = tuple(addresses)
        self._exact: dict[tuple[str, str], list[int]] = {}
        self._base: dict[tuple[str, str], list[int]] = {}
        for i, a in enumerate(self.addresses):
            skey = street_key(a.street)
            for nkey in number_keys(a.housenumber):
                self._exact.setdefault((skey, nkey), []).append(i)
                self._base.setdefault((skey, _base_number(nkey)), []).append(i)
        self._streets = sorted({k[0] for k in self._exact})

    def geocode(self, query: AddressQuery) -> GeocodeResult:
        """Find ``query`` among the addresses.

        Tries the exact street and number, then a close street spelling (quality 0.8), then the
        number without its suffix (quality 0.6); postcode and city, where both sides have them,
        narrow the candidates and confirm the match.
        """
        skey, nkey = street_key(query.street), number_key(query.housenumber)
        attempts: list[tuple[list[int], float]] = [(self._exact.get((skey, nkey), []), 1.0)]
        if not attempts[0][0]:
            for close in difflib.get_close_matches(skey, self._streets, n=3, cutoff=0.85):
                attempts.append((self._exact.get((close, nkey), []), 0.8))
            attempts.append((self._base.get((skey, _base_number(nkey)), []), 0.6))
        for found, quality in attempts:
            if found:
                return self._narrow([self.addresses[i] for i in found], query, quality)
        return GeocodeResult(GeocodeStatus.NOT_FOUND)

    def _narrow(self, found: list[Address], query: AddressQuery, quality: float) -> GeocodeResult:
        confirmed = False
        for field, wanted in (("postcode", query.postcode), ("city", query.city)):
            if not wanted:
                continue
            want = fold(wanted)
            agree = [a for a in found if getattr(a, field) and fold(getattr(a, field)) == want]
            unknown = [a for a in found if not getattr(a, field)]
            if agree:
                found, confirmed = agree, True
            elif unknown:
                found = unknown
            else:
                quality *= 0.7  # every candidate disagrees: keep them but say it is weak
        if not confirmed and quality == 1.0:
            quality = 0.9
        return decide(found, quality)
