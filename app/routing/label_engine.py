"""The label engine: many-to-many tables from a customizable contraction hierarchy's labels.

The node order is RoutingKit's inertial-flow nested dissection (``routingkit-cch``, the same
order as the ``cch`` engine). Contraction, customization and queries are the project's own,
compiled with numba (:mod:`app.routing._label_kernels`):

- the contracted graph is the order's chordal completion; its elimination tree gives every
  node's upward search space as the node's chain of ancestors;
- a node's forward (backward) label is the distance to (from) each ancestor, one walk up the
  chain; a location's label is one walk seeded at both ends of its road. Labels are kept per
  location (per node for node tables), so a re-plan that adds a few locations computes only
  their labels and combines them with the cached ones;
- ``dist(s, t)`` is the minimum of ``fwd_s[x] + bwd_t[x]`` over the common ancestors ``x``.

Weights are the matrix code's own row encoding, ``time_ds << MATRIX_BITS | length_dm`` in int64:
sums compare by time, then length, so every figure is the fastest path's (ties by length), exact
in time and length. That holds while no fastest path reaches 2**31 dm, which the graph's time
diameter D proves (``r * D`` with ``r`` the largest length/time ratio of an edge); a graph
without that proof gets another engine. Because the labels are in row encoding, a location's two
road ends fold into one label with their access costs (:meth:`LabelEngine.point_table`): one
label per location instead of two, a quarter of the pairs to combine.

The contracted and customized graph is cached next to the mode's graph (``.labels.npz``); a
warm load reads it and customizes nothing.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from app.routing._files import atomic_write
from app.routing.engines import _load_order, _save_order, _time_csr
from app.routing.network import I64, MATRIX_BITS, NO_PATH, ModeNetwork, diameter_bound

#: Bytes of one label entry: an int64 distance and the int32 ancestor it belongs to.
_ENTRY_BYTES = 12
#: Version of the cached hierarchy file; bump when its content changes.
_FORMAT = 2


def labels_available() -> bool:
    """Whether numba (kernels) and ``routingkit-cch`` (node order) are installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("numba", "routingkit_cch"))


class _LabelPool:
    """Labels of one direction keyed by their seeds ``(a, b, cost_a, cost_b)``, in flat arrays.

    When the pool would pass its budget it is emptied and refilled with what the current
    request needs: a request is never short of labels, and the memory stays bounded.
    """

    def __init__(self, budget_entries: int) -> None:
        self.index: dict[tuple[int, int, int, int], int] = {}
        self.values = np.empty(0, dtype=np.int64)
        self.chain = np.empty(0, dtype=np.int32)
        self.used = 0
        self.budget = max(1, budget_entries)

    def __len__(self) -> int:
        return len(self.index)

    def clear(self) -> None:
        self.index.clear()
        self.used = 0

    def reserve(self, keys: list[tuple[int, int, int, int]], sizes: I64) -> I64:
        """Offsets for the labels of ``keys`` (absent, distinct) of ``sizes`` entries each."""
        total = int(sizes.sum())
        if self.used + total > len(self.values):
            # The first allocation is the whole budget: untouched pages cost no memory, and a
            # pool that grows in place never copies its labels.
            grown = max(2 * len(self.values), self.used + total, self.budget)
            values = np.empty(grown, dtype=np.int64)
            chain = np.empty(grown, dtype=np.int32)
            values[: self.used] = self.values[: self.used]
            chain[: self.used] = self.chain[: self.used]
            self.values, self.chain = values, chain
        starts = self.used + np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
        self.index.update(zip(keys, starts.tolist(), strict=True))
        self.used += total
        return starts


class LabelEngine:
    """Label-based CCH engine with labels cached per location or node (see module doc).

    Parameters
    ----------
    network
        The mode's network; must be strongly connected (it has a time-diameter bound).
    cache_path
        The mode's graph file (``.npz``); the node order and the customized hierarchy are
        cached beside it. None: compute them and keep nothing.
    max_entries
        Memory budget in 8-byte units, shared by the forward and backward labels.
    """

    name = "labels"

    def __init__(self, network: ModeNetwork, cache_path: Path | None, max_entries: int) -> None:
        from app.routing import _label_kernels as kernels

        self._k = kernels
        diameter = network.meta.get("diameter_ds")
        if diameter is None:
            diameter = diameter_bound(_time_csr(network), hub=network.central_node())
        if diameter is None:
            msg = "the label engine needs a strongly connected graph"
            raise ValueError(msg)
        edges = network.csr_edge
        time_ds = network.edge_time_ds[edges]
        len_dm = network.edge_len_dm[edges]
        ratio = int((-(-len_dm // time_ds)).max()) if len(edges) else 0
        if (ratio * max(1, int(diameter))).bit_length() > MATRIX_BITS:
            msg = "fastest paths may pass 2**31 dm: the label engine cannot prove exact lengths"
            raise ValueError(msg)
        #: Lengths are exact (kept for the status next to the ``cch`` engine's rounding unit).
        self.unit_dm = 1
        weights = (time_ds << MATRIX_BITS) + len_dm
        stamp = [_FORMAT, network.node_count, len(weights), int(weights.sum() % (1 << 61))]
        hier_path = None if cache_path is None else cache_path.with_suffix(".labels.npz")
        hierarchy = _load_hierarchy(hier_path, stamp)
        if hierarchy is None:
            order_path = None if cache_path is None else cache_path.with_suffix(".cch-order.npz")
            hierarchy = _build_hierarchy(network, order_path, weights)
            if hier_path is not None:
                _save_hierarchy(hier_path, hierarchy, stamp)
        self._rank: I64 = hierarchy["rank"]
        self._parent = hierarchy["parent"]
        self._depth = kernels.depths(self._parent)
        run_first, run_edge, run_len, run_low, perm = kernels.runs(
            hierarchy["first"], self._depth[hierarchy["head"]]
        )
        self._runs = (run_first, run_edge, run_len, run_low)
        # Weights in run order: a search reads each run as one contiguous slice.
        self._up: I64 = hierarchy["up"][perm]
        self._down: I64 = hierarchy["down"][perm]
        per_pool = max(1, max_entries * 8 // _ENTRY_BYTES // 2)
        self._fwd = _LabelPool(per_pool)
        self._bwd = _LabelPool(per_pool)
        self._lock = threading.Lock()
        self.computed = 0

    def __len__(self) -> int:
        return len(self._fwd) + len(self._bwd)

    def clear(self) -> None:
        """Forget every cached label (benchmarks: time a table from nothing)."""
        with self._lock:
            self._fwd.clear()
            self._bwd.clear()

    def table(self, sources: I64, targets: I64) -> I64:
        """Encoded weights from each source node to each target node (``len(s) x len(t)``).

        Labels missing from the cache are computed (one chain walk each); the table is their
        combination. ``computed`` counts the labels computed.
        """
        src = self._node_seeds(np.asarray(sources, dtype=np.int64))
        tgt = self._node_seeds(np.asarray(targets, dtype=np.int64))
        out = self._combine(src, tgt)
        if out is None:  # a node is its own ancestor: cannot happen
            msg = "node labels failed"
            raise RuntimeError(msg)
        return out

    def point_table(
        self, src_nodes: I64, src_costs: I64, tgt_nodes: I64, tgt_costs: I64
    ) -> I64 | None:
        """Encoded weights from points to points, each point on a road with two ends.

        One label per point (its two road ends seeded with their costs), cached by those
        seeds, so a re-plan that keeps its points computes no label again.

        Parameters
        ----------
        src_nodes, src_costs
            ``(n, 2)``: the nodes where each origin enters the graph and the encoded cost to
            reach each (``NO_PATH`` if a direction does not exist).
        tgt_nodes, tgt_costs
            ``(m, 2)``: the nodes from which each target is reached and the cost from each.

        Returns
        -------
        The ``(n, m)`` minimum over both ends of each point, or None when some point's two
        nodes are not the ends of one road (then ask :meth:`table`).
        """
        return self._combine(
            self._point_seeds(src_nodes, src_costs), self._point_seeds(tgt_nodes, tgt_costs)
        )

    # -- seeds and labels -----------------------------------------------------------------------

    def _node_seeds(self, nodes: I64) -> I64:
        rank = self._rank[nodes]
        inf = np.full(len(rank), NO_PATH, dtype=np.int64)
        return np.column_stack((rank, rank, np.zeros(len(rank), dtype=np.int64), inf))

    def _point_seeds(self, nodes: I64, costs: I64) -> I64:
        """``(a, b, cost_a, cost_b)`` per point: ``a`` the deeper end (one key per point)."""
        rank = self._rank[np.asarray(nodes, dtype=np.int64)]
        costs = np.minimum(np.asarray(costs, dtype=np.int64), NO_PATH)
        swap = self._depth[rank[:, 0]] < self._depth[rank[:, 1]]
        rank = np.where(swap[:, None], rank[:, ::-1], rank)
        costs = np.where(swap[:, None], costs[:, ::-1], costs)
        same = rank[:, 0] == rank[:, 1]
        first = np.where(same, costs.min(axis=1), costs[:, 0])
        second = np.where(same, NO_PATH, costs[:, 1])
        return np.column_stack((rank[:, 0], rank[:, 1], first, second))

    def _combine(self, src: I64, tgt: I64) -> I64 | None:
        with self._lock:
            src_off = self._labels(self._fwd, self._up, src)
            tgt_off = self._labels(self._bwd, self._down, tgt)
            if src_off is None or tgt_off is None:
                return None
            # Under the lock: a later request may clear the pools.
            packed: I64 = self._k.combine(
                src_off,
                self._depth[src[:, 0]].astype(np.int64) + 1,
                self._fwd.values,
                self._fwd.chain,
                tgt_off,
                self._depth[tgt[:, 0]].astype(np.int64) + 1,
                self._bwd.values,
                self._bwd.chain,
            )
        packed[packed >= NO_PATH] = NO_PATH
        return packed

    def _labels(self, pool: _LabelPool, weight: I64, seeds: I64) -> I64 | None:
        """Offsets of the labels of ``seeds`` in ``pool``, computing the missing ones."""
        keys = list(map(tuple, seeds.tolist()))
        missing = list(dict.fromkeys(k for k in keys if k not in pool.index))
        if missing:
            rows = np.array(missing, dtype=np.int64)
            sizes = self._depth[rows[:, 0]].astype(np.int64) + 1
            if pool.used + int(sizes.sum()) > pool.budget and len(pool):
                pool.clear()  # over budget: keep only what this request needs
                missing = list(dict.fromkeys(keys))
                rows = np.array(missing, dtype=np.int64)
                sizes = self._depth[rows[:, 0]].astype(np.int64) + 1
            starts = pool.reserve(missing, sizes)
            ok = self._k.fill_labels(
                rows,
                starts,
                *self._runs,
                weight,
                self._parent,
                self._depth,
                pool.values,
                pool.chain,
            )
            self.computed += len(missing)
            if not ok:
                pool.clear()
                return None
        index = pool.index
        return np.array([index[k] for k in keys], dtype=np.int64)


def _build_hierarchy(network: ModeNetwork, order_path: Path | None, weights: I64) -> dict[str, Any]:
    """Order (cached or computed), contraction and customization of ``network``."""
    from app.routing import _label_kernels as kernels

    n = network.node_count
    csr = network.csr
    tails = np.repeat(np.arange(n, dtype=np.int64), np.diff(csr.indptr))
    heads = csr.indices.astype(np.int64)
    order = _load_order(order_path)
    if order is None or len(order) != n:
        rk: Any = importlib.import_module("routingkit_cch")
        order = np.asarray(
            rk.compute_order_inertial(
                n,
                tails.tolist(),
                heads.tolist(),
                network.node_lat.tolist(),
                network.node_lon.tolist(),
            ),
            dtype=np.int64,
        )
        if order_path is not None:
            _save_order(order_path, order)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n, dtype=np.int64)
    rt, rh = rank[tails], rank[heads]
    ends = np.concatenate((rt, rh))
    others = np.concatenate((rh, rt))
    by_end = np.argsort(ends, kind="stable")
    init_first = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(ends, minlength=n), out=init_first[1:])
    init_head = others[by_end].astype(np.int32)
    first, head, parent = kernels.contract(n, init_first, init_head)
    up, down = kernels.initial_weights(first, head, rt, rh, weights.astype(np.int64))
    kernels.customize(first, head, up, down)
    return {"rank": rank, "first": first, "head": head, "up": up, "down": down, "parent": parent}


def _load_hierarchy(path: Path | None, stamp: list[int]) -> dict[str, Any] | None:
    """The cached hierarchy if ``path`` holds one for this graph; None means build it."""
    if path is None or not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if data["meta"].tolist() != stamp:
                return None
            return {k: data[k] for k in ("rank", "first", "head", "up", "down", "parent")}
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):  # damaged: rebuild, rewrite
        return None


def _save_hierarchy(path: Path, hierarchy: dict[str, Any], stamp: list[int]) -> None:
    meta = np.array(stamp, dtype=np.int64)
    atomic_write(path, lambda fh: np.savez(fh, meta=meta, **hierarchy))
