"""End-to-end district plan on a real OSM extract: generate, route, solve, validate, KPIs.

Usage::

    python -m bench.district --osm ../shared/data/osm/liechtenstein.osm.pbf \
        --visits 300 --staff 25 --seed 1 [--time-limit S] [--penalties 0,300,900,1800]

The region's graphs come from the project's osm_cache/ (built on the first run, warm after).
``matrix_s`` is the time to compute the drive and bike matrices over the district's locations
with a warm graph cache; ``solve_s`` the time of the plan with the default continuity penalty.
Then the continuity trade-off: the same district solved at each ``--penalties`` value (travel
time and preferred-carer share). The last line printed is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from app.domain import Address, TravelMode
from app.routing import OffRoadLocation, Region, UnreachableLocation, load_region
from app.scheduling import solve, validate
from app.scheduling.options import is_service_path, service_options
from app.scheduling.sample import district_points, generate_district, to_problem

ROOT = Path(__file__).resolve().parents[1]


def _routable(region: Region, addresses: Sequence[Address]) -> list[Address]:
    """The addresses every mode can route to (the extract has a few on cut-off roads)."""
    keep = list(addresses)
    for mode in (TravelMode.DRIVE, TravelMode.BIKE):
        for _ in range(len(keep)):
            labels = [str(i) for i in range(len(keep))]
            try:
                region.matrix(mode, [a.location for a in keep], labels)
                break
            except UnreachableLocation as exc:
                bad = {exc.label}
            except OffRoadLocation as exc:
                bad = {label for label, _ in exc.offenders}
            keep = [a for i, a in enumerate(keep) if str(i) not in bad]
    return keep


def main(argv: list[str] | None = None) -> int:
    """Run the district benchmark; print KPIs, the trade-off table and a JSON line."""
    ap = argparse.ArgumentParser(description="End-to-end district plan benchmark")
    ap.add_argument("--osm", type=Path, required=True)
    ap.add_argument("--visits", type=int, default=300)
    ap.add_argument("--staff", type=int, default=25)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="solver seconds (default: the service's)",
    )
    ap.add_argument("--exploration", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument(
        "--penalties",
        default="0,300,900,1800",
        help="continuity penalties (s) for the trade-off; empty to skip",
    )
    ap.add_argument("--cache-dir", type=Path, default=ROOT / "osm_cache")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    region = load_region(
        args.osm, modes=(TravelMode.DRIVE, TravelMode.BIKE), cache_dir=args.cache_dir
    )
    load_s = time.perf_counter() - t0
    district = generate_district(
        _routable(region, region.addresses), visits=args.visits, staff=args.staff, seed=args.seed
    )
    points = district_points(district)
    t0 = time.perf_counter()
    matrices = {m.value: region.matrix(m, points) for m in (TravelMode.DRIVE, TravelMode.BIKE)}
    matrix_s = time.perf_counter() - t0
    problem = to_problem(district, matrices)
    opts = service_options(
        time_limit_s=args.time_limit, exploration_level=args.exploration, threads=args.threads
    )
    limit = opts.time_limit_s

    t0 = time.perf_counter()
    plan = solve(problem, opts)
    solve_s = time.perf_counter() - t0
    violations = validate(problem, plan)
    print(
        f"region load {load_s:.2f} s, {len(points)} locations, matrices {matrix_s:.2f} s, "
        f"solve {solve_s:.2f} s (limit {limit:.1f} s)"
    )
    for key, value in plan.kpis.items():
        print(f"  {key:32} {value:.3f}" if isinstance(value, float) else f"  {key:32} {value}")
    for v in violations[:10]:
        print("  VIOLATION", v.kind.value, v.visit_id, v.shift_id, v.message)

    # The same machinery without the post-optimisation, given the service run's whole time:
    # what the local search adds over VROOM alone at equal time.
    alone_opts = replace(opts, improve_s=0.0, time_limit_s=max(solve_s, 0.1))
    t0 = time.perf_counter()
    alone = solve(problem, alone_opts)
    alone_s = time.perf_counter() - t0
    doubles = [v for v in problem.visits if v.carers_required == 2]
    planned = {vid for r in plan.routes for vid in r.visit_ids}
    reasons = {u.visit_id: u.reason.value for u in plan.unassigned}
    double_reasons: dict[str, int] = {}
    for dv in doubles:
        if dv.id not in planned:
            key = reasons.get(dv.id, "missing")
            double_reasons[key] = double_reasons.get(key, 0) + 1
    print(
        f"  VROOM alone (no post-optimisation, {alone_s:.2f} s): travel "
        f"{int(alone.kpis['travel_s'])}, unassigned {len(alone.unassigned)}"
    )

    tradeoff = []
    for raw in filter(None, args.penalties.split(",")):
        pen = int(raw)
        t0 = time.perf_counter()
        p_plan = solve(
            problem,
            replace(opts, continuity_penalty_s=pen),
        )
        row = {
            "penalty_s": pen,
            "travel_s": int(p_plan.kpis["travel_s"]),
            "preferred_share": round(float(p_plan.kpis["preferred_share"]), 3),
            "carers_per_client": round(float(p_plan.kpis["carers_per_client"]), 3),
            "unassigned": len(p_plan.unassigned),
            "violations": len(validate(problem, p_plan)),
            "solve_s": round(time.perf_counter() - t0, 2),
        }
        tradeoff.append(row)
        print("  trade-off", row)
        sys.stdout.flush()

    summary = {
        "visits": len(problem.visits),
        "staff": len(problem.shifts),
        "matrix_s": round(matrix_s, 3),
        "solve_s": round(solve_s, 3),
        "violations": len(violations),
        "unassigned": len(plan.unassigned),
        "travel_s": int(plan.kpis["travel_s"]),
        "preferred_share": round(float(plan.kpis["preferred_share"]), 3),
        "direct_care_ratio": round(float(plan.kpis["direct_care_ratio"]), 3),
        "continuity_penalty_s": opts.continuity_penalty_s,
        "vroom_alone_travel_s": int(alone.kpis["travel_s"]),
        "vroom_alone_unassigned": len(alone.unassigned),
        "vroom_alone_solve_s": round(alone_s, 3),
        "travel_vs_vroom_alone": round(
            float(plan.kpis["travel_s"]) / max(float(alone.kpis["travel_s"]), 1.0), 4
        ),
        "double_visits": len(doubles),
        "double_visits_planned": sum(1 for dv in doubles if dv.id in planned),
        "double_visits_unassigned": double_reasons,
        "tardiness_total_s": int(plan.kpis.get("tardiness_total_s", 0)),
        "service_path": is_service_path(opts),
        "tradeoff": tradeoff,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
