"""The CPU-heavy part of planning: input -> matrices -> problem -> solve -> validate -> geometry.

Runs in a worker process (see :mod:`app.planning.pool`) or in a queue worker; it touches neither
the database nor the web framework, only the region and the pure scheduling core.

Locations: each staff member's start (and end, if different) first, then **one location per
client** with coordinates. A client without coordinates gets no location: its visits are marked
not geocoded and come back unassigned with reason ``not_geocoded``. A location that does not snap
to the road graph of a mode (off-road, or only on a disconnected road) is computed at a stand-in
point and then made unreachable in that mode's matrix, so the solver cannot use it and the
explanation says ``unreachable``; its detail names the client's external id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from app.domain import UNREACHABLE, LatLon, TravelMatrix
from app.planning import codec
from app.planning.inputs import PlanInput, PlanOptions
from app.replan.events import ActualTimesReported
from app.replan.freeze import ABSENCE_BREAK
from app.replan.service import replan
from app.routing import NoRoute, OffRoadLocation, Region, UnreachableLocation
from app.scheduling import (
    ViolationKind,
    compute_kpis,
    explain_unassigned,
    prefer_mandatory,
    solve,
    validate,
)
from app.scheduling.model import (
    Break,
    Dependency,
    FixedStop,
    Plan,
    Priority,
    Problem,
    Route,
    Shift,
    SolveOptions,
    Stop,
    StopKind,
    TimeWindow,
    Unassigned,
    UnassignedReason,
    Visit,
)
from app.scheduling.options import service_options
from app.scheduling.validate import Violation

log = logging.getLogger(__name__)


class PlanNotValid(RuntimeError):
    """The solver returned a plan that breaks a hard rule: nothing is stored, the job fails.

    ``violations`` names each broken rule by kind, visit and shift id (no client data), so the
    error log can say which.
    """

    def __init__(self, message: str, violations: Sequence[Violation] = ()) -> None:
        super().__init__(message)
        self.violations = violation_docs(violations)


def violation_docs(violations: Sequence[Violation]) -> list[dict[str, str | None]]:
    """Violations as log- and JSON-ready ids: ``{"kind", "visit", "shift"}`` each."""
    return [{"kind": v.kind.value, "visit": v.visit_id, "shift": v.shift_id} for v in violations]


@dataclass(frozen=True, slots=True)
class BuiltProblem:
    """A problem and what building it found out about unusable locations."""

    problem: Problem
    #: client external id -> why it cannot be reached (per mode, human sentence).
    unreachable_clients: Mapping[str, str]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PlanResult:
    """Everything a plan version stores; plain JSON-able values, cheap to pickle."""

    routes: list[dict[str, Any]]
    unassigned: list[dict[str, Any]]
    kpis: dict[str, Any]
    problem: dict[str, Any]
    geometry: dict[str, Any]
    solve_time_s: float
    timings: dict[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def solve_options(options: PlanOptions) -> SolveOptions:
    """The scheduling core's options for ``options`` (through the one service path)."""
    return service_options(
        time_limit_s=options.time_limit_s,
        exploration_level=options.exploration_level,
        threads=options.threads,
        continuity_penalty_s=options.continuity_penalty_s,
    )


def _bad_points(region: Region, mode: str, points: Sequence[LatLon]) -> dict[int, str]:
    """Index -> reason for every point that does not join the road graph of ``mode``."""
    bad: dict[int, str] = {}
    while True:
        keep = [i for i in range(len(points)) if i not in bad]
        if not keep:
            return bad
        try:
            region.snap(mode, [points[i] for i in keep], [str(i) for i in keep])
        except OffRoadLocation as exc:
            for label, dist in exc.offenders:
                bad[int(label)] = f"{dist:.0f} m from the nearest {mode} road"
        except UnreachableLocation as exc:
            bad[int(exc.label)] = f"only near a {mode} road that is not connected to the network"
        else:
            return bad


def safe_matrix(
    region: Region, mode: str, points: Sequence[LatLon]
) -> tuple[TravelMatrix, dict[int, str]]:
    """The matrix of ``mode`` over ``points``; points off its roads are unreachable in it.

    Returns the matrix and, per unusable point index, why it could not be snapped.
    """
    bad = _bad_points(region, mode, points)
    return _matrix(region, mode, points, bad), bad


def _matrix(
    region: Region, mode: str, points: Sequence[LatLon], bad: Mapping[int, str]
) -> TravelMatrix:
    if not bad:
        return region.matrix(mode, points)
    stand_in = next((p for i, p in enumerate(points) if i not in bad), None)
    if stand_in is None:
        return _all_unreachable(len(points))
    usable = [stand_in if i in bad else p for i, p in enumerate(points)]
    return _unreachable_at(region.matrix(mode, usable), bad)


def _unreachable_at(m: TravelMatrix, indices: Iterable[int]) -> TravelMatrix:
    """``m`` with the locations at ``indices`` cut off (computed on stand-ins)."""
    durations, distances = m.durations.copy(), m.distances.copy()
    for i in indices:
        for arr in (durations, distances):
            arr[i, :] = UNREACHABLE
            arr[:, i] = UNREACHABLE
            arr[i, i] = 0
    return TravelMatrix(durations, distances)


def safe_extend(
    region: Region,
    mode: str,
    matrix: TravelMatrix,
    points: Sequence[LatLon],
    new: Sequence[LatLon],
) -> tuple[TravelMatrix, dict[int, str]]:
    """``matrix`` over ``points`` grown by ``new``; new points off ``mode``'s roads are
    unreachable in it. Returns the matrix and, per unusable index of ``new``, why."""
    bad = _bad_points(region, mode, new)
    # The stored points off this mode's roads are unreachable in ``matrix`` already; they stand
    # in for a usable point here (the roads cannot anchor them) and are cut off again below.
    old_bad = _bad_points(region, mode, points)
    good = [p for i, p in enumerate(points) if i not in old_bad]
    good += [p for i, p in enumerate(new) if i not in bad]
    if not good:
        return _all_unreachable(len(points) + len(new)), bad
    usable_old = [good[0] if i in old_bad else p for i, p in enumerate(points)]
    usable = [good[0] if i in bad else p for i, p in enumerate(new)]
    grown = region.extend_matrix(mode, matrix, usable_old, usable)
    cut = [*old_bad, *(len(points) + i for i in bad)]
    return _unreachable_at(grown, cut), bad


def _all_unreachable(n: int) -> TravelMatrix:
    full = np.full((n, n), UNREACHABLE, dtype=np.int64)
    np.fill_diagonal(full, 0)
    return TravelMatrix(full, full.copy())


def build_problem(inp: PlanInput, region: Region) -> BuiltProblem:
    """Turn a loaded district day into a :class:`Problem` over the region's travel times."""
    staff = {s.external_id: s for s in inp.staff}
    points: list[LatLon] = []
    labels: list[str] = []
    where: dict[tuple[float, float], int] = {}

    def add(lat: float, lon: float, label: str, *, share: bool) -> int:
        key = (lat, lon)
        if share and key in where:
            return where[key]
        points.append(LatLon(lat, lon))
        labels.append(label)
        where.setdefault(key, len(points) - 1)
        return len(points) - 1

    start_of: dict[str, int] = {}
    end_of: dict[str, int] = {}
    for s in inp.staff:
        start_of[s.external_id] = add(*s.start, f"staff {s.external_id}", share=True)
        end_of[s.external_id] = add(*s.end, f"staff {s.external_id}", share=True)
    loc_of_client: dict[str, int] = {}
    for c in inp.clients:
        if c.lat is not None and c.lon is not None:
            loc_of_client[c.external_id] = add(c.lat, c.lon, f"client {c.external_id}", share=False)

    modes = sorted({staff[sh.staff].mode for sh in inp.shifts})
    matrices: dict[str, TravelMatrix] = {}
    unreachable: dict[str, list[str]] = {}
    warnings: list[str] = []
    loaded = {m.value for m in region.modes}
    for mode in modes:
        if mode not in loaded:
            # REGION_MODES left this mode out: its carers cannot travel, nobody is moved to
            # another mode behind the planner's back.
            matrices[mode] = _all_unreachable(len(points))
            warnings += [
                f"staff {sh.staff} travels by {mode}, which this region does not load "
                "(REGION_MODES); that route stays empty."
                for sh in inp.shifts
                if staff[sh.staff].mode == mode
            ]
            continue
        matrices[mode], bad = safe_matrix(region, mode, points)
        for i, why in bad.items():
            label = labels[i]
            if label.startswith("client "):
                unreachable.setdefault(label.removeprefix("client "), []).append(why)
            elif any(
                staff[sh.staff].mode == mode and label == f"staff {sh.staff}" for sh in inp.shifts
            ):
                warnings.append(f"The start or end of {label} is {why}; that route stays empty.")

    clients = {c.external_id: c for c in inp.clients}
    visits = tuple(
        _visit(v, clients[v.client], loc_of_client.get(v.client))
        for v in inp.visits
        if not v.blocked
    )
    shifts = tuple(
        Shift(
            id=sh.external_id,
            staff_id=sh.staff,
            start=sh.start_s,
            end=sh.end_s,
            profile=staff[sh.staff].mode,
            competences=frozenset(staff[sh.staff].competences),
            start_location=start_of[sh.staff],
            end_location=end_of[sh.staff],
            breaks=tuple(
                Break(
                    # A reported absence is named as the re-plan names it (app.replan.apply).
                    f"{ABSENCE_BREAK}{sh.external_id}-{br.windows[0][0]}"
                    if br.absence
                    else f"break-{k + 1}",
                    tuple(TimeWindow(a, b) for a, b in br.windows),
                    br.duration_s,
                )
                for k, br in enumerate(sh.breaks)
            ),
            team=staff[sh.staff].team,
        )
        for sh in inp.shifts
    )
    problem = Problem(
        visits, shifts, matrices, locations=tuple(points), fixed=_fixed_stops(inp, shifts)
    )
    reasons = {c: "; ".join(why) for c, why in unreachable.items()}
    return BuiltProblem(problem, reasons, tuple(warnings))


def _fixed_stops(inp: PlanInput, shifts: Sequence[Shift]) -> tuple[FixedStop, ...]:
    """Started and done visits as fixed stops on their carers' shifts (the nearest in time)."""
    out: list[FixedStop] = []
    for v in inp.visits:
        if v.blocked:
            continue
        for f in v.fixed:
            own = [s for s in shifts if s.staff_id == f.staff]
            if not own:
                continue
            a, b = f.start_s, f.end_s
            shift = min(own, key=lambda s: max(0, s.start - b, a - s.end))
            out.append(FixedStop(v.external_id, shift.id, a, b))
    return tuple(out)


def _visit(v: Any, client: Any, location: int | None) -> Visit:
    allowed = None if client.allowed_staff is None else frozenset(client.allowed_staff)
    dep = v.depends_on
    windows = tuple(TimeWindow(a, b) for a, b in v.windows)
    pinned = v.pinned_staff
    if v.fixed:
        # A started or done visit is a fact: its carers and times stand, whatever rule named
        # another carer or window before it happened.
        a, b = min(f.start_s for f in v.fixed), max(f.end_s for f in v.fixed)
        if not any(w.start <= a and b <= w.end for w in windows):
            windows = (TimeWindow(a, b),)
        pinned = v.fixed[0].staff if v.carers_required == 1 else None
        allowed = None
    return Visit(
        id=v.external_id,
        client_id=v.client,
        location=location if location is not None else 0,
        duration=v.duration_s,
        windows=windows,
        competences=frozenset(v.competences),
        priority=Priority(v.priority),
        carers_required=v.carers_required,
        pinned_staff=pinned,
        allowed_staff=allowed,
        preferred_staff=frozenset(client.preferred_staff),
        depends_on=None if dep is None else Dependency(dep.visit, dep.min_gap_s, dep.max_gap_s),
        geocoded=location is not None,
    )


def _solve(problem: Problem, options: SolveOptions, now: int = 0) -> tuple[Problem, Plan]:
    if (problem.fixed or now > 0) and problem.shifts:
        return _solve_around_facts(problem, options, now)
    if problem.visits and problem.shifts:
        return problem, solve(problem, options)
    ids = [v.id for v in problem.visits]
    plan = Plan(routes=(), unassigned=explain_unassigned(problem, (), ids))
    return problem, replace(plan, kpis=compute_kpis(problem, plan))


def _solve_around_facts(problem: Problem, options: SolveOptions, now: int) -> tuple[Problem, Plan]:
    """Plan a day whose started and done visits are facts: they are each carer's frozen past.

    Started and done means reported, or begun in the current version by the plan's ``now``
    (:func:`app.planning.loading.load_plan_input`). The solver cannot be handed such stops as
    fixed jobs: a phone's times to the minute are
    often closer together than the travel matrix allows, and VROOM then cannot keep them. So the
    day is planned the way a re-plan does it (:func:`app.replan.service.replan`): the reported
    visits, in their order, are each carer's frozen prefix, the carer resumes after the last one,
    and the solver plans everything else around them, never before ``now``.
    """
    base = replace(problem, fixed=())
    by_shift: dict[str, list[FixedStop]] = {}
    for f in sorted(problem.fixed, key=lambda f: (f.start, f.end)):
        by_shift.setdefault(f.shift_id, []).append(f)
    shifts = {s.id: s for s in problem.shifts}
    location = {v.id: v.location for v in problem.visits}
    routes = []
    for sid, fixed in by_shift.items():
        shift = shifts[sid]
        first = Stop(StopKind.START, shift.start, shift.start, shift.start, shift.start_location)
        stops = [
            Stop(StopKind.VISIT, f.start, f.start, f.end, location[f.visit_id], f.visit_id)
            for f in fixed
        ]
        stops = _with_past_breaks(shift, [first, *stops], now)
        routes.append(Route(sid, shift.staff_id, shift.profile, tuple(stops)))
    once = {f.visit_id: f for f in sorted(problem.fixed, key=lambda f: f.start, reverse=True)}
    facts = [ActualTimesReported(f.visit_id, f.start, f.end) for f in once.values()]
    result = replan(
        base,
        Plan(routes=tuple(routes), unassigned=()),
        facts,
        now=now,
        freeze_s=0,
        options=options,
        strategy="resolve",
    )
    return result.problem, result.plan


def _with_past_breaks(shift: Shift, stops: list[Stop], now: int) -> list[Stop]:
    """``stops`` with each break that can no longer be taken after them set in a gap between them.

    A day planned afresh at 14:35 keeps the morning's visits as facts; a lunch break whose
    window has passed belongs between them (where the carer had time for it), or the route
    would show a worked day without its break (simulator finding). A break that fits in no gap
    stays out, and the day no longer owes it.
    """
    resume = max(now, stops[-1].end)
    out = list(stops)
    for br in shift.breaks:
        if any(min(w.end, shift.end) - max(w.start, resume) >= br.duration for w in br.windows):
            continue  # still to take: the solver places it
        for i in range(1, len(out) + 1):
            prev = out[i - 1]
            nxt = out[i] if i < len(out) else None
            # The next stop is a reported fact: the carer was there at its start, whatever the
            # matrix says of the trip (phones' times are often closer together than the
            # matrix allows), so the break need only end by then.
            latest = resume if nxt is None else nxt.start
            start = next(
                (
                    max(prev.end, w.start)
                    for w in br.windows
                    if max(prev.end, w.start) + br.duration <= min(w.end, latest)
                ),
                None,
            )
            if start is not None and prev.kind is not StopKind.BREAK:
                end = start + br.duration
                brk = Stop(
                    StopKind.BREAK,
                    prev.end,
                    start,
                    end,
                    prev.location,
                    break_id=br.id,
                    waiting=start - prev.end,
                )
                out.insert(i, brk)
                break
    return out


def _name_unreachable(problem: Problem, plan: Plan, unreachable: Mapping[str, str]) -> Plan:
    """Say which client's location is the problem in every unreachable visit's detail."""
    if not unreachable:
        return plan
    client_of = {v.id: v.client_id for v in problem.visits}
    out = []
    for u in plan.unassigned:
        client = client_of.get(u.visit_id, "")
        if client in unreachable and u.reason in (
            UnassignedReason.UNREACHABLE,
            UnassignedReason.WINDOW_UNREACHABLE,
            UnassignedReason.OTHER,
        ):
            detail = f"Client {client}'s location is {unreachable[client]}."
            u = Unassigned(u.visit_id, UnassignedReason.UNREACHABLE, detail)
        out.append(u)
    fixed = replace(plan, unassigned=tuple(out))
    return replace(fixed, kpis=compute_kpis(problem, fixed))


def route_geometry(
    region: Region, problem: Problem, plan: Plan
) -> tuple[dict[str, Any], list[str]]:
    """``{shift_id: [[lon, lat], ...]}`` along the roads of each route, and warnings."""
    out: dict[str, Any] = {}
    warnings: list[str] = []
    for route in plan.routes:
        locs = [s.location for s in route.stops if s.location is not None]
        pts = [problem.locations[i] for i in locs]
        path = [p for p in pts if p is not None]
        if len(path) < 2:
            continue
        try:
            coords = region.geometry(route.profile, path)
        except NoRoute:
            warnings.append(f"No road geometry for shift {route.shift_id}.")
            continue
        out[route.shift_id] = [[round(x, 6), round(y, 6)] for x, y in coords]
    return out, warnings


def _blocked_docs(inp: PlanInput) -> list[dict[str, Any]]:
    """Visits left out because their client is unavailable during every usable window."""
    return [
        {
            "visit": v.external_id,
            "client": v.client,
            "reason": UnassignedReason.WINDOW_UNREACHABLE.value,
            "detail": "the client is unavailable during every window long enough for the visit",
        }
        for v in inp.visits
        if v.blocked
    ]


def compute_plan(inp: PlanInput, region: Region, options: PlanOptions) -> PlanResult:
    """Build, solve, validate and draw one district day.

    Parameters
    ----------
    inp
        The day's data (see :func:`app.planning.loading.load_plan_input`).
    region
        The loaded region (matrices, geometry).
    options
        Solver knobs.

    Returns
    -------
    PlanResult
        Routes, unassigned visits with reasons, KPIs, the problem document and geometry.

    Raises
    ------
    PlanNotValid
        The independent validator found a broken hard rule (a solver bug; nothing is stored).
    """
    t0 = time.perf_counter()
    built = build_problem(inp, region)
    problem = built.problem
    t1 = time.perf_counter()
    problem, plan = _solve(problem, solve_options(options), inp.now_s)
    plan = _name_unreachable(problem, plan, built.unreachable_clients)
    t2 = time.perf_counter()
    violations = validate(problem, plan)
    if violations and all(v.kind is ViolationKind.PRIORITY for v in violations):
        # A day planned around its facts can leave a mandatory visit out where an optional one
        # holds its place (simulator: a fresh whole-day plan failed as a job); swap them.
        plan = prefer_mandatory(problem, plan)
        violations = validate(problem, plan)
    if violations:
        shown = "; ".join(f"{v.kind.value}: {v.message}" for v in violations[:5])
        msg = f"the solver's plan breaks {len(violations)} hard rule(s): {shown}"
        raise PlanNotValid(msg, violations)
    geometry: dict[str, Any] = {}
    warnings = list(built.warnings)
    if options.geometry:
        geometry, more = route_geometry(region, problem, plan)
        warnings += more
    t3 = time.perf_counter()
    visits = sum(1 for r in plan.routes for s in r.stops if s.kind is StopKind.VISIT)
    log.info(
        "district %s planned: %d visit stops, %d unassigned, build %.2f s, solve %.2f s",
        inp.district_id,
        visits,
        len(plan.unassigned),
        t1 - t0,
        t2 - t1,
    )
    return PlanResult(
        routes=codec.routes_to_doc(problem, plan),
        unassigned=codec.unassigned_to_doc(problem, plan) + _blocked_docs(inp),
        kpis=dict(plan.kpis),
        problem=codec.problem_to_doc(problem),
        geometry=geometry,
        solve_time_s=round(plan.solve_time_s, 3),
        timings={"build_s": t1 - t0, "solve_s": t2 - t1, "geometry_s": t3 - t2},
        warnings=tuple(warnings),
    )
