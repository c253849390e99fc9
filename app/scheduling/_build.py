"""Translate a :class:`Problem` into a VROOM input (only this module and the solver know VROOM).

Mapping (see docs/decisions/scheduling-*.md):

- one VROOM *job* per carer a visit needs (a double-staffed visit becomes two jobs, "copies");
  a job's VROOM time windows are windows on the *start* of service, so a model window
  ``[start, end]`` becomes ``[start, end - duration]``; mandatory visits get priority 100,
  optional ones 2, and VROOM compares the priority sum before anything else; when re-planning,
  a visit whose carer dropped out (``Problem.orphaned``) ranks one lower and a visit the
  current plan left unassigned (``Problem.previously_unassigned``) two lower, so a re-plan
  never swaps a planned visit out for either one-for-one;
- a warm start (``Problem.initial_routes``, or the previous coupling round) becomes each
  vehicle's ``steps``: VROOM starts its search from these routes;
- one VROOM *vehicle* per shift, with its working window, breaks, start/end, max visits, max
  travel time and capacity;
- competences, hard allowed teams, pinned carers and the solver's own per-round restrictions
  ("this copy on that shift", "not on that shift") become *skills*;
- soft continuity and re-plan stability become per-shift *cost matrices*: entering a location
  whose visits are not "this staff member's" costs ``penalty`` seconds more than the travel time.
  Visits are grouped into internal locations by (problem location, preferred staff, current
  shift), so two clients in one building with different preferred carers never share a cost
  column. Shifts whose penalty vectors are equal share one VROOM profile;
- costs are fitted to VROOM's uint32 cost bound (:func:`fit_cost_bound`, see
  docs/decisions/scheduling-cost-bound.md): an arc the durations forbid (``UNREACHABLE``) costs
  just more than every allowed arc instead of 10^7, and a day too large for the bound has all
  costs divided by one common factor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import vroom

from app.domain import UNREACHABLE
from app.scheduling.errors import InvalidProblem
from app.scheduling.model import Priority, Problem, SolveOptions, TimeWindow

#: Upper bound for a penalty so that travel + penalty stays far inside uint32.
MAX_PENALTY_S = 1_000_000
MANDATORY_PRIORITY = 100
OPTIONAL_PRIORITY = 2

#: VROOM adds its solution-cost bound in uint32 and refuses the input past this value.
VROOM_COST_LIMIT = 2**32 - 1

U32 = npt.NDArray[np.uint32]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One VROOM job: one carer's part of a visit, with the solver's current restrictions."""

    visit_index: int
    copy: int
    #: Windows on the start of service (already shortened by the duration).
    start_windows: tuple[tuple[int, int], ...]
    service: int
    only_shift: int | None = None
    not_shift: int | None = None


@dataclass(slots=True)
class BuiltInput:
    """The VROOM input and what is needed to read its solution back."""

    input: vroom.Input
    jobs: Sequence[JobSpec]
    internal_locations: list[int] = field(default_factory=list)


def start_windows(windows: Iterable[TimeWindow], duration: int) -> tuple[tuple[int, int], ...]:
    """Windows on the start of a task that must start and end inside one of ``windows``.

    Parameters
    ----------
    windows
        Model windows (start and end of the task both inside one window).
    duration
        Task duration in seconds.

    Returns
    -------
    tuple of (int, int)
        Non-empty start windows, sorted; windows too short for the task are dropped.
    """
    out = sorted((w.start, w.end - duration) for w in windows if w.end - duration >= w.start)
    return tuple(out)


def intersect(
    windows: Sequence[tuple[int, int]], lo: int, hi: int | None
) -> tuple[tuple[int, int], ...]:
    """Intersect start windows with ``[lo, hi]`` (``hi`` None = unbounded)."""
    out = []
    for a, b in windows:
        a2, b2 = max(a, lo), b if hi is None else min(b, hi)
        if a2 <= b2:
            out.append((a2, b2))
    return tuple(out)


def _to_u32(matrix: npt.NDArray[np.int64], what: str) -> U32:
    if matrix.size and (int(matrix.min()) < 0 or int(matrix.max()) > np.iinfo(np.uint32).max):
        msg = f"{what} holds values outside the uint32 range VROOM accepts"
        raise InvalidProblem(msg)
    return matrix.astype(np.uint32)


def _cost_bound(costs: I64, jobs: I64, starts: I64, ends: I64) -> int:
    """VROOM's bound of a solution's cost under ``costs`` (``Input::check_cost_bound``).

    The sum over jobs of the largest cost leaving (or, whichever is larger, entering) the job's
    location, plus the largest cost leaving each vehicle's start and entering each vehicle's end.
    VROOM sums it in uint32 and refuses the input ("Too high cost values") on overflow.
    """
    # int64 cannot overflow here: entries are below 2^31 and a day has far fewer than 2^32 jobs.
    row_max = costs.max(axis=1)
    col_max = costs.max(axis=0)
    jobs_bound = max(int(row_max[jobs].sum()), int(col_max[jobs].sum()))
    return jobs_bound + int(row_max[starts].sum()) + int(col_max[ends].sum())


@dataclass(frozen=True, slots=True)
class CostScale:
    """How travel and penalties become the costs VROOM gets (see :func:`fit_cost_bound`)."""

    #: Cost of an arc the durations forbid (``UNREACHABLE``), before the division.
    forbidden_cost: int
    #: Common divisor of every cost (1 = none).
    factor: int = 1

    def costs(self, durations: I64, penalty: I64) -> I64:
        """The cost matrix of a profile: travel plus the penalty of entering each location."""
        c = durations + penalty[None, :]
        c[durations >= UNREACHABLE] = self.forbidden_cost
        np.fill_diagonal(c, 0)
        return c if self.factor == 1 else -(-c // self.factor)


def fit_cost_bound(
    profiles: Mapping[str, tuple[I64, I64]],
    job_locations: Sequence[int],
    vehicle_starts: Sequence[int],
    vehicle_ends: Sequence[int],
) -> CostScale:
    """Cost scaling that VROOM accepts and that ranks allowed arcs as travel + penalty does.

    Parameters
    ----------
    profiles
        Profile -> (durations over the input's locations, penalty per entered location). The
        durations forbid a pair at ``UNREACHABLE`` (no shift is that long), so its cost only has
        to exceed every allowed arc's.
    job_locations
        The location of every VROOM job (a location counts once per job).
    vehicle_starts, vehicle_ends
        Start and end locations of the vehicles that have one (every profile's bound counts
        every vehicle).

    Returns
    -------
    CostScale
        Forbidden arcs cost one more than the dearest allowed arc of all profiles; if a
        profile's bound then still exceeds :data:`VROOM_COST_LIMIT`, every cost of every profile
        is divided by one common factor, rounded up (a positive cost stays positive, costs of
        different profiles stay comparable). A day within the bound keeps its costs.

    Raises
    ------
    InvalidProblem
        Not even the scaled costs fit (about 2^32 jobs and route ends).
    """
    jobs = np.asarray(job_locations, dtype=np.intp)
    starts = np.asarray(vehicle_starts, dtype=np.intp)
    ends = np.asarray(vehicle_ends, dtype=np.intp)
    # One profile's matrix at a time: a large day has one profile per carer.
    allowed_max = 0
    for durations, penalty in profiles.values():
        c = durations + penalty[None, :]
        np.fill_diagonal(c, 0)
        allowed = durations < UNREACHABLE
        if allowed.any():
            allowed_max = max(allowed_max, int(c[allowed].max()))
    scale = CostScale(forbidden_cost=allowed_max + 1)
    worst = max(
        (_cost_bound(scale.costs(d, p), jobs, starts, ends) for d, p in profiles.values()),
        default=0,
    )
    if worst <= VROOM_COST_LIMIT:
        return scale
    terms = len(jobs) + len(starts) + len(ends)
    # Rounding up adds at most one per summed term: leave room for it.
    factor = -(-worst // max(VROOM_COST_LIMIT - terms, 1))
    scale = CostScale(forbidden_cost=allowed_max + 1, factor=factor)
    for d, p in profiles.values():
        if _cost_bound(scale.costs(d, p), jobs, starts, ends) > VROOM_COST_LIMIT:
            msg = f"the day is too large for VROOM's cost bound ({terms} jobs and route ends)"
            raise InvalidProblem(msg)
    return scale


class _Skills:
    def __init__(self) -> None:
        self.ids: dict[tuple[str, object], int] = {}

    def get(self, kind: str, key: object) -> int:
        k = (kind, key)
        if k not in self.ids:
            self.ids[k] = len(self.ids)
        return self.ids[k]


def effective_allowed(problem: Problem, visit_index: int) -> frozenset[str] | None:
    """Staff ids allowed to do a visit (allowed team intersected with the pinned carer)."""
    v = problem.visits[visit_index]
    allowed = v.allowed_staff
    if v.pinned_staff is not None:
        allowed = frozenset({v.pinned_staff}) & (
            allowed if allowed is not None else {v.pinned_staff}
        )
    return allowed


def build_input(
    problem: Problem,
    jobs: Sequence[JobSpec],
    options: SolveOptions,
    initial: Mapping[int, Sequence[tuple[str, int]]] | None = None,
) -> BuiltInput:
    """Build the VROOM input for ``jobs`` on all shifts of ``problem``.

    Parameters
    ----------
    problem
        The (already checked) problem.
    jobs
        The jobs to offer; job id ``k`` in VROOM is ``jobs[k]``.
    options
        Penalties are read from here.
    initial
        Warm start: shift index -> steps in route order, ``("job", job id)`` or
        ``("break", index into the shift's breaks)``, passed as the vehicle's ``steps``. The
        caller makes sure each route is feasible (VROOM refuses an infeasible one).

    Returns
    -------
    BuiltInput
        The input plus the job list and the internal-to-problem location map.
    """
    cp, sp = options.continuity_penalty_s, options.stability_penalty_s
    for name, value in (("continuity_penalty_s", cp), ("stability_penalty_s", sp)):
        if not 0 <= value <= MAX_PENALTY_S:
            msg = f"{name} must lie in [0, {MAX_PENALTY_S}], got {value}"
            raise InvalidProblem(msg)

    # Internal locations: (problem location, preferred set, current shift) -> internal index.
    sig_index: dict[tuple[int, frozenset[str], str | None], int] = {}
    internal: list[int] = []

    def loc_of(loc: int, pref: frozenset[str], cur: str | None) -> int:
        key = (loc, pref, cur)
        if key not in sig_index:
            sig_index[key] = len(internal)
            internal.append(loc)
        return sig_index[key]

    shift_start: list[int | None] = []
    shift_end: list[int | None] = []
    for s in problem.shifts:
        shift_start.append(
            None if s.start_location is None else loc_of(s.start_location, frozenset(), None)
        )
        shift_end.append(
            None if s.end_location is None else loc_of(s.end_location, frozenset(), None)
        )
    job_loc: list[int] = []
    for j in jobs:
        v = problem.visits[j.visit_index]
        pref = v.preferred_staff if cp > 0 else frozenset()
        cur = problem.current_assignment.get(v.id) if sp > 0 else None
        job_loc.append(loc_of(v.location, pref, cur))
    sigs = sorted(sig_index.items(), key=lambda kv: kv[1])

    skills = _Skills()
    allowed_sets: set[frozenset[str]] = set()
    excluded: set[int] = set()
    vroom_jobs: list[vroom.Job] = []
    use_capacity = any(s.capacity is not None for s in problem.shifts) or any(
        v.demand for v in problem.visits
    )
    for k, j in enumerate(jobs):
        v = problem.visits[j.visit_index]
        req = {skills.get("comp", c) for c in v.competences}
        allowed = effective_allowed(problem, j.visit_index)
        if allowed is not None:
            allowed_sets.add(allowed)
            req.add(skills.get("allowed", allowed))
        if j.only_shift is not None:
            req.add(skills.get("shift", j.only_shift))
        if j.not_shift is not None:
            excluded.add(j.not_shift)
            req.add(skills.get("not", j.not_shift))
        prio = MANDATORY_PRIORITY if v.priority is Priority.MANDATORY else OPTIONAL_PRIORITY
        if v.id in problem.orphaned:
            prio -= 1
        elif v.id in problem.previously_unassigned:
            prio -= 2
        extra = {"delivery": [v.demand]} if use_capacity else {}
        vroom_jobs.append(
            vroom.Job(
                k,
                location=job_loc[k],
                default_service=j.service,
                time_windows=[vroom.TimeWindow(a, b) for a, b in j.start_windows],
                skills=req,
                priority=prio,
                **extra,
            )
        )

    # Profiles: one per (mode, penalty vector).
    n = len(internal)
    idx = np.asarray(internal, dtype=np.intp)
    profiles: dict[tuple[str, bytes], str] = {}
    profile_pen: dict[str, npt.NDArray[np.int64]] = {}
    shift_profile: list[str] = []
    for s in problem.shifts:
        pen = np.zeros(n, dtype=np.int64)
        if cp or sp:
            for (_, pref, cur), i in sigs:
                if cp and pref and s.staff_id not in pref:
                    pen[i] += cp
                if sp and cur is not None and cur != s.id:
                    pen[i] += sp
        key = (s.profile, pen.tobytes())
        if key not in profiles:
            profiles[key] = f"{s.profile}#{len(profiles)}"
            profile_pen[profiles[key]] = pen
        shift_profile.append(profiles[key])

    inp = vroom.Input()
    base: dict[str, I64] = {}
    for mode, _ in profiles:
        if mode not in base:
            m = problem.matrices[mode].durations
            base[mode] = np.minimum(m[np.ix_(idx, idx)].astype(np.int64), UNREACHABLE)
    scale = fit_cost_bound(
        {name: (base[mode], profile_pen[name]) for (mode, _), name in profiles.items()},
        job_loc,
        [i for i in shift_start if i is not None],
        [i for i in shift_end if i is not None],
    )
    for (mode, _), name in profiles.items():
        inp.set_durations_matrix(name, _to_u32(base[mode], f"{mode} durations"))
        costs = scale.costs(base[mode], profile_pen[name])
        inp.set_costs_matrix(name, _to_u32(costs, f"{mode} costs"))

    total_demand = sum(v.demand for v in problem.visits)
    for si, s in enumerate(problem.shifts):
        have = {skills.get("comp", c) for c in s.competences if ("comp", c) in skills.ids}
        have |= {skills.get("allowed", a) for a in allowed_sets if s.staff_id in a}
        if ("shift", si) in skills.ids:
            have.add(skills.ids[("shift", si)])
        have |= {skills.get("not", x) for x in excluded if x != si}
        vbreaks = []
        for bi, b in enumerate(s.breaks):
            bw = start_windows(b.windows, b.duration)
            if not bw:
                msg = f"break {b.id!r} of shift {s.id!r} fits in none of its windows"
                raise InvalidProblem(msg)
            vbreaks.append(
                vroom.Break(
                    bi, time_windows=[vroom.TimeWindow(a, c) for a, c in bw], service=b.duration
                )
            )
        kwargs: dict[str, object] = {}
        if s.max_visits is not None:
            kwargs["max_tasks"] = s.max_visits
        if s.max_travel_time is not None:
            kwargs["max_travel_time"] = s.max_travel_time
        if use_capacity:
            kwargs["capacity"] = [s.capacity if s.capacity is not None else total_demand]
        if initial and initial.get(si):
            kwargs["steps"] = [
                vroom.VehicleStep("start"),
                *(
                    vroom.VehicleStep("single" if kind == "job" else "break", k)
                    for kind, k in initial[si]
                ),
                vroom.VehicleStep("end"),
            ]
        inp.add_vehicle(
            vroom.Vehicle(
                si,
                start=shift_start[si],
                end=shift_end[si],
                profile=shift_profile[si],
                skills=have,
                time_window=vroom.TimeWindow(s.start, s.end),
                breaks=vbreaks,
                **kwargs,
            )
        )
    inp.add_job(vroom_jobs)
    return BuiltInput(input=inp, jobs=jobs, internal_locations=internal)
