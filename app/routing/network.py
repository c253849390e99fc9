"""Array form of one mode's graph: CSR adjacency, edge geometry, snapping and shortest-path rows.

One Dijkstra run yields both figures of the fastest path. Inside the search an edge weighs
``time_ds << bits | length_dm`` (tenths of a second, decimetres): minimising the sum minimises
time and breaks ties by length. ``bits`` comes from a proven bound, not from the size of the
graph: every fastest path takes at most ``D`` (a bound on the graph's time diameter, from one
forward and one backward search through a node of the strongly connected graph) and its length
is at most ``r * time`` (``r`` the largest length/time ratio of any edge), so
``bits = bit_length(r * D)`` keeps the length from carrying into the time, and the sums stay
exact in float64 while ``bit_length(D) + bits <= 53``. A graph without such a bound (not
strongly connected, or a diameter beyond ~20 days of travel) runs a time-only Dijkstra and
adds the lengths along its shortest-path tree (``bits == 0``). Either way there is no size
ceiling; memory is the limit.

Rows leave this module in one fixed encoding, ``time_ds << MATRIX_BITS | length_dm`` in int64,
which the matrix code adds and compares (see :func:`encode`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from app.routing._files import atomic_write

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Marker for "no path" inside encoded rows: far above any real weight, and three of them
#: still fit in int64.
NO_PATH: int = 1 << 60
#: Length bits of the row encoding: lengths below 2**31 dm (214,000 km), times below 2**29 ds
#: (17 months) stay below NO_PATH.
MATRIX_BITS = 31
_FLOAT_EXACT_BITS = 53
#: Mean Earth radius (m) and metres per degree of latitude for the local projection.
_EARTH_M = 6_371_008.8
_M_PER_DEG = _EARTH_M * math.pi / 180.0
#: Spacing (m) of the points sampled along roads for nearest-road search.
_SAMPLE_M = 10.0
_CANDIDATES = 8


@dataclass(frozen=True, slots=True)
class Positions:
    """Where locations meet the road: fraction ``fraction[i]`` along canonical edge ``edge[i]``."""

    edge: I64
    fraction: F64
    distance_m: F64
    lon: F64
    lat: F64


def search_bits(time_ds: I64, len_dm: I64, diameter_ds: int | None) -> int:
    """Length bits of the in-search encoding, or 0 when no proven bound fits in float64.

    Parameters
    ----------
    time_ds, len_dm
        Edge weights (each at least 1).
    diameter_ds
        A proven bound on the time of every fastest path, or None if there is none.
    """
    if diameter_ds is None or len(time_ds) == 0:
        return 0
    ratio = int((-(-len_dm // time_ds)).max())  # ceil: every path's length <= ratio * time
    bits = (ratio * max(1, diameter_ds)).bit_length()
    if max(1, diameter_ds).bit_length() + bits > _FLOAT_EXACT_BITS:
        return 0
    return bits


def diameter_bound(csr_time: csr_matrix, hub: int = 0) -> int | None:
    """Bound on the fastest time between any two nodes; None unless strongly connected.

    For a hub ``h``: ``d(a, b) <= d(a, h) + d(h, b)``, so the largest time to ``h`` plus the
    largest time from ``h`` bounds every pair (tightest for a central hub). Two Dijkstra runs.
    """
    if csr_time.shape[0] == 0:
        return 0
    forward = dijkstra(csr_time, directed=True, indices=hub)
    backward = dijkstra(csr_time.T.tocsr(), directed=True, indices=hub)
    if not (np.isfinite(forward).all() and np.isfinite(backward).all()):
        return None
    return int(forward.max()) + int(backward.max())


class ModeNetwork:
    """The routable graph of one mode as numpy arrays; immutable after construction."""

    def __init__(self, arrays: dict[str, Any], meta: dict[str, Any]) -> None:
        self.arrays = arrays
        self.meta = meta
        self.node_ids: I64 = arrays["node_ids"]
        self.node_lon: F64 = arrays["node_lon"]
        self.node_lat: F64 = arrays["node_lat"]
        self.edge_u: I64 = arrays["edge_u"]
        self.edge_v: I64 = arrays["edge_v"]
        self.edge_time_ds: I64 = arrays["edge_time_ds"]
        self.edge_len_dm: I64 = arrays["edge_len_dm"]
        self.edge_twin: I64 = arrays["edge_twin"]
        self.geom_offsets: I64 = arrays["geom_offsets"]
        self.geom_lon: F64 = arrays["geom_lon"]
        self.geom_lat: F64 = arrays["geom_lat"]
        self.csr_edge: I64 = arrays["csr_edge"]
        self.bits: int = int(meta["bits"])
        n = len(self.node_ids)
        self.csr = csr_matrix(
            (arrays["csr_data"], arrays["csr_indices"], arrays["csr_indptr"]), shape=(n, n)
        )
        self._arc_keys: I64 | None = None
        self.lat0 = float(meta["lat0"])
        self.lon0 = float(meta["lon0"])
        self._kx = _M_PER_DEG * math.cos(math.radians(self.lat0))
        self._build_snap_index()
        dropped = np.column_stack(self.project(arrays["dropped_lon"], arrays["dropped_lat"]))
        self._dropped_tree = cKDTree(dropped) if len(dropped) else None

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def from_graph(cls, graph: nx.MultiDiGraph, dropped: list[tuple[float, float]]) -> ModeNetwork:
        """Convert an osmnx graph with ``length`` and ``travel_time`` edge attributes.

        Parameters
        ----------
        graph
            The kept graph of one mode.
        dropped
            ``(lon, lat)`` of nodes that were cut off the kept graph.
        """
        osm_ids = list(graph.nodes)
        index = {node: i for i, node in enumerate(osm_ids)}
        node_lon = np.array([graph.nodes[n]["x"] for n in osm_ids], dtype=np.float64)
        node_lat = np.array([graph.nodes[n]["y"] for n in osm_ids], dtype=np.float64)
        us: list[int] = []
        vs: list[int] = []
        times: list[int] = []
        lengths: list[int] = []
        offsets = [0]
        glon: list[float] = []
        glat: list[float] = []
        for u, v, data in graph.edges(data=True):
            if u == v:
                continue  # a loop never shortens a path and would break the twin logic
            iu, iv = index[u], index[v]
            us.append(iu)
            vs.append(iv)
            times.append(max(1, round(float(data["travel_time"]) * 10)))
            lengths.append(max(1, round(float(data["length"]) * 10)))
            coords = _edge_coords(data, node_lon, node_lat, iu, iv)
            glon.extend(c[0] for c in coords)
            glat.extend(c[1] for c in coords)
            offsets.append(len(glon))
        edge_u = np.array(us, dtype=np.int64)
        edge_v = np.array(vs, dtype=np.int64)
        time_ds = np.array(times, dtype=np.int64)
        len_dm = np.array(lengths, dtype=np.int64)
        n = len(osm_ids)
        # Keep the best of parallel edges: sort by (u, v, time, length), take the first per pair.
        order = np.lexsort((len_dm, time_ds, edge_v, edge_u))
        pair = edge_u[order] * n + edge_v[order]
        first = np.ones(len(order), dtype=bool)
        first[1:] = pair[1:] != pair[:-1]
        best = order[first]
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.add.at(indptr, edge_u[best] + 1, 1)
        indptr = np.cumsum(indptr)
        by_time = csr_matrix((time_ds[best].astype(np.float64), edge_v[best], indptr), shape=(n, n))
        middle = np.hypot(node_lon - node_lon.mean(), node_lat - node_lat.mean())
        diameter = diameter_bound(by_time, hub=int(np.argmin(middle)) if n else 0)
        bits = search_bits(time_ds, len_dm, diameter)
        weight = (time_ds << bits) + len_dm if bits else time_ds
        arrays: dict[str, Any] = {
            "node_ids": np.array(osm_ids, dtype=np.int64),
            "node_lon": node_lon,
            "node_lat": node_lat,
            "edge_u": edge_u,
            "edge_v": edge_v,
            "edge_time_ds": time_ds,
            "edge_len_dm": len_dm,
            "edge_twin": _twins(edge_u, edge_v, len_dm),
            "geom_offsets": np.array(offsets, dtype=np.int64),
            "geom_lon": np.array(glon, dtype=np.float64),
            "geom_lat": np.array(glat, dtype=np.float64),
            "csr_indptr": indptr,
            "csr_indices": edge_v[best],
            "csr_data": weight[best].astype(np.float64),
            "csr_edge": best.astype(np.int64),
            "dropped_lon": np.array([d[0] for d in dropped], dtype=np.float64),
            "dropped_lat": np.array([d[1] for d in dropped], dtype=np.float64),
        }
        meta = {
            "bits": bits,
            "diameter_ds": diameter,
            "lat0": float(node_lat.mean()) if n else 0.0,
            "lon0": float(node_lon.mean()) if n else 0.0,
        }
        return cls(arrays, meta)

    def save(self, path: Path) -> None:
        """Write the arrays to ``path`` (``.npz``) atomically."""
        payload = dict(self.arrays)
        payload["meta"] = np.array(json.dumps(self.meta))
        atomic_write(path, lambda fh: np.savez(fh, **payload))

    @classmethod
    def load(cls, path: Path) -> ModeNetwork:
        """Read arrays written by :meth:`save`."""
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files if k != "meta"}
            meta = json.loads(str(data["meta"]))
        return cls(arrays, meta)

    # -- geometry helpers -------------------------------------------------------------------

    def central_node(self) -> int:
        """Index of the node nearest the mean coordinate (a good hub for bounds)."""
        if self.node_count == 0:
            return 0
        return int(np.argmin(np.hypot(self.node_lon - self.lon0, self.node_lat - self.lat0)))

    @property
    def node_count(self) -> int:
        """Number of graph nodes."""
        return len(self.node_ids)

    @property
    def edge_count(self) -> int:
        """Number of directed edges."""
        return len(self.edge_u)

    def project(self, lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[F64, F64]:
        """Local equirectangular projection to metres around the graph's centre."""
        x = (np.asarray(lon, dtype=np.float64) - self.lon0) * self._kx
        y = (np.asarray(lat, dtype=np.float64) - self.lat0) * _M_PER_DEG
        return x, y

    def _build_snap_index(self) -> None:
        # Sample each road once (an edge and its reverse twin share one set of samples).
        canonical = np.flatnonzero(
            (self.edge_twin < 0) | (self.edge_twin > np.arange(self.edge_count))
        )
        gx, gy = self.project(self.geom_lon, self.geom_lat)
        starts = self.geom_offsets[canonical]
        ends = self.geom_offsets[canonical + 1]
        counts = ends - starts - 1  # segments per edge
        seg_edge = np.repeat(canonical, counts)
        first_point = np.repeat(starts, counts)
        within = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
        p0 = first_point + within
        x0, y0, x1, y1 = gx[p0], gy[p0], gx[p0 + 1], gy[p0 + 1]
        seg_len = np.hypot(x1 - x0, y1 - y0)
        # Cumulative length of each segment's start along its edge, and each edge's length.
        cum = np.cumsum(seg_len) - seg_len
        edge_start = np.repeat(cum[np.cumsum(counts) - counts], counts) if len(cum) else cum
        seg_cum0 = cum - edge_start
        edge_plen = np.zeros(self.edge_count)
        np.add.at(edge_plen, seg_edge, seg_len)
        self._seg = (x0, y0, x1, y1, seg_len, seg_edge, seg_cum0)
        self._edge_plen = edge_plen
        samples = np.maximum(1, np.ceil(seg_len / _SAMPLE_M)).astype(np.int64) + 1
        sample_seg = np.repeat(np.arange(len(seg_len)), samples)
        t = (np.arange(int(samples.sum())) - np.repeat(np.cumsum(samples) - samples, samples)) / (
            np.repeat(samples - 1, samples)
        )
        sx = x0[sample_seg] + t * (x1 - x0)[sample_seg]
        sy = y0[sample_seg] + t * (y1 - y0)[sample_seg]
        self._sample_seg = sample_seg
        self._tree = cKDTree(np.column_stack((sx, sy)))

    def locate(self, lon: F64, lat: F64) -> Positions:
        """Nearest point on any road of this network for each ``(lon, lat)``."""
        px, py = self.project(lon, lat)
        k = min(_CANDIDATES, self._tree.n)
        _, idx = self._tree.query(np.column_stack((px, py)), k=k)
        idx = np.asarray(idx).reshape(len(px), k)
        x0, y0, x1, y1, seg_len, seg_edge, seg_cum0 = self._seg
        seg = self._sample_seg[idx]
        dx, dy = x1[seg] - x0[seg], y1[seg] - y0[seg]
        denom = np.where(seg_len[seg] > 0, seg_len[seg] ** 2, 1.0)
        t = np.clip(((px[:, None] - x0[seg]) * dx + (py[:, None] - y0[seg]) * dy) / denom, 0, 1)
        qx, qy = x0[seg] + t * dx, y0[seg] + t * dy
        dist = np.hypot(px[:, None] - qx, py[:, None] - qy)
        best = np.argmin(dist, axis=1)
        rows = np.arange(len(px))
        s = seg[rows, best]
        edges = seg_edge[s]
        along = seg_cum0[s] + t[rows, best] * seg_len[s]
        plen = self._edge_plen[edges]
        frac = np.where(plen > 0, along / np.where(plen > 0, plen, 1.0), 0.0)
        return Positions(
            edge=edges.astype(np.int64),
            fraction=np.clip(frac, 0.0, 1.0),
            distance_m=dist[rows, best],
            lon=qx[rows, best] / self._kx + self.lon0,
            lat=qy[rows, best] / _M_PER_DEG + self.lat0,
        )

    def nearest_dropped_m(self, lon: float, lat: float) -> float:
        """Distance to the nearest node that was cut off the routable graph (inf if none)."""
        if self._dropped_tree is None:
            return math.inf
        x, y = self.project([lon], [lat])
        dist, _ = self._dropped_tree.query([x[0], y[0]])
        return float(dist)

    # -- shortest paths ---------------------------------------------------------------------

    def encode(self, time_ds: npt.ArrayLike, len_dm: npt.ArrayLike) -> I64:
        """Encode tenths of seconds and decimetres into one comparable integer (row encoding)."""
        return encode(time_ds, len_dm)

    def decode(self, enc: I64) -> tuple[I64, I64]:
        """Split row-encoded weights into (tenths of seconds, decimetres)."""
        return decode(enc)

    def rows(self, sources: I64) -> I64:
        """Row-encoded shortest-path weights from each source node index to every node."""
        if len(sources) == 0:
            return np.zeros((0, self.node_count), dtype=np.int64)
        if self.bits:
            dist = np.atleast_2d(dijkstra(self.csr, directed=True, indices=sources))
            finite = np.isfinite(dist)
            enc = np.where(finite, dist, 0).astype(np.int64)
            time_ds, len_dm = enc >> self.bits, enc & ((1 << self.bits) - 1)
        else:
            dist, pred = dijkstra(
                self.csr, directed=True, indices=sources, return_predecessors=True
            )
            dist, pred = np.atleast_2d(dist), np.atleast_2d(pred)
            finite = np.isfinite(dist)
            time_ds = np.where(finite, dist, 0).astype(np.int64)
            len_dm = self._tree_lengths(pred)
        out = (time_ds << MATRIX_BITS) + len_dm
        out[~finite] = NO_PATH
        return out

    def _tree_lengths(self, pred: npt.NDArray[np.int32]) -> I64:
        """Length from each row's root to every node along the shortest-path tree ``pred``.

        Pointer doubling: each step adds the length of the hop a node's pointer skips and moves
        the pointer to its pointer's target, so depth d takes log2(d) vectorised steps.
        """
        jump = pred.astype(np.int64)
        has = jump >= 0
        rows = np.arange(jump.shape[0])[:, None]
        hop = np.zeros(jump.shape, dtype=np.int64)
        lengths = self.edge_len_dm[self.csr_edge]
        r, c = np.nonzero(has)
        hop[r, c] = lengths[self._csr_position(jump[r, c], c)]
        jump = np.where(has, jump, -1)
        while (jump >= 0).any():
            valid = jump >= 0
            target = np.where(valid, jump, 0)
            hop = hop + np.where(valid, hop[rows, target], 0)
            jump = np.where(valid, jump[rows, target], -1)
        return hop

    def _csr_position(self, u: I64, v: I64) -> I64:
        """Position in the CSR arrays of the arc ``u -> v`` (each must exist)."""
        if self._arc_keys is None:
            indptr, indices = self.csr.indptr, self.csr.indices
            tails = np.repeat(np.arange(self.node_count, dtype=np.int64), np.diff(indptr))
            self._arc_keys = tails * self.node_count + indices  # sorted: CSR rows hold sorted heads
        return np.searchsorted(self._arc_keys, u * self.node_count + v).astype(np.int64)

    def node_path(self, source: int, target: int) -> list[int] | None:
        """Node indices of the fastest path from ``source`` to ``target`` (None if none)."""
        if source == target:
            return [source]
        _, pred = dijkstra(self.csr, directed=True, indices=source, return_predecessors=True)
        if pred[target] < 0:
            return None
        path = [target]
        while path[-1] != source:
            path.append(int(pred[path[-1]]))
        path.reverse()
        return path

    def csr_edge_between(self, u: int, v: int) -> int:
        """Index of the edge used by the CSR adjacency from node ``u`` to node ``v``."""
        lo, hi = int(self.csr.indptr[u]), int(self.csr.indptr[u + 1])
        hit = np.flatnonzero(self.csr.indices[lo:hi] == v)
        return int(self.csr_edge[lo + int(hit[0])])

    def edge_coords(self, edge: int, f0: float = 0.0, f1: float = 1.0) -> list[tuple[float, float]]:
        """(lon, lat) along ``edge`` from fraction ``f0`` to ``f1`` (reversed when f0 > f1)."""
        lo, hi = int(self.geom_offsets[edge]), int(self.geom_offsets[edge + 1])
        lon, lat = self.geom_lon[lo:hi], self.geom_lat[lo:hi]
        x, y = self.project(lon, lat)
        cum = np.concatenate(([0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))))
        total = float(cum[-1]) or 1.0
        a, b = sorted((f0, f1))
        at = np.array([a, b]) * total
        ilon = np.interp(at, cum, lon)
        ilat = np.interp(at, cum, lat)
        inner = (cum > at[0]) & (cum < at[1])
        coords = [(float(ilon[0]), float(ilat[0]))]
        coords += [(float(a_), float(b_)) for a_, b_ in zip(lon[inner], lat[inner], strict=True)]
        coords.append((float(ilon[1]), float(ilat[1])))
        return coords if f0 <= f1 else coords[::-1]


def encode(time_ds: npt.ArrayLike, len_dm: npt.ArrayLike) -> I64:
    """Row encoding of tenths of seconds and decimetres: ``time_ds << MATRIX_BITS | length_dm``.

    Sums of a few encoded values stay exact in int64 and compare by time, then length.
    """
    t = np.rint(np.asarray(time_ds, dtype=np.float64)).astype(np.int64)
    d = np.rint(np.asarray(len_dm, dtype=np.float64)).astype(np.int64)
    return (t << MATRIX_BITS) + d


def decode(enc: I64) -> tuple[I64, I64]:
    """Split row-encoded weights into (tenths of seconds, decimetres)."""
    return enc >> MATRIX_BITS, enc & ((1 << MATRIX_BITS) - 1)


def _edge_coords(
    data: dict[str, Any], node_lon: F64, node_lat: F64, iu: int, iv: int
) -> list[tuple[float, float]]:
    start = (float(node_lon[iu]), float(node_lat[iu]))
    end = (float(node_lon[iv]), float(node_lat[iv]))
    geometry = data.get("geometry")
    if geometry is None:
        return [start, end]
    coords = [(float(x), float(y)) for x, y, *_ in geometry.coords]
    # Make sure the polyline runs from u to v whatever osmnx stored.
    if math.dist(coords[0], start) > math.dist(coords[-1], start):
        coords.reverse()
    return coords


def _twins(edge_u: I64, edge_v: I64, len_dm: I64) -> I64:
    """For each edge the index of its reverse on the same road (same length ±1 m), else -1."""
    twin = np.full(len(edge_u), -1, dtype=np.int64)
    by_pair: dict[tuple[int, int], list[int]] = {}
    for i, (u, v) in enumerate(zip(edge_u.tolist(), edge_v.tolist(), strict=True)):
        by_pair.setdefault((u, v), []).append(i)
    for i, (u, v) in enumerate(zip(edge_u.tolist(), edge_v.tolist(), strict=True)):
        if twin[i] >= 0:
            continue
        for j in by_pair.get((v, u), []):
            if twin[j] < 0 and j != i and abs(int(len_dm[i]) - int(len_dm[j])) <= 10:
                twin[i], twin[j] = j, i
                break
    return twin
