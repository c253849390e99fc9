"""Many-to-many travel matrices on a :class:`ModeNetwork`, with a row cache keyed by graph node."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from app.domain import UNREACHABLE, TravelMatrix
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


def along_edge(network: ModeNetwork, anchors: Anchors, i: I64, j: I64) -> I64:
    """Encoded cost from point ``i`` to point ``j`` along their shared road (NO_PATH if none)."""
    pos = anchors.positions
    e = pos.edge[i]
    fa, fb = pos.fraction[i], pos.fraction[j]
    t, d = network.edge_time_ds, network.edge_len_dm
    twin = network.edge_twin[e]
    tw = np.where(twin >= 0, twin, e)
    forward = network.encode(t[e] * (fb - fa).clip(0), d[e] * (fb - fa).clip(0))
    backward = network.encode(t[tw] * (fa - fb).clip(0), d[tw] * (fa - fb).clip(0))
    cost = np.where(fb >= fa, forward, np.where(twin >= 0, backward, NO_PATH))
    return np.where(pos.edge[j] == e, cost, NO_PATH)


class RowCache:
    """Thread-safe LRU of shortest-path rows (encoded weights to every node) per source node."""

    def __init__(self, network: ModeNetwork, max_rows: int) -> None:
        self._network = network
        self._max_rows = max(1, max_rows)
        self._rows: OrderedDict[int, I64] = OrderedDict()
        self._lock = threading.Lock()
        self.computed = 0

    def __len__(self) -> int:
        return len(self._rows)

    def columns(self, sources: I64, targets: I64) -> I64:
        """Encoded weights from each source node to each target node (``len(s) x len(t)``)."""
        out = np.empty((len(sources), len(targets)), dtype=np.int64)
        missing: list[int] = []
        with self._lock:
            for i, s in enumerate(sources.tolist()):
                row = self._rows.get(s)
                if row is None:
                    missing.append(i)
                else:
                    self._rows.move_to_end(s)
                    out[i] = row[targets]
        if missing:
            fresh = self._network.rows(sources[missing])
            out[missing] = fresh[:, targets]
            with self._lock:
                for i, row in zip(missing, fresh, strict=True):
                    self._rows[int(sources[i])] = row
                while len(self._rows) > self._max_rows:
                    self._rows.popitem(last=False)
                self.computed += len(missing)
        return out


def travel_matrix(network: ModeNetwork, anchors: Anchors, cache: RowCache) -> TravelMatrix:
    """Durations (s) and distances (m) between every pair of anchored points.

    The diagonal and pairs at the very same given coordinates are 0; any other pair pays both
    access offsets, even when the two points join the graph at the same node.
    """
    n = len(anchors)
    if n == 0:
        empty = np.zeros((0, 0), dtype=np.int64)
        return TravelMatrix(empty, empty.copy())
    sources, src_idx = np.unique(anchors.entry_nodes, return_inverse=True)
    targets, tgt_idx = np.unique(anchors.exit_nodes, return_inverse=True)
    src_idx = src_idx.reshape(n, 2)
    tgt_idx = tgt_idx.reshape(n, 2)
    sub = cache.columns(sources, targets)
    # Cheapest way from each source node into each point, then from each point's entry options.
    into = np.minimum(
        sub[:, tgt_idx[:, 0]] + anchors.exit_costs[:, 0][None, :],
        sub[:, tgt_idx[:, 1]] + anchors.exit_costs[:, 1][None, :],
    )
    best = np.minimum(
        into[src_idx[:, 0]] + anchors.entry_costs[:, 0][:, None],
        into[src_idx[:, 1]] + anchors.entry_costs[:, 1][:, None],
    )
    _shortcuts_along_shared_roads(network, anchors, best)
    reachable = best < NO_PATH
    total = np.where(reachable, best + anchors.access[:, None] + anchors.access[None, :], 0)
    time_ds, len_dm = network.decode(total)
    cap = UNREACHABLE - 1
    durations = np.where(reachable, np.minimum((time_ds + 5) // 10, cap), UNREACHABLE)
    distances = np.where(reachable, np.minimum((len_dm + 5) // 10, cap), UNREACHABLE)
    _zero_identical(anchors.origin, durations, distances)
    return TravelMatrix(durations, distances)


def _zero_identical(origin: F64, durations: I64, distances: I64) -> None:
    np.fill_diagonal(durations, 0)
    np.fill_diagonal(distances, 0)
    _, group, counts = np.unique(origin, axis=0, return_inverse=True, return_counts=True)
    group = group.reshape(-1)
    for g in np.flatnonzero(counts > 1):
        members = np.flatnonzero(group == g)
        durations[np.ix_(members, members)] = 0
        distances[np.ix_(members, members)] = 0


def _shortcuts_along_shared_roads(network: ModeNetwork, anchors: Anchors, best: I64) -> None:
    edges = anchors.positions.edge
    order = np.argsort(edges, kind="stable")
    sorted_edges = edges[order]
    starts = np.flatnonzero(np.r_[True, sorted_edges[1:] != sorted_edges[:-1]])
    sizes = np.diff(np.r_[starts, len(order)])
    for start, size in zip(starts[sizes > 1], sizes[sizes > 1], strict=True):
        members = order[start : start + size]
        i, j = np.meshgrid(members, members, indexing="ij")
        cost = along_edge(network, anchors, i.ravel(), j.ravel()).reshape(i.shape)
        block = best[np.ix_(members, members)]
        best[np.ix_(members, members)] = np.minimum(block, cost)
