"""Exact behaviour on a tiny synthetic extract: one-way streets, errors, cache invalidation."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from app.domain import UNREACHABLE, LatLon, TravelMode
from app.routing import (
    NoRoute,
    OffRoadLocation,
    Region,
    RegionSourceError,
    RoutingSettings,
    UnknownMode,
    UnreachableLocation,
    load_region,
)
from tests.routing.conftest import write_block_osm

# Just south of the one-way A->B street, near A and near B (A-B is about 152 m long).
NEAR_A = LatLon(lat=46.99995, lon=9.5002)
NEAR_B = LatLon(lat=46.99995, lon=9.5018)
ISOLATED = LatLon(lat=47.00105, lon=9.531)  # beside the road that connects to nothing


def test_one_way_street_makes_the_drive_matrix_asymmetric(
    load_block: Callable[..., Region],
) -> None:
    m = load_block().matrix(TravelMode.DRIVE, [NEAR_A, NEAR_B], labels=["a", "b"])
    # With the one-way: about 121 m along A->B; against it: round the block (~640 m).
    assert 110 <= m.distances[0, 1] <= 135
    assert 600 <= m.distances[1, 0] <= 680
    assert m.durations[1, 0] > 3 * m.durations[0, 1]


def test_walking_ignores_one_way_and_is_slower(load_block: Callable[..., Region]) -> None:
    region = load_block()
    walk = region.matrix(TravelMode.WALK, [NEAR_A, NEAR_B])
    drive = region.matrix(TravelMode.DRIVE, [NEAR_A, NEAR_B])
    assert walk.distances[0, 1] == walk.distances[1, 0]
    assert abs(int(walk.durations[0, 1]) - int(walk.durations[1, 0])) <= 1
    # 4.5 km/h over ~122 m (road plus the two 5.5 m offsets) is about 98 s.
    assert 90 <= walk.durations[0, 1] <= 110
    assert walk.durations[0, 1] > 4 * drive.durations[0, 1]


def test_drive_speed_comes_from_the_highway_default(load_block: Callable[..., Region]) -> None:
    m = load_block().matrix(TravelMode.DRIVE, [NEAR_A, NEAR_B])
    # Residential without maxspeed: 30 km/h over ~121 m = 14.6 s, plus 2 x 5.6 m at 10 km/h = 4 s.
    assert 18 <= m.durations[0, 1] <= 20


def test_diagonal_and_identical_points_are_zero_but_nearby_points_are_not(
    load_block: Callable[..., Region],
) -> None:
    nearby = LatLon(lat=NEAR_A.lat - 0.00002, lon=NEAR_A.lon)
    m = load_block().matrix(TravelMode.DRIVE, [NEAR_A, NEAR_A, nearby])
    assert m.durations[0, 0] == m.durations[0, 1] == m.durations[1, 0] == 0
    assert m.distances[0, 1] == 0
    assert m.durations[0, 2] > 0
    assert m.distances[0, 2] > 0


def test_off_road_location_names_the_client(load_block: Callable[..., Region]) -> None:
    far = LatLon(lat=47.02, lon=9.50)  # about 1.9 km north of every road
    with pytest.raises(OffRoadLocation) as err:
        load_block().matrix(TravelMode.DRIVE, [NEAR_A, far], labels=["client-1", "client-7"])
    assert err.value.label == "client-7"
    assert 1_850 < err.value.distance_m < 1_950
    assert "client-7" in str(err.value)
    assert "client-1" not in str(err.value)


def test_snap_limit_is_configurable(load_block: Callable[..., Region]) -> None:
    point = LatLon(lat=46.9990, lon=9.5010)  # ~100 m south of A-B, ~ 80 m from the spurs
    strict = load_block(settings=RoutingSettings(snap_max_m=50))
    with pytest.raises(OffRoadLocation):
        strict.snap(TravelMode.DRIVE, [point], labels=["c1"])
    [snap] = load_block().snap(TravelMode.DRIVE, [point], labels=["c1"])
    assert 50 < snap.distance_m < 120


def test_point_on_a_disconnected_road_is_unreachable_not_silently_snapped(
    load_block: Callable[..., Region],
) -> None:
    with pytest.raises(UnreachableLocation) as err:
        load_block().matrix(TravelMode.DRIVE, [NEAR_A, ISOLATED], labels=["c1", "c2"])
    assert err.value.label == "c2"


def test_unreachable_pairs_are_marked_when_components_are_kept(
    load_block: Callable[..., Region],
) -> None:
    region = load_block(settings=RoutingSettings(largest_component=False))
    m = region.matrix(TravelMode.DRIVE, [NEAR_A, ISOLATED])
    assert m.durations[0, 1] == UNREACHABLE
    assert m.distances[1, 0] == UNREACHABLE
    assert not m.reachable(0, 1)
    with pytest.raises(NoRoute):
        region.geometry(TravelMode.DRIVE, [NEAR_A, ISOLATED])


def test_unknown_mode_is_a_named_error(load_block: Callable[..., Region]) -> None:
    region = load_block(modes=("walk",))
    with pytest.raises(UnknownMode, match="drive"):
        region.matrix("drive", [NEAR_A])
    with pytest.raises(UnknownMode):
        region.matrix("teleport", [NEAR_A])


def test_geometry_follows_the_roads(load_block: Callable[..., Region]) -> None:
    region = load_block()
    line = region.geometry(TravelMode.DRIVE, [NEAR_B, NEAR_A])
    assert line[0] == (NEAR_B.lon, NEAR_B.lat)
    assert line[-1] == (NEAR_A.lon, NEAR_A.lat)
    # Against the one-way: round the block through C (47.002, 9.502) and D (47.002, 9.500).
    assert (9.502, 47.002) in line
    assert (9.5, 47.002) in line
    assert max(lat for _, lat in line) < 47.0021


def test_missing_source_is_a_named_error(tmp_path: Path) -> None:
    with pytest.raises(RegionSourceError, match=r"nowhere\.osm\.pbf"):
        load_region(tmp_path / "nowhere.osm.pbf", cache_dir=tmp_path)


def test_cache_is_warm_on_second_load_and_invalidated_by_speed_settings(
    load_block: Callable[..., Region],
) -> None:
    first = load_block()
    assert {m["cache"] for m in first.status()["modes"].values()} == {"built"}
    second = load_block()
    assert {m["cache"] for m in second.status()["modes"].values()} == {"warm"}
    slower = RoutingSettings(drive_speeds_kmh={"residential": 15.0})
    third = load_block(settings=slower)
    assert third.status()["modes"]["drive"]["cache"] == "built"
    assert third.status()["modes"]["walk"]["cache"] == "warm"  # walk does not use drive speeds
    before = second.matrix(TravelMode.DRIVE, [NEAR_A, NEAR_B]).durations[0, 1]
    after = third.matrix(TravelMode.DRIVE, [NEAR_A, NEAR_B]).durations[0, 1]
    assert after > 1.7 * before
    walk = load_block(settings=RoutingSettings(walk_kmh=3.0))
    assert walk.status()["modes"]["walk"]["cache"] == "built"


def test_cache_is_invalidated_when_the_extract_changes(tmp_path: Path) -> None:
    source = write_block_osm(tmp_path / "block.osm")
    cache = tmp_path / "cache"
    first = load_region(source, modes=["drive"], cache_dir=cache)
    assert load_region(source, modes=["drive"], cache_dir=cache).status()["modes"]["drive"][
        "cache"
    ] == ("warm")
    # Remove the one-way tag: same size of change a real extract update brings.
    source.write_text(source.read_text().replace("<tag k='oneway' v='yes'/>", ""))
    changed = load_region(source, modes=["drive"], cache_dir=cache)
    assert changed.source_hash != first.source_hash
    assert changed.status()["modes"]["drive"]["cache"] == "built"
    m = changed.matrix(TravelMode.DRIVE, [NEAR_A, NEAR_B])
    assert m.distances[0, 1] == m.distances[1, 0]


def test_cache_files_are_written_atomically(
    load_block: Callable[..., Region], tmp_path: Path
) -> None:
    load_block()
    files = sorted(p.name for p in (tmp_path / "cache").rglob("*") if p.is_file())
    assert files
    assert not [f for f in files if f.endswith(".tmp")]


def test_region_pickles_as_a_cheap_reload(load_block: Callable[..., Region]) -> None:
    region = load_block()
    clone = pickle.loads(pickle.dumps(region))
    assert clone.status()["modes"]["drive"]["cache"] == "warm"
    a = region.matrix(TravelMode.DRIVE, [NEAR_A, NEAR_B])
    b = clone.matrix(TravelMode.DRIVE, [NEAR_A, NEAR_B])
    assert np.array_equal(a.durations, b.durations)


def test_addresses_come_from_nodes_and_building_centroids(
    load_block: Callable[..., Region],
) -> None:
    by_number = {a.housenumber: a for a in load_block().addresses}
    assert by_number["1a"].postcode == "9490"
    assert by_number["1a"].city == "Vaduz"
    centre = by_number["3"].location
    assert centre.lat == pytest.approx(47.00165, abs=1e-6)
    assert centre.lon == pytest.approx(9.5010, abs=1e-6)
