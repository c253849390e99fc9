"""Key figures of a plan, as plain numbers so they serialise as they are."""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict

from app.scheduling.model import Plan, Problem, Route, StopKind


def route_kpis(problem: Problem, route: Route) -> dict[str, float | int]:
    """Figures of one route (one carer's shift).

    Keys
    ----
    travel_s, distance_m
        Travel time and distance, start to end.
    service_s
        Time spent at visits.
    waiting_s
        Time waiting before visits (arrived before the window opened or the partner came).
    break_s
        Time on breaks.
    paid_s
        The shift's length (``end - start``): staff are paid for the shift, used or not.
    visits
        Number of visits.
    utilisation
        ``(service + travel) / paid``.
    direct_care_ratio
        ``service / paid``.
    overtime_s
        Time the route ends after the shift's end (0: shift ends are hard rules).
    """
    shift = next(s for s in problem.shifts if s.id == route.shift_id)
    visits = [s for s in route.stops if s.kind is StopKind.VISIT]
    travel = sum(s.travel_time for s in route.stops)
    service = sum(s.end - s.start for s in visits)
    paid = max(shift.end - shift.start, 1)
    return {
        "travel_s": travel,
        "distance_m": sum(s.distance for s in route.stops),
        "service_s": service,
        "waiting_s": sum(s.waiting for s in visits),
        "break_s": sum(s.end - s.start for s in route.stops if s.kind is StopKind.BREAK),
        "paid_s": paid,
        "visits": len(visits),
        "utilisation": (service + travel) / paid,
        "direct_care_ratio": service / paid,
        "overtime_s": max(0, route.stops[-1].start - shift.end),
    }


def compute_kpis(problem: Problem, plan: Plan) -> dict[str, float | int]:
    """Figures of a whole plan.

    Keys
    ----
    travel_s, distance_m, service_s, waiting_s, paid_s
        Sums over routes (see :func:`route_kpis`); ``paid_s`` counts used shifts only.
    direct_care_ratio
        ``service_s / paid_s`` (0 when nothing is planned).
    visits_planned, visits_unassigned
        Visits in at least one route / reported unassigned.
    unassigned_<reason>
        Unassigned count per :class:`UnassignedReason` value (only reasons that occur).
    window_compliance
        Share of planned visit stops that start and end inside one of the visit's windows
        (1.0 for a valid plan; fixed stops that overran count as outside).
    preferred_share
        Share of planned visit stops done by a carer in the client's preferred staff, among
        visits whose client has preferred staff (1.0 when none has).
    carers_per_client
        Mean number of distinct carers a client sees in this plan (clients with a planned visit).
    overtime_s
        Sum of route overtime (0 while shift ends are hard).
    utilisation_mean, utilisation_spread
        Mean and population standard deviation of ``(service + travel) / paid`` over used shifts:
        the workload balance (lower spread = fairer).
    routes, shifts
        Used shifts and all shifts.
    tardiness_total_s, tardiness_max_s, late_visits, tardiness_mean_s
        Lateness against soft windows (:attr:`Visit.due`): the sum and the largest
        ``start - due`` over planned visit stops that start after their due time, how many
        stops do, and the mean lateness per planned stop of a visit with a due time.
    """
    per_route = [route_kpis(problem, r) for r in plan.routes]
    visits = {v.id: v for v in problem.visits}
    total: dict[str, float | int] = {}
    for key in ("travel_s", "distance_m", "service_s", "waiting_s", "paid_s", "overtime_s"):
        total[key] = sum(int(k[key]) for k in per_route)
    total["direct_care_ratio"] = total["service_s"] / total["paid_s"] if total["paid_s"] else 0.0
    stops = [(r.staff_id, s) for r in plan.routes for s in r.stops if s.kind is StopKind.VISIT]
    planned = {s.visit_id for _, s in stops}
    total["visits_planned"] = len(planned)
    total["visits_unassigned"] = len(plan.unassigned)
    for reason, n in sorted(Counter(u.reason.value for u in plan.unassigned).items()):
        total[f"unassigned_{reason}"] = n
    inside = 0
    pref_hits, pref_total = 0, 0
    carers: dict[str, set[str]] = defaultdict(set)
    for staff, s in stops:
        v = visits.get(s.visit_id or "")
        if v is None:
            continue
        if not v.windows or any(w.start <= s.start and s.end <= w.end for w in v.windows):
            inside += 1
        if v.preferred_staff:
            pref_total += 1
            pref_hits += staff in v.preferred_staff
        carers[v.client_id].add(staff)
    total["window_compliance"] = inside / len(stops) if stops else 1.0
    total["preferred_share"] = pref_hits / pref_total if pref_total else 1.0
    total["carers_per_client"] = (
        statistics.fmean(len(c) for c in carers.values()) if carers else 0.0
    )
    util = [float(k["utilisation"]) for k in per_route]
    total["utilisation_mean"] = statistics.fmean(util) if util else 0.0
    total["utilisation_spread"] = statistics.pstdev(util) if len(util) > 1 else 0.0
    late = [
        s.start - v.due
        for _, s in stops
        if (v := visits.get(s.visit_id or "")) is not None and v.due is not None
    ]
    total["tardiness_total_s"] = sum(max(0, x) for x in late)
    total["tardiness_max_s"] = max((max(0, x) for x in late), default=0)
    total["late_visits"] = sum(1 for x in late if x > 0)
    total["tardiness_mean_s"] = total["tardiness_total_s"] / len(late) if late else 0.0
    total["routes"] = len(plan.routes)
    total["shifts"] = len(problem.shifts)
    return total
