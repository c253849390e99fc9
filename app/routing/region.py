"""A loaded region: per-mode networks from one OSM extract, cached on disk, plus its addresses."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import pickle
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import networkx as nx
import numpy as np

from app.domain import Address, LatLon, TravelMatrix, TravelMode
from app.routing._files import atomic_write
from app.routing._osm import Extract, read_extract
from app.routing.engines import CCHEngine, PathTable, RowCache, cch_available
from app.routing.errors import NoRoute, OffRoadLocation, UnknownMode, UnreachableLocation
from app.routing.geocode import OfflineGeocoder
from app.routing.graph import build_graph, graph_from_place
from app.routing.label_engine import LabelEngine, labels_available
from app.routing.matrix import (
    Anchors,
    along_edge,
    anchor,
    extend_matrix,
    travel_matrix,
)
from app.routing.network import NO_PATH, ModeNetwork
from app.routing.settings import ADDRESS_FORMAT_VERSION, PIPELINE_VERSION, RoutingSettings

log = logging.getLogger(__name__)

ALL_MODES: tuple[TravelMode, ...] = (TravelMode.DRIVE, TravelMode.BIKE, TravelMode.WALK)


@dataclass(frozen=True, slots=True)
class Snap:
    """Where a location joins the road graph of a mode."""

    #: OSM id of the graph node nearest along the road the location snapped to.
    node: int
    #: The point on the road.
    location: LatLon
    #: Straight-line distance from the given location to the road, in metres.
    distance_m: float


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(slots=True)
class _ModeState:
    network: ModeNetwork
    rows: PathTable
    cache: str  # "warm" (loaded from cache) or "built"
    seconds: float
    graph_path: Path


class Region:
    """Routable graphs of one OSM extract, one per travel mode, and the extract's addresses.

    Safe to share between threads: the networks are read-only and the row caches lock.
    Pickling a region pickles only how to reload it, which a process-pool worker does from the
    warm cache in about a second.
    """

    def __init__(
        self,
        *,
        source: Path | str,
        source_hash: str,
        cache_dir: Path,
        settings: RoutingSettings,
        modes: dict[TravelMode, _ModeState],
        addresses: tuple[Address, ...],
        load_s: float,
    ) -> None:
        self.source = source
        self.source_hash = source_hash
        self.cache_dir = cache_dir
        self.settings = settings
        self._modes = modes
        self.addresses: tuple[Address, ...] = addresses
        self.load_s = load_s
        self._lock = threading.Lock()
        self._geocoder: OfflineGeocoder | None = None
        self._graphs: dict[TravelMode, nx.MultiDiGraph] = {}

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        if isinstance(self.source, Path):
            return (_reload, (self.source, tuple(self._modes), self.cache_dir, self.settings))
        return (_reload_place, (self.source, tuple(self._modes), self.cache_dir, self.settings))

    @property
    def modes(self) -> tuple[TravelMode, ...]:
        """Travel modes this region was loaded for."""
        return tuple(self._modes)

    def network(self, mode: TravelMode | str) -> ModeNetwork:
        """The array form of the graph of ``mode``."""
        return self._state(mode).network

    def _state(self, mode: TravelMode | str) -> _ModeState:
        try:
            return self._modes[TravelMode(mode)]
        except (ValueError, KeyError):
            loaded = ", ".join(m.value for m in self._modes)
            msg = f"travel mode {mode!r} is not loaded (loaded: {loaded})"
            raise UnknownMode(msg) from None

    @property
    def geocoder(self) -> OfflineGeocoder:
        """Offline geocoder over this extract's addresses (built on first use)."""
        with self._lock:
            if self._geocoder is None:
                self._geocoder = OfflineGeocoder(self.addresses)
            return self._geocoder

    def graph(self, mode: TravelMode | str) -> nx.MultiDiGraph:
        """The osmnx graph of ``mode`` (read from the cache on first use; do not modify it)."""
        state = self._state(mode)
        with self._lock:
            graph = self._graphs.get(TravelMode(mode))
            if graph is None:
                with state.graph_path.open("rb") as fh:
                    graph = pickle.load(fh)  # our own cache file, written by _build_mode
                self._graphs[TravelMode(mode)] = graph
            return graph

    def status(self) -> dict[str, Any]:
        """Which extract, modes, node and edge counts, what was dropped, and the cache state."""
        modes: dict[str, Any] = {}
        for mode, state in self._modes.items():
            meta = state.network.meta
            modes[mode.value] = {
                "nodes": state.network.node_count,
                "edges": state.network.edge_count,
                "ways": meta.get("ways"),
                "nodes_before_scc": meta.get("nodes_before"),
                "dropped_nodes": meta.get("dropped_nodes"),
                "cache": state.cache,
                "seconds": round(state.seconds, 3),
                "build_s": meta.get("build_s"),
                "cached_rows": len(state.rows),
                "engine": getattr(state.rows, "name", "dijkstra"),
                "length_unit_dm": getattr(state.rows, "unit_dm", 1),
            }
        return {
            "source": str(self.source),
            "source_sha256": self.source_hash,
            "cache_dir": str(self.cache_dir),
            "modes": modes,
            "addresses": len(self.addresses),
            "load_s": round(self.load_s, 3),
            "settings": {
                "snap_max_m": self.settings.snap_max_m,
                "bike_kmh": self.settings.bike_kmh,
                "walk_kmh": self.settings.walk_kmh,
                "drive_fallback_kmh": self.settings.drive_fallback_kmh,
            },
        }

    # -- routing ---------------------------------------------------------------------------

    def _anchors(
        self, mode: TravelMode | str, points: Sequence[LatLon], labels: Sequence[str] | None
    ) -> Anchors:
        if labels is not None and len(labels) != len(points):
            msg = f"got {len(labels)} labels for {len(points)} points"
            raise ValueError(msg)
        net = self._state(mode).network
        origin = np.array([(p.lon, p.lat) for p in points], dtype=np.float64).reshape(-1, 2)
        positions = net.locate(origin[:, 0], origin[:, 1])
        limit = self.settings.snap_max_m
        far = np.flatnonzero(positions.distance_m > limit)
        if len(far):
            names = [labels[i] if labels is not None else str(i) for i in far.tolist()]
            for name, i in zip(names, far.tolist(), strict=True):
                dropped = net.nearest_dropped_m(float(origin[i, 0]), float(origin[i, 1]))
                if dropped <= limit:
                    raise UnreachableLocation(name, mode=TravelMode(mode).value, distance_m=dropped)
            offenders = list(zip(names, positions.distance_m[far].tolist(), strict=True))
            raise OffRoadLocation(offenders, mode=TravelMode(mode).value, limit_m=limit)
        access_ms = self.settings.access_kmh(TravelMode(mode)) / 3.6
        return anchor(net, positions, access_ms, origin)

    def snap(
        self,
        mode: TravelMode | str,
        points: Sequence[LatLon],
        labels: Sequence[str] | None = None,
    ) -> list[Snap]:
        """Snap each point to the nearest road of ``mode``.

        Parameters
        ----------
        mode
            Travel mode.
        points
            Locations to snap.
        labels
            Caller's names for the points (e.g. client ids), used in errors; default the index.

        Returns
        -------
        list of Snap
            For each point the nearest graph node along its road, the road point and the offset.

        Raises
        ------
        OffRoadLocation
            A point is farther than ``settings.snap_max_m`` from every road of the mode.
        UnreachableLocation
            A point's only nearby road is not connected to the routable network.
        """
        net = self.network(mode)
        pos = self._anchors(mode, points, labels).positions
        near = np.where(pos.fraction < 0.5, net.edge_u[pos.edge], net.edge_v[pos.edge])
        return [
            Snap(node=int(net.node_ids[k]), location=LatLon(lat=la, lon=lo), distance_m=d)
            for k, lo, la, d in zip(
                near.tolist(),
                pos.lon.tolist(),
                pos.lat.tolist(),
                pos.distance_m.tolist(),
                strict=True,
            )
        ]

    def matrix(
        self,
        mode: TravelMode | str,
        points: Sequence[LatLon],
        labels: Sequence[str] | None = None,
    ) -> TravelMatrix:
        """Travel durations (s) and distances (m) between all points by ``mode``.

        Each trip is the fastest road path between the points' road positions plus, at both ends,
        the straight-line offset to the road at the mode's access speed. The diagonal and pairs of
        identical coordinates are 0; a pair without a path is :data:`app.domain.UNREACHABLE`.
        Shortest-path rows are cached per graph node, so a re-plan that adds a few locations only
        computes rows for the new ones.

        Raises
        ------
        OffRoadLocation, UnreachableLocation
            As for :meth:`snap`, naming the offending labels.
        """
        state = self._state(mode)
        return travel_matrix(state.network, self._anchors(mode, points, labels), state.rows)

    def extend_matrix(
        self,
        mode: TravelMode | str,
        matrix: TravelMatrix,
        points: Sequence[LatLon],
        new_points: Sequence[LatLon],
        labels: Sequence[str] | None = None,
    ) -> TravelMatrix:
        """``matrix`` over ``points`` grown by ``new_points`` (appended at the end).

        Only the new rows and columns are computed, from the cached shortest-path rows: the way a
        re-plan adds an urgent visit to a district matrix it already has.

        Parameters
        ----------
        mode
            Travel mode ``matrix`` was computed for.
        matrix
            The matrix over ``points``, as :meth:`matrix` returned it.
        points, new_points
            The locations ``matrix`` covers and the locations to add.
        labels
            Labels of ``new_points`` for errors.
        """
        state = self._state(mode)
        old = self._anchors(mode, points, None)
        new = self._anchors(mode, new_points, labels)
        return extend_matrix(state.network, old, new, matrix, state.rows)

    def geometry(
        self, mode: TravelMode | str, points: Sequence[LatLon]
    ) -> list[tuple[float, float]]:
        """(lon, lat) coordinates along the roads through ``points`` in order (a LineString).

        Raises
        ------
        NoRoute
            Two consecutive points are not connected.
        """
        state = self._state(mode)
        anchors = self._anchors(mode, points, None)
        coords: list[tuple[float, float]] = []
        for i in range(len(anchors) - 1):
            leg = _leg_coords(state.network, state.rows, anchors, i, i + 1)
            if leg is None:
                msg = f"no {TravelMode(mode).value} route from point {i} to point {i + 1}"
                raise NoRoute(msg)
            for c in leg:
                if not coords or coords[-1] != c:
                    coords.append(c)
        if not coords and len(anchors):
            coords.append((float(anchors.origin[0, 0]), float(anchors.origin[0, 1])))
        return coords


def _leg_coords(
    net: ModeNetwork, rows: PathTable, anchors: Anchors, a: int, b: int
) -> list[tuple[float, float]] | None:
    start = (float(anchors.origin[a, 0]), float(anchors.origin[a, 1]))
    end = (float(anchors.origin[b, 0]), float(anchors.origin[b, 1]))
    if start == end:
        return [start]
    pos = anchors.positions
    ea, eb, fa, fb = (
        int(pos.edge[a]),
        int(pos.edge[b]),
        float(pos.fraction[a]),
        float(pos.fraction[b]),
    )
    sub = rows.table(anchors.entry_nodes[a], anchors.exit_nodes[b])
    direct = along_edge(net, anchors, anchors, np.array([a]), np.array([b]))
    best, choice = int(direct[0]), (-1, -1)
    for i in range(2):
        for j in range(2):
            cost = int(anchors.entry_costs[a, i]) + int(sub[i, j]) + int(anchors.exit_costs[b, j])
            if cost < best:
                best, choice = cost, (i, j)
    if best >= NO_PATH:
        return None
    road_a = (float(pos.lon[a]), float(pos.lat[a]))
    road_b = (float(pos.lon[b]), float(pos.lat[b]))
    if choice == (-1, -1):
        return [start, road_a, *net.edge_coords(ea, fa, fb), road_b, end]
    i, j = choice
    path = net.node_path(int(anchors.entry_nodes[a, i]), int(anchors.exit_nodes[b, j]))
    if path is None:
        return None
    coords = [start, road_a, *net.edge_coords(ea, fa, 1.0 if i == 0 else 0.0)]
    for u, v in itertools.pairwise(path):
        coords += net.edge_coords(net.csr_edge_between(u, v))
    coords += [*net.edge_coords(eb, 0.0 if j == 0 else 1.0, fb), road_b, end]
    return coords


# -- loading ---------------------------------------------------------------------------------


def _mode_path(base: Path, mode: TravelMode, settings: RoutingSettings) -> Path:
    return base / f"{mode.value}-{settings.graph_key(mode)}.npz"


def _path_table(net: ModeNetwork, settings: RoutingSettings, npz: Path | None) -> PathTable:
    """The configured engine over ``net`` (see :attr:`RoutingSettings.matrix_engine`)."""
    budget = int(settings.row_cache_mb * 2**20 // 8)
    engine = settings.matrix_engine
    auto = engine == "auto" and net.node_count > 1
    # Both CCH engines need a strongly connected graph (a packing bound): else Dijkstra is exact.
    if engine == "labels" or (auto and labels_available()):
        try:
            return LabelEngine(net, npz, budget)
        except ValueError:
            if engine == "labels":
                raise
        except (ImportError, RuntimeError) as exc:  # numba unusable here (no JIT, no cache dir)
            if engine == "labels":
                raise
            log.warning("label engine unavailable (%s); using the next engine", exc)
    if engine == "cch" or (auto and cch_available()):
        order = None if npz is None else npz.with_suffix(".cch-order.npz")
        try:
            return CCHEngine(net, order, budget)
        except ValueError:
            if engine == "cch":
                raise
    return RowCache(net, budget // max(1, net.node_count))


def _save_pickle(path: Path, obj: object) -> None:
    def write(fh: IO[bytes]) -> None:
        pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)

    atomic_write(path, write)


def _build_mode(
    extract: Extract, mode: TravelMode, settings: RoutingSettings, npz: Path
) -> ModeNetwork:
    start = time.perf_counter()
    kept, full, report = build_graph(extract, mode, settings)
    dropped = [(full.nodes[n]["x"], full.nodes[n]["y"]) for n in full.nodes if n not in kept]
    net = ModeNetwork.from_graph(kept, dropped)
    net.meta.update(
        ways=report.ways,
        nodes_before=report.nodes_before,
        edges_before=report.edges_before,
        dropped_nodes=report.dropped_nodes,
        build_s=round(time.perf_counter() - start, 3),
    )
    _save_pickle(npz.with_suffix(".graph.pkl"), kept)
    net.save(npz)  # last, so a present .npz means the entry is complete
    return net


def _load_addresses(path: Path) -> tuple[Address, ...] | None:
    if not path.is_file():
        return None
    rows = json.loads(path.read_text(encoding="utf-8"))
    return tuple(
        Address(
            street=r["street"],
            housenumber=r["housenumber"],
            location=LatLon(**r["location"]),
            postcode=r["postcode"],
            city=r["city"],
        )
        for r in rows
    )


def _save_addresses(path: Path, addresses: Iterable[Address]) -> None:
    blob = json.dumps([asdict(a) for a in addresses], ensure_ascii=False).encode("utf-8")
    atomic_write(path, lambda fh: fh.write(blob))


def load_region(
    source: Path,
    *,
    modes: Iterable[TravelMode | str] = ALL_MODES,
    cache_dir: Path,
    settings: RoutingSettings | None = None,
) -> Region:
    """Load the routable graphs of ``modes`` from a local OSM extract, through the cache.

    Parameters
    ----------
    source
        An ``.osm.pbf`` or ``.osm`` file.
    modes
        Travel modes to load.
    cache_dir
        Directory of the cache (the project's ``osm_cache/``). Entries are keyed by the SHA-256
        of the extract's bytes, the mode and the speed settings, and written atomically.
    settings
        Speeds and limits; defaults to :class:`RoutingSettings()`.

    Returns
    -------
    Region
        The loaded region; ``status()`` tells whether each mode came from the cache.

    Raises
    ------
    RegionSourceError
        The file is missing, unreadable, or has no ways for a requested mode.
    """
    settings = settings or RoutingSettings()
    wanted = tuple(dict.fromkeys(TravelMode(m) for m in modes))
    start = time.perf_counter()
    source = Path(source)
    if not source.is_file():
        read_extract(source)  # raises RegionSourceError naming the file
    digest = file_sha256(source)
    base = Path(cache_dir) / f"{source.name.split('.')[0]}-{digest[:16]}"
    extract: Extract | None = None
    states: dict[TravelMode, _ModeState] = {}
    for mode in wanted:
        t0 = time.perf_counter()
        npz = _mode_path(base, mode, settings)
        if npz.is_file():
            net, state = ModeNetwork.load(npz), "warm"
        else:
            extract = extract or read_extract(source)
            net, state = _build_mode(extract, mode, settings, npz), "built"
        rows = _path_table(net, settings, npz)
        states[mode] = _ModeState(
            net, rows, state, time.perf_counter() - t0, npz.with_suffix(".graph.pkl")
        )
    addr_path = base / f"addresses-v{PIPELINE_VERSION}.{ADDRESS_FORMAT_VERSION}.json"
    addresses = _load_addresses(addr_path)
    if addresses is None:
        extract = extract or read_extract(source)
        addresses = tuple(extract.addresses)
        _save_addresses(addr_path, addresses)
    region = Region(
        source=source,
        source_hash=digest,
        cache_dir=Path(cache_dir),
        settings=settings,
        modes=states,
        addresses=addresses,
        load_s=time.perf_counter() - start,
    )
    log.info(
        "region %s loaded in %.2f s (%s)",
        source.name,
        region.load_s,
        ", ".join(f"{m.value}: {s.cache}" for m, s in states.items()),
    )
    return region


def load_region_from_place(
    place: str,
    *,
    modes: Iterable[TravelMode | str] = ALL_MODES,
    cache_dir: Path,
    settings: RoutingSettings | None = None,
) -> Region:
    """Download a region through osmnx's Overpass client (online; cached like a local extract).

    The cache key is the place string, so delete the cache entry to refresh the data. Addresses
    are not downloaded: use the HTTP geocoder with an online region.
    """
    settings = settings or RoutingSettings()
    start = time.perf_counter()
    digest = hashlib.sha256(place.encode("utf-8")).hexdigest()
    base = Path(cache_dir) / f"place-{digest[:16]}"
    states: dict[TravelMode, _ModeState] = {}
    for mode in dict.fromkeys(TravelMode(m) for m in modes):
        t0 = time.perf_counter()
        npz = _mode_path(base, mode, settings)
        if npz.is_file():
            net, state = ModeNetwork.load(npz), "warm"
        else:
            graph = graph_from_place(place, mode, settings)
            net, state = ModeNetwork.from_graph(graph, []), "built"
            _save_pickle(npz.with_suffix(".graph.pkl"), graph)
            net.save(npz)
        rows = _path_table(net, settings, npz)
        states[mode] = _ModeState(
            net, rows, state, time.perf_counter() - t0, npz.with_suffix(".graph.pkl")
        )
    return Region(
        source=place,
        source_hash=digest,
        cache_dir=Path(cache_dir),
        settings=settings,
        modes=states,
        addresses=(),
        load_s=time.perf_counter() - start,
    )


def _reload(
    source: Path, modes: tuple[TravelMode, ...], cache_dir: Path, settings: RoutingSettings
) -> Region:
    return load_region(source, modes=modes, cache_dir=cache_dir, settings=settings)


def _reload_place(
    place: str, modes: tuple[TravelMode, ...], cache_dir: Path, settings: RoutingSettings
) -> Region:
    return load_region_from_place(place, modes=modes, cache_dir=cache_dir, settings=settings)
