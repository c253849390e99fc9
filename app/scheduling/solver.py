"""Solve a :class:`Problem` into a :class:`Plan`: VROOM rounds, decode, repair, explain, figures.

Double-staffed visits and dependencies are not VROOM features; they are enforced here by
*coupling rounds* (see docs/decisions/scheduling-double-visits-and-dependencies.md):

1. solve with every carer's part of a visit as its own job;
2. read the starts; for every double visit whose two parts are not on two different shifts at the
   same start, and every dependency whose gap is off, pin the parts in place (start window of one
   instant, shift restriction by skill) or narrow the dependent visit's windows, then solve again;
3. after the last round, the independent validator decides: whatever still breaks a rule is taken
   out of its route (the remaining stops keep their start times, so no other rule can break) and
   reported unassigned with the reason.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from app.scheduling._build import JobSpec, build_input, intersect, start_windows
from app.scheduling._timing import insertion_fits, travel
from app.scheduling.errors import FixedStopConflict, InvalidProblem, SolverFailed
from app.scheduling.explain import explain_unassigned
from app.scheduling.kpis import compute_kpis
from app.scheduling.model import (
    FixedStop,
    Plan,
    Priority,
    Problem,
    Route,
    SolveOptions,
    Stop,
    StopKind,
    TimeWindow,
    Unassigned,
    UnassignedReason,
    Visit,
    pending_plan,
)
from app.scheduling.validate import ViolationKind, validate

#: Step of a decoded route: (kind, visit index or break index, planned start).
_Step = tuple[StopKind, int, int]


@dataclass(slots=True)
class _RoundResult:
    steps: dict[int, list[_Step]]
    start_time: dict[int, int]
    #: job index -> (shift index, start)
    placed: dict[int, tuple[int, int]]


def check_problem(problem: Problem, options: SolveOptions) -> None:
    """Raise :class:`InvalidProblem` when the problem or the options are malformed.

    Parameters
    ----------
    problem
        The problem to check.
    options
        The solver options to check.
    """
    if options.time_limit_s <= 0:
        msg = f"time_limit_s must be positive, got {options.time_limit_s}"
        raise InvalidProblem(msg)
    if not 1 <= options.exploration_level <= 5:
        msg = f"exploration_level must lie in [1, 5], got {options.exploration_level}"
        raise InvalidProblem(msg)
    if options.threads < 1:
        msg = f"threads must be at least 1, got {options.threads}"
        raise InvalidProblem(msg)
    if options.coupling_rounds < 1:
        msg = f"coupling_rounds must be at least 1, got {options.coupling_rounds}"
        raise InvalidProblem(msg)
    visit_ids = [v.id for v in problem.visits]
    if len(set(visit_ids)) != len(visit_ids):
        msg = "visit ids must be unique"
        raise InvalidProblem(msg)
    shift_ids = [s.id for s in problem.shifts]
    if len(set(shift_ids)) != len(shift_ids):
        msg = "shift ids must be unique"
        raise InvalidProblem(msg)
    sizes = {name: m.size for name, m in problem.matrices.items()}
    for s in problem.shifts:
        if s.profile not in sizes:
            msg = f"shift {s.id!r} uses profile {s.profile!r} that has no matrix"
            raise InvalidProblem(msg)
        if s.end < s.start:
            msg = f"shift {s.id!r} ends before it starts"
            raise InvalidProblem(msg)
        for loc in (s.start_location, s.end_location):
            if loc is not None and not 0 <= loc < sizes[s.profile]:
                msg = f"shift {s.id!r} location {loc} is outside its matrix"
                raise InvalidProblem(msg)
    smallest = min(sizes.values(), default=0)
    for v in problem.visits:
        if v.carers_required not in (1, 2):
            msg = f"visit {v.id!r}: carers_required must be 1 or 2, got {v.carers_required}"
            raise InvalidProblem(msg)
        if v.duration < 0 or v.demand < 0:
            msg = f"visit {v.id!r}: duration and demand must not be negative"
            raise InvalidProblem(msg)
        if v.geocoded and not 0 <= v.location < smallest:
            msg = f"visit {v.id!r} location {v.location} is outside the matrices"
            raise InvalidProblem(msg)
    known = set(visit_ids)
    per_visit: dict[str, int] = {}
    shift_set = set(shift_ids)
    for f in problem.fixed:
        if f.visit_id not in known or f.shift_id not in shift_set:
            msg = f"fixed stop refers to unknown visit {f.visit_id!r} or shift {f.shift_id!r}"
            raise InvalidProblem(msg)
        if f.end < f.start:
            msg = f"fixed stop of visit {f.visit_id!r} ends before it starts"
            raise InvalidProblem(msg)
        per_visit[f.visit_id] = per_visit.get(f.visit_id, 0) + 1
    for v in problem.visits:
        if per_visit.get(v.id, 0) > v.carers_required:
            msg = f"visit {v.id!r} has more fixed stops than carers"
            raise InvalidProblem(msg)


def solve(problem: Problem, options: SolveOptions | None = None) -> Plan:
    """Plan every visit that can be planned without breaking a hard rule.

    Parameters
    ----------
    problem
        Visits, shifts, matrices and (for re-planning) current assignment and fixed stops.
    options
        Time limit, exploration level, threads and the continuity / stability penalties.

    Returns
    -------
    Plan
        Routes of the used shifts (shifts without any visit are left out), every other visit
        unassigned with a reason found by checking, and the KPIs of :func:`compute_kpis`.

    Raises
    ------
    InvalidProblem
        When the problem or the options are malformed.
    FixedStopConflict
        When the fixed stops cannot all be kept.
    """
    opts = options or SolveOptions()
    t0 = time.perf_counter()
    check_problem(problem, opts)
    # The post-optimisation's seconds come out of the time limit (at most half of it). With
    # linked visits or soft windows the attempts stop at ``settle`` once every visit is planned
    # (what is left to gain is lateness and travel): the coupled search gets the rest.
    search_end = t0 + opts.time_limit_s - min(opts.improve_s, opts.time_limit_s / 2)
    settle = search_end
    if opts.improve_s > 0 and _coupled(problem):
        settle = min(search_end, t0 + opts.time_limit_s * _ATTEMPT_SHARE)
    routes, unassigned = _search(problem, opts, t0, (settle, search_end), t0 + opts.time_limit_s)
    plan = Plan(routes=routes, unassigned=unassigned)
    elapsed = time.perf_counter() - t0
    return replace(plan, kpis=compute_kpis(problem, plan), solve_time_s=elapsed)


#: Share of the time limit for the attempts when the coupled search follows them.
_ATTEMPT_SHARE = 0.25


def _coupled(problem: Problem) -> bool:
    """Whether the problem has linked visits or soft windows (the coupled search's domain)."""
    return any(
        v.depends_on is not None or v.carers_required == 2 or v.due is not None
        for v in problem.visits
    )


#: Attempts in a row without a better plan after which the search stops.
_MAX_STALE = 12
#: Share of the time limit the first attempt may use when later attempts may follow.
_FIRST_SHARE = 0.5
#: Reasons for which another attempt may still place a visit (the others are facts).
_RETRY_REASONS = frozenset(
    {
        UnassignedReason.CAPACITY,
        UnassignedReason.ROUTES_FULL,
        UnassignedReason.OTHER,
        UnassignedReason.SECOND_CARER_UNAVAILABLE,
        UnassignedReason.DEPENDENCY_UNSATISFIED,
    }
)


def _late_fill(
    problem: Problem, found: tuple[tuple[Route, ...], tuple[Unassigned, ...]]
) -> tuple[tuple[Route, ...], tuple[Unassigned, ...]] | None:
    """Visits left out placed at their cheapest start the hard windows allow (lateness costs).

    The routes keep their stops and times; returns None when nothing could be added.
    """
    from app.scheduling.linked import empty_routes, fill_linked

    fixed_end = {(f.visit_id, f.shift_id): f.end for f in problem.fixed}

    def retime(si: int, depart: int, steps: Sequence[_Step]) -> Route:
        return _timed_route(problem, si, depart, steps, fixed_end)

    routes = list(found[0])
    before = {vid for r in routes for vid in r.visit_ids}
    extra = empty_routes(problem, routes, retime)
    filled = fill_linked(problem, [*routes, *extra.values()], retime, late=True)
    out = tuple(r for r in filled if r.visit_ids)
    assigned = {vid for r in out for vid in r.visit_ids}
    if assigned == before:
        return None
    hints = {u.visit_id: u.reason for u in found[1]}
    out = _both_or_neither(problem, out, hints)
    assigned = {vid for r in out for vid in r.visit_ids}
    left = [v.id for v in problem.visits if v.id not in assigned]
    return out, explain_unassigned(problem, out, left, hints=hints)


def _anchor(
    problem: Problem,
    index: Mapping[str, int],
    jobs: dict[tuple[int, int], JobSpec],
    focus: frozenset[str],
    rng: random.Random,
) -> None:
    """Pin linked visits of ``focus`` to a drawn start before VROOM sees them.

    A double visit gets both copies at one drawn start; a dependency pair gets the first visit
    at a drawn start and the dependent one narrowed to ``[start + min_gap, start + max_gap]``.
    The coupling rounds then proceed as usual; a draw that leaves no room is not applied.
    """

    def draw(wins: Sequence[tuple[int, int]]) -> int:
        a, b = rng.choice(list(wins))
        return rng.randint(a, b)

    for vi, v in enumerate(problem.visits):
        keys = [(vi, c) for c in range(v.carers_required) if (vi, c) in jobs]
        dep = v.depends_on
        if dep is not None and dep.visit_id in index:
            xi = index[dep.visit_id]
            if v.id not in focus and dep.visit_id not in focus:
                continue
            xkeys = [(xi, c) for c in range(problem.visits[xi].carers_required) if (xi, c) in jobs]
            if not keys or not xkeys or any(jobs[k].only_shift is not None for k in xkeys):
                continue
            for _ in range(8):
                t = draw(jobs[xkeys[0]].start_windows)
                hi = None if dep.max_gap is None else t + dep.max_gap
                narrowed = {k: intersect(jobs[k].start_windows, t + dep.min_gap, hi) for k in keys}
                if all(narrowed.values()) and all(
                    intersect(jobs[k].start_windows, t, t) for k in xkeys
                ):
                    for k in xkeys:
                        jobs[k] = replace(jobs[k], start_windows=((t, t),))
                    for k, wins in narrowed.items():
                        jobs[k] = replace(jobs[k], start_windows=wins)
                    break
        elif v.carers_required == 2 and v.id in focus and len(keys) == 2:
            if any(jobs[k].only_shift is not None for k in keys):
                continue
            t = draw(jobs[keys[0]].start_windows)
            if intersect(jobs[keys[1]].start_windows, t, t):
                for k in keys:
                    jobs[k] = replace(jobs[k], start_windows=((t, t),))


def _preferred(problem: Problem, slack: Mapping[str, int]) -> Problem:
    """The problem with each soft window made hard at ``due + slack`` (inside the hard windows)."""
    visits = []
    for v in problem.visits:
        if v.due is None:
            visits.append(v)
            continue
        last_end = v.due + slack.get(v.id, 0) + v.duration
        wins = tuple(
            TimeWindow(w.start, min(w.end, last_end)) for w in v.windows if w.start <= last_end
        )
        if not v.windows:
            wins = (TimeWindow(0, last_end),)
        visits.append(replace(v, windows=wins or v.windows[:1], due=None))
    return replace(problem, visits=tuple(visits))


def _search(
    problem: Problem,
    opts: SolveOptions,
    t0: float,
    deadlines: tuple[float, float],
    end: float,
) -> tuple[tuple[Route, ...], tuple[Unassigned, ...]]:
    """Attempts until nothing is left to gain or the time limit, then post-optimisation.

    Attempt 1 treats every soft window (:attr:`Visit.due`) as hard. While visits are left out
    for a reason another attempt may overcome (capacity, second carer, dependency, solver), or
    visits start late, and time remains, another attempt runs: visits with a due time that were
    left out (and the visits linked to them) may start later, by a slack that doubles per
    attempt (a quarter of their preferred window first, never beyond their hard windows), and
    VROOM sees the jobs in another, seeded order (deterministic for a given input). The best
    plan wins: most mandatory visits, most visits, least lateness + travel. Every attempt's
    windows lie inside the hard ones, so every plan keeps the hard rules of ``problem``. The
    post-optimisation (``improve_s``, until ``end``) then runs once on the best plan.

    ``deadlines`` is ``(settle, deadline)``: attempts run until ``deadline``, but stop at
    ``settle`` once no visit is left out (with linked visits or soft windows ``settle`` is a
    quarter of the time limit, and the coupled search of :mod:`app.scheduling.coupled` then
    uses the time up to ``end`` on lateness and travel).
    """
    by_id = {v.id: v for v in problem.visits}
    linked: dict[str, set[str]] = {}
    for v in problem.visits:
        if v.depends_on is not None and v.depends_on.visit_id in by_id:
            linked.setdefault(v.id, set()).add(v.depends_on.visit_id)
            linked.setdefault(v.depends_on.visit_id, set()).add(v.id)
    retry_possible = bool(linked) or any(
        v.due is not None or v.carers_required == 2 for v in problem.visits
    )

    def room(v: Visit) -> int:
        hard_last = max((w.end - v.duration for w in v.windows), default=2**31 - 1)
        return max(0, hard_last - (v.due or 0))

    def lateness(routes: Sequence[Route]) -> int:
        return sum(
            max(0, s.start - due)
            for r in routes
            for s in r.stops
            if s.visit_id in by_id and (due := by_id[s.visit_id].due) is not None
        )

    def max_late(routes: Sequence[Route]) -> int:
        return max(
            (
                max(0, s.start - due)
                for r in routes
                for s in r.stops
                if s.visit_id in by_id and (due := by_id[s.visit_id].due) is not None
            ),
            default=0,
        )

    def score(routes: Sequence[Route]) -> tuple[int, int, int]:
        planned = {vid for r in routes for vid in r.visit_ids}
        mandatory = sum(1 for vid in planned if by_id[vid].priority is Priority.MANDATORY)
        travel_s = sum(s.travel_time for r in routes for s in r.stops)
        return (mandatory, len(planned), -(lateness(routes) + max_late(routes) + travel_s))

    def width(v: Visit) -> int:
        return max(60, (v.due or 0) - min((w.start for w in v.windows), default=v.due or 0))

    def slack_at(f: float) -> dict[str, int]:
        return {v.id: min(room(v), int(width(v) * f)) for v in problem.visits if v.due is not None}

    def complete(found: tuple[tuple[Route, ...], tuple[Unassigned, ...]]) -> bool:
        return not any(u.reason in _RETRY_REASONS for u in found[1])

    soft = any(v.due is not None for v in problem.visits)
    work = _preferred(problem, {})
    settle, deadline = deadlines
    first_end = t0 + (deadline - t0) * (_FIRST_SHARE if retry_possible else 1.0)
    if settle < deadline:
        first_end = min(first_end, settle)
    best = _solve_once(problem, work, opts, first_end)
    best_work, best_score = work, score(best[0])

    def consider(cand: tuple[tuple[Route, ...], tuple[Unassigned, ...]], cw: Problem) -> None:
        nonlocal best, best_work, best_score
        if score(cand[0]) > best_score:
            best, best_work, best_score = cand, cw, score(cand[0])
        if soft and not complete(cand):
            filled = _late_fill(problem, cand)
            if filled is not None and score(filled[0]) > best_score:
                best, best_work, best_score = filled, problem, score(filled[0])

    first = best
    consider(best, work)
    # Lateness allowed to every soft visit, as a fraction of its preferred window: grown while
    # visits are left out, then bisected between the largest fraction that left some out and
    # the smallest that planned everything; then more attempts at the best fraction.
    f_ok: float | None = 0.0 if complete(first) else None
    f_fail: float | None = None if complete(first) else 0.0
    f, attempt, stale = 0.0, 0, 0
    while retry_possible and time.perf_counter() < deadline - 0.05:
        routes, unassigned = best
        open_ids = {u.visit_id for u in unassigned if u.reason in _RETRY_REASONS}
        if not open_ids and lateness(routes) == 0:
            break  # nothing left to gain: everything placeable is planned, on time
        if not open_ids and time.perf_counter() >= settle:
            break  # everything placeable is planned: the coupled search takes it from here
        attempt += 1
        probing = True
        if not soft:
            probing = False
        elif f_ok is None:
            f = max(0.125, 2 * f)
        elif f_fail is not None and f_ok - f_fail > 1 / 64:
            f = (f_ok + f_fail) / 2
        else:
            f, probing = f_ok, False
        late_ids = {
            s.visit_id
            for r in routes
            for s in r.stops
            if s.visit_id in by_id and (due := by_id[s.visit_id].due) is not None and s.start > due
        }
        slack = slack_at(f) if soft else {}
        if soft and not probing and attempt % 2 == 0:
            # Every other attempt: lateness only where the best plan needed it.
            need = open_ids | late_ids
            need |= {o for x in need for o in linked.get(x, ())}
            slack = {vid: sl for vid, sl in slack.items() if vid in need}
        work = _preferred(problem, slack) if soft else problem
        left = deadline - time.perf_counter()
        stop_at = time.perf_counter() + max(left * 0.5, min(left, 0.5))
        cand = _solve_once(problem, work, opts, stop_at, attempt, frozenset(open_ids | late_ids))
        before = best_score
        if probing:
            if complete(cand):
                f_ok = f if f_ok is None else min(f_ok, f)
            else:
                f_fail = f if f_fail is None else max(f_fail, f)
        consider(cand, work)
        stale = 0 if best_score > before else stale + 1
        if stale >= _MAX_STALE:
            break  # nothing gained for a while: what is left out is very likely a fact
    routes, unassigned = best
    coupled = opts.improve_s > 0 and bool(routes) and settle < deadline
    if opts.improve_s > 0 and routes:  # post-optimisation; keeps the plan if nothing better
        from app.scheduling.improve import improve_routes

        # At least half its seconds, even when decoding under load ate into the limit; a
        # third when the coupled search (which moves every visit) follows.
        budget = opts.improve_s / 3 if coupled else opts.improve_s
        routes = improve_routes(
            best_work,
            routes,
            max(min(budget, end - time.perf_counter()), budget / 2),
            continuity_penalty_s=opts.continuity_penalty_s,
            stability_penalty_s=opts.stability_penalty_s,
        ).routes
    if coupled:
        from app.scheduling.coupled import improve_coupled

        routes = improve_coupled(
            problem,
            routes,
            max(end - time.perf_counter(), opts.improve_s / 2),
            continuity_penalty_s=opts.continuity_penalty_s,
            stability_penalty_s=opts.stability_penalty_s,
        ).routes
        if unassigned:  # moved routes may have room now: fill it, explain what is left
            routes, unassigned = _refill(problem, routes, unassigned)
    return routes, unassigned


def _refill(
    problem: Problem, routes: Sequence[Route], unassigned: Sequence[Unassigned]
) -> tuple[tuple[Route, ...], tuple[Unassigned, ...]]:
    """Visits left out put into gaps of ``routes`` (linked ones both or neither), the rest
    explained again against the routes as they are now."""
    hints = {u.visit_id: u.reason for u in unassigned}
    filled = _fill_linked_visits(problem, _fill_gaps(problem, list(routes)))
    out = _both_or_neither(problem, tuple(r for r in filled if r.visit_ids), hints)
    assigned = {vid for r in out for vid in r.visit_ids}
    left = [v.id for v in problem.visits if v.id not in assigned]
    return out, explain_unassigned(problem, out, left, hints=hints)


def _solve_once(
    problem: Problem,
    work: Problem,
    opts: SolveOptions,
    deadline: float,
    attempt: int = 0,
    focus: frozenset[str] = frozenset(),
) -> tuple[tuple[Route, ...], tuple[Unassigned, ...]]:
    """One full solve of ``work``: coupling rounds, repair, gap filling.

    ``work`` is ``problem`` or a restriction of it (windows narrowed); unassigned visits are
    explained against ``problem``, so reasons are the true ones. ``attempt`` > 0 offers VROOM
    the jobs in an order shuffled with that seed (another search path, same problem) and
    anchors the linked visits of ``focus`` at a start drawn with that seed (:func:`_anchor`).
    """
    original = problem
    problem = work
    index = {v.id: i for i, v in enumerate(problem.visits)}
    shift_index = {s.id: i for i, s in enumerate(problem.shifts)}
    hints: dict[str, UnassignedReason] = {}

    jobs = _initial_jobs(problem, index, shift_index, hints)
    if attempt and focus:
        _anchor(problem, index, jobs, focus, random.Random(attempt))
    couplings = any(
        problem.visits[j.visit_index].carers_required == 2
        or problem.visits[j.visit_index].depends_on is not None
        for j in jobs.values()
    )
    rounds = opts.coupling_rounds if couplings else 1
    result = _RoundResult({}, {}, {})
    # Warm start (re-planning): the current routes first, then each round's own result.
    warm = bool(problem.initial_routes or problem.fixed)
    seed = _initial_order(problem, index, shift_index, jobs) if warm else {}
    for r in range(rounds):
        left = max(deadline - time.perf_counter(), 0.05)
        budget = left * (0.5 if couplings and r == 0 else 1.0 / (rounds - r))
        keys = sorted(jobs)
        if attempt:
            random.Random(attempt).shuffle(keys)
        initial = _feasible_start(problem, jobs, keys, seed) if warm else {}
        result = _solve_round(problem, [jobs[k] for k in keys], opts, budget, initial)
        if warm:
            seed = {
                si: [keys[ref] for kind, ref, _t in st if kind is StopKind.VISIT]
                for si, st in result.steps.items()
            }
        result.placed = {_key_id(keys[k]): p for k, p in result.placed.items()}
        result.steps = {
            si: [(kind, ref if kind is StopKind.BREAK else keys[ref][0], st) for kind, ref, st in s]
            for si, s in result.steps.items()
        }
        if r == rounds - 1 or not _tighten(problem, index, jobs, result.placed, hints):
            break

    routes = _repair(problem, result, hints)
    routes = _fill_gaps(problem, list(routes))
    routes = _fill_linked_visits(problem, routes)
    plan_routes = tuple(r for r in routes if r.visit_ids)
    plan_routes = _both_or_neither(original, plan_routes, hints)
    assigned = {vid for r in plan_routes for vid in r.visit_ids}
    unassigned = explain_unassigned(
        original,
        plan_routes,
        [v.id for v in problem.visits if v.id not in assigned],
        hints=hints,
    )
    return plan_routes, unassigned


def _both_or_neither(
    problem: Problem, routes: tuple[Route, ...], hints: dict[str, UnassignedReason]
) -> tuple[Route, ...]:
    """Take out each visit whose ``together`` dependent is not planned (transitively).

    The other stops keep their start times (only arrivals get earlier), so no rule breaks.
    """
    pairs = [
        (v.depends_on.visit_id, v.id)
        for v in problem.visits
        if v.depends_on is not None and v.depends_on.together
    ]
    if not pairs:
        return routes
    fixed_ids = {f.visit_id for f in problem.fixed}
    assigned = {vid for r in routes for vid in r.visit_ids}
    drop: set[str] = set()
    changed = True
    while changed:
        changed = False
        for first, second in pairs:
            live = assigned - drop
            if first in live and second not in live and first not in fixed_ids:
                drop.add(first)
                hints.setdefault(first, UnassignedReason.SECOND_CARER_UNAVAILABLE)
                changed = True
            if second in live and first not in live and second not in fixed_ids:
                drop.add(second)
                hints.setdefault(second, UnassignedReason.DEPENDENCY_UNSATISFIED)
                changed = True
    if not drop:
        return routes
    index = {v.id: i for i, v in enumerate(problem.visits)}
    shift_pos = {s.id: i for i, s in enumerate(problem.shifts)}
    fixed_end = {(f.visit_id, f.shift_id): f.end for f in problem.fixed}
    out = []
    for r in routes:
        if not drop & set(r.visit_ids):
            out.append(r)
            continue
        si = shift_pos[r.shift_id]
        shift = problem.shifts[si]
        steps: list[_Step] = []
        for s in r.stops[1:-1]:
            if s.kind is StopKind.BREAK:
                bi = next(i for i, b in enumerate(shift.breaks) if b.id == s.break_id)
                steps.append((StopKind.BREAK, bi, s.start))
            elif s.visit_id is not None and s.visit_id not in drop:
                steps.append((StopKind.VISIT, index[s.visit_id], s.start))
        kept = _timed_route(problem, si, r.stops[0].start, steps, fixed_end)
        if kept.visit_ids:
            out.append(kept)
    return tuple(out)


def _key_id(key: tuple[int, int]) -> int:
    return key[0] * 2 + key[1]


def _initial_jobs(
    problem: Problem,
    index: Mapping[str, int],
    shift_index: Mapping[str, int],
    hints: dict[str, UnassignedReason],
) -> dict[tuple[int, int], JobSpec]:
    fixed: dict[str, list[FixedStop]] = {}
    for f in problem.fixed:
        fixed.setdefault(f.visit_id, []).append(f)
    jobs: dict[tuple[int, int], JobSpec] = {}
    for vi, v in enumerate(problem.visits):
        if not v.geocoded:
            continue
        dep = v.depends_on
        if dep is not None and dep.visit_id not in index:
            hints[v.id] = UnassignedReason.DEPENDENCY_UNSATISFIED
            continue
        fs = sorted(fixed.get(v.id, []), key=lambda f: f.shift_id)
        for c in range(v.carers_required):
            if c < len(fs):
                f = fs[c]
                jobs[(vi, c)] = JobSpec(
                    vi,
                    c,
                    ((f.start, f.start),),
                    f.end - f.start,
                    only_shift=shift_index[f.shift_id],
                )
                continue
            wins = start_windows(v.windows, v.duration) if v.windows else ((0, 2**31 - 1),)
            not_shift = None
            if fs:
                wins, not_shift = ((fs[0].start, fs[0].start),), shift_index[fs[0].shift_id]
            if dep is not None and dep.visit_id in fixed:
                base = min(f.start for f in fixed[dep.visit_id])
                hi = None if dep.max_gap is None else base + dep.max_gap
                wins = intersect(wins, base + dep.min_gap, hi)
            if not fs:
                wins = intersect(wins, *_day_bounds(problem, vi))
            if wins:
                jobs[(vi, c)] = JobSpec(vi, c, wins, v.duration, not_shift=not_shift)
    _narrow_dependencies(problem, index, jobs, hints)
    return jobs


def _day_bounds(problem: Problem, vi: int) -> tuple[int, int]:
    """Earliest and latest start any qualified shift could give the visit on a direct trip."""
    from app.scheduling.explain import qualified_shifts

    v = problem.visits[vi]
    lo, hi = 2**31 - 1, -1
    for s in qualified_shifts(problem, v):
        t_in, _ = travel(problem, s, s.start_location, v.location)
        t_out, _ = travel(problem, s, v.location, s.end_location)
        lo = min(lo, s.start + t_in)
        hi = max(hi, s.end - t_out - v.duration)
    return lo, hi


def _narrow_dependencies(
    problem: Problem,
    index: Mapping[str, int],
    jobs: dict[tuple[int, int], JobSpec],
    hints: dict[str, UnassignedReason],
) -> None:
    """Keep only starts of a visit and of the visit it depends on that can keep the gap."""
    for vi, v in enumerate(problem.visits):
        dep = v.depends_on
        if dep is None or dep.visit_id not in index:
            continue
        yi = index[dep.visit_id]
        xs = [jobs[(vi, c)] for c in range(v.carers_required) if (vi, c) in jobs]
        ys = [jobs[(yi, c)] for c in range(problem.visits[yi].carers_required) if (yi, c) in jobs]
        if not xs or not ys:
            continue
        far = 2**31 - 1
        x_lo = min(a for j in xs for a, _ in j.start_windows)
        x_hi = max(b for j in xs for _, b in j.start_windows)
        y_lo = min(a for j in ys for a, _ in j.start_windows)
        y_hi = max(b for j in ys for _, b in j.start_windows)
        max_gap = far if dep.max_gap is None else dep.max_gap
        x_new = {
            c: intersect(jobs[(vi, c)].start_windows, y_lo + dep.min_gap, min(y_hi + max_gap, far))
            for c in range(v.carers_required)
            if (vi, c) in jobs
        }
        if not all(x_new.values()):
            for c in x_new:
                del jobs[(vi, c)]
            hints[v.id] = UnassignedReason.DEPENDENCY_UNSATISFIED
            continue
        for c, wins in x_new.items():
            jobs[(vi, c)] = replace(jobs[(vi, c)], start_windows=wins)
        for c in range(problem.visits[yi].carers_required):
            if (yi, c) in jobs:
                j = jobs[(yi, c)]
                wins = intersect(j.start_windows, max(x_lo - max_gap, 0), x_hi - dep.min_gap)
                jobs[(yi, c)] = replace(j, start_windows=wins)
    for key in [k for k, j in jobs.items() if not j.start_windows]:
        hints[problem.visits[key[0]].id] = UnassignedReason.DEPENDENCY_UNSATISFIED
        del jobs[key]


def _initial_order(
    problem: Problem,
    index: Mapping[str, int],
    shift_index: Mapping[str, int],
    jobs: Mapping[tuple[int, int], JobSpec],
) -> dict[int, list[tuple[int, int]]]:
    """The warm start as job keys per shift: ``Problem.initial_routes`` plus the fixed stops.

    Each visit of a route takes its first copy that may go on that shift; a fixed stop whose
    shift has no initial route starts that route (fixed stops in order of their start).
    """
    used: set[tuple[int, int]] = set()
    out: dict[int, list[tuple[int, int]]] = {}

    def take(vi: int, si: int) -> tuple[int, int] | None:
        for c in range(problem.visits[vi].carers_required):
            j = jobs.get((vi, c))
            if j is None or (vi, c) in used or j.not_shift == si:
                continue
            if j.only_shift is not None and j.only_shift != si:
                continue
            used.add((vi, c))
            return (vi, c)
        return None

    for sid, visit_ids in problem.initial_routes.items():
        si = shift_index.get(sid)
        if si is None:
            continue
        keys = [take(index[v], si) for v in visit_ids if v in index]
        out[si] = [k for k in keys if k is not None]
    for f in sorted(problem.fixed, key=lambda f: f.start):
        si = shift_index[f.shift_id]
        if f.shift_id in problem.initial_routes:
            continue
        key = take(index[f.visit_id], si)
        if key is not None:
            out.setdefault(si, []).append(key)
    return out


def _eligible(problem: Problem, job: JobSpec, si: int) -> bool:
    """Whether VROOM's skills let ``job`` go on shift ``si``."""
    from app.scheduling._build import effective_allowed

    shift = problem.shifts[si]
    v = problem.visits[job.visit_index]
    allowed = effective_allowed(problem, job.visit_index)
    return (
        v.competences <= shift.competences
        and (allowed is None or shift.staff_id in allowed)
        and (job.only_shift is None or job.only_shift == si)
        and job.not_shift != si
    )


def _feasible_start(
    problem: Problem,
    jobs: Mapping[tuple[int, int], JobSpec],
    keys: Sequence[tuple[int, int]],
    seed: Mapping[int, Sequence[tuple[int, int]]],
) -> dict[int, list[tuple[str, int]]]:
    """The warm start as VROOM steps, keeping per route the visits that still fit in order.

    VROOM refuses an infeasible initial route, so each route is walked (travel from the
    matrix, the job's current start windows, breaks taken as late as their window and the next
    visit allow, the shift's end, max visits and travel time); a visit that cannot be reached
    in time is left out. A route VROOM still refuses is dropped by :func:`_solve_round`.
    """
    pos = {k: i for i, k in enumerate(keys)}
    out: dict[int, list[tuple[str, int]]] = {}
    for si, route in seed.items():
        shift = problem.shifts[si]
        if shift.breaks:
            # pyvroom 1.15.2 refuses feasible initial routes of a vehicle with a break when
            # the break's window opens after a visit's window closes (measured); such a refusal
            # fails the whole solve, so shifts with breaks still to take start cold.
            continue
        usable = [
            key for key in route if key in jobs and key in pos and _eligible(problem, jobs[key], si)
        ]
        if shift.max_visits is not None:
            usable = usable[: shift.max_visits]
        while usable:
            steps = _walk(problem, si, jobs, usable, pos)
            if steps is not None:
                if steps:
                    out[si] = steps
                break
            usable.pop()
    return out


def _walk(
    problem: Problem,
    si: int,
    jobs: Mapping[tuple[int, int], JobSpec],
    route: Sequence[tuple[int, int]],
    pos: Mapping[tuple[int, int], int],
) -> list[tuple[str, int]] | None:
    """Steps of ``route`` on shift ``si`` with its breaks, skipping unreachable visits.

    Returns None when the route cannot end in time (or a break finds no place at its end).
    """
    shift = problem.shifts[si]
    pending = sorted(
        (
            (wins, b.duration, bi)
            for bi, b in enumerate(shift.breaks)
            if (wins := start_windows(b.windows, b.duration))
        ),
        key=lambda x: x[0][0][0],
    )
    if len(pending) != len(shift.breaks):
        return None
    loc, now, travelled = shift.start_location, shift.start, 0
    steps: list[tuple[str, int]] = []

    def take_break(at: int) -> int | None:
        wins, duration, bi = pending[0]
        begin = next((max(a, at) for a, b in wins if at <= b), None)
        if begin is None:
            return None
        pending.pop(0)
        steps.append(("break", bi))
        return begin + duration

    def begin_at(j: JobSpec, arrival: int) -> int | None:
        return next((max(a, arrival) for a, b in j.start_windows if arrival <= b), None)

    for key in route:
        j = jobs[key]
        v = problem.visits[j.visit_index]
        t, _ = travel(problem, shift, loc, v.location)
        if shift.max_travel_time is not None and travelled + t > shift.max_travel_time:
            continue
        start = begin_at(j, now + t)
        # Take the next break here when the visit would start after its window opens.
        while pending and (start is None or start >= pending[0][0][0][0]):
            after = take_break(now)
            if after is None:
                return None
            now = after
            start = begin_at(j, now + t)
        if start is None or start + j.service > shift.end:
            continue
        steps.append(("job", pos[key]))
        loc, now, travelled = v.location, start + j.service, travelled + t
    while pending:
        after = take_break(now)
        if after is None:
            return None
        now = after
    back, _ = travel(problem, shift, loc, shift.end_location)
    if now + back > shift.end or (
        shift.max_travel_time is not None and travelled + back > shift.max_travel_time
    ):
        return None
    return steps


_REFUSED_VEHICLE = re.compile(r"vehicle (\d+)")
#: Warm-start routes dropped one by one before solving without any warm start.
_MAX_REFUSED = 3


def _solve_round(
    problem: Problem,
    jobs: Sequence[JobSpec],
    opts: SolveOptions,
    budget: float,
    initial: Mapping[int, Sequence[tuple[str, int]]] | None = None,
) -> _RoundResult:
    if not jobs or not problem.shifts:
        return _RoundResult({}, {}, {})
    t_end = time.perf_counter() + budget
    warm = dict(initial or {})
    refused = 0
    while True:
        built = build_input(problem, jobs, opts, warm)
        try:
            sol = built.input.solve(
                exploration_level=opts.exploration_level,
                nb_threads=opts.threads,
                timeout=timedelta(seconds=max(t_end - time.perf_counter(), 0.05)),
            )
            break
        except Exception as exc:  # VROOM raises its own exception types from C++
            # A warm-start route VROOM finds infeasible (breaks): solve without it.
            found = _REFUSED_VEHICLE.search(str(exc))
            if warm:
                refused += 1
                if found and int(found.group(1)) in warm and refused <= _MAX_REFUSED:
                    del warm[int(found.group(1))]
                else:
                    warm = {}
                continue
            msg = f"VROOM failed: {exc}"
            raise SolverFailed(msg) from exc
    frame = sol.routes
    if frame.empty:
        return _RoundResult({}, {}, {})
    ids = frame["id"].tolist() if "id" in frame else [None] * len(frame)
    cols = zip(
        frame["vehicle_id"].tolist(),
        frame["type"].astype(str).tolist(),
        frame["arrival"].tolist(),
        frame["waiting_time"].tolist(),
        ids,
        strict=True,
    )
    steps: dict[int, list[_Step]] = {}
    starts: dict[int, int] = {}
    placed: dict[int, tuple[int, int]] = {}
    for veh, kind, arrival, waiting, ident in cols:
        si, begin = int(veh), int(arrival) + int(waiting)
        if kind == "start":
            starts[si] = int(arrival)
            steps[si] = []
        elif kind == "job":
            steps[si].append((StopKind.VISIT, int(ident), begin))
            placed[int(ident)] = (si, begin)
        elif kind == "break":
            steps[si].append((StopKind.BREAK, int(ident), begin))
    return _RoundResult(steps, starts, placed)


def _tighten(
    problem: Problem,
    index: Mapping[str, int],
    jobs: dict[tuple[int, int], JobSpec],
    placed: Mapping[int, tuple[int, int]],
    hints: dict[str, UnassignedReason],
) -> bool:
    """Pin or narrow the jobs of broken couplings; return whether anything changed."""
    changed = False

    def where(vi: int, c: int) -> tuple[int, int] | None:
        return placed.get(_key_id((vi, c))) if (vi, c) in jobs else None

    def pin(vi: int, c: int, t: int, shift: int | None, not_shift: int | None = None) -> None:
        nonlocal changed
        old = jobs[(vi, c)]
        new = replace(old, start_windows=((t, t),), only_shift=shift, not_shift=not_shift)
        if new != old:
            jobs[(vi, c)] = new
            changed = True

    for vi, v in enumerate(problem.visits):
        if v.carers_required != 2 or (vi, 0) not in jobs or (vi, 1) not in jobs:
            continue
        a, b = where(vi, 0), where(vi, 1)
        if a is None and b is None:
            continue
        if a is not None and b is not None and a[0] != b[0]:
            t = max(a[1], b[1])
            pin(vi, 0, t, a[0])
            pin(vi, 1, t, b[0])
        elif a is not None and b is not None:
            pin(vi, 0, a[1], a[0])
            pin(vi, 1, a[1], None, a[0])
        else:
            c_in = 0 if a is not None else 1
            s_in, t_in = a if a is not None else b  # type: ignore[misc]
            pin(vi, c_in, t_in, s_in)
            pin(vi, 1 - c_in, t_in, None, s_in)

    for vi, v in enumerate(problem.visits):
        dep = v.depends_on
        if dep is None or (vi, 0) not in jobs:
            continue
        yi = index[dep.visit_id]
        y, x = where(yi, 0), where(vi, 0)
        if y is None or x is None:
            continue
        gap = x[1] - y[1]
        if gap >= dep.min_gap and (dep.max_gap is None or gap <= dep.max_gap):
            continue
        hi = None if dep.max_gap is None else y[1] + dep.max_gap
        narrowed = {
            c: intersect(jobs[(vi, c)].start_windows, y[1] + dep.min_gap, hi)
            for c in range(v.carers_required)
            if (vi, c) in jobs
        }
        if not all(narrowed.values()):
            # The first visit's start leaves no room: drop the dependent one rather than it.
            for c in narrowed:
                del jobs[(vi, c)]
            hints[v.id] = UnassignedReason.DEPENDENCY_UNSATISFIED
            changed = True
            continue
        for c in range(problem.visits[yi].carers_required):
            yc = where(yi, c)
            if yc is not None:
                pin(yi, c, y[1], yc[0], jobs[(yi, c)].not_shift)
        for c, wins in narrowed.items():
            old = jobs[(vi, c)]
            new = replace(old, start_windows=wins)
            if new != old:
                jobs[(vi, c)] = new
                changed = True
    return changed


def _timed_route(
    problem: Problem,
    si: int,
    depart: int,
    steps: Sequence[_Step],
    fixed_end: Mapping[tuple[str, str], int],
) -> Route:
    """Stops with times: starts as planned, arrivals and travel recomputed from the matrix."""
    shift = problem.shifts[si]
    loc = shift.start_location
    stops = [Stop(StopKind.START, depart, depart, depart, location=loc)]
    now = depart
    for kind, ref, start in steps:
        if kind is StopKind.BREAK:
            b = shift.breaks[ref]
            begin = max(start, now)
            stops.append(
                Stop(
                    StopKind.BREAK,
                    now,
                    begin,
                    begin + b.duration,
                    location=loc,
                    break_id=b.id,
                    waiting=begin - now,
                )
            )
            now = begin + b.duration
            continue
        v = problem.visits[ref]
        t, d = travel(problem, shift, loc, v.location)
        arrival = now + t
        begin = max(start, arrival)
        end = fixed_end.get((v.id, shift.id), begin + v.duration)
        stops.append(
            Stop(
                StopKind.VISIT,
                arrival,
                begin,
                end,
                location=v.location,
                visit_id=v.id,
                travel_time=t,
                distance=d,
                waiting=begin - arrival,
            )
        )
        now, loc = end, v.location
    end_loc = shift.end_location if shift.end_location is not None else loc
    t, d = travel(problem, shift, loc, shift.end_location)
    stops.append(
        Stop(StopKind.END, now + t, now + t, now + t, location=end_loc, travel_time=t, distance=d)
    )
    return Route(shift.id, shift.staff_id, shift.profile, tuple(stops))


def _repair(
    problem: Problem, result: _RoundResult, hints: dict[str, UnassignedReason]
) -> list[Route]:
    """Decode, validate, and take out whatever breaks a rule until the validator is satisfied."""
    fixed_end = {(f.visit_id, f.shift_id): f.end for f in problem.fixed}
    fixed_ids = {f.visit_id for f in problem.fixed}
    steps = {si: list(s) for si, s in result.steps.items()}
    index = {v.id: i for i, v in enumerate(problem.visits)}
    shift_index = {s.id: i for i, s in enumerate(problem.shifts)}
    removed: set[str] = set()
    for _ in range(len(problem.visits) + len(problem.shifts) + 1):
        routes = [
            _timed_route(problem, si, result.start_time[si], s, fixed_end)
            for si, s in sorted(steps.items())
        ]
        assigned = {vid for r in routes for vid in r.visit_ids}
        found = validate(problem, pending_plan(problem, routes), check_priority=False)
        drop: set[str] = set()
        for viol in found:
            if viol.visit_id is not None and viol.visit_id in assigned:
                drop.add(viol.visit_id)
                reason = _HINT.get(viol.kind)
                if reason is not None:
                    hints.setdefault(viol.visit_id, reason)
            elif viol.shift_id is not None and viol.shift_id in shift_index:
                si = shift_index[viol.shift_id]
                movable = [
                    problem.visits[ref].id
                    for kind, ref, _s in steps.get(si, [])
                    if kind is StopKind.VISIT and problem.visits[ref].id not in fixed_ids
                ]
                if movable:
                    drop.add(movable[-1])
        stuck = drop & fixed_ids
        if stuck:
            msg = f"fixed stops of visits {sorted(stuck)} break hard rules and cannot be kept"
            raise FixedStopConflict(msg)
        if not drop:
            if found:
                msg = f"plan breaks rules the solver cannot repair: {found[0].message}"
                raise FixedStopConflict(msg)
            return routes
        removed |= drop
        drop_idx = {index[d] for d in drop}
        steps = {
            si: [st for st in s if st[0] is StopKind.BREAK or st[1] not in drop_idx]
            for si, s in steps.items()
        }
    msg = "repair did not converge"
    raise SolverFailed(msg)


_HINT = {
    ViolationKind.DOUBLE_CARERS: UnassignedReason.SECOND_CARER_UNAVAILABLE,
    ViolationKind.DOUBLE_SYNC: UnassignedReason.SECOND_CARER_UNAVAILABLE,
    ViolationKind.DEPENDENCY: UnassignedReason.DEPENDENCY_UNSATISFIED,
}


def _fill_linked_visits(problem: Problem, routes: list[Route]) -> list[Route]:
    """Double and dependent visits left out, placed where both parts fit (idle shifts too)."""
    if not any(v.carers_required == 2 or v.depends_on is not None for v in problem.visits):
        return routes
    from app.scheduling.linked import empty_routes, fill_linked

    fixed_end = {(f.visit_id, f.shift_id): f.end for f in problem.fixed}

    def retime(si: int, depart: int, steps: Sequence[_Step]) -> Route:
        return _timed_route(problem, si, depart, steps, fixed_end)

    assigned = {vid for r in routes for vid in r.visit_ids}
    if all(v.id in assigned for v in problem.visits):
        return routes
    extra = empty_routes(problem, routes, retime)
    return fill_linked(problem, [*routes, *extra.values()], retime)


def _fill_gaps(problem: Problem, routes: list[Route]) -> list[Route]:
    """Insert single-carer visits left out into gaps of routes where they fit as they are.

    VROOM is a heuristic and the repair step can open gaps; a cheap greedy pass (mandatory
    visits first, earliest feasible start, stops never move) recovers such visits. Then a
    mandatory visit still left out takes the place of an optional one where it fits there (the
    validator's priority rule), and the optional visits get one more chance at a gap.
    """
    from app.scheduling.explain import qualified_shifts

    by_shift = {r.shift_id: k for k, r in enumerate(routes)}
    index = {v.id: i for i, v in enumerate(problem.visits)}
    shift_pos = {s.id: i for i, s in enumerate(problem.shifts)}
    fixed_end = {(f.visit_id, f.shift_id): f.end for f in problem.fixed}
    fixed_ids = {f.visit_id for f in problem.fixed}
    needed = {v.depends_on.visit_id for v in problem.visits if v.depends_on is not None}

    def simple(v: Visit) -> bool:
        return v.geocoded and v.carers_required == 1 and v.depends_on is None and v.id not in needed

    def rebuild(k: int, stops: Sequence[Stop], pos: int, v: Visit, start: int) -> bool:
        shift = problem.shifts[shift_pos[routes[k].shift_id]]
        steps: list[_Step] = []
        for s in stops[1:-1]:
            if s.kind is StopKind.BREAK:
                bi = next(i for i, b in enumerate(shift.breaks) if b.id == s.break_id)
                steps.append((StopKind.BREAK, bi, s.start))
            elif s.visit_id is not None:
                steps.append((StopKind.VISIT, index[s.visit_id], s.start))
        steps.insert(pos - 1, (StopKind.VISIT, index[v.id], start))
        before = routes[k]
        routes[k] = _timed_route(problem, shift_pos[shift.id], stops[0].start, steps, fixed_end)
        # insertion_fits is a local test; the validator has the last word on every change.
        if validate(problem, pending_plan(problem, routes), check_priority=False):
            routes[k] = before
            return False
        return True

    def insert(v: Visit) -> bool:
        for shift in qualified_shifts(problem, v):
            k = by_shift.get(shift.id)
            if k is None:
                continue
            stops = routes[k].stops
            for pos in range(1, len(stops)):
                start = insertion_fits(problem, shift, stops, pos, v)
                if start is not None and rebuild(k, stops, pos, v, start):
                    return True
        return False

    def swap(v: Visit) -> str | None:
        for shift in qualified_shifts(problem, v):
            k = by_shift.get(shift.id)
            if k is None:
                continue
            stops = routes[k].stops
            for pos, stop in enumerate(stops):
                o = problem.visits[index[stop.visit_id]] if stop.visit_id in index else None
                if o is None or o.priority is Priority.MANDATORY or o.id in fixed_ids:
                    continue
                if not simple(o):
                    continue
                rest = [*stops[:pos], *stops[pos + 1 :]]
                start = insertion_fits(problem, shift, rest, pos, v)
                if start is not None and rebuild(k, rest, pos, v, start):
                    return o.id
        return None

    assigned = {vid for r in routes for vid in r.visit_ids}
    todo = [v for v in problem.visits if v.id not in assigned and simple(v)]
    todo.sort(key=lambda v: v.priority is not Priority.MANDATORY)
    left = [v for v in todo if not insert(v)]
    bumped = []
    for v in left:
        if v.priority is Priority.MANDATORY:
            out = swap(v)
            if out is not None:
                bumped.append(problem.visits[index[out]])
    for v in [*left, *bumped]:
        if v.priority is not Priority.MANDATORY:
            assigned = {vid for r in routes for vid in r.visit_ids}
            if v.id not in assigned:
                insert(v)
    return routes


def prefer_mandatory(problem: Problem, plan: Plan) -> Plan:
    """``plan`` where every mandatory visit left out takes a gap, or an optional visit's place.

    A plan assembled around facts (a frozen morning, re-timed open routes) can leave a
    mandatory visit out where an optional one holds a place it fits in; the solver's own gap
    filling (fixed stops never move, the validator checks every change) puts it there.
    """
    routes = tuple(_fill_gaps(problem, list(plan.routes)))
    placed = {vid for r in routes for vid in r.visit_ids}
    left = [u.visit_id for u in plan.unassigned if u.visit_id not in placed]
    left += [vid for r in plan.routes for vid in r.visit_ids if vid not in placed]
    out = Plan(routes=routes, unassigned=tuple(explain_unassigned(problem, routes, left)))
    return replace(out, kpis=compute_kpis(problem, out), solve_time_s=plan.solve_time_s)


__all__ = ["check_problem", "prefer_mandatory", "solve"]
