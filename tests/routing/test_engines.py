"""The CCH engines behind the matrix interface: exact times, bounded length rounding, caches.

Expected figures come from the plain heapq Dijkstra of ``test_large_graph`` (no shared code with
the engines) on generated grids; the Dijkstra engine is compared too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.routing import _label_kernels as kernels
from app.routing.engines import CCHEngine, RowCache, _packing
from app.routing.label_engine import LabelEngine
from app.routing.matrix import anchor, extend_matrix, travel_matrix
from app.routing.network import MATRIX_BITS, NO_PATH, ModeNetwork
from app.routing.region import _path_table
from app.routing.settings import RoutingSettings
from tests.routing.test_large_graph import _grid, _longest_fastest, _reference

pytest.importorskip("routingkit_cch")

_MASK = (1 << MATRIX_BITS) - 1


@pytest.mark.parametrize(("seed", "speeds"), [(1, (30.0, 50.0)), (2, (4.5,)), (3, (4.5, 110.0))])
def test_cch_times_are_exact_and_lengths_within_the_rounding(
    seed: int, speeds: tuple[float, ...]
) -> None:
    graph = _grid(30, seed, speeds=speeds)
    net = ModeNetwork.from_graph(graph, [])
    engine = CCHEngine(net, None, 10**7)
    rng = np.random.default_rng(seed)
    sources = rng.choice(net.node_count, 6, replace=False)
    targets = rng.choice(net.node_count, 200, replace=False)
    got = engine.table(sources, targets)
    for k, s in enumerate(sources.tolist()):
        ref = _reference(graph, int(net.node_ids[s]))
        longest = _longest_fastest(graph, ref)
        for j, t in enumerate(targets.tolist()):
            node = int(net.node_ids[t])
            assert got[k, j] >> MATRIX_BITS == ref[node][0]
            # Each edge's length is rounded to the unit: at most unit/2 per edge of a path.
            slack = engine.unit_dm / 2 * 60  # 60 edges: longer than any path on this grid
            assert ref[node][1] - slack <= got[k, j] & _MASK <= longest[node] + slack


def test_cch_and_dijkstra_engines_agree_and_the_cache_only_adds_new_pairs() -> None:
    graph = _grid(25, 4)
    net = ModeNetwork.from_graph(graph, [])
    cch, dijkstra = CCHEngine(net, None, 10**7), RowCache(net, 10**4)
    rng = np.random.default_rng(4)
    nodes = rng.choice(net.node_count, 60, replace=False)
    old, new = nodes[:50], nodes[50:]
    first = cch.table(old, old)
    assert cch.computed == 50 * 50
    np.testing.assert_array_equal(first >> MATRIX_BITS, dijkstra.table(old, old) >> MATRIX_BITS)
    grown = cch.table(nodes, nodes)
    assert cch.computed == 60 * 60  # only the 10 new rows and columns were queried
    np.testing.assert_array_equal(grown[:50, :50], first)
    np.testing.assert_array_equal(grown >> MATRIX_BITS, dijkstra.table(nodes, nodes) >> MATRIX_BITS)
    again = cch.table(new, old)
    assert cch.computed == 60 * 60
    np.testing.assert_array_equal(again, grown[50:, :50])


def test_cch_refuses_a_graph_without_a_diameter_bound() -> None:
    graph = _grid(6, 5)
    graph.add_node(-1, x=5.0, y=51.99)
    graph.add_edge(0, -1, length=500.0, travel_time=60.0)  # a dead end: not strongly connected
    net = ModeNetwork.from_graph(graph, [])
    with pytest.raises(ValueError, match="strongly connected"):
        CCHEngine(net, None, 10**6)
    rows = RowCache(net, 100).table(np.array([net.node_count - 1]), np.array([0]))
    assert rows[0, 0] == NO_PATH


@pytest.mark.parametrize("diameter", [10, 25_000, 300_000, 5_000_000])
def test_packing_keeps_every_path_below_the_engine_infinity(diameter: int) -> None:
    rng = np.random.default_rng(diameter)
    time_ds = rng.integers(1, 2000, 500)
    len_dm = (time_ds * rng.uniform(0.5, 31.0, 500)).astype(np.int64)
    factor, unit = _packing(diameter, time_ds, len_dm)
    units = np.rint(len_dm / unit)
    assert (units / time_ds).max() * diameter < factor  # a path's length part stays below K
    assert (diameter + 1) * factor < (1 << 31) - 1
    if unit > 1:  # the unit doubles only when the finer one does not fit
        finer = np.rint(len_dm / (unit // 2)).astype(np.int64)
        assert (diameter + 1) * (int((finer * diameter // time_ds).max()) + 1) >= (1 << 31) - 1


def test_cch_pair_cache_keeps_its_budget_and_drops_the_least_recently_used_rows() -> None:
    graph = _grid(12, 6)
    net = ModeNetwork.from_graph(graph, [])
    targets = np.arange(40, dtype=np.int64)
    engine = CCHEngine(net, None, max_entries=40 * 10)  # room for ~10 rows of 40 targets
    first = engine.table(np.arange(10, dtype=np.int64), targets)
    engine.table(np.arange(50, 60, dtype=np.int64), targets)  # pushes the first rows out
    assert len(engine) <= 10
    before = engine.computed
    again = engine.table(np.arange(10, dtype=np.int64), targets)
    assert engine.computed > before  # recomputed, and still the same figures
    np.testing.assert_array_equal(again, first)


# -- the label engine (own CCH labels, numba) ---------------------------------------------------


@pytest.mark.parametrize(
    ("n", "seed", "speeds"), [(20, 11, (30.0, 50.0)), (30, 12, (4.5,)), (35, 13, (4.5, 110.0))]
)
def test_label_engine_times_and_lengths_are_exact(
    n: int, seed: int, speeds: tuple[float, ...]
) -> None:
    graph = _grid(n, seed, speeds=speeds)
    net = ModeNetwork.from_graph(graph, [])
    engine = LabelEngine(net, None, 10**7)
    assert engine.unit_dm == 1
    rng = np.random.default_rng(seed)
    sources = rng.choice(net.node_count, 6, replace=False)
    targets = rng.choice(net.node_count, 200, replace=False)
    got = engine.table(sources, targets)
    for k, s in enumerate(sources.tolist()):
        ref = _reference(graph, int(net.node_ids[s]))
        longest = _longest_fastest(graph, ref)
        for j, t in enumerate(targets.tolist()):
            node = int(net.node_ids[t])
            assert got[k, j] >> MATRIX_BITS == ref[node][0]
            # Ties in time may take any of the fastest paths: its length lies between.
            assert ref[node][1] <= got[k, j] & _MASK <= longest[node]


def test_label_engine_equals_dijkstra_and_adds_only_new_labels() -> None:
    graph = _grid(28, 14, speeds=(30.0, 50.0, 80.0), one_way_share=0.3)
    net = ModeNetwork.from_graph(graph, [])
    labels, dijkstra = LabelEngine(net, None, 10**7), RowCache(net, 10**4)
    rng = np.random.default_rng(14)
    nodes = rng.choice(net.node_count, 210, replace=False)
    old, new = nodes[:200], nodes[200:]
    first = labels.table(old, old)
    assert labels.computed == 2 * 200  # a forward and a backward label per node
    np.testing.assert_array_equal(first, dijkstra.table(old, old))
    grown = labels.table(nodes, nodes)
    assert labels.computed == 2 * 210  # only the 10 new nodes were searched
    np.testing.assert_array_equal(grown, dijkstra.table(nodes, nodes))
    np.testing.assert_array_equal(labels.table(new, old), grown[200:, :200])
    assert labels.computed == 2 * 210


def test_label_engine_keeps_its_budget_and_answers_the_same() -> None:
    net = ModeNetwork.from_graph(_grid(16, 15), [])
    nodes = np.arange(net.node_count, dtype=np.int64)
    full = LabelEngine(net, None, 10**7).table(nodes, nodes)
    small = LabelEngine(net, None, max_entries=600)  # ~200 label entries per direction
    np.testing.assert_array_equal(small.table(nodes[:40], nodes[:40]), full[:40, :40])
    np.testing.assert_array_equal(small.table(nodes[99:120], nodes[99:130]), full[99:120, 99:130])
    assert len(small) == 21 + 31  # the earlier labels went; a request always gets all it needs


def test_label_engine_reads_its_hierarchy_from_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = ModeNetwork.from_graph(_grid(15, 16), [])
    graph_file = tmp_path / "drive-key.npz"
    nodes = np.arange(0, net.node_count, 7, dtype=np.int64)
    built = LabelEngine(net, graph_file, 10**6).table(nodes, nodes)
    assert (tmp_path / "drive-key.labels.npz").is_file()
    assert (tmp_path / "drive-key.cch-order.npz").is_file()

    def refuse(*_: object) -> None:
        raise AssertionError("a warm load must not contract again")

    monkeypatch.setattr(kernels, "contract", refuse)
    monkeypatch.setattr(kernels, "customize", refuse)
    np.testing.assert_array_equal(LabelEngine(net, graph_file, 10**6).table(nodes, nodes), built)


def test_label_engine_refuses_a_graph_without_a_diameter_bound() -> None:
    graph = _grid(6, 17)
    graph.add_node(-1, x=5.0, y=51.99)
    graph.add_edge(0, -1, length=500.0, travel_time=60.0)
    net = ModeNetwork.from_graph(graph, [])
    with pytest.raises(ValueError, match="strongly connected"):
        LabelEngine(net, None, 10**6)


def test_label_engine_point_labels_give_the_dijkstra_matrix_and_extend_reuses_them() -> None:
    net = ModeNetwork.from_graph(_grid(24, 18, one_way_share=0.3), [])
    rng = np.random.default_rng(18)
    lon = rng.uniform(net.node_lon.min(), net.node_lon.max(), 130)
    lat = rng.uniform(net.node_lat.min(), net.node_lat.max(), 130)
    lon[5], lat[5] = lon[4], lat[4]  # two visits at one address
    pos = net.locate(lon, lat)
    points = anchor(net, pos, 10 / 3.6, np.column_stack((lon, lat)))
    old = anchor(net, net.locate(lon[:120], lat[:120]), 10 / 3.6, np.column_stack((lon, lat))[:120])
    new = anchor(net, net.locate(lon[120:], lat[120:]), 10 / 3.6, np.column_stack((lon, lat))[120:])
    labels = LabelEngine(net, None, 10**7)
    expected = travel_matrix(net, points, RowCache(net, 10**4))
    got = travel_matrix(net, old, labels)
    np.testing.assert_array_equal(got.durations, expected.durations[:120, :120])
    np.testing.assert_array_equal(got.distances, expected.distances[:120, :120])
    # One forward and one backward label per location; the two at one address share theirs.
    assert labels.computed == 2 * 119
    grown = extend_matrix(net, old, new, got, labels)
    np.testing.assert_array_equal(grown.durations, expected.durations)
    np.testing.assert_array_equal(grown.distances, expected.distances)
    assert labels.computed == 2 * 129  # the old locations' labels came from the cache


def test_auto_picks_the_label_engine_and_dijkstra_without_a_diameter_bound() -> None:
    net = ModeNetwork.from_graph(_grid(8, 19), [])
    assert getattr(_path_table(net, RoutingSettings(), None), "name", "") == "labels"
    forced = _path_table(net, RoutingSettings(matrix_engine="cch"), None)
    assert getattr(forced, "name", "") == "cch"
    graph = _grid(6, 20)
    graph.add_node(-1, x=5.0, y=51.99)
    graph.add_edge(0, -1, length=500.0, travel_time=60.0)
    cut = ModeNetwork.from_graph(graph, [])
    assert getattr(_path_table(cut, RoutingSettings(), None), "name", "") == "dijkstra"


def test_label_engine_rebuilds_a_damaged_or_foreign_hierarchy_file(tmp_path: Path) -> None:
    net = ModeNetwork.from_graph(_grid(10, 21), [])
    other = ModeNetwork.from_graph(_grid(10, 22, speeds=(50.0,)), [])
    graph_file = tmp_path / "drive-key.npz"
    nodes = np.arange(net.node_count, dtype=np.int64)
    expected = LabelEngine(net, None, 10**6).table(nodes, nodes)
    (tmp_path / "drive-key.labels.npz").write_bytes(b"not a zip file")
    np.testing.assert_array_equal(LabelEngine(net, graph_file, 10**6).table(nodes, nodes), expected)
    LabelEngine(other, graph_file, 10**6)  # same size, other weights: its own hierarchy
    np.testing.assert_array_equal(LabelEngine(net, graph_file, 10**6).table(nodes, nodes), expected)
