"""Benchmark the routing core: cold build, warm load, N x N matrix, +10 locations, peak memory.

Usage: ``python -m bench.matrix --osm ../shared/data/osm/liechtenstein.osm.pbf --mode drive
--points 1000``. Prints a one-line JSON summary last.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from app.domain import TravelMode
from app.routing import load_region
from bench._routing_points import sample_points

_WARM_PROCESS = (
    "import sys, time; t = time.perf_counter(); from pathlib import Path; "
    "from app.routing import load_region; "
    "load_region(Path(sys.argv[1]), modes=[sys.argv[2]], cache_dir=Path(sys.argv[3])); "
    "print(time.perf_counter() - t)"
)


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Run the benchmark and print its JSON summary."""
    parser = argparse.ArgumentParser(prog="python -m bench.matrix", description=__doc__)
    parser.add_argument("--osm", type=Path, required=True, help=".osm.pbf or .osm extract")
    parser.add_argument("--mode", choices=[m.value for m in TravelMode], default="drive")
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--new", type=int, default=10, help="locations added for the re-plan")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    mode = TravelMode(args.mode)

    with tempfile.TemporaryDirectory(prefix="bench-matrix-") as tmp:
        cache = Path(tmp)
        t0 = time.perf_counter()
        load_region(args.osm, modes=[mode], cache_dir=cache)
        cold_build_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        region = load_region(args.osm, modes=[mode], cache_dir=cache)
        warm_load_s = time.perf_counter() - t0
        proc = subprocess.run(
            [sys.executable, "-c", _WARM_PROCESS, str(args.osm), mode.value, str(cache)],
            capture_output=True,
            text=True,
            check=True,
        )
        warm_process_s = float(proc.stdout.strip().splitlines()[-1])

        points = sample_points(region, mode, args.points + args.new, seed=args.seed)
        base, grown = points[: args.points], points
        t0 = time.perf_counter()
        matrix = region.matrix(mode, base)
        matrix_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        bigger = region.extend_matrix(mode, matrix, base, grown[args.points :])
        incremental_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        full = region.matrix(mode, grown)
        recompute_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        region.matrix(mode, base)
        cached_s = time.perf_counter() - t0

    status = region.status()["modes"][mode.value]
    reachable = matrix.durations < 10_000_000
    summary: dict[str, object] = {
        "osm": args.osm.name,
        "mode": mode.value,
        "points": args.points,
        "nodes": status["nodes"],
        "edges": status["edges"],
        "dropped_nodes": status["dropped_nodes"],
        "cold_build_s": round(cold_build_s, 3),
        "warm_load_s": round(warm_load_s, 3),
        "warm_process_s": round(warm_process_s, 3),
        "matrix_s": round(matrix_s, 3),
        "incremental_s": round(incremental_s, 3),
        "recompute_with_new_s": round(recompute_s, 3),
        "cached_matrix_s": round(cached_s, 3),
        "median_duration_s": int(
            sorted(matrix.durations[reachable].tolist())[reachable.sum() // 2]
        ),
        "unreachable_pairs": int((~reachable).sum()),
        "extend_equals_recompute": bool((bigger.durations == full.durations).all()),
        "peak_mem_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
