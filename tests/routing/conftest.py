"""Shared routing fixtures: one Liechtenstein region cached in the project's osm_cache/."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from app.routing import Region, RoutingSettings, load_region

PROJECT = Path(__file__).resolve().parents[2]
DATA = PROJECT.parent / "shared" / "data" / "osm"
LIECHTENSTEIN = DATA / "liechtenstein.osm.pbf"
HELSINKI = DATA / "helsinki-centre.osm.pbf"
CACHE = PROJECT / "osm_cache"


@pytest.fixture(scope="session")
def liechtenstein() -> Region:
    """All three modes of Liechtenstein; cold the first time (~15 s), warm afterwards."""
    if not LIECHTENSTEIN.is_file():
        pytest.skip(f"shared OSM data not found at {LIECHTENSTEIN}")
    return load_region(LIECHTENSTEIN, cache_dir=CACHE)


# A 4-corner block (about 150 m x 220 m) near Vaduz with a spur at each corner so osmnx keeps
# the corners as nodes. A->B is one-way; B-C, C-D, D-A are two-way; a footway crosses the block
# (walk only); a separate two-way road 2 km east connects to nothing (dropped for every mode).
_NODES = {
    1: (47.000, 9.500),  # A
    2: (47.000, 9.502),  # B
    3: (47.002, 9.502),  # C
    4: (47.002, 9.500),  # D
    5: (46.999, 9.499),
    6: (46.999, 9.503),
    7: (47.003, 9.503),
    8: (47.003, 9.499),
    9: (47.001, 9.500),  # on D-A
    10: (47.001, 9.502),  # on B-C
    11: (47.001, 9.530),  # isolated road
    12: (47.001, 9.532),
    20: (47.0003, 9.5012),  # addressed node
    21: (47.0018, 9.5008),  # building corners
    22: (47.0018, 9.5012),
    23: (47.0015, 9.5012),
    24: (47.0015, 9.5008),
}
_WAYS = [
    (100, [1, 2], {"highway": "residential", "oneway": "yes"}),
    (101, [2, 10, 3], {"highway": "residential"}),
    (102, [3, 4], {"highway": "residential", "maxspeed": "50"}),
    (103, [4, 9, 1], {"highway": "residential"}),
    (104, [1, 5], {"highway": "residential"}),
    (105, [2, 6], {"highway": "residential"}),
    (106, [3, 7], {"highway": "residential"}),
    (107, [4, 8], {"highway": "residential"}),
    (108, [9, 10], {"highway": "footway"}),
    (109, [11, 12], {"highway": "residential"}),
    (
        110,
        [21, 22, 23, 24, 21],
        {"building": "yes", "addr:street": "Blockstraße", "addr:housenumber": "3"},
    ),
]


def write_block_osm(path: Path, *, extra: str = "") -> Path:
    """Write the synthetic block as OSM XML to ``path``."""
    lines = ["<?xml version='1.0' encoding='UTF-8'?>", "<osm version='0.6' generator='test'>"]
    for node_id, (lat, lon) in _NODES.items():
        if node_id == 20:
            lines.append(
                f"<node id='{node_id}' version='1' lat='{lat}' lon='{lon}'>"
                "<tag k='addr:street' v='Blockstrasse'/><tag k='addr:housenumber' v='1a'/>"
                "<tag k='addr:postcode' v='9490'/><tag k='addr:city' v='Vaduz'/></node>"
            )
        else:
            lines.append(f"<node id='{node_id}' version='1' lat='{lat}' lon='{lon}'/>")
    for way_id, refs, tags in _WAYS:
        body = "".join(f"<nd ref='{r}'/>" for r in refs)
        body += "".join(f"<tag k='{k}' v='{v}'/>" for k, v in tags.items())
        lines.append(f"<way id='{way_id}' version='1'>{body}</way>")
    lines.append(extra)
    lines.append("</osm>")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture
def block_osm(tmp_path: Path) -> Path:
    """Path of the synthetic block extract in a fresh temporary directory."""
    return write_block_osm(tmp_path / "block.osm")


@pytest.fixture
def load_block(block_osm: Path, tmp_path: Path) -> Callable[..., Region]:
    """Load the block (drive and walk by default) with a cache in ``tmp_path``."""

    def load(
        *, modes: tuple[str, ...] = ("drive", "walk"), settings: RoutingSettings | None = None
    ) -> Region:
        return load_region(block_osm, modes=modes, cache_dir=tmp_path / "cache", settings=settings)

    return load
