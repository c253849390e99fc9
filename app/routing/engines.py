"""Shortest-path engines behind the matrix code: node-to-node tables with a cache keyed by node.

Every engine answers :meth:`table` (sources x targets, row-encoded ``time_ds << MATRIX_BITS |
length_dm``, ``NO_PATH`` where there is none) and keeps what it computed per node, so a re-plan
that adds a few locations computes only the new rows and columns. The default engine, the
label engine of :mod:`app.routing.label_engine`, also answers location-to-location tables
(:class:`PointTable`). This module holds the other two:

- :class:`RowCache` (``dijkstra``): scipy's Dijkstra, a full row (every node) per source node.
  Exact in time and length. Cost grows with the graph: every row visits every node.
- :class:`CCHEngine` (``cch``): RoutingKit's customizable contraction hierarchy
  (``routingkit-cch`` on PyPI). One upward search per source and a sweep over the pinned
  targets; many-to-one queries fill new columns. The metric packs both figures into RoutingKit's
  31-bit weights, ``time_ds * K + length_units``: K and the length unit come from the graph's
  time-diameter bound D so that every fastest path fits and its length never reaches K, which
  proves that the minimum of the packed weight is a fastest path (ties broken by length) and
  that the time part is exact. The length is exact up to rounding each edge to the unit
  (``length_unit_dm``: 1 dm on small graphs, ~1 m on a 20,000-node city, ~10 m at 100,000 nodes).
"""

from __future__ import annotations

import importlib
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from app.routing.network import I64, MATRIX_BITS, NO_PATH, ModeNetwork, diameter_bound

#: RoutingKit's largest finite weight (anything at or above is "no path").
_RK_INF = (1 << 31) - 1
#: Row entries computed at once (x 8 bytes, twice while converting): bounds a matrix's memory.
_CHUNK_ENTRIES = 1 << 23


class PathTable(Protocol):
    """What the matrix code needs from an engine: cached node-to-node tables."""

    computed: int

    def __len__(self) -> int: ...

    def table(self, sources: I64, targets: I64) -> I64:
        """Row-encoded weights from each source node to each target node."""
        ...


class RowCache:
    """Dijkstra engine: thread-safe LRU of full shortest-path rows per source node."""

    name = "dijkstra"

    def __init__(self, network: ModeNetwork, max_rows: int) -> None:
        self._network = network
        self._max_rows = max(1, max_rows)
        self._rows: OrderedDict[int, I64] = OrderedDict()
        self._lock = threading.Lock()
        self.computed = 0

    def __len__(self) -> int:
        return len(self._rows)

    def table(self, sources: I64, targets: I64) -> I64:
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
        # Full rows of a large graph are big (8 bytes a node): compute them a chunk at a time.
        step = max(1, _CHUNK_ENTRIES // max(1, self._network.node_count))
        for lo in range(0, len(missing), step):
            part = missing[lo : lo + step]
            fresh = self._network.rows(sources[part])
            out[part] = fresh[:, targets]
            with self._lock:
                for i, row in zip(part, fresh, strict=True):
                    self._rows[int(sources[i])] = row
                while len(self._rows) > self._max_rows:
                    self._rows.popitem(last=False)
                self.computed += len(part)
        return out


@runtime_checkable
class PointTable(Protocol):
    """An engine that also answers location-to-location tables (see ``LabelEngine``)."""

    def point_table(
        self, src_nodes: I64, src_costs: I64, tgt_nodes: I64, tgt_costs: I64
    ) -> I64 | None:
        """Min over both road ends of each point; None if the engine cannot fold them."""
        ...


def cch_available() -> bool:
    """Whether the ``routingkit-cch`` package can be imported."""
    try:
        importlib.import_module("routingkit_cch")
    except ImportError:
        return False
    return True


class CCHEngine:
    """Customizable contraction hierarchy with a pair cache keyed by node (see module doc).

    Parameters
    ----------
    network
        The mode's network; must be strongly connected (it has a time-diameter bound).
    order_path
        Where the node order (the slow, metric-free step) is cached; computed if absent.
    max_entries
        Budget of the pair cache in table entries (8 bytes each).
    """

    name = "cch"

    def __init__(self, network: ModeNetwork, order_path: Path | None, max_entries: int) -> None:
        rk: Any = importlib.import_module("routingkit_cch")
        self._rk = rk
        self._network = network
        diameter = network.meta.get("diameter_ds")
        if diameter is None:
            diameter = diameter_bound(_time_csr(network), hub=network.central_node())
        if diameter is None:
            msg = "the CCH engine needs a strongly connected graph"
            raise ValueError(msg)
        csr = network.csr
        tails = np.repeat(np.arange(network.node_count), np.diff(csr.indptr))
        heads = csr.indices.astype(np.int64)
        edges = network.csr_edge
        time_ds = network.edge_time_ds[edges]
        len_dm = network.edge_len_dm[edges]
        self.factor, self.unit_dm = _packing(int(diameter), time_ds, len_dm)
        weights = time_ds * self.factor + np.rint(len_dm / self.unit_dm).astype(np.int64)
        order = _load_order(order_path)
        if order is None or len(order) != network.node_count:
            order = np.asarray(
                rk.compute_order_inertial(
                    network.node_count,
                    tails.tolist(),
                    heads.tolist(),
                    network.node_lat.tolist(),
                    network.node_lon.tolist(),
                ),
                dtype=np.int64,
            )
            if order_path is not None:
                _save_order(order_path, order)
        self._cch = rk.CCH(order.tolist(), tails.tolist(), heads.tolist(), False)
        self._metric = rk.CCHMetric(self._cch, weights.tolist())
        self._max_entries = max(1, max_entries)
        self._columns: dict[int, int] = {}  # target node -> column of the cache
        self._slots: dict[int, int] = {}  # source node -> row of the cache
        self._data = np.full((0, 0), -1, dtype=np.int64)  # -1: not computed
        self._used = np.zeros(0, dtype=np.int64)  # last use of each row (for LRU)
        self._tick = 0
        self._lock = threading.Lock()
        self.computed = 0

    def __len__(self) -> int:
        return len(self._slots)

    # -- queries ------------------------------------------------------------------------------

    def _decode(self, raw: list[Any]) -> I64:
        packed = np.array(raw, dtype=np.float64)
        found = np.isfinite(packed)
        value = np.where(found, packed, 0).astype(np.int64)
        time_ds, units = np.divmod(value, self.factor)
        out: I64 = (time_ds << MATRIX_BITS) + units * self.unit_dm
        out[~found | (value >= _RK_INF)] = NO_PATH
        return out

    def _rows_to(self, sources: list[int], targets: list[int]) -> I64:
        query = self._rk.CCHOneToMany(self._metric, targets)
        out = np.empty((len(sources), len(targets)), dtype=np.int64)
        for i, s in enumerate(sources):
            out[i] = self._decode(query.distances_from(s))
        return out

    def _columns_from(self, sources: list[int], targets: list[int]) -> I64:
        query = self._rk.CCHManyToOne(self._metric, sources)
        out = np.empty((len(sources), len(targets)), dtype=np.int64)
        for j, t in enumerate(targets):
            out[:, j] = self._decode(query.distances_to(t))
        return out

    # -- cache --------------------------------------------------------------------------------

    def table(self, sources: I64, targets: I64) -> I64:
        """Encoded weights from each source node to each target node (``len(s) x len(t)``).

        Known pairs come from the cache; sources with most pairs unknown get one-to-many
        queries, the remaining unknown columns many-to-one queries.
        """
        src, tgt = sources.tolist(), targets.tolist()
        with self._lock:
            cols = np.array([self._columns.setdefault(t, len(self._columns)) for t in tgt])
            cols = cols.astype(np.int64).reshape(-1)
            slots = np.array([self._slots.get(s, -1) for s in src], dtype=np.int64)
            out = np.full((len(src), len(tgt)), -1, dtype=np.int64)
            known = slots >= 0
            inside = cols < self._data.shape[1]
            if known.any() and inside.any():
                out[np.ix_(known, inside)] = self._data[np.ix_(slots[known], cols[inside])]
        unknown = out < 0
        fresh_rows = np.flatnonzero(unknown.sum(axis=1) * 2 > len(tgt))
        if len(fresh_rows):
            out[fresh_rows] = self._rows_to([src[i] for i in fresh_rows], tgt)
            unknown[fresh_rows] = False
        need_cols = np.flatnonzero(unknown.any(axis=0))
        if len(need_cols):
            need_rows = np.flatnonzero(unknown[:, need_cols].any(axis=1))
            block = self._columns_from([src[i] for i in need_rows], [tgt[j] for j in need_cols])
            sub = out[np.ix_(need_rows, need_cols)]
            out[np.ix_(need_rows, need_cols)] = np.where(sub < 0, block, sub)
        self.computed += int(unknown.sum()) + len(fresh_rows) * len(tgt)
        self._store(src, cols, out)
        return out

    def _store(self, src: list[int], cols: I64, values: I64) -> None:
        """Keep ``values`` (rows ``src``, cache columns ``cols``); least recently used rows go."""
        with self._lock:
            rows, width = self._data.shape
            need_width = len(self._columns)
            new = [s for s in dict.fromkeys(src) if s not in self._slots]
            if need_width > width or len(self._slots) + len(new) > rows:
                grown_w = max(need_width, 2 * width)
                grown_r = max(len(self._slots) + len(new), 2 * rows)
                data = np.full((grown_r, grown_w), -1, dtype=np.int64)
                data[:rows, :width] = self._data
                used = np.zeros(grown_r, dtype=np.int64)
                used[:rows] = self._used
                self._data, self._used = data, used
            free = sorted(set(range(self._data.shape[0])) - set(self._slots.values()))
            for s, slot in zip(new, free, strict=False):
                self._slots[s] = slot
                self._data[slot] = -1
            slots = np.array([self._slots[s] for s in src], dtype=np.int64)
            self._data[np.ix_(slots, cols)] = values
            self._tick += 1
            self._used[slots] = self._tick
            self._evict()

    def _evict(self) -> None:
        budget_rows = max(1, self._max_entries // max(1, self._data.shape[1]))
        if len(self._slots) <= budget_rows:
            return
        by_age = sorted(self._slots.items(), key=lambda item: self._used[item[1]])
        for node, _ in by_age[: len(self._slots) - budget_rows]:
            del self._slots[node]


def _time_csr(network: ModeNetwork) -> Any:
    from scipy.sparse import csr_matrix

    csr = network.csr
    data = network.edge_time_ds[network.csr_edge].astype(np.float64)
    return csr_matrix((data, csr.indices, csr.indptr), shape=csr.shape)


def _packing(diameter_ds: int, time_ds: I64, len_dm: I64) -> tuple[int, int]:
    """``(K, unit_dm)`` so that every fastest path packs below RoutingKit's infinity.

    A path of time t has length (in units) at most ``rho * t`` with ``rho`` the largest
    units-per-tenth-second of any edge; ``K = max(units * D // time) + 1`` exceeds ``rho * D``,
    so for every path of time <= D the length part stays below K and ``t * K + length`` below
    ``(D + 1) * K``, which must stay below RoutingKit's infinity. The unit doubles until it does.
    """
    d = max(1, diameter_ds)
    unit = 1
    while True:
        units = np.rint(len_dm / unit).astype(np.int64)
        factor = int((units * d // time_ds).max()) + 1 if len(units) else 1
        if (d + 1) * factor < _RK_INF:
            return factor, unit
        unit *= 2


def _load_order(path: Path | None) -> I64 | None:
    if path is None or not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as data:
        order: I64 = data["order"]
        return order


def _save_order(path: Path, order: I64) -> None:
    from app.routing._files import atomic_write

    atomic_write(path, lambda fh: np.savez(fh, order=order))
