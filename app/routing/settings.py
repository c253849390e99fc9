"""Settings of the routing core: speeds, snapping limits, cache sizes."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from app.domain import TravelMode

#: Typical free-flow speeds (km/h) per OSM highway type, used when an edge has no ``maxspeed``.
#: European values: urban roads at 50, residential at 30, living streets at walking pace.
DEFAULT_DRIVE_SPEEDS: Mapping[str, float] = MappingProxyType(
    {
        "motorway": 110.0,
        "motorway_link": 60.0,
        "trunk": 80.0,
        "trunk_link": 50.0,
        "primary": 60.0,
        "primary_link": 40.0,
        "secondary": 50.0,
        "secondary_link": 40.0,
        "tertiary": 50.0,
        "tertiary_link": 30.0,
        "unclassified": 40.0,
        "residential": 30.0,
        "living_street": 10.0,
        "road": 30.0,
        "service": 20.0,
    }
)

#: Bumped whenever the processing changes so old caches stop matching (2: the search encoding's
#: bound comes from the time diameter, stored with the graph for the CCH engine).
PIPELINE_VERSION = 2
#: Bumped whenever address extraction changes (positions, tags read), independently of the graphs,
#: so a geocoding fix does not force every road graph to be rebuilt.
ADDRESS_FORMAT_VERSION = 2
#: Accepted values of :attr:`RoutingSettings.matrix_engine`.
MATRIX_ENGINES = ("auto", "labels", "cch", "dijkstra")


@dataclass(frozen=True)
class RoutingSettings:
    """Knobs of the routing core; part of the cache key where they change the graph.

    Parameters
    ----------
    snap_max_m
        A location farther than this from any road of the mode is an error.
    bike_kmh, walk_kmh
        Constant travel speeds for the bike and walk graphs.
    drive_speeds_kmh
        Speed per highway type for drive edges that carry no ``maxspeed``.
    drive_fallback_kmh
        Speed for drive edges whose highway type is neither tagged with speeds nor listed.
    drive_access_kmh
        Speed at which the straight line between a location and its road is covered by car
        (parking, driveway); bike and walk use their own speed for it.
    largest_component
        Keep only the largest strongly connected component of each mode (recommended).
    row_cache_mb
        Memory budget of the per-mode shortest-path cache (labels by location, rows or pairs
        by node, depending on the engine).
    matrix_engine
        ``"labels"`` (the project's CCH labels compiled with numba, on RoutingKit's order),
        ``"cch"`` (RoutingKit's customizable contraction hierarchy, package ``routingkit-cch``),
        ``"dijkstra"`` (scipy), or ``"auto"``: labels where numba and routingkit-cch are
        installed and the graph is strongly connected, else cch, else dijkstra. See
        docs/decisions/routing-matrix-engine.md.
    """

    snap_max_m: float = 500.0
    bike_kmh: float = 15.0
    walk_kmh: float = 4.5
    drive_speeds_kmh: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_DRIVE_SPEEDS)
    )
    drive_fallback_kmh: float = 30.0
    drive_access_kmh: float = 10.0
    largest_component: bool = True
    row_cache_mb: float = 256.0
    matrix_engine: str = "auto"

    def __post_init__(self) -> None:
        speeds = [self.bike_kmh, self.walk_kmh, self.drive_fallback_kmh, self.drive_access_kmh]
        speeds += list(self.drive_speeds_kmh.values())
        if any(not s > 0 for s in speeds):
            msg = "every speed must be a positive number of km/h"
            raise ValueError(msg)
        if self.matrix_engine not in MATRIX_ENGINES:
            msg = f"matrix_engine must be one of {MATRIX_ENGINES}, got {self.matrix_engine!r}"
            raise ValueError(msg)
        if not self.snap_max_m > 0:
            msg = f"snap_max_m must be positive, got {self.snap_max_m!r}"
            raise ValueError(msg)

    def access_kmh(self, mode: TravelMode) -> float:
        """Speed at which the offset between a location and its road is covered."""
        if mode is TravelMode.WALK:
            return self.walk_kmh
        if mode is TravelMode.BIKE:
            return self.bike_kmh
        return self.drive_access_kmh

    def graph_key(self, mode: TravelMode) -> str:
        """Short hash of everything that changes the processed graph of ``mode``."""
        parts: dict[str, object] = {
            "v": PIPELINE_VERSION,
            "mode": mode.value,
            "scc": self.largest_component,
        }
        if mode is TravelMode.DRIVE:
            parts["speeds"] = sorted(self.drive_speeds_kmh.items())
            parts["fallback"] = self.drive_fallback_kmh
        elif mode is TravelMode.BIKE:
            parts["kmh"] = self.bike_kmh
        else:
            parts["kmh"] = self.walk_kmh
        blob = json.dumps(parts, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
