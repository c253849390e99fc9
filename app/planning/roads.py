"""The region's roads as simplified polylines: the console's offline base map.

A map drawn from the extract the plans use works on a network without internet, and shows the
same streets the travel times come from. Each road segment of the drive graph is drawn once (a
two-way street has two arcs), simplified with Douglas-Peucker to a few metres and rounded to
about a metre, so the whole of a small region is a few hundred kilobytes of JSON.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from app.routing.network import ModeNetwork

#: Points closer than this to the simplified line are dropped (metres).
TOLERANCE_M = 4.0
#: Roads at or above this speed are drawn as main roads (km/h).
MAIN_ROAD_KMH = 55.0
_M_PER_DEG = 111_320.0


@dataclass(frozen=True)
class RoadLines:
    """Simplified road polylines of one travel mode's network."""

    mode: str
    bbox: tuple[float, float, float, float]
    lines: tuple[tuple[tuple[float, float], ...], ...]
    main: tuple[bool, ...]


_cache: dict[int, RoadLines] = {}
_lock = threading.Lock()


def road_lines(network: ModeNetwork, *, mode: str, tolerance_m: float = TOLERANCE_M) -> RoadLines:
    """Every road of ``network`` once, simplified; cached per network object.

    Parameters
    ----------
    network
        The loaded graph of one travel mode.
    mode
        Its name (``drive``), echoed in the answer.
    tolerance_m
        Douglas-Peucker tolerance in metres.
    """
    key = id(network)
    with _lock:
        hit = _cache.get(key)
    if hit is not None and hit.mode == mode:
        return hit
    kx = _M_PER_DEG * float(np.cos(np.radians(network.lat0)))
    lines: list[tuple[tuple[float, float], ...]] = []
    main: list[bool] = []
    offsets = network.geom_offsets
    for e in range(len(network.edge_u)):
        twin = int(network.edge_twin[e])
        if 0 <= twin < e:
            continue
        lon = network.geom_lon[offsets[e] : offsets[e + 1]]
        lat = network.geom_lat[offsets[e] : offsets[e + 1]]
        if len(lon) < 2:
            continue
        keep = _simplify((lon - network.lon0) * kx, (lat - network.lat0) * _M_PER_DEG, tolerance_m)
        lines.append(tuple((round(float(lon[i]), 5), round(float(lat[i]), 5)) for i in keep))
        time_s = float(network.edge_time_ds[e]) / 10
        kmh = float(network.edge_len_dm[e]) / 10 / time_s * 3.6 if time_s > 0 else 0.0
        main.append(kmh >= MAIN_ROAD_KMH)
    bbox = (
        round(float(network.geom_lon.min()), 5),
        round(float(network.geom_lat.min()), 5),
        round(float(network.geom_lon.max()), 5),
        round(float(network.geom_lat.max()), 5),
    )
    out = RoadLines(mode=mode, bbox=bbox, lines=tuple(lines), main=tuple(main))
    with _lock:
        _cache[key] = out
    return out


def _simplify(x: np.ndarray, y: np.ndarray, tol: float) -> list[int]:
    """Indices Douglas-Peucker keeps of the polyline (x, y) in metres (ends always kept)."""
    keep = {0, len(x) - 1}
    stack = [(0, len(x) - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        dx, dy = x[b] - x[a], y[b] - y[a]
        norm = float(np.hypot(dx, dy))
        px, py = x[a + 1 : b] - x[a], y[a + 1 : b] - y[a]
        dist = np.abs(dx * py - dy * px) / norm if norm > 0 else np.hypot(px, py)
        k = int(np.argmax(dist))
        if float(dist[k]) > tol:
            mid = a + 1 + k
            keep.add(mid)
            stack.extend(((a, mid), (mid, b)))
    return sorted(keep)
