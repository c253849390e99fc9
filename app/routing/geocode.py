"""Offline geocoding from the ``addr:*`` tags of an OSM extract, and the geocoder protocol."""

from __future__ import annotations

import difflib
import itertools
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from app.domain import Address, LatLon

#: Candidates joined by chains of steps at most this long (single linkage) are one place: a
#: building tagged as node and way, or the shops and entrances of one block, which all carry its
#: address (in central Helsinki they lie 50-120 m apart around one block). Candidates in groups
#: farther apart are different places (the same street and number in two towns, km apart).
SAME_PLACE_M = 100.0
#: Candidates all within this of the chosen point match at full quality.
TIGHT_M = 25.0
#: Candidates all within this of the chosen point match at 90 % quality; wider at 80 %.
CLOSE_M = 50.0
#: Addresses of one street joined by steps at most this long are one stretch of it; stretches
#: farther apart are the same name in different places (two villages' "Dorfstrasse").
STREET_LINK_M = 400.0
#: Quality of a street fallback: between the neighbouring numbers on the same street, next to
#: the nearest number on one side only, and the street's middle (no usable number).
STREET_BETWEEN_QUALITY = 0.5
STREET_BESIDE_QUALITY = 0.4
STREET_MIDDLE_QUALITY = 0.3
#: At most this many candidates are listed with a street fallback.
STREET_CANDIDATES = 10
#: Words that may stand in a house number besides single staircase letters ("5 B as 12").
_NUMBER_WORDS = {"as"}
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


class GeocodePrecision(StrEnum):
    """What a matched position stands for.

    ``address``: the house (or its building, entrance, number range). ``street``: the house
    number is missing or unknown, so the position is on the right street near where the number
    should be (between its neighbours) or the street's middle; ``candidates`` lists the
    addresses it was derived from.
    """

    ADDRESS = "address"
    STREET = "street"


@dataclass(frozen=True, slots=True)
class AddressQuery:
    """An address to geocode, as a care record holds it."""

    street: str
    housenumber: str
    postcode: str | None = None
    city: str | None = None
    name: str | None = None

    @classmethod
    def parse(cls, text: str) -> AddressQuery:
        """Parse ``"[Name,] Street 12a, 9490 City"`` (postcode and city optional).

        The first comma-separated part that ends in a house number is the street; parts before
        it (a building or shop name) are kept as ``name``, parts after it give postcode and city.
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
        name = ", ".join(parts[:first]) or None
        return cls(street=street, housenumber=number, postcode=postcode, city=city, name=name)

    def text(self) -> str:
        """The one-line form :meth:`parse` reads."""
        tail = " ".join(p for p in (self.postcode, self.city) if p)
        number = ";".join(p.strip() for p in re.split(r"[;,]", self.housenumber) if p.strip())
        head = f"{self.name}, " if self.name else ""
        return f"{head}{self.street} {number}" + (f", {tail}" if tail else "")


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
    precision: GeocodePrecision = GeocodePrecision.ADDRESS


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


def _number_tokens(part: str) -> list[str]:
    """Digit runs, letter runs and range dashes of a folded house-number part."""
    text = unicodedata.normalize(
        "NFKD", part.casefold().replace("\u2013", "-").replace("\u2014", "-")
    )
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.findall(r"\d+|[a-z]+|-", text)


def _is_number_word(token: str) -> bool:
    return token.isdigit() or token == "-" or len(token) == 1 or token in _NUMBER_WORDS


def number_keys(housenumber: str) -> list[str]:
    """Keys of a house number, main one first: ``"12 A"`` = ``"12a"``; ``"5-7"``; ``"5 B 12"``.

    The number splits at ``;`` and ``,``. A part is kept when it starts with a digit and holds
    only digits, single (staircase) letters and range dashes ("76;76a" gives two keys). Other
    parts are floor or courtyard notes ("6, 1. krs. / Floor 1" is "6") and are dropped; of the
    first part, the leading number is kept ("33 Keskuskatu 5" is "33"). Ranges keep their dash,
    so "1-5" never equals "15".
    """
    keys: list[str] = []
    for i, part in enumerate(p for p in re.split(r"[;,]", housenumber) if p.strip()):
        tokens = _number_tokens(part)
        if not tokens or not tokens[0].isdigit():
            continue
        if not all(_is_number_word(t) for t in tokens):
            if i > 0:
                continue
            tokens = list(itertools.takewhile(_is_number_word, tokens))
        key = "".join(tokens).strip("-")
        if key and key not in keys:
            keys.append(key)
    return keys


def number_key(housenumber: str) -> str:
    """Main comparison key of a house number: "12 A" = "12a" != "12"; "1-5" != "15"."""
    keys = number_keys(housenumber)
    return keys[0] if keys else fold(housenumber).replace(" ", "")


def _base_number(key: str) -> str:
    """The leading number of a key: "12a" -> "12"."""
    match = re.match(r"\d+", key)
    return match.group(0) if match else key


def _entrance_key(key: str) -> str:
    """A key without its apartment number: "5b12" -> "5b" (the staircase); else the key."""
    match = re.match(r"^(\d+[a-z])\d+$", key)
    return match.group(1) if match else key


def _range(key: str) -> tuple[int, int] | None:
    """The numbers a range key spans: "14-20" -> (14, 20)."""
    match = re.match(r"^(\d+)[a-z]?-(\d+)[a-z]?$", key)
    if not match:
        return None
    lo, hi = int(match.group(1)), int(match.group(2))
    return (lo, hi) if lo < hi else None


def street_keys(street: str) -> set[str]:
    """Keys an object's street is found under: the whole and its last comma part.

    ``addr:street`` sometimes carries a building name ("Asemahalli, Kaivokatu"); a query names the
    street ("Kaivokatu 1"), so the object is indexed under both.
    """
    parts = [p for p in street.split(",") if p.strip()]
    return {street_key(street)} | ({street_key(parts[-1])} if parts else set())


def distance_m(a: LatLon, b: LatLon) -> float:
    """Great-circle distance in metres."""
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(math.sqrt(min(1.0, h)))


def _clusters(candidates: Sequence[Address], link_m: float) -> list[list[Address]]:
    """Single-linkage groups: candidates joined by chains of steps of at most ``link_m``."""
    groups: list[list[Address]] = []
    left = list(candidates)
    while left:
        group = [left.pop()]
        i = 0
        while i < len(group):
            near = [c for c in left if distance_m(group[i].location, c.location) <= link_m]
            left = [c for c in left if c not in near]
            group.extend(near)
            i += 1
        groups.append(group)
    return groups


def best_point(
    members: Sequence[Address], within_m: float = TIGHT_M, max_pairs: int = 12
) -> LatLon:
    """The point within ``within_m`` of the most members of a group sharing one address.

    Tried: each member's position, the group's centre and, for groups of at most ``max_pairs``,
    the midpoint of each pair (two entrances 40 m apart are both served from between them).
    Ties go to a member (a point at a real object, inside the building), then to the smallest
    distance sum.
    """
    points = [(m.location, 0) for m in members] + [(_centre(members), 1)]
    if len(members) <= max_pairs:
        points += [(_centre([a, b]), 1) for a, b in itertools.combinations(members, 2)]

    def score(point: tuple[LatLon, int]) -> tuple[int, int, float]:
        dists = [distance_m(point[0], o.location) for o in members]
        return (-sum(d <= within_m for d in dists), point[1], sum(dists))

    return min(points, key=score)[0]


def _centre(addresses: Sequence[Address]) -> LatLon:
    return LatLon(
        lat=sum(a.location.lat for a in addresses) / len(addresses),
        lon=sum(a.location.lon for a in addresses) / len(addresses),
    )


def decide(candidates: Sequence[Address], quality: float, source: str = "offline") -> GeocodeResult:
    """Turn the candidates of one query into a result.

    Candidates form one place when single-linkage steps of at most :data:`SAME_PLACE_M` join them
    all: matched at their :func:`best_point`, quality lowered by 10 % if some candidate is
    farther than :data:`TIGHT_M` from it, by 20 % if farther than :data:`CLOSE_M`. Several
    places (the same text in two towns, or two buildings far apart): ambiguous, no location,
    all candidates listed. None: not found.
    """
    if not candidates:
        return GeocodeResult(GeocodeStatus.NOT_FOUND, source=source)
    if len(_clusters(candidates, SAME_PLACE_M)) > 1:
        return GeocodeResult(GeocodeStatus.AMBIGUOUS, None, quality, tuple(candidates), source)
    best = best_point(candidates)
    spread = max(distance_m(best, c.location) for c in candidates)
    if spread > CLOSE_M:
        quality *= 0.8
    elif spread > TIGHT_M:
        quality *= 0.9
    return GeocodeResult(GeocodeStatus.MATCHED, best, quality, tuple(candidates), source)


class OfflineGeocoder:
    """Geocoder over a fixed list of addressed objects (an extract's ``addr:*`` tags).

    Read-only after construction, so one instance serves many threads.
    """

    def __init__(self, addresses: Iterable[Address]) -> None:
        self.addresses = tuple(addresses)
        self._exact: dict[tuple[str, str], list[int]] = {}
        self._base: dict[tuple[str, str], list[int]] = {}
        self._ranges: dict[str, list[tuple[int, int, int]]] = {}
        for i, a in enumerate(self.addresses):
            for skey, nkey in self._keys(a):
                self._add(self._exact, (skey, nkey), i)
                self._add(self._base, (skey, _base_number(nkey)), i)
                span = _range(nkey)
                if span is not None and (i not in {r[2] for r in self._ranges.get(skey, [])}):
                    self._ranges.setdefault(skey, []).append((*span, i))
        self._streets = sorted({k[0] for k in self._exact})
        #: Every object of a street (by street key), for the street fallback.
        self._street: dict[str, list[int]] = {}
        for (skey, _), found in self._exact.items():
            self._street.setdefault(skey, []).extend(found)
        for skey, found in self._street.items():
            self._street[skey] = sorted(set(found))

    @staticmethod
    def _add(index: dict[tuple[str, str], list[int]], key: tuple[str, str], i: int) -> None:
        found = index.setdefault(key, [])
        if not found or found[-1] != i:
            found.append(i)

    @staticmethod
    def _keys(a: Address) -> set[tuple[str, str]]:
        """(street, number) keys of an object: its tags, and its text as a query would read it."""
        parsed = AddressQuery.parse(AddressQuery(a.street, a.housenumber).text())
        keys = {(s, n) for s in street_keys(a.street) for n in number_keys(a.housenumber)}
        keys |= {(street_key(parsed.street), n) for n in number_keys(parsed.housenumber)}
        return keys

    def geocode(self, query: AddressQuery) -> GeocodeResult:
        """Find ``query`` among the addresses.

        Tries, in order: a building name and street tagged together ("Kaivopiha, Mannerheimintie"),
        when the query names one; the exact street and number (letters and ranges included:
        "5a" = "5 A", "5-7" != "57"); the staircase without the apartment ("5 B 12" finds
        "5 B", quality 0.95); a close street spelling (0.8); a range holding the number on the
        same side of the street ("16" finds "14-20", 0.8); the number without its letter (0.6).
        Postcode and city, where both sides have them, narrow the candidates and confirm the match.
        When the number is missing or none of these finds it, the street itself answers
        (:meth:`street_fallback`, precision ``street``); only an unknown street is not found.
        """
        skey, nkey = street_key(query.street), number_key(query.housenumber)
        attempts: list[tuple[list[int], float]] = [(self._exact.get((skey, nkey), []), 1.0)]
        if query.name:  # "Kaivopiha, Mannerheimintie 3": the building named in addr:street first
            named = street_key(f"{query.name}, {query.street}")
            attempts.insert(0, (self._exact.get((named, nkey), []), 1.0))
        if not any(found for found, _ in attempts):
            if _entrance_key(nkey) != nkey:
                attempts.append((self._exact.get((skey, _entrance_key(nkey)), []), 0.95))
            for close in difflib.get_close_matches(skey, self._streets, n=3, cutoff=0.85):
                attempts.append((self._exact.get((close, nkey), []), 0.8))
            attempts.append((self._in_range(skey, nkey), 0.8))
            attempts.append((self._base.get((skey, _base_number(nkey)), []), 0.6))
        for found, quality in attempts:
            if found:
                return self._narrow([self.addresses[i] for i in found], query, quality)
        return self.street_fallback(query)

    def street_fallback(self, query: AddressQuery) -> GeocodeResult:
        """The street's position for an address whose house number is missing or unknown.

        The street's objects (by the street key, else a close spelling at 80 %) are narrowed by
        postcode and city like a full match. Stretches of the street more than
        :data:`STREET_LINK_M` apart are different places: ambiguous. On one stretch, a number
        lies between its nearest lower and higher neighbours (same side of the street when
        there are such, interpolated by number; quality :data:`STREET_BETWEEN_QUALITY`), or at
        the nearest neighbour when it is past the street's last number
        (:data:`STREET_BESIDE_QUALITY`); without a number, at the stretch's middle object
        (:data:`STREET_MIDDLE_QUALITY`). Precision is ``street`` and the candidates are the
        objects used, nearest first.
        """
        skey = street_key(query.street)
        found = self._street.get(skey, [])
        factor = 1.0
        if not found:
            close = difflib.get_close_matches(skey, self._streets, n=1, cutoff=0.85)
            found, factor = (self._street[close[0]], 0.8) if close else ([], factor)
        if not found:
            return GeocodeResult(GeocodeStatus.NOT_FOUND)
        members, town_factor, _ = self._in_town([self.addresses[i] for i in found], query)
        factor *= town_factor
        stretches = _clusters(members, STREET_LINK_M)
        if len(stretches) > 1:
            listed = tuple(members[:STREET_CANDIDATES])
            return GeocodeResult(
                GeocodeStatus.AMBIGUOUS,
                None,
                STREET_MIDDLE_QUALITY * factor,
                listed,
                precision=GeocodePrecision.STREET,
            )
        point, used, quality = _on_street(stretches[0], number_key(query.housenumber))
        used = sorted(used, key=lambda a: distance_m(point, a.location))[:STREET_CANDIDATES]
        return GeocodeResult(
            GeocodeStatus.MATCHED,
            point,
            quality * factor,
            tuple(used),
            precision=GeocodePrecision.STREET,
        )

    def _in_range(self, skey: str, nkey: str) -> list[int]:
        """Objects whose number range holds ``nkey``'s number with the same parity."""
        base = _base_number(nkey)
        if not base.isdigit():
            return []
        n = int(base)
        return [
            i for lo, hi, i in self._ranges.get(skey, []) if lo <= n <= hi and (n - lo) % 2 == 0
        ]

    @staticmethod
    def _in_town(found: list[Address], query: AddressQuery) -> tuple[list[Address], float, bool]:
        """Candidates agreeing with the query's postcode and city, a quality factor, confirmed."""
        factor, confirmed = 1.0, False
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
                factor *= 0.7  # every candidate disagrees: keep them but say it is weak
        return found, factor, confirmed

    def _narrow(self, found: list[Address], query: AddressQuery, quality: float) -> GeocodeResult:
        found, factor, confirmed = self._in_town(found, query)
        quality *= factor
        if not confirmed and quality == 1.0:
            quality = 0.9
        return decide(found, quality)


def _number_of(address: Address) -> int | None:
    """The leading number of an object's house number (None if it has none)."""
    base = _base_number(number_key(address.housenumber))
    return int(base) if base.isdigit() else None


def _on_street(stretch: Sequence[Address], nkey: str) -> tuple[LatLon, list[Address], float]:
    """Where house number ``nkey`` lies on one stretch of a street: (point, used, quality)."""
    base = _base_number(nkey)
    numbered = [(n, a) for a in stretch if (n := _number_of(a)) is not None]
    if base.isdigit() and numbered:
        n = int(base)
        same_side = [(m, a) for m, a in numbered if (m - n) % 2 == 0]
        for side in (same_side, numbered):
            lower = [(m, a) for m, a in side if m < n]
            higher = [(m, a) for m, a in side if m > n]
            if lower and higher:
                (lo, a), (hi, b) = max(lower, key=lambda p: p[0]), min(higher, key=lambda p: p[0])
                t = (n - lo) / (hi - lo)
                point = LatLon(
                    lat=a.location.lat + t * (b.location.lat - a.location.lat),
                    lon=a.location.lon + t * (b.location.lon - a.location.lon),
                )
                return point, [a, b], STREET_BETWEEN_QUALITY
        nearest = min(numbered, key=lambda p: (abs(p[0] - n), p[0]))[1]
        return nearest.location, [nearest], STREET_BESIDE_QUALITY
    middle = min(
        stretch,
        key=lambda a: sum(distance_m(a.location, o.location) for o in stretch),
    )
    return middle.location, list(stretch), STREET_MIDDLE_QUALITY
