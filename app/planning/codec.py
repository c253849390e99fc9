"""JSON forms of a solved plan and of the problem it was solved for, as stored on a plan row.

The stored plan keeps everything needed to give the same :class:`app.scheduling.model.Plan` back
(times in seconds, location indices), plus what readers need without the problem (client external
ids and coordinates per stop). The stored problem leaves out the matrices: they are recomputed
from the region (their shortest-path rows are cached) when a re-plan starts from a version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.domain import LatLon, TravelMatrix
from app.scheduling import route_kpis
from app.scheduling.model import (
    Break,
    Dependency,
    FixedStop,
    Plan,
    Priority,
    Problem,
    Route,
    Shift,
    Stop,
    StopKind,
    TimeWindow,
    Unassigned,
    UnassignedReason,
    Visit,
)

Doc = dict[str, Any]


def _windows(windows: tuple[TimeWindow, ...]) -> list[list[int]]:
    return [[w.start, w.end] for w in windows]


def _tw(raw: Any) -> tuple[TimeWindow, ...]:
    return tuple(TimeWindow(int(a), int(b)) for a, b in raw)


def shift_to_doc(s: Shift) -> Doc:
    """One shift of a stored problem document (see :func:`problem_to_doc`)."""
    return {
        "id": s.id,
        "staff": s.staff_id,
        "start": s.start,
        "end": s.end,
        "profile": s.profile,
        "competences": sorted(s.competences),
        "start_location": s.start_location,
        "end_location": s.end_location,
        "breaks": [
            {"id": b.id, "windows": _windows(b.windows), "duration": b.duration} for b in s.breaks
        ],
        "max_visits": s.max_visits,
        "max_travel_time": s.max_travel_time,
        "capacity": s.capacity,
        "team": s.team,
    }


def problem_to_doc(problem: Problem) -> Doc:
    """The problem without its matrices, as a JSON document."""
    return {
        "profiles": sorted(problem.matrices),
        "locations": [None if p is None else [p.lat, p.lon] for p in problem.locations],
        "visits": [
            {
                "id": v.id,
                "client": v.client_id,
                "location": v.location,
                "duration": v.duration,
                "windows": _windows(v.windows),
                "competences": sorted(v.competences),
                "priority": v.priority.value,
                "carers_required": v.carers_required,
                "pinned_staff": v.pinned_staff,
                "allowed_staff": None if v.allowed_staff is None else sorted(v.allowed_staff),
                "preferred_staff": sorted(v.preferred_staff),
                "depends_on": None
                if v.depends_on is None
                else [v.depends_on.visit_id, v.depends_on.min_gap, v.depends_on.max_gap],
                "demand": v.demand,
                "geocoded": v.geocoded,
            }
            for v in problem.visits
        ],
        "shifts": [shift_to_doc(s) for s in problem.shifts],
        "current_assignment": dict(problem.current_assignment),
        "fixed": [[f.visit_id, f.shift_id, f.start, f.end] for f in problem.fixed],
        "absences": {sid: [[a, b] for a, b in ivs] for sid, ivs in problem.absences.items()},
    }


def problem_from_doc(doc: Mapping[str, Any], matrices: Mapping[str, TravelMatrix]) -> Problem:
    """Rebuild a problem stored by :func:`problem_to_doc` around freshly computed matrices."""
    visits = tuple(
        Visit(
            id=v["id"],
            client_id=v["client"],
            location=int(v["location"]),
            duration=int(v["duration"]),
            windows=_tw(v["windows"]),
            competences=frozenset(v["competences"]),
            priority=Priority(v["priority"]),
            carers_required=int(v["carers_required"]),
            pinned_staff=v["pinned_staff"],
            allowed_staff=None if v["allowed_staff"] is None else frozenset(v["allowed_staff"]),
            preferred_staff=frozenset(v["preferred_staff"]),
            depends_on=None if v["depends_on"] is None else Dependency(*v["depends_on"]),
            demand=int(v["demand"]),
            geocoded=bool(v["geocoded"]),
        )
        for v in doc["visits"]
    )
    shifts = tuple(
        Shift(
            id=s["id"],
            staff_id=s["staff"],
            start=int(s["start"]),
            end=int(s["end"]),
            profile=s["profile"],
            competences=frozenset(s["competences"]),
            start_location=s["start_location"],
            end_location=s["end_location"],
            breaks=tuple(
                Break(b["id"], _tw(b["windows"]), int(b["duration"])) for b in s["breaks"]
            ),
            max_visits=s["max_visits"],
            max_travel_time=s["max_travel_time"],
            capacity=s["capacity"],
            team=s["team"],
        )
        for s in doc["shifts"]
    )
    return Problem(
        visits=visits,
        shifts=shifts,
        matrices=dict(matrices),
        locations=tuple(None if p is None else LatLon(p[0], p[1]) for p in doc["locations"]),
        current_assignment=dict(doc.get("current_assignment", {})),
        fixed=tuple(FixedStop(*f) for f in doc.get("fixed", [])),
        absences={
            sid: tuple((int(a), int(b)) for a, b in ivs)
            for sid, ivs in doc.get("absences", {}).items()
        },
    )


def problem_points(doc: Mapping[str, Any]) -> list[LatLon]:
    """The locations of a stored problem (every one has coordinates in a stored plan)."""
    return [LatLon(p[0], p[1]) for p in doc["locations"]]


def routes_to_doc(problem: Problem, plan: Plan) -> list[Doc]:
    """Routes with stops, per-route figures, client ids and coordinates of every stop."""
    client_of = {v.id: v.client_id for v in problem.visits}
    out: list[Doc] = []
    for route in plan.routes:
        stops = []
        for s in route.stops:
            point = problem.locations[s.location] if s.location is not None else None
            stops.append(
                {
                    "kind": s.kind.value,
                    "visit": s.visit_id,
                    "client": client_of.get(s.visit_id) if s.visit_id else None,
                    "break": s.break_id,
                    "location": s.location,
                    "lat": None if point is None else point.lat,
                    "lon": None if point is None else point.lon,
                    "arrival": s.arrival,
                    "start": s.start,
                    "end": s.end,
                    "travel_s": s.travel_time,
                    "distance_m": s.distance,
                    "waiting_s": s.waiting,
                }
            )
        out.append(
            {
                "shift": route.shift_id,
                "staff": route.staff_id,
                "profile": route.profile,
                "stops": stops,
                "kpis": dict(route_kpis(problem, route)),
            }
        )
    return out


def unassigned_to_doc(problem: Problem, plan: Plan) -> list[Doc]:
    """Unassigned visits with the client's external id, reason code and sentence."""
    client_of = {v.id: v.client_id for v in problem.visits}
    return [
        {
            "visit": u.visit_id,
            "client": client_of.get(u.visit_id),
            "reason": u.reason.value,
            "detail": u.detail,
        }
        for u in plan.unassigned
    ]


def plan_from_docs(
    routes: list[Doc],
    unassigned: list[Doc],
    kpis: Mapping[str, Any],
    solve_time_s: float = 0.0,
) -> Plan:
    """The :class:`Plan` a plan row stores (inverse of :func:`routes_to_doc`)."""
    return Plan(
        routes=tuple(
            Route(
                shift_id=r["shift"],
                staff_id=r["staff"],
                profile=r["profile"],
                stops=tuple(
                    Stop(
                        kind=StopKind(s["kind"]),
                        arrival=int(s["arrival"]),
                        start=int(s["start"]),
                        end=int(s["end"]),
                        location=s["location"],
                        visit_id=s["visit"],
                        break_id=s["break"],
                        travel_time=int(s["travel_s"]),
                        distance=int(s["distance_m"]),
                        waiting=int(s["waiting_s"]),
                    )
                    for s in r["stops"]
                ),
            )
            for r in routes
        ),
        unassigned=tuple(
            Unassigned(u["visit"], UnassignedReason(u["reason"]), u["detail"]) for u in unassigned
        ),
        kpis=dict(kpis),
        solve_time_s=solve_time_s,
    )
