"""Replay a morning of disruptions on a real district: incremental re-plan vs full re-solve.

Usage::

    python -m bench.replan --osm ../shared/data/osm/liechtenstein.osm.pbf \
        --visits 300 --staff 25 --seed 1 [--time-limit S] [--base-time-limit S] \
        [--strategy insert|resolve]

Plans the day (warm matrices from osm_cache/), then replays, each on the previous version:
a sick call at 07:10 (whole day), two cancellations (08:00, 08:30), an urgent visit (09:00) and a
40-minute overrun (09:30). Each event is handled by :func:`app.replan.replan` (frozen prefix +
incremental re-solve with stability) and, for comparison, by a full re-solve from scratch of the
same day (frozen stops kept, no stability, no current assignment). ``--strategy`` picks the
re-plan strategy: ``insert`` (default: keep routes, insert what must move, re-solve as fallback)
or ``resolve`` (the whole open part re-solved with the stability penalty, the previous default).

``latency_s`` is the pure core's re-plan time (events in, new plan and diff out, warm matrix);
the HTTP path and storage are not included. ``mutations_unaffected`` counts mutations (start > 1 h,
order, carer) among visits whose carer the event did not touch; ``frozen_changes`` counts stops
that started before ``now + freeze`` in the old plan and differ in the new one (the overrunning
carer's stops from the overrun on are expected to move and are not counted). The last line
printed is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from app.domain import Address, TravelMode
from app.replan import diff as replan_diff
from app.replan.apply import prepare_replan
from app.replan.events import (
    ActualTimesReported,
    CarerAbsent,
    Event,
    UrgentVisitAdded,
    VisitCancelled,
)
from app.replan.freeze import DEFAULT_FREEZE_S
from app.replan.service import DEFAULT_STABILITY_PENALTY_S, assemble, replan
from app.routing import OffRoadLocation, Region, UnreachableLocation, load_region
from app.scheduling import solve, validate
from app.scheduling.model import Plan, Problem, SolveOptions, StopKind, TimeWindow, Visit
from app.scheduling.sample import district_points, generate_district, to_problem

ROOT = Path(__file__).resolve().parents[1]
H = 3600
M = 60


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


def _visit_stops(plan: Plan) -> dict[str, tuple[str, int, int]]:
    """visit id -> (staff, start, end) of its first stop."""
    out: dict[str, tuple[str, int, int]] = {}
    for r in plan.routes:
        for s in r.stops:
            if s.kind is StopKind.VISIT and s.visit_id is not None:
                out.setdefault(s.visit_id, (r.staff_id, s.start, s.end))
    return out


def _pick_events(problem: Problem, plan: Plan, seed: int) -> list[tuple[int, Event, str | None]]:
    """(now, event, carer the event touches) for the morning, chosen from the plan by ``seed``."""
    rng = random.Random(seed)
    stops = _visit_stops(plan)
    shifts = {s.staff_id: s for s in problem.shifts}
    visits = {v.id: v for v in problem.visits}
    per_staff: dict[str, list[tuple[int, str]]] = {}
    for vid, (staff, start, _end) in stops.items():
        per_staff.setdefault(staff, []).append((start, vid))
    early = sorted(
        (s for s in per_staff if shifts[s].start <= 8 * H),
        key=lambda s: (-sum(1 for t, _ in per_staff[s] if t >= 7 * H + 30 * M), s),
    )
    sick = early[0]
    others = sorted(s for s in per_staff if s != sick)
    events: list[tuple[int, Event, str | None]] = [(7 * H + 10 * M, CarerAbsent(sick, 7 * H), sick)]
    single = [
        vid
        for vid, (staff, start, _) in stops.items()
        if staff in others
        and start >= 10 * H
        and visits[vid].carers_required == 1
        and not any(v.depends_on and v.depends_on.visit_id == vid for v in problem.visits)
        and visits[vid].depends_on is None
    ]
    for now, vid in zip((8 * H, 8 * H + 30 * M), rng.sample(sorted(single), 2), strict=True):
        events.append((now, VisitCancelled(vid), stops[vid][0]))
    template = rng.choice(sorted(v.id for v in problem.visits if v.competences))
    base = visits[template]
    urgent = Visit(
        id="urgent-1",
        client_id=base.client_id,
        location=base.location,
        duration=30 * M,
        windows=(TimeWindow(9 * H + 30 * M, 12 * H + 30 * M),),
        competences=base.competences,
    )
    events.append((9 * H, UrgentVisitAdded(urgent), None))
    return events


def _overrun(plan: Plan, problem: Problem, now: int, exclude: set[str]) -> tuple[Event, str] | None:
    """A single-carer visit in progress at ``now`` that overruns by 40 minutes."""
    visits = {v.id: v for v in problem.visits}
    for r in sorted(plan.routes, key=lambda r: r.shift_id):
        if r.staff_id in exclude:
            continue
        for s in r.stops:
            if (
                s.kind is StopKind.VISIT
                and s.visit_id is not None
                and s.start <= now < s.end
                and visits[s.visit_id].carers_required == 1
            ):
                return ActualTimesReported(s.visit_id, s.start, s.end + 40 * M), r.staff_id
    return None


def _mutations_unaffected(d: replan_diff.PlanDiff, old: Plan, carer: str | None) -> int:
    if carer is None:
        return d.mutations
    touched = {vid for r in old.routes if r.staff_id == carer for vid in r.visit_ids}
    return sum(1 for v in d.mutated if v not in touched)


def _frozen_changes(
    old: Plan, new: Plan, now: int, freeze_s: int, event: Event, carer: str | None
) -> int:
    new_stops = {
        (r.shift_id, s.visit_id): s for r in new.routes for s in r.stops if s.visit_id is not None
    }
    moved_from = None
    if isinstance(event, ActualTimesReported):
        moved_from = event.visit_id
    gone = event.visit_id if isinstance(event, VisitCancelled) else None
    # Double visits behind the overrun on its carer's route push their partner's route too.
    partners: set[str] = set()
    for r in old.routes:
        if moved_from is not None and r.staff_id == carer and moved_from in r.visit_ids:
            partners = set(r.visit_ids[r.visit_ids.index(moved_from) + 1 :])
    changes = 0
    for r in old.routes:
        pushed = False
        for s in r.stops:
            if s.visit_id is None or s.start >= now + freeze_s:
                continue
            if s.visit_id == moved_from and r.staff_id == carer:
                pushed = True
            later = new_stops.get((r.shift_id, s.visit_id), s).start > s.start
            if s.visit_id in partners and later:
                pushed = True
            if pushed or s.visit_id == gone:
                continue
            # A carer absent from now keeps no visit that starts in the absence (issue 9).
            if (
                isinstance(event, CarerAbsent)
                and r.staff_id == event.staff_id
                and s.start >= event.from_time
            ):
                continue
            if new_stops.get((r.shift_id, s.visit_id)) != s:
                changes += 1
    return changes


def main(argv: Sequence[str] | None = None) -> int:
    """Run the re-planning benchmark; print one row per event and a JSON line last."""
    ap = argparse.ArgumentParser(description="Re-planning benchmark (incremental vs full)")
    ap.add_argument("--osm", type=Path, required=True)
    ap.add_argument("--visits", type=int, default=300)
    ap.add_argument("--staff", type=int, default=25)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--time-limit", type=float, default=1.2, help="re-plan solver seconds")
    ap.add_argument("--base-time-limit", type=float, default=None, help="day plan seconds")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--stability", type=int, default=DEFAULT_STABILITY_PENALTY_S)
    ap.add_argument("--freeze", type=int, default=DEFAULT_FREEZE_S)
    ap.add_argument(
        "--warm-start",
        action="store_true",
        help="current routes as VROOM steps; orphaned / unassigned visits rank below planned",
    )
    ap.add_argument(
        "--strategy",
        choices=("insert", "resolve"),
        default="insert",
        help="insert: keep routes, insert orphans (re-solve fallback); resolve: re-solve all",
    )
    ap.add_argument("--cache-dir", type=Path, default=ROOT / "osm_cache")
    args = ap.parse_args(argv)
    base_limit = args.base_time_limit or max(3.0, 0.02 * args.visits)

    region = load_region(
        args.osm, modes=(TravelMode.DRIVE, TravelMode.BIKE), cache_dir=args.cache_dir
    )
    district = generate_district(
        _routable(region, region.addresses), visits=args.visits, staff=args.staff, seed=args.seed
    )
    points = district_points(district)
    matrices = {m.value: region.matrix(m, points) for m in (TravelMode.DRIVE, TravelMode.BIKE)}
    problem = to_problem(district, matrices)
    base_opts = SolveOptions(time_limit_s=base_limit, threads=args.threads)
    plan = solve(problem, base_opts)
    print(
        f"day plan: {len(problem.visits)} visits, {len(problem.shifts)} shifts, "
        f"{len(plan.unassigned)} unassigned, travel {plan.kpis['travel_s']} s, "
        f"{plan.solve_time_s:.2f} s"
    )
    replan_opts = SolveOptions(
        time_limit_s=args.time_limit, threads=args.threads, stability_penalty_s=args.stability
    )
    full_opts = SolveOptions(time_limit_s=args.time_limit, threads=args.threads)

    rows: list[dict[str, object]] = []
    frozen_changes = violations = 0
    ratios: list[float] = []
    per_visit: list[float] = []
    touched: set[str] = set()
    script = _pick_events(problem, plan, args.seed)
    script.append((9 * H + 30 * M, VisitCancelled("placeholder"), None))  # overrun, filled below
    for now, event, carer in script:
        if isinstance(event, VisitCancelled) and event.visit_id == "placeholder":
            found = _overrun(plan, problem, now, touched)
            if found is None:
                print("no visit in progress at 09:30 to overrun; skipped")
                continue
            event, carer = found[0], found[1]
        if carer is not None:
            touched.add(carer)
        t0 = time.perf_counter()
        result = replan(
            problem,
            plan,
            [event],
            now=now,
            freeze_s=args.freeze,
            options=replan_opts,
            warm_start=args.warm_start,
            strategy=args.strategy,
        )
        latency = time.perf_counter() - t0

        inp = prepare_replan(problem, plan, [event], now=now, freeze_s=args.freeze)
        # From scratch: the same frozen prefixes, but no current carers, no stability and the
        # solver's own schedule. (solve() on the full problem with Problem.fixed raised
        # FixedStopConflict here, so the open part is solved instead.)
        scratch = replace(
            inp.open_problem,
            current_assignment={},
            initial_routes={},
            previously_unassigned=frozenset(),
            orphaned=frozenset(),
        )
        _, full_plan = assemble(inp, plan, solve(scratch, full_opts), keep_old_times=False)
        full_diff = replan_diff.diff_plans(plan, full_plan)

        changes = _frozen_changes(plan, result.plan, now, args.freeze, event, carer)
        viol = validate(result.problem, result.plan, check_priority=False)
        travel_new = int(result.plan.kpis["travel_s"])
        travel_full = int(full_plan.kpis["travel_s"])
        ratios.append(travel_new / travel_full if travel_full else 1.0)
        placed_new = sum(len(r.visit_ids) for r in result.plan.routes)
        placed_full = sum(len(r.visit_ids) for r in full_plan.routes)
        per_visit.append(
            (travel_new / placed_new) / (travel_full / placed_full) if travel_full else 1.0
        )
        row: dict[str, object] = {
            "kind": event.kind,
            "at": f"{now // H:02d}:{now % H // M:02d}",
            "latency_s": round(latency, 3),
            "orphaned": len(result.orphaned),
            "replaced": len(result.replaced),
            "mutations_unaffected": _mutations_unaffected(result.diff, plan, carer),
            "mutations_full_resolve": _mutations_unaffected(full_diff, plan, carer),
            "affected_carers": len(result.diff.affected_staff),
            "affected_carers_full": len(full_diff.affected_staff),
            "travel_delta_s": travel_new - int(plan.kpis["travel_s"]),
            "travel_full_delta_s": travel_full - int(plan.kpis["travel_s"]),
            "served": placed_new,
            "served_full": placed_full,
            "unassigned": len(result.plan.unassigned),
            "unassigned_full": len(full_plan.unassigned),
            "frozen_changes": changes,
            "violations": len(viol),
        }
        frozen_changes += changes
        violations += len(viol)
        rows.append(row)
        print("  ", row)
        for v in viol[:5]:
            print("     VIOLATION", v.kind.value, v.visit_id, v.shift_id, v.message)
        sys.stdout.flush()
        problem, plan = result.problem, result.plan

    summary = {
        "latency": "pure core re-plan (events -> new plan + diff), warm matrix; no HTTP/storage",
        "visits": args.visits,
        "staff": args.staff,
        "seed": args.seed,
        "stability_penalty_s": args.stability,
        "warm_start": args.warm_start,
        "strategy": args.strategy,
        "time_limit_s": args.time_limit,
        "events": rows,
        "max_latency_s": max((float(str(r["latency_s"])) for r in rows), default=0.0),
        "frozen_changes": frozen_changes,
        "violations": violations,
        "mutations_incremental": sum(int(str(r["mutations_unaffected"])) for r in rows),
        "mutations_full": sum(int(str(r["mutations_full_resolve"])) for r in rows),
        "travel_ratio": round(max(ratios, default=1.0), 4),
        "travel_per_visit_ratio": round(max(per_visit, default=1.0), 4),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
