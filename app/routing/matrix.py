"""Many-to-many travel matrices on a :class:`ModeNetwork` over an engine's node-to-node tables."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.domain import UNREACHABLE, TravelMatrix
from app.routing.engines import PathTable, PointTable
from app.routing.network import F64, I64, NO_PATH, ModeNetwork, Positions


@dataclass(frozen=True, slots=True)
class Anchors:
    """How located points join the graph: two entry and two exit nodes each, with costs.

    Leaving a point you travel along its road to the edge's head (or, on a two-way road, its
    tail); arriving you come from the edge's tail (or head). Costs are encoded weights; a missing
    direction costs ``NO_PATH``. ``access`` is the straight line between location and road.
    """

    positions: Positions
    entry_nodes: I64  # (n, 2)
    entry_costs: I64
    exit_nodes: I64
    exit_costs: I64
    access: I64  # (n,)
    origin: F64  # (n, 2) lon, lat as given

    def __len__(self) -> int:
        return len(self.access)


def anchor(network: ModeNetwork, pos: Positions, access_ms: float, origin: F64) -> Anchors:
    """Entry and exit nodes and costs of located points (see :class:`Anchors`).

    Parameters
    ----------
    network
        The mode's network.
    pos
        Road positions from :meth:`ModeNetwork.locate`.
    access_ms
        Speed (m/s) at which the offset between location and road is covered.
    origin
        The given (lon, lat) of each point, shape (n, 2).
    """
    e, f = pos.edge, pos.fraction
    u, v = network.edge_u[e], network.edge_v[e]
    t, d = network.edge_time_ds, network.edge_len_dm
    twin = network.edge_twin[e]
    has_twin = twin >= 0
    tw = np.where(has_twin, twin, e)
    enc = network.encode
    entry_nodes = np.column_stack((v, np.where(has_twin, u, v)))
    exit_nodes = np.column_stack((u, np.where(has_twin, v, u)))
    entry_costs = np.column_stack(
        (
            enc(t[e] * (1 - f), d[e] * (1 - f)),
            np.where(has_twin, enc(t[tw] * f, d[tw] * f), NO_PATH),
        )
    )
    exit_costs = np.column_stack(
        (
            enc(t[e] * f, d[e] * f),
            np.where(has_twin, enc(t[tw] * (1 - f), d[tw] * (1 - f)), NO_PATH),
        )
    )
    access = enc(pos.distance_m / access_ms * 10, pos.distance_m * 10)
    return Anchors(pos, entry_nodes, entry_costs, exit_nodes, exit_costs, access, origin)


def along_edge(network: ModeNetwork, origins: Anchors, targets: Anchors, i: I64, j: I64) -> I64:
    """Encoded cost from origin ``i`` to target ``j`` along their shared road (NO_PATH if none)."""
    e = origins.positions.edge[i]
    fa, fb = origins.positions.fraction[i], targets.positions.fraction[j]
    t, d = network.edge_time_ds, network.edge_len_dm
    twin = network.edge_twin[e]
    tw = np.where(twin >= 0, twin, e)
    forward = network.encode(t[e] * (fb - fa).clip(0), d[e] * (fb - fa).clip(0))
    backward = network.encode(t[tw] * (fa - fb).clip(0), d[tw] * (fa - fb).clip(0))
    cost = np.where(fb >= fa, forward, np.where(twin >= 0, backward, NO_PATH))
    return np.where(targets.positions.edge[j] == e, cost, NO_PATH)


def travel_matrix(network: ModeNetwork, anchors: Anchors, cache: PathTable) -> TravelMatrix:
    """Durations (s) and distances (m) between every pair of anchored points.

    The diagonal and pairs at the very same given coordinates are 0; any other pair pays both
    access offsets, even when the two points join the graph at the same node.
    """
    durations, distances = travel_block(network, anchors, anchors, cache)
    np.fill_diagonal(durations, 0)
    np.fill_diagonal(distances, 0)
    return TravelMatrix(durations, distances)


def extend_matrix(
    network: ModeNetwork, old: Anchors, new: Anchors, matrix: TravelMatrix, cache: PathTable
) -> TravelMatrix:
    """``matrix`` over ``old`` grown by the points ``new``, computing only the new rows/columns."""
    if matrix.size != len(old):
        msg = f"matrix covers {matrix.size} locations, got {len(old)} old points"
        raise ValueError(msg)
    both = concat(old, new)
    n, k = len(old), len(new)
    out_dur = np.empty((n + k, n + k), dtype=np.int64)
    out_dist = np.empty_like(out_dur)
    out_dur[:n, :n], out_dist[:n, :n] = matrix.durations, matrix.distances
    out_dur[:n, n:], out_dist[:n, n:] = travel_block(network, old, new, cache)
    out_dur[n:, :], out_dist[n:, :] = travel_block(network, new, both, cache)
    idx = np.arange(n, n + k)
    out_dur[idx, idx] = 0
    out_dist[idx, idx] = 0
    return TravelMatrix(out_dur, out_dist)


def concat(a: Anchors, b: Anchors) -> Anchors:
    """The points of ``a`` followed by those of ``b``."""
    pa, pb = a.positions, b.positions
    positions = Positions(
        edge=np.concatenate((pa.edge, pb.edge)),
        fraction=np.concatenate((pa.fraction, pb.fraction)),
        distance_m=np.concatenate((pa.distance_m, pb.distance_m)),
        lon=np.concatenate((pa.lon, pb.lon)),
        lat=np.concatenate((pa.lat, pb.lat)),
    )
    return Anchors(
        positions,
        np.concatenate((a.entry_nodes, b.entry_nodes)),
        np.concatenate((a.entry_costs, b.entry_costs)),
        np.concatenate((a.exit_nodes, b.exit_nodes)),
        np.concatenate((a.exit_costs, b.exit_costs)),
        np.concatenate((a.access, b.access)),
        np.concatenate((a.origin, b.origin)),
    )


def travel_block(
    network: ModeNetwork, origins: Anchors, targets: Anchors, cache: PathTable
) -> tuple[I64, I64]:
    """Durations and distances from every point of ``origins`` to every point of ``targets``.

    Pairs at identical given coordinates are 0; unreachable pairs are ``UNREACHABLE``.
    """
    n, m = len(origins), len(targets)
    if n == 0 or m == 0:
        return np.zeros((n, m), dtype=np.int64), np.zeros((n, m), dtype=np.int64)
    best = None
    if isinstance(cache, PointTable):
        best = cache.point_table(
            origins.entry_nodes, origins.entry_costs, targets.exit_nodes, targets.exit_costs
        )
    if best is None:
        best = _node_level_block(origins, targets, cache)
    _shortcuts_along_shared_roads(network, origins, targets, best)
    reachable = best < NO_PATH
    total = np.where(reachable, best + origins.access[:, None] + targets.access[None, :], 0)
    time_ds, len_dm = network.decode(total)
    cap = UNREACHABLE - 1
    durations = np.where(reachable, np.minimum((time_ds + 5) // 10, cap), UNREACHABLE)
    distances = np.where(reachable, np.minimum((len_dm + 5) // 10, cap), UNREACHABLE)
    _zero_identical(origins.origin, targets.origin, durations, distances)
    return durations, distances


def _node_level_block(origins: Anchors, targets: Anchors, cache: PathTable) -> I64:
    """Encoded cost between anchored points from the engine's node-to-node table."""
    n, m = len(origins), len(targets)
    sources, src_idx = np.unique(origins.entry_nodes, return_inverse=True)
    exits, tgt_idx = np.unique(targets.exit_nodes, return_inverse=True)
    src_idx = src_idx.reshape(n, 2)
    tgt_idx = tgt_idx.reshape(m, 2)
    sub = cache.table(sources, exits)
    # Cheapest way from each source node into each target, then from each origin's entries.
    into = np.minimum(
        sub[:, tgt_idx[:, 0]] + targets.exit_costs[:, 0][None, :],
        sub[:, tgt_idx[:, 1]] + targets.exit_costs[:, 1][None, :],
    )
    best: I64 = np.minimum(
        into[src_idx[:, 0]] + origins.entry_costs[:, 0][:, None],
        into[src_idx[:, 1]] + origins.entry_costs[:, 1][:, None],
    )
    return best


def _zero_identical(a: F64, b: F64, durations: I64, distances: I64) -> None:
    where: dict[tuple[float, float], list[int]] = {}
    for j, key in enumerate(map(tuple, b.tolist())):
        where.setdefault(key, []).append(j)
    for i, key in enumerate(map(tuple, a.tolist())):
        same = where.get(key)
        if same:
            durations[i, same] = 0
            distances[i, same] = 0


def _shortcuts_along_shared_roads(
    network: ModeNetwork, origins: Anchors, targets: Anchors, best: I64
) -> None:
    by_edge: dict[int, list[int]] = {}
    for j, edge in enumerate(targets.positions.edge.tolist()):
        by_edge.setdefault(edge, []).append(j)
    mine: dict[int, list[int]] = {}
    for i, edge in enumerate(origins.positions.edge.tolist()):
        if edge in by_edge:
            mine.setdefault(edge, []).append(i)
    for edge, rows in mine.items():
        cols = by_edge[edge]
        ii, jj = np.meshgrid(rows, cols, indexing="ij")
        cost = along_edge(network, origins, targets, ii.ravel(), jj.ravel()).reshape(ii.shape)
        block = np.ix_(rows, cols)
        best[block] = np.minimum(best[block], cost)
