"""New places of a re-plan (urgent visits, phones' positions) joined to the stored matrices."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from app.domain import UNREACHABLE, LatLon, TravelMatrix
from app.errors import Unroutable
from app.planning.replan import _grow
from app.routing import OffRoadLocation
from app.scheduling.model import Problem


class _Roads:
    """A region whose ``off`` modes have no road near any new place (1 minute between places)."""

    def __init__(self, off: set[str]) -> None:
        self.off = off

    def snap(self, mode: str, points: Sequence[LatLon], labels: Sequence[str]) -> None:
        if mode in self.off and any(p.lat > 50 for p in points):
            offenders = [(label, 80.0) for p, label in zip(points, labels, strict=True)]
            raise OffRoadLocation(
                [o for o, p in zip(offenders, points, strict=True) if p.lat > 50],
                mode=mode,
                limit_m=50,
            )

    def extend_matrix(
        self,
        mode: str,
        matrix: TravelMatrix,
        points: Sequence[LatLon],
        new: Sequence[LatLon],
    ) -> TravelMatrix:
        n = len(points) + len(new)
        everything = [*points, *new]
        self.snap(mode, everything, [str(i) for i in range(n)])  # the region anchors them all
        d = np.full((n, n), 60, dtype=np.int64)
        np.fill_diagonal(d, 0)
        return TravelMatrix(d, d * 10)


def _problem() -> tuple[Problem, list[LatLon]]:
    points = [LatLon(47.1, 9.5), LatLon(47.2, 9.5)]
    d = np.array([[0, 60], [60, 0]], dtype=np.int64)
    matrices = {m: TravelMatrix(d, d * 10) for m in ("drive", "bike")}
    return Problem(visits=(), shifts=(), matrices=matrices, locations=tuple(points)), points


def test_a_place_off_one_modes_roads_is_unreachable_in_that_mode_only() -> None:
    """It was refused (422) for every carer: a phone's fix beside a footpath, a bike carer."""
    problem, points = _problem()
    new = [LatLon(47.15, 9.5), LatLon(51.0, 9.5)]  # the second is off the drive roads
    grown = _grow(_Roads({"drive"}), points, new, problem)  # type: ignore[arg-type]
    drive, bike = grown.matrices["drive"].durations, grown.matrices["bike"].durations
    assert drive.shape == bike.shape == (4, 4)
    assert (drive[3, :3] >= UNREACHABLE).all()
    assert (drive[:3, 3] >= UNREACHABLE).all()
    assert drive[2, 0] == 60
    assert (bike[3, :3] == 60).all()
    assert len(grown.locations) == 4


def test_a_place_off_every_modes_roads_is_refused() -> None:
    problem, points = _problem()
    with pytest.raises(Unroutable):
        _grow(_Roads({"drive", "bike"}), points, [LatLon(51.0, 9.5)], problem)  # type: ignore[arg-type]


def test_a_stored_place_off_a_modes_roads_does_not_stop_new_places_joining() -> None:
    """A client near a road cut off from the drive network, stored unreachable by drive: a
    position report for anyone then failed (the stored points were anchored again)."""
    problem, points = _problem()
    points = [*points, LatLon(52.0, 9.5)]  # stored, off the drive roads
    d = np.array([[0, 60, UNREACHABLE], [60, 0, UNREACHABLE], [UNREACHABLE] * 2 + [0]])
    matrices = {"drive": TravelMatrix(d, d), "bike": problem.matrices["bike"]}
    bike = np.full((3, 3), 60, dtype=np.int64)
    np.fill_diagonal(bike, 0)
    matrices["bike"] = TravelMatrix(bike, bike * 10)
    problem = Problem(visits=(), shifts=(), matrices=matrices, locations=tuple(points))
    grown = _grow(_Roads({"drive"}), points, [LatLon(47.15, 9.5)], problem)  # type: ignore[arg-type]
    drive = grown.matrices["drive"].durations
    assert drive[3, 0] == 60
    assert drive[3, 2] >= UNREACHABLE
    assert drive[2, 3] >= UNREACHABLE
