"""Travel times on the shipped Liechtenstein extract, checked against independent figures."""

from __future__ import annotations

import itertools
import math
import random
import threading

import networkx as nx
import numpy as np
import pytest

from app.domain import Address, LatLon, TravelMode
from app.routing import OffRoadLocation, Region, UnreachableLocation
from app.routing.geocode import distance_m


def _address(region: Region, street: str, number: str) -> Address:
    return next(a for a in region.addresses if a.street == street and a.housenumber == number)


@pytest.fixture(scope="module")
def vaduz_schaan(liechtenstein: Region) -> tuple[LatLon, LatLon]:
    """Städtle 43 in Vaduz and Landstrasse 19 in Schaan, about 3.3 km apart."""
    return (
        _address(liechtenstein, "Städtle", "43").location,
        _address(liechtenstein, "Landstrasse", "19").location,
    )


@pytest.fixture(scope="module")
def sample(liechtenstein: Region) -> list[LatLon]:
    """60 addresses every mode can reach (the 4 cut-off mountain addresses left out)."""
    rng = random.Random(7)
    points = [a.location for a in liechtenstein.addresses]
    rng.shuffle(points)
    net = liechtenstein.network(TravelMode.DRIVE)
    pos = net.locate(np.array([p.lon for p in points]), np.array([p.lat for p in points]))
    return [p for p, d in zip(points, pos.distance_m, strict=True) if d < 100][:60]


def test_drive_time_between_two_addresses_is_plausible(
    liechtenstein: Region, vaduz_schaan: tuple[LatLon, LatLon]
) -> None:
    a, b = vaduz_schaan
    m = liechtenstein.matrix(TravelMode.DRIVE, [a, b], labels=["vaduz", "schaan"])
    straight = distance_m(a, b)
    seconds, metres = int(m.durations[0, 1]), int(m.distances[0, 1])
    assert straight <= metres <= 2.0 * straight
    assert straight / (110 / 3.6) <= seconds <= straight / (15 / 3.6)  # between 15 and 110 km/h
    # Against networkx on the region's own graph between the snapped nodes.
    graph = liechtenstein.graph(TravelMode.DRIVE)
    na, nb = (s.node for s in liechtenstein.snap(TravelMode.DRIVE, [a, b]))
    nx_seconds = nx.shortest_path_length(graph, na, nb, weight="travel_time")
    nx_metres = nx.shortest_path_length(graph, na, nb, weight="length")
    assert abs(seconds - nx_seconds) <= 60 + 0.1 * nx_seconds
    assert metres >= nx_metres - 400  # snapping to the road, not the node, may shorten a little


def test_matrix_agrees_with_networkx_on_many_pairs(
    liechtenstein: Region, sample: list[LatLon]
) -> None:
    points = sample[:12]
    m = liechtenstein.matrix(TravelMode.BIKE, points)
    graph = liechtenstein.graph(TravelMode.BIKE)
    nodes = [s.node for s in liechtenstein.snap(TravelMode.BIKE, points)]
    for i in range(len(points)):
        lengths = nx.single_source_dijkstra_path_length(graph, nodes[i], weight="travel_time")
        for j in range(len(points)):
            if i != j:
                assert (
                    abs(int(m.durations[i, j]) - lengths[nodes[j]]) <= 120 + 0.1 * lengths[nodes[j]]
                )


def test_drive_differs_from_walk(
    liechtenstein: Region, vaduz_schaan: tuple[LatLon, LatLon]
) -> None:
    drive = liechtenstein.matrix(TravelMode.DRIVE, list(vaduz_schaan))
    walk = liechtenstein.matrix(TravelMode.WALK, list(vaduz_schaan))
    bike = liechtenstein.matrix(TravelMode.BIKE, list(vaduz_schaan))
    assert walk.durations[0, 1] > 2 * bike.durations[0, 1] > 2 * drive.durations[0, 1]
    walk_hours = walk.durations[0, 1] / 3600
    assert walk.distances[0, 1] / 1000 / walk_hours == pytest.approx(4.5, rel=0.02)


def test_one_way_streets_make_drive_asymmetric_but_not_walk(
    liechtenstein: Region, sample: list[LatLon]
) -> None:
    drive = liechtenstein.matrix(TravelMode.DRIVE, sample)
    walk = liechtenstein.matrix(TravelMode.WALK, sample)
    assert np.abs(drive.durations - drive.durations.T).max() > 30
    assert np.abs(walk.durations - walk.durations.T).max() <= 1
    assert np.count_nonzero(drive.durations) == len(sample) * (len(sample) - 1)


def test_off_road_point_names_the_client(liechtenstein: Region, sample: list[LatLon]) -> None:
    outside = LatLon(lat=47.30, lon=9.30)  # well outside the extract
    with pytest.raises(OffRoadLocation) as err:
        liechtenstein.matrix(TravelMode.WALK, [sample[0], outside], labels=["c-1", "c-2"])
    assert err.value.label == "c-2"
    assert err.value.distance_m > 10_000


def test_address_on_a_cut_off_road_is_unreachable_by_car(liechtenstein: Region) -> None:
    # A mountain address whose drive roads do not connect to the rest of the network.
    cut_off = LatLon(lat=47.0722825, lon=9.5093326)
    with pytest.raises(UnreachableLocation) as err:
        liechtenstein.matrix(TravelMode.DRIVE, [cut_off], labels=["client-654"])
    assert err.value.label == "client-654"
    assert liechtenstein.matrix(TravelMode.WALK, [cut_off]).size == 1


def test_adding_locations_reuses_cached_rows(liechtenstein: Region, sample: list[LatLon]) -> None:
    rows = liechtenstein._state(TravelMode.WALK).rows
    base = liechtenstein.matrix(TravelMode.WALK, sample[:50])
    before = rows.computed
    grown = liechtenstein.matrix(TravelMode.WALK, sample[:50] + sample[50:55])
    # At most two entry and two exit nodes per new location, one search (row or label) each.
    assert rows.computed - before <= 20
    assert np.array_equal(grown.durations[:50, :50], base.durations)


def test_threads_share_a_region(liechtenstein: Region, sample: list[LatLon]) -> None:
    expected = liechtenstein.matrix(TravelMode.BIKE, sample[:30]).durations
    results: list[np.ndarray] = []

    def work(offset: int) -> None:
        points = sample[offset : offset + 30]
        liechtenstein.matrix(TravelMode.BIKE, points)
        results.append(liechtenstein.matrix(TravelMode.BIKE, sample[:30]).durations)

    threads = [threading.Thread(target=work, args=(k * 7,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    assert all(np.array_equal(r, expected) for r in results)


def test_geometry_runs_along_the_road(
    liechtenstein: Region, vaduz_schaan: tuple[LatLon, LatLon]
) -> None:
    a, b = vaduz_schaan
    line = liechtenstein.geometry(TravelMode.DRIVE, [a, b])
    assert line[0] == (a.lon, a.lat)
    assert line[-1] == (b.lon, b.lat)
    length = sum(
        distance_m(LatLon(lat=p[1], lon=p[0]), LatLon(lat=q[1], lon=q[0]))
        for p, q in itertools.pairwise(line)
    )
    metres = int(liechtenstein.matrix(TravelMode.DRIVE, [a, b]).distances[0, 1])
    assert length == pytest.approx(metres, rel=0.03)


def test_status_reports_modes_counts_and_cache(liechtenstein: Region) -> None:
    status = liechtenstein.status()
    assert status["source"].endswith("liechtenstein.osm.pbf")
    assert len(status["source_sha256"]) == 64
    assert status["addresses"] == len(liechtenstein.addresses) > 900
    for mode in ("drive", "bike", "walk"):
        info = status["modes"][mode]
        assert info["nodes"] > 1000
        assert info["edges"] > info["nodes"]
        assert info["dropped_nodes"] == info["nodes_before_scc"] - info["nodes"] >= 0
        assert info["cache"] in {"warm", "built"}
    assert status["modes"]["walk"]["nodes"] > status["modes"]["drive"]["nodes"]


def test_snap_gives_the_nearby_road(liechtenstein: Region, sample: list[LatLon]) -> None:
    snaps = liechtenstein.snap(TravelMode.DRIVE, sample[:20])
    for point, snap in zip(sample[:20], snaps, strict=True):
        assert distance_m(point, snap.location) == pytest.approx(snap.distance_m, abs=1.0)
        assert snap.node in liechtenstein.graph(TravelMode.DRIVE)
    assert not math.isnan(sum(s.distance_m for s in snaps))


def test_extend_matrix_equals_a_full_recompute(liechtenstein: Region, sample: list[LatLon]) -> None:
    old, new = sample[:40], sample[40:45]
    base = liechtenstein.matrix(TravelMode.DRIVE, old)
    grown = liechtenstein.extend_matrix(TravelMode.DRIVE, base, old, new)
    full = liechtenstein.matrix(TravelMode.DRIVE, old + new)
    assert np.array_equal(grown.durations, full.durations)
    assert np.array_equal(grown.distances, full.distances)
