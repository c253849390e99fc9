"""Read an OSM extract (.osm.pbf or .osm XML) with pyosmium: highway ways and addressed objects."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import osmium
from shapely.geometry import Point, Polygon

from app.domain import Address, LatLon, TravelMode
from app.routing.errors import RegionSourceError

#: Way tags kept for the graph (osmnx reads these as edge attributes).
_WAY_TAGS = ("highway", "oneway", "maxspeed", "junction", "service", "access", "lanes", "ref")
#: Tags the mode filters look at.
_FILTER_TAGS = (
    "highway",
    "area",
    "access",
    "motor_vehicle",
    "motorcar",
    "service",
    "foot",
    "bicycle",
    "sidewalk",
    "sidewalk:both",
    "sidewalk:left",
    "sidewalk:right",
    "oneway",
    "oneway:bicycle",
    "cycleway",
    "junction",
    "maxspeed",
    "lanes",
    "ref",
)

# The same exclusions as osmnx's own Overpass filters (osmnx._overpass._get_network_filter).
_EXCLUDED_HIGHWAYS: Mapping[TravelMode, frozenset[str]] = {
    TravelMode.DRIVE: frozenset(
        [
            "abandoned",
            "bridleway",
            "bus_guideway",
            "construction",
            "corridor",
            "cycleway",
            "elevator",
            "escalator",
            "footway",
            "no",
            "path",
            "pedestrian",
            "planned",
            "platform",
            "proposed",
            "raceway",
            "razed",
            "rest_area",
            "service",
            "services",
            "steps",
            "track",
        ]
    ),
    TravelMode.WALK: frozenset(
        [
            "abandoned",
            "bus_guideway",
            "construction",
            "cycleway",
            "motor",
            "no",
            "planned",
            "platform",
            "proposed",
            "raceway",
            "razed",
            "rest_area",
            "services",
        ]
    ),
    TravelMode.BIKE: frozenset(
        [
            "abandoned",
            "bus_guideway",
            "construction",
            "corridor",
            "elevator",
            "escalator",
            "footway",
            "motor",
            "no",
            "planned",
            "platform",
            "proposed",
            "raceway",
            "razed",
            "rest_area",
            "services",
            "steps",
        ]
    ),
}
_DRIVE_SERVICE_EXCLUDED = frozenset(
    ["alley", "driveway", "emergency_access", "parking", "parking_aisle", "private"]
)
_SIDEWALK_KEYS = ("sidewalk", "sidewalk:both", "sidewalk:left", "sidewalk:right")


def _has(tags: Mapping[str, str], key: str, *values: str) -> bool:
    value = tags.get(key)
    return value is not None and any(v in value for v in values)


def way_allowed(tags: Mapping[str, str], mode: TravelMode) -> bool:
    """Whether a highway way with ``tags`` belongs to the network of ``mode``.

    Mirrors osmnx's Overpass filters (regex "does not match" is a substring test there too).
    """
    highway = tags.get("highway")
    if highway is None or _has(tags, "area", "yes") or _has(tags, "access", "private"):
        return False
    if any(bad in highway for bad in _EXCLUDED_HIGHWAYS[mode]):
        return False
    if mode is TravelMode.DRIVE:
        return not (
            _has(tags, "motor_vehicle", "no")
            or _has(tags, "motorcar", "no")
            or any(_has(tags, "service", s) for s in _DRIVE_SERVICE_EXCLUDED)
        )
    if mode is TravelMode.WALK:
        return not (
            _has(tags, "foot", "no")
            or _has(tags, "service", "private")
            or any(_has(tags, k, "separate") for k in _SIDEWALK_KEYS)
        )
    return not (_has(tags, "bicycle", "no") or _has(tags, "service", "private"))


def graph_tags(tags: Mapping[str, str], mode: TravelMode) -> dict[str, str]:
    """The way tags written for osmnx, with the one-way rules of ``mode`` applied."""
    out = {k: tags[k] for k in _WAY_TAGS if k in tags}
    if "oneway" not in out and tags.get("junction") in {"roundabout", "circular"}:
        out["oneway"] = "yes"
    if mode is TravelMode.BIKE and (
        tags.get("oneway:bicycle") == "no" or tags.get("cycleway", "").startswith("opposite")
    ):
        out["oneway"] = "no"
    return out


@dataclass(slots=True)
class HighwayWay:
    """A highway way with its node ids and the tags the filters need."""

    id: int
    tags: dict[str, str]
    nodes: list[int]


@dataclass(slots=True)
class Extract:
    """What the routing core needs from one OSM extract."""

    ways: list[HighwayWay] = field(default_factory=list)
    coords: dict[int, tuple[float, float]] = field(default_factory=dict)  # id -> (lon, lat)
    addresses: list[Address] = field(default_factory=list)


def _address(tags: Mapping[str, str], lon: float, lat: float) -> Address | None:
    street = tags.get("addr:street") or tags.get("addr:place")
    number = tags.get("addr:housenumber")
    if not street or not number:
        return None
    return Address(
        street=street,
        housenumber=number,
        location=LatLon(lat=lat, lon=lon),
        postcode=tags.get("addr:postcode"),
        city=tags.get("addr:city"),
    )


def _centroid(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Area centroid of a closed ring (lon, lat), or the vertex mean for an open line."""
    mean_lon = sum(p[0] for p in points) / len(points)
    mean_lat = sum(p[1] for p in points) / len(points)
    if len(points) < 4 or points[0] != points[-1]:
        return mean_lon, mean_lat
    kx = math.cos(math.radians(mean_lat))
    area = cx = cy = 0.0
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        a0, b0, a1, b1 = (x0 - mean_lon) * kx, y0 - mean_lat, (x1 - mean_lon) * kx, y1 - mean_lat
        cross = a0 * b1 - a1 * b0
        area += cross
        cx += (a0 + a1) * cross
        cy += (b0 + b1) * cross
    if abs(area) < 1e-18:
        return mean_lon, mean_lat
    return mean_lon + cx / (3.0 * area) / kx, mean_lat + cy / (3.0 * area)


def representative_point(points: list[tuple[float, float]]) -> tuple[float, float]:
    """A point of an addressed way (lon, lat): inside the building, not just its centroid.

    A closed ring gives its area centroid when that lies inside the polygon, else shapely's
    ``representative_point`` (an L- or U-shaped building's centroid may lie in the courtyard
    or next door); an open line or a broken ring gives :func:`_centroid`.
    """
    centre = _centroid(points)
    if len(points) < 4 or points[0] != points[-1]:
        return centre
    polygon = Polygon(points)
    if not polygon.is_valid or polygon.contains(Point(centre)):
        return centre
    inside = polygon.representative_point()
    return float(inside.x), float(inside.y)


class _Reader(osmium.SimpleHandler):
    def __init__(self) -> None:
        super().__init__()
        self.extract = Extract()

    def node(self, n: Any) -> None:
        if "addr:housenumber" in n.tags and n.location.valid():
            address = _address(dict(n.tags), n.location.lon, n.location.lat)
            if address is not None:
                self.extract.addresses.append(address)

    def way(self, w: Any) -> None:
        tags = w.tags
        if "highway" in tags:
            kept = {k: tags[k] for k in _FILTER_TAGS if k in tags}
            refs = [nd.ref for nd in w.nodes if nd.location.valid()]
            for nd in w.nodes:
                if nd.location.valid():
                    self.extract.coords[nd.ref] = (nd.location.lon, nd.location.lat)
            if len(refs) >= 2:
                self.extract.ways.append(HighwayWay(id=w.id, tags=kept, nodes=refs))
        if "addr:housenumber" in tags:
            points = [(nd.location.lon, nd.location.lat) for nd in w.nodes if nd.location.valid()]
            if points:
                lon, lat = representative_point(points)
                address = _address(dict(tags), lon, lat)
                if address is not None:
                    self.extract.addresses.append(address)


def read_extract(source: Path) -> Extract:
    """Read highway ways, their node coordinates and addressed nodes/ways from ``source``.

    Parameters
    ----------
    source
        An ``.osm.pbf``, ``.osm`` or ``.osm.bz2``/``.osm.gz`` file.

    Returns
    -------
    Extract
        Ways with the tags the mode filters need, node coordinates, and addresses.
    """
    if not source.is_file():
        msg = f"OSM source file not found: {source}"
        raise RegionSourceError(msg)
    reader = _Reader()
    try:
        reader.apply_file(str(source), locations=True)
    except RuntimeError as exc:
        msg = f"cannot read OSM source {source.name}: {exc}"
        raise RegionSourceError(msg) from exc
    return reader.extract


def _xml_lines(extract: Extract, mode: TravelMode) -> Iterator[str]:
    ways = [w for w in extract.ways if way_allowed(w.tags, mode)]
    used = sorted({n for w in ways for n in w.nodes})
    yield "<?xml version='1.0' encoding='UTF-8'?>\n<osm version='0.6' generator='app.routing'>\n"
    for node_id in used:
        lon, lat = extract.coords[node_id]
        yield f"<node id='{node_id}' lat='{lat:.7f}' lon='{lon:.7f}'/>\n"
    for way in ways:
        yield f"<way id='{way.id}'>"
        yield "".join(f"<nd ref='{n}'/>" for n in way.nodes)
        for key, value in graph_tags(way.tags, mode).items():
            yield f"<tag k={quoteattr(key)} v={quoteattr(value)}/>"
        yield "</way>\n"
    yield "</osm>\n"


def write_mode_xml(extract: Extract, mode: TravelMode, path: Path) -> int:
    """Write the ways of ``mode`` and their nodes as OSM XML that ``osmnx.graph_from_xml`` reads.

    Returns
    -------
    int
        Number of ways written.
    """
    count = sum(1 for w in extract.ways if way_allowed(w.tags, mode))
    with path.open("w", encoding="utf-8") as fh:
        fh.writelines(_xml_lines(extract, mode))
    return count
