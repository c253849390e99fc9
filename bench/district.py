"""End-to-end district plan on a real OSM extract, built exactly as the service builds it.

Usage::

    python -m bench.district --osm ../shared/data/osm/liechtenstein.osm.pbf \
        --visits 300 --staff 25 --seed 1 [--time-limit S] [--penalties 0,300,900,1800]

The generated day is the ``POST /v1/import`` batch of :mod:`bench._load_district`, imported into
a temporary SQLite file and loaded by the service's own loader; the plan is computed by
:func:`app.planning.compute.compute_plan` (snapping, matrices, problem, solve, validation,
geometry) with the service's default options (``app.settings.Settings``; ``--time-limit``,
``--exploration`` and ``--threads`` override them as the settings would). Clients the generator
put where some travel mode cannot go stay in the day, as they would in a real import: their
visits go to carers who can reach them, or come back unassigned as ``unreachable``.
``bench.district_api`` plans the same day through HTTP and prints the same JSON keys.

``matrix_s`` is the time to build the problem (snapping and the drive and bike matrices with a
warm graph cache); ``solve_s`` the solver's time; ``wall_s`` the whole computation. Then the
continuity trade-off: the same problem solved at each ``--penalties`` value (travel time and
preferred-carer share). The last line printed is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from app.planning.compute import PlanNotValid, build_problem, compute_plan, solve_options
from app.planning.pool import get_region
from app.planning.service import plan_options
from app.scheduling import solve, validate
from app.settings import Settings
from bench._load_district import DAY, district_batch, stored_plan_input

ROOT = Path(__file__).resolve().parents[1]


def service_settings(args: argparse.Namespace) -> Settings:
    """The service's settings, with the solver knobs given on the command line."""
    overrides: dict[str, Any] = {"dev_mode": True}
    if args.time_limit is not None:
        overrides["solver_time_limit_s"] = args.time_limit
    if args.exploration is not None:
        overrides["solver_exploration_level"] = args.exploration
    if args.threads is not None:
        overrides["solver_threads"] = args.threads
    return Settings(**overrides)


def add_day_arguments(ap: argparse.ArgumentParser) -> None:
    """The options ``bench.district`` and ``bench.district_api`` share."""
    ap.add_argument("--osm", type=Path, default=Settings(dev_mode=True).region_file)
    ap.add_argument("--visits", type=int, default=300)
    ap.add_argument("--staff", type=int, default=25)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--time-limit", type=float, default=None, help="default: the service's")
    ap.add_argument("--exploration", type=int, default=None, help="default: the service's")
    ap.add_argument("--threads", type=int, default=None, help="default: the service's")
    ap.add_argument("--cache-dir", type=Path, default=ROOT / "osm_cache")


def summary(path: str, settings: Settings, kpis: dict[str, Any], **figures: Any) -> dict[str, Any]:
    """The JSON line both district benchmarks print (same keys)."""
    return {
        "path": path,
        "visits": figures["visits"],
        "staff": figures["staff"],
        "time_limit_s": settings.solver_time_limit_s,
        "matrix_s": figures.get("matrix_s"),
        "solve_s": figures["solve_s"],
        "wall_s": figures["wall_s"],
        "violations": figures["violations"],
        "visits_planned": int(kpis["visits_planned"]),
        "unassigned": figures["unassigned"],
        "travel_s": int(kpis["travel_s"]),
        "preferred_share": round(float(kpis["preferred_share"]), 3),
        "direct_care_ratio": round(float(kpis["direct_care_ratio"]), 3),
        "continuity_penalty_s": settings.continuity_penalty_s,
        "tradeoff": figures.get("tradeoff", []),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the district benchmark; print KPIs, the trade-off table and a JSON line."""
    ap = argparse.ArgumentParser(description="End-to-end district plan benchmark")
    add_day_arguments(ap)
    ap.add_argument(
        "--penalties",
        default="0,300,900,1800",
        help="continuity penalties (s) for the trade-off; empty to skip",
    )
    args = ap.parse_args(argv)
    settings = service_settings(args)

    t0 = time.perf_counter()
    region = get_region(args.osm, args.cache_dir)
    load_s = time.perf_counter() - t0
    batch = district_batch(region, DAY, visits=args.visits, staff=args.staff, seed=args.seed)
    inp = stored_plan_input(batch, DAY)
    options = plan_options(settings)

    t0 = time.perf_counter()
    try:
        result = compute_plan(inp, region, options)
        violations = 0
    except PlanNotValid as exc:
        print("  VIOLATION", exc)
        return 1
    wall_s = time.perf_counter() - t0
    print(
        f"region load {load_s:.2f} s, {len(inp.visits)} visits, "
        f"problem {result.timings['build_s']:.2f} s, "
        f"solve {result.timings['solve_s']:.2f} s (limit {options.time_limit_s:g} s), "
        f"geometry {result.timings['geometry_s']:.2f} s"
    )
    for key, value in result.kpis.items():
        print(f"  {key:32} {value:.3f}" if isinstance(value, float) else f"  {key:32} {value}")

    tradeoff = []
    penalties = [int(raw) for raw in args.penalties.split(",") if raw]
    problem = build_problem(inp, region).problem
    for pen in penalties:
        t1 = time.perf_counter()
        p_plan = solve(problem, solve_options(replace(options, continuity_penalty_s=pen)))
        row = {
            "penalty_s": pen,
            "travel_s": int(p_plan.kpis["travel_s"]),
            "preferred_share": round(float(p_plan.kpis["preferred_share"]), 3),
            "carers_per_client": round(float(p_plan.kpis["carers_per_client"]), 3),
            "unassigned": len(p_plan.unassigned),
            "violations": len(validate(problem, p_plan)),
            "solve_s": round(time.perf_counter() - t1, 2),
        }
        tradeoff.append(row)
        print("  trade-off", row)
        sys.stdout.flush()

    line = summary(
        "core",
        settings,
        result.kpis,
        visits=len(inp.visits),
        staff=len(inp.shifts),
        matrix_s=round(result.timings["build_s"], 3),
        solve_s=round(result.timings["solve_s"], 3),
        wall_s=round(wall_s, 3),
        violations=violations,
        unassigned=len(result.unassigned),
        tradeoff=tradeoff,
    )
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
