"""The synthetic grid city of ``bench.matrix --grid`` is a real .osm.pbf read like any extract."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.routing import AddressQuery, load_region
from bench import matrix as bench_matrix
from bench._grid import write_grid_city


def test_grid_city_is_an_extract_with_every_intersection_and_addresses(tmp_path: Path) -> None:
    pbf = write_grid_city(tmp_path / "grid.osm.pbf", 12)
    region = load_region(pbf, modes=["drive", "walk"], cache_dir=tmp_path / "cache")
    status = region.status()["modes"]
    # Corners have two streets only, so simplification may merge them away.
    assert 12 * 12 - 4 <= status["drive"]["nodes"] <= 12 * 12
    assert status["drive"]["dropped_nodes"] == 0
    assert region.addresses
    first = region.addresses[0]
    found = region.geocoder.geocode(AddressQuery(first.street, first.housenumber))
    assert found.status.value == "matched"


def test_bench_matrix_runs_on_a_grid_and_reports_each_mode(
    capsys: pytest.CaptureFixture[str],
) -> None:
    lines = bench_matrix.main(
        ["--grid", "8", "--mode", "drive,walk", "--points", "20", "--new", "3"]
    )
    assert [line["mode"] for line in lines] == ["drive", "walk"]
    for line in lines:
        assert line["modes"] == ["drive", "walk"]
        assert line["osm"] == "grid-8.osm.pbf"
        assert line["extend_equals_recompute"] is True
        assert line["unreachable_pairs"] == 0
    assert capsys.readouterr().out.count("\n") == 2
