"""Graphs past the old encoding ceiling (~20,000 nodes) load and route exactly.

The graphs are generated grids (no OSM build, so the test stays fast). Expected figures come from
a plain heapq Dijkstra written here, which shares no code with the network under test.
"""

from __future__ import annotations

import heapq
import math

import networkx as nx
import numpy as np
import pytest

from app.routing.network import NO_PATH, ModeNetwork

_M_PER_DEG = 111_195.0


def _grid(
    n: int, seed: int, *, speeds: tuple[float, ...] = (30.0, 30.0, 50.0), one_way_share: float = 0.1
) -> nx.MultiDiGraph:
    """An n x n street grid, intersections ~100 m apart, random speeds, some one-way streets."""
    rng = np.random.default_rng(seed)
    graph = nx.MultiDiGraph()
    lat0, lon0 = 52.0, 5.0
    dlat = 100.0 / _M_PER_DEG
    dlon = 100.0 / (_M_PER_DEG * math.cos(math.radians(lat0)))
    for r in range(n):
        for c in range(n):
            graph.add_node(r * n + c, x=lon0 + c * dlon, y=lat0 + r * dlat)
    for r in range(n):
        for c in range(n):
            a = r * n + c
            for b in ((a + 1) if c + 1 < n else None, (a + n) if r + 1 < n else None):
                if b is None:
                    continue
                length = float(rng.uniform(90.0, 110.0))
                kmh = float(rng.choice(speeds))
                tt = length / (kmh / 3.6)
                graph.add_edge(a, b, length=length, travel_time=tt)
                # Outer ring always two-way so the grid stays strongly connected.
                border = r in (0, n - 1) or c in (0, n - 1)
                if border or rng.random() >= one_way_share:
                    graph.add_edge(b, a, length=length, travel_time=tt)
    return graph


def _reference(graph: nx.MultiDiGraph, source: int) -> dict[int, tuple[int, int]]:
    """(tenths of seconds, decimetres) of the fastest path, ties broken by length."""
    weights: dict[int, list[tuple[int, int, int]]] = {}
    for u, v, data in graph.edges(data=True):
        t = max(1, round(data["travel_time"] * 10))
        d = max(1, round(data["length"] * 10))
        weights.setdefault(u, []).append((v, t, d))
    best: dict[int, tuple[int, int]] = {source: (0, 0)}
    heap = [(0, 0, source)]
    done: set[int] = set()
    while heap:
        t, d, u = heapq.heappop(heap)
        if u in done:
            continue
        done.add(u)
        for v, et, ed in weights.get(u, []):
            cand = (t + et, d + ed)
            if v not in best or cand < best[v]:
                best[v] = cand
                heapq.heappush(heap, (cand[0], cand[1], v))
    return best


def _longest_fastest(graph: nx.MultiDiGraph, best: dict[int, tuple[int, int]]) -> dict[int, int]:
    """Length of the longest among the fastest paths to each node (DP over tight edges)."""
    longest = {node: 0 for node, (t, _) in best.items() if t == 0}
    incoming: dict[int, list[tuple[int, int]]] = {}
    for u, v, data in graph.edges(data=True):
        t = max(1, round(data["travel_time"] * 10))
        if u in best and v in best and best[u][0] + t == best[v][0]:
            incoming.setdefault(v, []).append((u, max(1, round(data["length"] * 10))))
    for node in sorted(best, key=lambda k: best[k][0]):
        if node not in longest:
            longest[node] = max(longest[u] + d for u, d in incoming[node])
    return longest


@pytest.mark.parametrize(
    ("seed", "speeds"), [(1, (30.0, 30.0, 50.0)), (2, (4.5,)), (3, (4.5, 110.0))]
)
def test_grid_past_the_old_overflow_point_loads_and_routes_exactly(
    seed: int, speeds: tuple[float, ...]
) -> None:
    graph = _grid(160, seed, speeds=speeds)  # 25,600 nodes: raised OverflowError before
    net = ModeNetwork.from_graph(graph, [])
    assert net.node_count == 160 * 160
    rng = np.random.default_rng(seed)
    sources = rng.choice(net.node_count, 2, replace=False)
    rows = net.rows(sources.astype(np.int64))
    time_ds, len_dm = net.decode(rows)
    for k, s in enumerate(sources.tolist()):
        ref = _reference(graph, int(net.node_ids[s]))
        expect_t = np.array([ref[int(i)][0] for i in net.node_ids.tolist()])
        expect_d = np.array([ref[int(i)][1] for i in net.node_ids.tolist()])
        assert (rows[k] < NO_PATH).all()
        np.testing.assert_array_equal(time_ds[k], expect_t)
        np.testing.assert_array_equal(len_dm[k], expect_d)


def test_without_a_proven_bound_times_stay_exact_and_lengths_follow_a_fastest_path() -> None:
    """A graph that is not strongly connected has no diameter bound: the slow, exact path runs."""
    graph = _grid(40, 3)
    graph.add_node(-1, x=5.0, y=51.99)  # a dead end: reachable, with no way back
    graph.add_edge(0, -1, length=500.0, travel_time=60.0)
    net = ModeNetwork.from_graph(graph, [])
    assert net.meta["bits"] == 0  # no encoding: time-only Dijkstra, lengths along its tree
    sources = np.array([1, 5, 17], dtype=np.int64)
    time_ds, len_dm = net.decode(net.rows(sources))
    for k, s in enumerate(sources.tolist()):
        ref = _reference(graph, int(net.node_ids[s]))
        expect_t = np.array([ref[int(i)][0] for i in net.node_ids.tolist()])
        expect_d = np.array([ref[int(i)][1] for i in net.node_ids.tolist()])
        np.testing.assert_array_equal(time_ds[k], expect_t)
        # Among equally fast paths any may be taken: the length lies between the shortest and
        # the longest of them.
        longest = _longest_fastest(graph, ref)
        upper = np.array([longest[int(i)] for i in net.node_ids.tolist()])
        assert (len_dm[k] >= expect_d).all()
        assert (len_dm[k] <= upper).all()
    back = int(np.flatnonzero(net.node_ids == -1)[0])
    rows = net.rows(np.array([back], dtype=np.int64))
    assert (rows[0, np.arange(net.node_count) != back] == NO_PATH).all()
