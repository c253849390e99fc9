"""Plain value types shared by the pure core packages (routing, scheduling, replan).

Nothing here imports a web framework, an ORM, a solver or a graph library. Times are integer seconds
(since midnight of the plan's local date unless said otherwise); distances are integer metres.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

#: Marker for "no path" in duration and distance matrices. Large enough that no feasible route
#: uses it, small enough that VROOM's uint32 sums of a few of them cannot overflow.
UNREACHABLE: int = 10_000_000


class TravelMode(StrEnum):
    """How a carer moves between clients; each mode has its own road graph."""

    DRIVE = "drive"
    BIKE = "bike"
    WALK = "walk"


@dataclass(frozen=True, slots=True)
class LatLon:
    """A WGS84 coordinate in decimal degrees."""

    lat: float
    lon: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lat) and -90.0 <= self.lat <= 90.0):
            msg = f"latitude must be a finite number in [-90, 90], got {self.lat!r}"
            raise ValueError(msg)
        if not (math.isfinite(self.lon) and -180.0 <= self.lon <= 180.0):
            msg = f"longitude must be a finite number in [-180, 180], got {self.lon!r}"
            raise ValueError(msg)


IntMatrix = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class TravelMatrix:
    """Square travel-time and distance matrices for one travel mode over an ordered location list.

    ``durations[i, j]`` is seconds from location i to j, ``distances[i, j]`` metres; a pair with no
    path holds :data:`UNREACHABLE` in both, never 0 and never a float infinity.
    """

    durations: IntMatrix
    distances: IntMatrix

    def __post_init__(self) -> None:
        for name, m in (("durations", self.durations), ("distances", self.distances)):
            if m.ndim != 2 or m.shape[0] != m.shape[1]:
                msg = f"{name} must be a square 2-D matrix, got shape {m.shape}"
                raise ValueError(msg)
            if m.dtype.kind not in "iu":
                msg = f"{name} must hold integers, got dtype {m.dtype}"
                raise ValueError(msg)
            if m.size and (int(m.min()) < 0 or int(m.max()) > UNREACHABLE):
                msg = f"{name} values must lie in [0, UNREACHABLE]"
                raise ValueError(msg)
        if self.durations.shape != self.distances.shape:
            msg = "durations and distances must have the same shape"
            raise ValueError(msg)

    @property
    def size(self) -> int:
        """Number of locations the matrix covers."""
        return int(self.durations.shape[0])

    def reachable(self, i: int, j: int) -> bool:
        """Whether there is a path from location ``i`` to location ``j``."""
        return int(self.durations[i, j]) < UNREACHABLE


@dataclass(frozen=True, slots=True)
class Address:
    """An addressed object (from an OSM extract's ``addr:*`` tags or a care record)."""

    street: str
    housenumber: str
    location: LatLon
    postcode: str | None = None
    city: str | None = None
