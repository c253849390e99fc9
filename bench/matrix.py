"""Benchmark the routing core: cold build, warm load, N x N matrix, +10 locations, peak memory.

Usage: ``python -m bench.matrix --osm ../shared/data/osm/liechtenstein.osm.pbf --mode drive
--points 1000``, or ``--grid 300`` for a synthetic 300 x 300 city (intersections 100 m apart,
written as an .osm.pbf into a temporary directory and then read exactly like a real extract).
``--mode`` takes a comma-separated list (``drive,bike,walk``): the region is built with all of
them, as the service does with ``REGION_MODES``, and one JSON line is printed per mode.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from app.domain import UNREACHABLE, TravelMatrix, TravelMode
from app.routing import Region, RoutingSettings, load_region
from app.routing.settings import MATRIX_ENGINES
from bench._grid import write_grid_city
from bench._routing_points import sample_points

_WARM_PROCESS = (
    "import sys, time; t = time.perf_counter(); from pathlib import Path; "
    "from app.routing import RoutingSettings, load_region; "
    "load_region(Path(sys.argv[1]), modes=sys.argv[2].split(','), cache_dir=Path(sys.argv[3]), "
    "settings=RoutingSettings(matrix_engine=sys.argv[4])); "
    "print(time.perf_counter() - t)"
)


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    """Run the benchmark and print one JSON summary line per mode."""
    parser = argparse.ArgumentParser(prog="python -m bench.matrix", description=__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--osm", type=Path, help=".osm.pbf or .osm extract")
    source.add_argument("--grid", type=int, metavar="N", help="synthetic N x N grid city")
    parser.add_argument("--mode", default="drive", help="mode or comma-separated modes")
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--new", type=int, default=10, help="locations added for the re-plan")
    parser.add_argument("--district", type=int, default=300, help="points of the district matrix")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--engine", choices=list(MATRIX_ENGINES), default="auto", help="matrix engine"
    )
    args = parser.parse_args(argv)
    modes = [TravelMode(m.strip()) for m in args.mode.split(",") if m.strip()]

    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-matrix-")))
        if args.grid is not None:
            osm = write_grid_city(tmp / f"grid-{args.grid}.osm.pbf", args.grid)
        else:
            osm = args.osm
        return _run(osm, modes, tmp / "cache", args)


def _run(
    osm: Path, modes: list[TravelMode], cache: Path, args: argparse.Namespace
) -> list[dict[str, object]]:
    settings = RoutingSettings(matrix_engine=args.engine)
    t0, c0 = time.perf_counter(), time.process_time()
    cold = load_region(osm, modes=modes, cache_dir=cache, settings=settings)
    cold_all_s, cold_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    cold_status = cold.status()["modes"]
    del cold

    t0, c0 = time.perf_counter(), time.process_time()
    region = load_region(osm, modes=modes, cache_dir=cache, settings=settings)
    warm_load_s, warm_cpu_s = time.perf_counter() - t0, time.process_time() - c0
    names = ",".join(m.value for m in modes)
    proc = subprocess.run(
        [sys.executable, "-c", _WARM_PROCESS, str(osm), names, str(cache), args.engine],
        capture_output=True,
        text=True,
        check=True,
    )
    warm_process_s = float(proc.stdout.strip().splitlines()[-1])
    out = []
    for mode in modes:
        summary = _measure(region, mode, args)
        status = region.status()["modes"][mode.value]
        line: dict[str, object] = {
            "osm": osm.name,
            "mode": mode.value,
            "modes": [m.value for m in modes],
            "engine": status["engine"],
            "points": args.points,
            "nodes": status["nodes"],
            "edges": status["edges"],
            "dropped_nodes": status["dropped_nodes"],
            "cold_build_s": round(float(cold_status[mode.value]["seconds"]), 3),
            "cold_build_all_s": round(cold_all_s, 3),
            "warm_load_s": round(warm_load_s, 3),
            "cold_build_all_cpu_s": round(cold_cpu_s, 3),
            "warm_load_cpu_s": round(warm_cpu_s, 3),
            "warm_process_s": round(warm_process_s, 3),
            **summary,
            "peak_mem_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }
        print(json.dumps(line), flush=True)
        out.append(line)
    return out


def _measure(region: Region, mode: TravelMode, args: argparse.Namespace) -> dict[str, object]:
    points = sample_points(region, mode, args.points + args.new, seed=args.seed)
    base, grown = points[: args.points], points
    clock: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], TravelMatrix]) -> TravelMatrix:
        t0, c0 = time.perf_counter(), time.process_time()
        result = fn()
        clock[f"{name}_s"] = round(time.perf_counter() - t0, 3)
        # CPU seconds of this process: on a shared, loaded machine closer to the unloaded time.
        clock[f"{name}_cpu_s"] = round(time.process_time() - c0, 3)
        return result

    matrix = timed("matrix", lambda: region.matrix(mode, base))
    bigger = timed(
        "incremental", lambda: region.extend_matrix(mode, matrix, base, grown[args.points :])
    )
    full = timed("recompute_with_new", lambda: region.matrix(mode, grown))
    timed("cached_matrix", lambda: region.matrix(mode, base))
    small = sample_points(region, mode, args.district, seed=args.seed + 1)
    timed("district_matrix", lambda: region.matrix(mode, small))
    reachable = matrix.durations < UNREACHABLE
    return {
        **clock,
        "district_points": args.district,
        "median_duration_s": int(
            sorted(matrix.durations[reachable].tolist())[reachable.sum() // 2]
        ),
        "unreachable_pairs": int((~reachable).sum()),
        "extend_equals_recompute": bool((bigger.durations == full.durations).all()),
    }


if __name__ == "__main__":
    main()
