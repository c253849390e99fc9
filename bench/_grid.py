"""A synthetic grid city written as an .osm.pbf, so benchmarks run on it like on a real extract.

Intersections lie ``spacing_m`` apart (100 m by default). Streets carry the tags of a European
town: residential streets at 30 km/h (every third one one-way, alternating direction), tertiary
every 5th line, secondary every 10th (50 km/h), primary every 20th (60 km/h). Every intersection
is a node and each block of street a way, so osmnx keeps every intersection: ``n * n`` nodes.
A house number on every 7th block face gives the offline geocoder addresses to sample.
"""

from __future__ import annotations

import math
from pathlib import Path

import osmium
import osmium.osm.mutable as mutable

_M_PER_DEG = 111_195.0
_LAT0, _LON0 = 52.0, 5.0


def _street_tags(line: int, *, vertical: bool) -> dict[str, str]:
    if line % 20 == 0:
        return {"highway": "primary", "maxspeed": "60"}
    if line % 10 == 0:
        return {"highway": "secondary", "maxspeed": "50"}
    if line % 5 == 0:
        return {"highway": "tertiary", "maxspeed": "50"}
    tags = {"highway": "residential", "maxspeed": "30"}
    if line % 3 == 0:
        tags["oneway"] = "yes" if (line // 3 + vertical) % 2 else "-1"
    return tags


def write_grid_city(path: Path, n: int, *, spacing_m: float = 100.0) -> Path:
    """Write an ``n`` x ``n`` grid city to ``path`` (.osm.pbf) and return the path.

    Parameters
    ----------
    path
        Target file; its suffix chooses the format (``.osm.pbf`` or ``.osm``).
    n
        Intersections per side (``n * n`` nodes in the drive graph).
    spacing_m
        Distance between neighbouring intersections.
    """
    if n < 2:
        msg = f"a grid city needs at least 2 x 2 intersections, got {n}"
        raise ValueError(msg)
    dlat = spacing_m / _M_PER_DEG
    dlon = spacing_m / (_M_PER_DEG * math.cos(math.radians(_LAT0)))
    path = Path(path)
    path.unlink(missing_ok=True)
    writer = osmium.SimpleWriter(str(path))
    try:
        for r in range(n):
            for c in range(n):
                location = (_LON0 + c * dlon, _LAT0 + r * dlat)
                writer.add_node(mutable.Node(id=r * n + c + 1, location=location))
        extra = n * n + 1
        for r in range(n):
            for c in range(n - 1):
                if (r * n + c) % 7 == 0:
                    # A house 15 m north of the middle of the block face east of this corner.
                    location = (_LON0 + (c + 0.5) * dlon, _LAT0 + r * dlat + 15 / _M_PER_DEG)
                    tags = {
                        "addr:street": f"Row {r}",
                        "addr:housenumber": str(2 * c + 1),
                        "addr:city": "Gridtown",
                    }
                    writer.add_node(mutable.Node(id=extra, location=location, tags=tags))
                    extra += 1
        way_id = 1
        for r in range(n):
            for c in range(n):
                here = r * n + c + 1
                if c + 1 < n:  # east-west street of row r
                    tags = {**_street_tags(r, vertical=False), "name": f"Row {r}"}
                    writer.add_way(mutable.Way(id=way_id, nodes=[here, here + 1], tags=tags))
                    way_id += 1
                if r + 1 < n:  # north-south street of column c
                    tags = {**_street_tags(c, vertical=True), "name": f"Column {c}"}
                    writer.add_way(mutable.Way(id=way_id, nodes=[here, here + n], tags=tags))
                    way_id += 1
    finally:
        writer.close()
    return path
