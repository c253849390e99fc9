"""Reproducible benchmark locations: the extract's addresses, topped up with points on roads."""

from __future__ import annotations

import random

import numpy as np

from app.domain import LatLon, TravelMode
from app.routing import Region


def sample_points(region: Region, mode: TravelMode, count: int, seed: int = 1) -> list[LatLon]:
    """``count`` distinct locations routable by ``mode``.

    Addresses of the extract within 100 m of a road come first (shuffled); if there are too few,
    points 5-40 m beside random roads make up the rest.
    """
    rng = random.Random(seed)
    net = region.network(mode)
    addresses = list(dict.fromkeys(a.location for a in region.addresses))
    rng.shuffle(addresses)
    points: list[LatLon] = []
    if addresses:
        pos = net.locate(np.array([p.lon for p in addresses]), np.array([p.lat for p in addresses]))
        points = [p for p, d in zip(addresses, pos.distance_m, strict=True) if d <= 100][:count]
    seen = set(points)
    while len(points) < count:
        edge = rng.randrange(net.edge_count)
        coords = net.edge_coords(edge, 0.0, 1.0)
        lon, lat = coords[rng.randrange(len(coords))]
        offset = rng.uniform(5, 40) / 111_195.0
        angle = rng.uniform(0, 2 * np.pi)
        p = LatLon(lat=lat + offset * np.sin(angle), lon=lon + offset * np.cos(angle) * 1.4)
        if p not in seen:
            seen.add(p)
            points.append(p)
    return points
