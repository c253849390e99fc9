"""Benchmark the offline geocoder: round trip over every addressed object of an extract.

Usage: ``python -m bench.geocode --osm ../shared/data/osm/helsinki-centre.osm.pbf``. Each object's
address (street, house number, postcode, city where tagged) is written as one line of text,
parsed and geocoded; the result is compared with the object's own position
(``within_25m_share``) and with the position of any object carrying the same address text
(``within_25m_of_address_share``: shops and entrances of one building share its address). Prints a
one-line JSON summary last.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter
from pathlib import Path

from app.domain import Address
from app.routing import AddressQuery, GeocodeStatus, load_region
from app.routing.geocode import distance_m

PROJECT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Run the benchmark and print its JSON summary."""
    parser = argparse.ArgumentParser(prog="python -m bench.geocode", description=__doc__)
    parser.add_argument("--osm", type=Path, required=True, help=".osm.pbf or .osm extract")
    parser.add_argument("--cache-dir", type=Path, default=PROJECT / "osm_cache")
    parser.add_argument("--within-m", type=float, default=25.0)
    args = parser.parse_args(argv)

    region = load_region(args.osm, modes=(), cache_dir=args.cache_dir)
    geocoder = region.geocoder
    objects = [a for a in region.addresses if a.street and a.housenumber]
    texts = [AddressQuery(a.street, a.housenumber, a.postcode, a.city).text() for a in objects]
    repeats = Counter(texts)
    places: dict[str, list[Address]] = {}
    for address, text in zip(objects, texts, strict=True):
        places.setdefault(text, []).append(address)
    statuses: Counter[str] = Counter()
    times_ms: list[float] = []
    close = unique = unique_close = of_address = 0
    for address, text in zip(objects, texts, strict=True):
        t0 = time.perf_counter()
        result = geocoder.geocode(AddressQuery.parse(text))
        times_ms.append((time.perf_counter() - t0) * 1000)
        statuses[result.status.value] += 1
        hit = result.location is not None and (
            distance_m(result.location, address.location) <= args.within_m
        )
        close += hit
        of_address += result.location is not None and any(
            distance_m(result.location, o.location) <= args.within_m for o in places[text]
        )
        if repeats[text] == 1:
            unique += 1
            unique_close += hit
    n = len(objects)
    summary: dict[str, object] = {
        "osm": args.osm.name,
        "addresses": n,
        "resolved_share": round(statuses[GeocodeStatus.MATCHED.value] / n, 4) if n else 0.0,
        "within_25m_share": round(close / n, 4) if n else 0.0,
        "within_25m_of_address_share": round(of_address / n, 4) if n else 0.0,
        "ambiguous_share": round(statuses[GeocodeStatus.AMBIGUOUS.value] / n, 4) if n else 0.0,
        "not_found_share": round(statuses[GeocodeStatus.NOT_FOUND.value] / n, 4) if n else 0.0,
        "unique_text_addresses": unique,
        "unique_text_within_25m_share": round(unique_close / unique, 4) if unique else 0.0,
        "median_ms": round(statistics.median(times_ms), 4) if times_ms else 0.0,
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
