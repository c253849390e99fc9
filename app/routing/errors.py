"""Errors raised by :mod:`app.routing`; each subclasses a built-in so callers can catch broadly."""

from __future__ import annotations

from typing import Any


class RoutingError(Exception):
    """Base class of every routing error."""


class RegionSourceError(RoutingError, ValueError):
    """The OSM source is missing, unreadable or holds no routable ways for a mode."""


class UnknownMode(RoutingError, KeyError):
    """A travel mode that the region was not loaded for."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown travel mode"


class OffRoadLocation(RoutingError, ValueError):
    """One or more locations lie farther than the snapping limit from any road of the mode.

    Attributes
    ----------
    label
        Caller's label (e.g. client id) of the first offending location.
    distance_m
        Its distance to the nearest routable road, in metres.
    offenders
        Every offending ``(label, distance_m)`` pair.
    """

    def __init__(self, offenders: list[tuple[str, float]], *, mode: str, limit_m: float) -> None:
        self.offenders = tuple(offenders)
        self.label, self.distance_m = self.offenders[0]
        self.mode = mode
        self.limit_m = limit_m
        shown = ", ".join(f"{lbl} ({dist:.0f} m)" for lbl, dist in self.offenders[:10])
        more = f" and {len(self.offenders) - 10} more" if len(self.offenders) > 10 else ""
        msg = (
            f"{len(self.offenders)} location(s) farther than {limit_m:.0f} m from any {mode} road: "
            f"{shown}{more}"
        )
        super().__init__(msg)

    def __reduce__(self) -> tuple[Any, ...]:
        # Raised in solver workers: the default pickling (``cls(msg)``) fails when the parent
        # unpickles it, and the process pool then counts the worker as dead.
        return (_off_road, (list(self.offenders), self.mode, self.limit_m))


class UnreachableLocation(RoutingError, ValueError):
    """A location lies on a road that is not connected to the routable network of the mode.

    Attributes
    ----------
    label
        Caller's label of the location.
    """

    def __init__(self, label: str, *, mode: str, distance_m: float) -> None:
        self.label = label
        self.mode = mode
        self.distance_m = distance_m
        msg = (
            f"location {label} is nearest to a {mode} road ({distance_m:.0f} m away) that is not "
            "connected to the rest of the network"
        )
        super().__init__(msg)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_unreachable, (self.label, self.mode, self.distance_m))


class NoRoute(RoutingError, ValueError):
    """There is no path between two consecutive points of a route."""


class GeocodingFailed(RoutingError, LookupError):
    """A geocoder could not be queried (network failure after retries, bad response)."""


def _off_road(offenders: list[tuple[str, float]], mode: str, limit_m: float) -> OffRoadLocation:
    return OffRoadLocation(offenders, mode=mode, limit_m=limit_m)


def _unreachable(label: str, mode: str, distance_m: float) -> UnreachableLocation:
    return UnreachableLocation(label, mode=mode, distance_m=distance_m)
