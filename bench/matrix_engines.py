"""Compare shortest-path engines from PyPI on the service's own graphs (docs/decisions).

Usage: ``python -m bench.matrix_engines --grid 150`` (or ``--osm FILE``) ``--mode drive``.
The graph is built by the service pipeline (osmnx, largest strongly connected component, travel
times in tenths of a second). Each engine answers the same node-to-node time tables: sources and
targets are the graph nodes nearest to ``--points`` sampled locations. Engines that are not
installed are reported as such (they are evaluation-only, not project dependencies, except the
one the service uses). Every table is checked against scipy's. One JSON line per engine.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse.csgraph import dijkstra

from app.domain import TravelMode
from app.routing import load_region
from app.routing.network import ModeNetwork
from bench._grid import write_grid_city
from bench._routing_points import sample_points

F64 = np.ndarray[Any, np.dtype[np.float64]]
Table = Callable[[list[int], list[int]], F64]


def _arcs(net: ModeNetwork) -> tuple[list[int], list[int], list[int]]:
    csr = net.csr
    tails = np.repeat(np.arange(net.node_count), np.diff(csr.indptr))
    times = net.edge_time_ds[net.csr_edge]
    return tails.tolist(), csr.indices.tolist(), times.tolist()


def _scipy(net: ModeNetwork) -> Table:
    tails, heads, times = _arcs(net)
    from scipy.sparse import csr_matrix

    graph = csr_matrix(
        (np.array(times, dtype=np.float64), (tails, heads)), shape=(net.node_count,) * 2
    )

    def table(sources: list[int], targets: list[int]) -> F64:
        return np.asarray(dijkstra(graph, directed=True, indices=sources)[:, targets])

    return table


def _igraph(net: ModeNetwork) -> Table:
    ig: Any = importlib.import_module("igraph")
    tails, heads, times = _arcs(net)
    graph = ig.Graph(n=net.node_count, edges=list(zip(tails, heads, strict=True)), directed=True)
    graph.es["w"] = times

    def table(sources: list[int], targets: list[int]) -> F64:
        return np.array(graph.distances(source=sources, target=targets, weights="w", mode="out"))

    return table


def _networkit(net: ModeNetwork) -> Table:
    nk: Any = importlib.import_module("networkit")
    tails, heads, times = _arcs(net)
    graph = nk.Graph(net.node_count, weighted=True, directed=True)
    for u, v, w in zip(tails, heads, times, strict=True):
        graph.addEdge(u, v, float(w))

    def table(sources: list[int], targets: list[int]) -> F64:
        out = np.empty((len(sources), len(targets)))
        for i, s in enumerate(sources):
            search = nk.distance.MultiTargetDijkstra(graph, s, targets)
            search.run()
            out[i] = search.getDistances()  # in the order of ``targets``
        return out

    return table


def _pandana(net: ModeNetwork) -> Table:
    pdna: Any = importlib.import_module("pandana")
    pd: Any = importlib.import_module("pandas")
    tails, heads, times = _arcs(net)
    nodes = pd.DataFrame({"x": net.node_lon, "y": net.node_lat})
    edges = pd.DataFrame({"from": tails, "to": heads, "w": times})
    graph = pdna.Network(
        nodes["x"], nodes["y"], edges["from"], edges["to"], edges[["w"]], twoway=False
    )

    def table(sources: list[int], targets: list[int]) -> F64:
        a = np.repeat(sources, len(targets))
        b = np.tile(targets, len(sources))
        lengths = graph.shortest_path_lengths(a, b, imp_name="w")
        return np.asarray(lengths, dtype=np.float64).reshape(len(sources), len(targets))

    return table


def _routingkit(net: ModeNetwork) -> Table:
    rk: Any = importlib.import_module("routingkit_cch")
    tails, heads, times = _arcs(net)
    order = rk.compute_order_inertial(
        net.node_count, tails, heads, net.node_lat.tolist(), net.node_lon.tolist()
    )
    cch = rk.CCH(order, tails, heads, False)
    metric = rk.CCHMetric(cch, times)

    def table(sources: list[int], targets: list[int]) -> F64:
        query = rk.CCHOneToMany(metric, targets)
        rows = [query.distances_from(s) for s in sources]
        return np.array([[np.inf if d is None else d for d in row] for row in rows])

    return table


def _labels(net: ModeNetwork) -> Table:
    from app.routing.label_engine import LabelEngine
    from app.routing.network import MATRIX_BITS, NO_PATH

    engine = LabelEngine(net, None, 1 << 27)

    def table(sources: list[int], targets: list[int]) -> F64:
        engine.clear()  # no labels left over from the probe: every table from nothing
        enc = engine.table(np.array(sources, dtype=np.int64), np.array(targets, dtype=np.int64))
        return np.where(enc >= NO_PATH, np.inf, (enc >> MATRIX_BITS).astype(np.float64))

    return table


ENGINES: dict[str, Callable[[ModeNetwork], Table]] = {
    "scipy": _scipy,
    "labels": _labels,
    "routingkit-cch": _routingkit,
    "igraph": _igraph,
    "networkit": _networkit,
    "pandana": _pandana,
}


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    """Time every engine on one graph and print one JSON line each."""
    parser = argparse.ArgumentParser(prog="python -m bench.matrix_engines", description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--osm", type=Path)
    source.add_argument("--grid", type=int, metavar="N")
    parser.add_argument("--mode", choices=[m.value for m in TravelMode], default="drive")
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--small", type=int, default=300, help="size of the district table")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--budget-s", type=float, default=120.0, help="skip an engine's big table")
    args = parser.parse_args(argv)
    out = []
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-engines-")))
        osm = args.osm
        if args.grid:
            osm = write_grid_city(tmp / f"grid-{args.grid}.osm.pbf", args.grid)
        region = load_region(osm, modes=[args.mode], cache_dir=tmp / "cache")
        net = region.network(args.mode)
        points = sample_points(region, TravelMode(args.mode), args.points, seed=1)
        pos = net.locate(np.array([p.lon for p in points]), np.array([p.lat for p in points]))
        nodes = list(dict.fromkeys(net.edge_v[pos.edge].tolist()))
        small = nodes[: args.small]
        reference: dict[int, F64] = {}
        for name in args.engines.split(","):
            line: dict[str, object] = {"osm": osm.name, "mode": args.mode, "engine": name}
            line["nodes"] = net.node_count
            try:
                t0, c0 = time.perf_counter(), time.process_time()
                table = ENGINES[name](net)
                line["prepare_s"] = round(time.perf_counter() - t0, 3)
                line["prepare_cpu_s"] = round(time.process_time() - c0, 3)
            except ImportError as exc:
                line["error"] = f"not installed: {exc}"
                print(json.dumps(line), flush=True)
                out.append(line)
                continue
            for size, chosen in ((len(small), small), (len(nodes), nodes)):
                probe = chosen[: max(1, min(20, len(chosen)))]
                c0 = time.process_time()
                table(probe, chosen)
                per_row = (time.process_time() - c0) / len(probe)
                if per_row * len(chosen) > args.budget_s:
                    line[f"table_{size}_cpu_s"] = f"~{per_row * len(chosen):.0f} (estimated)"
                    continue
                t0, c0 = time.perf_counter(), time.process_time()
                got = table(chosen, chosen)
                line[f"table_{size}_s"] = round(time.perf_counter() - t0, 3)
                # CPU seconds (all threads): on a shared machine closer to the unloaded time.
                line[f"table_{size}_cpu_s"] = round(time.process_time() - c0, 3)
                if size not in reference:
                    reference[size] = got
                line[f"table_{size}_equal"] = bool(np.array_equal(got, reference[size]))
            line["peak_mem_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            print(json.dumps(line), flush=True)
            out.append(line)
    return out


if __name__ == "__main__":
    main()
