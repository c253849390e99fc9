"""Benchmark the offline geocoder: round trip over every addressed object of an extract.

Usage: ``python -m bench.geocode --osm ../shared/data/osm/helsinki-centre.osm.pbf``. Every object
with street and house number (none is left out of the denominator, ``addresses``) has its address
(street, house number, postcode, city where tagged) written as one line of text, parsed and
geocoded. An object *carries the address text* of another when their street and house number
normalise alike (case, diacritics, abbreviations, "5 A" = "5a") and it has the postcode and city
the text gives (it may have more): the text describes it as well, so no geocoder can tell them
apart.

Shares (of ``addresses``):

- ``resolved_share``: status matched (a location was returned).
- ``within_25m_share``: returned location within 25 m of the object's own position.
- ``within_25m_of_address_share``: within 25 m of some object carrying the address text (shops
  and entrances of one building all carry its address).
- ``ambiguous_share`` / ``not_found_share``: the other statuses.
- ``unique_text_addresses``: objects whose address text no other object carries;
  ``unique_text_within_25m_share`` is ``within_25m_share`` among them.
- ``inherently_ambiguous``: objects whose address text is carried by objects in separate places
  (groups not joined by steps of at most ``geocode.SAME_PLACE_M``): the right answer is
  ambiguous, so ``resolved_upper_bound`` = 1 - inherently_ambiguous / addresses.
- ``within_25m_upper_bound``: about the best ``within_25m_share`` a geocoder returning one point
  per text can reach: per distinct normalised text, the most of its objects within 25 m of one
  point (:func:`app.routing.geocode.best_point`: members, centre, midpoints of pairs).

- ``street_fallback_share``: matched only at street precision (the round trip's own number was not
  found, so the street answered).

``--leave-out N --seed S`` also measures the street fallback of issue 9: N numbered houses (and
every object with the same street and number) are taken out of the index and looked up by their
full address, as a house missing from OSM would be. ``leave_out_*`` keys report the statuses, the
share answered at street precision and the distance from the answer to the real house (median,
90th percentile, share within 50 m), over the houses whose street is still in the index.

Prints a one-line JSON summary last; ``--misses N`` prints the N worst misses first (address text
on the terminal only, never logged).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

from app.domain import Address
from app.routing import (
    AddressQuery,
    GeocodePrecision,
    GeocodeStatus,
    OfflineGeocoder,
    load_region,
)
from app.routing.geocode import (
    SAME_PLACE_M,
    best_point,
    distance_m,
    fold,
    number_key,
    street_key,
)

PROJECT = Path(__file__).resolve().parents[1]


def address_key(a: Address) -> tuple[str, str, str, str]:
    """Normalised address of an object: objects with equal keys carry the same address."""
    return (
        street_key(a.street),
        number_key(a.housenumber),
        fold(a.postcode or ""),
        fold(a.city or ""),
    )


def _places(members: list[Address], link_m: float) -> int:
    """Number of single-linkage groups (steps of at most ``link_m``) among ``members``."""
    seen: set[int] = set()
    count = 0
    for start in range(len(members)):
        if start in seen:
            continue
        count += 1
        todo = [start]
        seen.add(start)
        while todo:
            i = todo.pop()
            for j in range(len(members)):
                near = distance_m(members[i].location, members[j].location) <= link_m
                if j not in seen and near:
                    seen.add(j)
                    todo.append(j)
    return count


def _coverage(members: list[Address], within_m: float) -> int:
    """Most members within ``within_m`` of one point."""
    point = best_point(members, within_m, max_pairs=len(members))
    return sum(distance_m(point, o.location) <= within_m for o in members)


def _describes(text_of: Address, other: Address) -> bool:
    """Whether ``text_of``'s address text describes ``other`` too (see the module docstring)."""
    return address_key(text_of)[:2] == address_key(other)[:2] and all(
        not mine or fold(mine) == fold(theirs or "")
        for mine, theirs in ((text_of.postcode, other.postcode), (text_of.city, other.city))
    )


def leave_out(objects: list[Address], n: int, seed: int) -> dict[str, object]:
    """Take ``n`` numbered houses out of the index and look each up by its full address."""
    numbered = [a for a in objects if a.housenumber.strip()[:1].isdigit()]
    gone = random.Random(seed).sample(numbered, min(n, len(numbered)))
    gone_keys = {address_key(a)[:2] for a in gone}
    rest = [a for a in objects if address_key(a)[:2] not in gone_keys]
    geocoder = OfflineGeocoder(rest)
    streets = {address_key(a)[0] for a in rest}
    statuses: Counter[str] = Counter()
    errors: list[float] = []
    street_level = asked = 0
    for a in gone:
        if address_key(a)[0] not in streets:
            continue  # the street's only houses were taken out: nothing can answer
        asked += 1
        result = geocoder.geocode(AddressQuery(a.street, a.housenumber, a.postcode, a.city))
        statuses[result.status.value] += 1
        street_level += result.precision is GeocodePrecision.STREET
        if result.location is not None:
            errors.append(distance_m(result.location, a.location))
    errors.sort()
    return {
        "leave_out": len(gone),
        "leave_out_seed": seed,
        "leave_out_street_known": asked,
        "leave_out_statuses": dict(sorted(statuses.items())),
        "leave_out_street_share": round(street_level / asked, 4) if asked else 0.0,
        "leave_out_median_m": round(statistics.median(errors), 1) if errors else None,
        "leave_out_p90_m": round(errors[int(0.9 * (len(errors) - 1))], 1) if errors else None,
        "leave_out_within_50m_share": round(sum(e <= 50 for e in errors) / asked, 4)
        if asked
        else 0.0,
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Run the benchmark and print its JSON summary."""
    parser = argparse.ArgumentParser(prog="python -m bench.geocode", description=__doc__)
    parser.add_argument("--osm", type=Path, required=True, help=".osm.pbf or .osm extract")
    parser.add_argument("--cache-dir", type=Path, default=PROJECT / "osm_cache")
    parser.add_argument("--within-m", type=float, default=25.0)
    parser.add_argument("--misses", type=int, default=0, help="print the N worst misses")
    parser.add_argument("--leave-out", type=int, default=0, help="houses taken out of the index")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    region = load_region(args.osm, modes=(), cache_dir=args.cache_dir)
    geocoder = region.geocoder
    objects = [a for a in region.addresses if a.street and a.housenumber]
    texts = [AddressQuery(a.street, a.housenumber, a.postcode, a.city).text() for a in objects]
    keys = [address_key(a) for a in objects]
    groups: dict[tuple[str, str, str, str], list[Address]] = {}
    by_number: dict[tuple[str, str], list[Address]] = {}
    for address, key in zip(objects, keys, strict=True):
        groups.setdefault(key, []).append(address)
        by_number.setdefault(key[:2], []).append(address)
    described = {
        key: [o for o in by_number[key[:2]] if _describes(members[0], o)]
        for key, members in groups.items()
    }
    statuses: Counter[str] = Counter()
    street_level = 0
    times_ms: list[float] = []
    close = unique = unique_close = of_address = 0
    misses: list[tuple[float, str, str, int]] = []
    for address, text, key in zip(objects, texts, keys, strict=True):
        t0 = time.perf_counter()
        result = geocoder.geocode(AddressQuery.parse(text))
        times_ms.append((time.perf_counter() - t0) * 1000)
        statuses[result.status.value] += 1
        street_level += result.precision is GeocodePrecision.STREET and result.location is not None
        off = distance_m(result.location, address.location) if result.location else float("inf")
        hit = off <= args.within_m
        close += hit
        of_address += result.location is not None and any(
            distance_m(result.location, o.location) <= args.within_m for o in described[key]
        )
        if len(described[key]) == 1:
            unique += 1
            unique_close += hit
        if not hit:
            misses.append((off, text, result.status.value, len(described[key])))
    inherent = sum(
        len(groups[k]) for k, objs in described.items() if _places(objs, SAME_PLACE_M) > 1
    )
    best = sum(_coverage(g, args.within_m) for g in groups.values())
    for off, text, status, size in sorted(misses, reverse=True)[: args.misses]:
        print(f"{off:8.1f} m  {status:9}  same-address objects {size:3}  {text}", file=sys.stderr)
    n = len(objects)

    def share(k: int, of: int = n) -> float:
        return round(k / of, 4) if of else 0.0

    summary: dict[str, object] = {
        "osm": args.osm.name,
        "addresses": n,
        "resolved_share": share(statuses[GeocodeStatus.MATCHED.value]),
        "within_25m_share": share(close),
        "within_25m_of_address_share": share(of_address),
        "ambiguous_share": share(statuses[GeocodeStatus.AMBIGUOUS.value]),
        "not_found_share": share(statuses[GeocodeStatus.NOT_FOUND.value]),
        "unique_text_addresses": unique,
        "unique_text_within_25m_share": share(unique_close, unique),
        "inherently_ambiguous": inherent,
        "resolved_upper_bound": share(n - inherent),
        "within_25m_upper_bound": share(best),
        "median_ms": round(statistics.median(times_ms), 4) if times_ms else 0.0,
        "street_fallback_share": share(street_level),
    }
    if args.leave_out > 0:
        summary.update(leave_out(objects, args.leave_out, args.seed))
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
