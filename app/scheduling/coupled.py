"""Coupled local search: linked visits move together and the routes they join are re-timed jointly.

:mod:`app.scheduling.improve` keeps a dependency partner on its route at its start, and leaves
routes with double-staffed visits alone, so on home-care days where nearly every route holds a
linked visit it changes little. This search treats the routes as one schedule instead:

- every planned visit (each carer's part of a double visit), every break and every fixed stop is
  a *node* of a route; links say "node ``x`` starts at least ``a`` seconds after node ``y``"
  (a dependency ``[min, max]`` gives two links, a double visit two links of 0, and its two parts
  stay on two different routes);
- for given route sequences the starts are the *earliest schedule*: the least fixpoint of "after
  the previous stop and the travel", "inside a window", and the links. Every cost term (travel,
  lateness past :attr:`Visit.due`, penalties) is smallest at the earliest starts, so the
  schedule is optimal for the sequences. A move re-times the routes it changes, and the routes
  of partners that must start later (or, on routes with lateness, may start earlier); a
  re-timing that keeps raising starts is a loop of links (no schedule), and two routes doing
  two synchronised pairs in opposite orders are refused before any timing. After each applied
  move every route is re-timed from scratch;
- moves (first improvement, applied when the objective drops): a visit to another place of its
  route or swapped there, a visit to one of its cheapest estimated places on any route it may
  go on (added travel, own lateness, delay pushed on the next stops), exchange of two near
  visits, 2-opt* (swap the tails of two routes), and a linked pair moved together (near and
  cheap places for both, on routes that keep the coupling). Moves adding more travel than all
  the lateness there is are refused without timing;
- when no move improves, ruin and recreate: a few related visits (near a random or a late one,
  with their partners) are taken out and put back one group at a time at the cheapest of their
  best estimated places, timed exactly; a worse plan is kept within a threshold that shrinks
  to zero with the time left, the best plan is returned. It stops at the time limit or after
  :data:`_MAX_STALE` rounds without a better plan.

The objective is travel + total lateness + maximum lateness + the continuity / stability
penalties (the published home-care objective when the penalties are 0). Breaks stay on their
route inside their windows, taken where the carer is; fixed stops stay where they are, on
routes the search does not touch. The independent validator has the last word: the input
routes come back when the result breaks any rule or is not cheaper.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from app.scheduling.improve import _earliest, _start_windows, timed_route, visit_penalty
from app.scheduling.model import Problem, Route, StopKind, pending_plan
from app.scheduling.validate import ViolationKind, validate

_FAR = 2**62
#: ``route_of`` of a visit taken out by ruin-and-recreate (not on any route for now).
_OUT = -2
#: Start window of a stop that cannot start anywhere (every start is after it closes).
_NEVER = (_FAR, -_FAR)
#: Anchor meaning "at the end of the route".
_APPEND = 2**40
#: Nearest visits around each visit where moves put it.
NEIGHBOURS = 12
#: Largest latenesses kept in the cache (the maximum outside a move's re-timed stops).
_TOP_LATE = 32
#: Re-timing passes after which a schedule counts as impossible (the links form a loop that
#: pushes starts later on every pass). A move that needs more is rejected: most such moves do
#: form a loop, and each pass over a loop costs a pass over the routes it holds.
_MAX_PASSES = 40
_MOVE_PASSES = 8
#: Times one stop's start may be pushed later while a move is timed before it counts as a loop.
_RAISES = 3
#: Cheapest places per visit combined by the pair move.
_PAIR_PLACES = 4
#: Perturbations in a row without a better plan after which the search stops.
_MAX_STALE = 2000
#: Cheapest estimated places per visit evaluated exactly by the relocate move.
_RELOCATE_TRIES = 6
#: Cheapest estimated places per visit evaluated exactly when a visit is put back.
_RECREATE_TRIES = 4


@dataclass(frozen=True, slots=True)
class CoupledResult:
    """What :func:`improve_coupled` did.

    Attributes
    ----------
    routes
        The routes to use: improved, or the input routes unchanged.
    cost_before, cost_after
        Objective (travel + total lateness + max lateness + penalties) of the input and of
        ``routes``.
    moves
        Improving moves applied (local search and accepted perturbations).
    """

    routes: tuple[Route, ...]
    cost_before: int
    cost_after: int
    moves: int


class _Schedule:
    """Routes as node sequences with their earliest joint schedule."""

    def __init__(
        self, problem: Problem, routes: Sequence[Route], continuity_s: int, stability_s: int
    ) -> None:
        self.problem = problem
        nv = len(problem.visits)
        shift_pos = {s.id: i for i, s in enumerate(problem.shifts)}
        vindex = {v.id: i for i, v in enumerate(problem.visits)}
        fixed_ids = {f.visit_id for f in problem.fixed}
        self.nv = nv
        # Node tables.
        self.vis: list[int] = []
        self.brk: list[tuple[str, int]] = []  # (break id, duration) per break node, else ("", 0)
        self.wins: list[list[tuple[int, int]]] = []
        self.dur: list[int] = []
        self.due: list[int] = []
        self.dem: list[int] = []
        self.loc_raw: list[int | None] = []
        #: Constant start of a node on a route the search leaves as it is (-_FAR: movable).
        self.const: list[int] = []
        self.route_of: list[int] = []
        self.nodes_of: dict[int, list[int]] = {}

        def node(vi: int, brk: tuple[str, int], wins: list[tuple[int, int]], const: int) -> int:
            n = len(self.vis)
            self.vis.append(vi)
            self.brk.append(brk)
            self.wins.append(wins)
            if vi >= 0:
                v = problem.visits[vi]
                self.dur.append(v.duration)
                self.due.append(_FAR if v.due is None else v.due)
                self.dem.append(v.demand)
                self.loc_raw.append(v.location)
                self.nodes_of.setdefault(vi, []).append(n)
            else:
                self.dur.append(brk[1])
                self.due.append(_FAR)
                self.dem.append(0)
                self.loc_raw.append(None)
            self.const.append(const)
            self.route_of.append(-1)
            return n

        #: Search routes: shift index, input route position (-1: a shift not used before).
        self.shift: list[int] = []
        self.origin: list[int] = []
        self.seqs: list[list[int]] = []
        used: set[str] = set()
        for k, route in enumerate(routes):
            used.add(route.shift_id)
            si = shift_pos.get(route.shift_id)
            ids = route.visit_ids
            searchable = (
                si is not None
                and all(vid in vindex for vid in ids)
                and not any(vid in fixed_ids for vid in ids)
            )
            by_break = {b.id: b for b in problem.shifts[si].breaks} if si is not None else {}
            taken = [s.break_id for s in route.stops if s.kind is StopKind.BREAK]
            searchable = searchable and sorted(map(str, taken)) == sorted(by_break)
            if not searchable:
                for stop in route.stops:
                    if stop.visit_id in vindex:
                        node(vindex[stop.visit_id], ("", 0), [], stop.start)
                continue
            assert si is not None
            seq: list[int] = []
            for stop in route.stops[1:-1]:
                if stop.kind is StopKind.BREAK and stop.break_id in by_break:
                    b = by_break[stop.break_id]
                    bw = sorted(
                        (w.start, w.end - b.duration)
                        for w in b.windows
                        if w.end - b.duration >= w.start
                    )
                    seq.append(node(-1, (b.id, b.duration), bw or [_NEVER], -_FAR))
                elif stop.visit_id is not None:
                    vi = vindex[stop.visit_id]
                    wins = _start_windows(problem.visits[vi]) or [_NEVER]
                    seq.append(node(vi, ("", 0), wins, -_FAR))
            self.shift.append(si)
            self.origin.append(k)
            self.seqs.append(seq)
        for si, s in enumerate(problem.shifts):
            if s.id in used:
                continue
            seq = []
            for b in sorted(s.breaks, key=lambda b: min((w.start for w in b.windows), default=0)):
                bw = sorted(
                    (w.start, w.end - b.duration)
                    for w in b.windows
                    if w.end - b.duration >= w.start
                )
                if not bw:
                    break
                seq.append(node(-1, (b.id, b.duration), bw, -_FAR))
            else:
                self.shift.append(si)
                self.origin.append(-1)
                self.seqs.append(seq)
        n_all = len(self.vis)
        for r, seq in enumerate(self.seqs):
            for n in seq:
                self.route_of[n] = r
        self.movable = [n for n in range(n_all) if self.vis[n] >= 0 and self.const[n] == -_FAR]
        self.isv = [v >= 0 for v in self.vis]

        # Links: ``inc[x]`` = (y, a): start(x) >= start(y) + a; ``out[y]`` the same seen from y.
        self.inc: list[list[tuple[int, int]]] = [[] for _ in range(n_all)]
        self.out: list[list[tuple[int, int]]] = [[] for _ in range(n_all)]
        #: Nodes that must be on different routes (parts of one visit, simultaneous pairs).
        self.apart: list[list[int]] = [[] for _ in range(n_all)]
        self.partners: list[list[int]] = [[] for _ in range(n_all)]
        #: Nodes that start at the same instant (parts of a double visit, gap [0, 0]).
        self.sync: list[list[int]] = [[] for _ in range(n_all)]

        def link(x: int, y: int, a: int) -> None:
            self.inc[x].append((y, a))
            self.out[y].append((x, a))

        for vi, ns in self.nodes_of.items():
            v = problem.visits[vi]
            if len(ns) == 2:
                x, y = ns
                link(x, y, 0)
                link(y, x, 0)
                self.sync[x].append(y)
                self.sync[y].append(x)
                self.apart[x].append(y)
                self.apart[y].append(x)
            dep = v.depends_on
            if dep is None or vindex.get(dep.visit_id) not in self.nodes_of:
                continue
            first = problem.visits[vindex[dep.visit_id]]
            for x in ns:
                for y in self.nodes_of[vindex[dep.visit_id]]:
                    link(x, y, dep.min_gap)
                    if dep.max_gap is not None:
                        link(y, x, -dep.max_gap)
                    if dep.min_gap == dep.max_gap == 0:
                        self.sync[x].append(y)
                        self.sync[y].append(x)
                    if (
                        dep.max_gap is not None
                        and dep.max_gap < first.duration
                        and dep.min_gap > -v.duration
                    ):
                        self.apart[x].append(y)
                        self.apart[y].append(x)
        for n in range(n_all):
            self.partners[n] = sorted({y for y, _ in self.inc[n]} | {y for y, _ in self.out[n]})

        # Compact locations (visits and depots; one zero node for a missing depot).
        locs: list[int] = []
        cindex: dict[int, int] = {}

        def cid(loc: int | None) -> int:
            if loc is None:
                return -1
            if loc not in cindex:
                cindex[loc] = len(locs)
                locs.append(loc)
            return cindex[loc]

        self.loc = [cid(x) for x in self.loc_raw]
        starts = [cid(problem.shifts[si].start_location) for si in self.shift]
        ends = [cid(problem.shifts[si].end_location) for si in self.shift]
        zero = len(locs)
        self.start_node = [zero if c < 0 else c for c in starts]
        self.end_node = [zero if c < 0 else c for c in ends]
        idx = np.asarray(locs, dtype=np.intp)
        mats: dict[str, list[list[int]]] = {}
        for si in self.shift:
            prof = problem.shifts[si].profile
            if prof not in mats:
                full = np.zeros((zero + 1, zero + 1), dtype=np.int64)
                if zero:
                    full[:zero, :zero] = problem.matrices[prof].durations[np.ix_(idx, idx)]
                mats[prof] = full.tolist()
        self.mat = [mats[problem.shifts[si].profile] for si in self.shift]
        shifts = [problem.shifts[si] for si in self.shift]
        self.t0 = [s.start for s in shifts]
        self.t1 = [s.end for s in shifts]
        total_dem = sum(self.dem)
        self.cap = [total_dem if s.capacity is None else s.capacity for s in shifts]
        self.maxv = [n_all if s.max_visits is None else s.max_visits for s in shifts]
        self.maxtt = [_FAR if s.max_travel_time is None else s.max_travel_time for s in shifts]

        from app.scheduling.explain import qualified_shifts

        routes_of_shift: dict[int, list[int]] = {}
        for r, si in enumerate(self.shift):
            routes_of_shift.setdefault(si, []).append(r)
        self.allowed: list[frozenset[int]] = [frozenset()] * n_all
        self.pen: list[dict[int, int]] = [{} for _ in range(n_all)]
        for n in self.movable:
            v = problem.visits[self.vis[n]]
            rs = [
                r
                for s in qualified_shifts(problem, v)
                for r in routes_of_shift.get(shift_pos[s.id], [])
            ]
            self.allowed[n] = frozenset(rs)
            for r in rs:
                p = visit_penalty(problem, v, self.shift[r], continuity_s, stability_s)
                if p:
                    self.pen[n][r] = p

        self.near: list[list[int]] = [[] for _ in range(n_all)]
        if len(self.movable) > 1 and self.mat:
            m = np.asarray(self.mat[0], dtype=np.float64)
            mv = np.asarray(self.movable, dtype=np.intp)
            ci = np.asarray([self.loc[n] for n in self.movable], dtype=np.intp)
            d = m[np.ix_(ci, ci)] + m[np.ix_(ci, ci)].T
            np.fill_diagonal(d, np.inf)
            k = min(NEIGHBOURS, len(self.movable) - 1)
            order = np.argsort(d, axis=1, kind="stable")[:, :k]
            for row, n in enumerate(self.movable):
                self.near[n] = [int(x) for x in mv[order[row]]]

        self.start: list[int] = [c if c != -_FAR else 0 for c in self.const]
        self.travel = [self.route_travel(r, seq) for r, seq in enumerate(self.seqs)]
        self.ok = True
        #: Routes holding a late visit (only there may an earlier start lower the objective).
        self.late = [True] * len(self.seqs)
        #: Cached (total lateness, largest latenesses with their nodes, late visits).
        self._lateness: tuple[int, list[tuple[int, int]], int] | None = None
        times = self.times({}, range(len(self.seqs)), _MAX_PASSES)
        if times is None or any(t is None for t in self.travel):
            self.ok = False
            return
        for n, t in times.items():
            self.start[n] = t
        self.retime()

    # ----------------------------------------------------------------- evaluation

    def route_travel(self, r: int, seq: Sequence[int]) -> int | None:
        """Travel of route ``r`` doing ``seq``; None when a per-route limit is broken."""
        mat, loc = self.mat[r], self.loc
        prev = self.start_node[r]
        tt = visits = load = 0
        for n in seq:
            if self.vis[n] < 0:
                continue
            tt += mat[prev][loc[n]]
            prev = loc[n]
            visits += 1
            load += self.dem[n]
        tt += mat[prev][self.end_node[r]]
        if tt > self.maxtt[r] or visits > self.maxv[r] or load > self.cap[r]:
            return None
        return tt

    def times(
        self,
        change: Mapping[int, Sequence[int]],
        routes: Iterable[int],
        passes: int = _MOVE_PASSES,
    ) -> dict[int, int] | None:
        """Earliest starts of the nodes of ``routes`` (and of routes pulled in) after ``change``.

        Routes not re-timed keep their current starts. A route is pulled in when a link from a
        re-timed node asks one of its nodes to start later, or, on a route with lateness, when
        the node holding it back starts earlier. Returns None when no schedule keeps every rule.
        """
        late = self.late
        seqs, where = self.seqs, self.route_of
        moved: dict[int, int] = {n: r for r, s in change.items() for n in s}
        inside = set(routes) | set(change)
        start: dict[int, int] = {}
        raised: dict[int, int] = {}
        todo = sorted(inside)
        wins, dur, loc, const, inc, out = (
            self.wins,
            self.dur,
            self.loc,
            self.const,
            self.inc,
            self.out,
        )
        old, isv, mats, t0s, t1s = self.start, self.isv, self.mat, self.t0, self.t1
        firsts, lasts = self.start_node, self.end_node
        loops = passes == _MOVE_PASSES
        for _ in range(passes):
            nxt: set[int] = set()
            for r in todo:
                seq = change[r] if r in change else seqs[r]
                mat = mats[r]
                now, here = t0s[r], firsts[r]
                changed: list[int] = []
                for n in seq:
                    if isv[n]:
                        now += mat[here][loc[n]]
                        here = loc[n]
                    links = inc[n]
                    if links:
                        for y, a in links:
                            ry = moved.get(y, where[y])
                            if ry == _OUT:
                                continue
                            if ry in inside:
                                t = start.get(y)
                                if t is not None and t + a > now:
                                    now = t + a
                            elif const[y] != -_FAR:
                                if const[y] + a > now:
                                    now = const[y] + a
                            elif old[y] + a > now:
                                now = old[y] + a
                    w = wins[n]
                    lo, hi = w[0]
                    if now <= hi:
                        s = lo if lo > now else now
                    else:
                        s = _earliest(w, now)
                        if s >= _FAR:
                            return None
                    was = start.get(n)
                    if was != s:
                        if was is not None and loops:
                            raised[n] = raised.get(n, 0) + 1
                            if raised[n] > _RAISES:
                                return None  # raised again and again: a loop of links
                        start[n] = s
                        if out[n]:
                            changed.append(n)
                    now = s + dur[n]
                if now + mat[here][lasts[r]] > t1s[r]:
                    return None
                for x in changed:
                    sx = start[x]
                    for y, a in out[x]:
                        ry = moved.get(y, where[y])
                        if ry == _OUT:
                            continue
                        if ry in inside:
                            t = start.get(y)
                            if t is not None and t < sx + a:
                                nxt.add(ry)
                        elif const[y] != -_FAR:
                            if const[y] < sx + a:
                                return None
                        elif old[y] < sx + a or (sx < old[x] and old[y] == old[x] + a and late[ry]):
                            # Must start later, or may start earlier where lateness is
                            # at stake: re-time its route. (Elsewhere a start left later
                            # than it could be costs nothing; :meth:`retime` settles it.)
                            inside.add(ry)
                            nxt.add(ry)
            if not nxt:
                return start
            todo = sorted(nxt)
        return None

    def retime(self) -> None:
        """Every route at its earliest schedule (after moves that left some starts later)."""
        found = self.times({}, range(len(self.seqs)), _MAX_PASSES)
        if found is None:  # the current starts keep every rule, so this cannot happen
            return
        for n, t in found.items():
            self.start[n] = t
        self.stale()
        self.flag_late()

    def flag_late(self) -> None:
        """Recompute :attr:`late` from the current starts."""
        self.late = [
            any(self.start[n] > self.due[n] for n in seq if self.vis[n] >= 0) for seq in self.seqs
        ]

    def stale(self) -> None:
        """Forget the cached lateness (after starts or routes changed)."""
        self._lateness = None

    def tardiness(self, starts: Mapping[int, int]) -> tuple[int, int]:
        """Total and maximum lateness with ``starts`` overriding the current starts.

        The current total and the largest latenesses are cached (:meth:`stale` forgets them),
        so a move costs the stops it re-timed, not a pass over every visit.
        """
        due, where, start = self.due, self.route_of, self.start
        if self._lateness is None:
            lates = []
            for n in self.movable:
                if where[n] != _OUT and start[n] > due[n]:
                    lates.append((start[n] - due[n], n))
            lates.sort(reverse=True)
            self._lateness = (sum(x for x, _ in lates), lates[:_TOP_LATE], len(lates))
        total, top, count = self._lateness
        worst = 0
        for n, t in starts.items():
            d = due[n]
            if d >= _FAR:
                continue
            old = 0 if where[n] == _OUT or start[n] <= d else start[n] - d
            new = t - d if t > d else 0
            total += new - old
            if new > worst:
                worst = new
        for late, n in top:
            if n not in starts:
                return total, max(worst, late)
        if count > len(top):  # every cached one was re-timed: look at the rest
            for n in self.movable:
                if n not in starts and where[n] != _OUT and start[n] - due[n] > worst:
                    worst = start[n] - due[n]
        return total, worst

    def penalty(self, r: int, seq: Sequence[int]) -> int:
        """Continuity / stability penalties of route ``r`` doing ``seq``."""
        return sum(self.pen[n].get(r, 0) for n in seq if self.pen[n])

    def cost(self) -> int:
        """Objective of the current schedule."""
        total, worst = self.tardiness({})
        pen = sum(self.penalty(r, s) for r, s in enumerate(self.seqs))
        return sum(t or 0 for t in self.travel) + pen + total + worst

    # ----------------------------------------------------------------- output

    def routes(self) -> list[Route | None]:
        """Timed routes per search route (None for a route without visits)."""
        out: list[Route | None] = []
        for r, seq in enumerate(self.seqs):
            if not any(self.vis[n] >= 0 for n in seq):
                out.append(None)
                continue
            wins: list[list[tuple[int, int]]] = [[] for _ in range(self.nv)]
            breaks: list[tuple[str, int, list[tuple[int, int]]]] = []
            items: list[int] = []
            for n in seq:
                s = self.start[n]
                if self.vis[n] >= 0:
                    wins[self.vis[n]] = [(s, s)]
                    items.append(self.vis[n])
                else:
                    items.append(self.nv + len(breaks))
                    breaks.append((self.brk[n][0], self.brk[n][1], [(s, s)]))
            out.append(timed_route(self.problem, self.shift[r], items, wins, breaks))
        return out


class _Search:
    """Local search and perturbation over a :class:`_Schedule`."""

    def __init__(self, sc: _Schedule, rng: random.Random, deadline: float) -> None:
        self.sc = sc
        self.rng = rng
        self.deadline = deadline
        self.current = sc.cost()
        self.moves = 0
        #: Routes the last applied move changed.
        self.last: list[int] = []

    def out_of_time(self) -> bool:
        return time.perf_counter() >= self.deadline

    def evaluate(
        self,
        change: Mapping[int, list[int]],
        passes: int = _MOVE_PASSES,
        *,
        improving: bool = False,
    ) -> tuple[int, dict[int, int], dict[int, int]] | None:
        """(objective, travel per changed route, new starts) after ``change``, or None when it
        breaks a rule."""
        sc = self.sc
        for r, seq in change.items():
            for n in seq:
                if sc.vis[n] >= 0 and r not in sc.allowed[n]:
                    return None
                for y in sc.apart[n]:
                    if y in seq:
                        return None
        travel = {}
        for r, seq in change.items():
            t = sc.route_travel(r, seq)
            if t is None:
                return None
            travel[r] = t
        d_travel = sum(travel[r] - (sc.travel[r] or 0) for r in change)
        d_pen = sum(sc.penalty(r, s) - sc.penalty(r, sc.seqs[r]) for r, s in change.items())
        if improving and d_travel + d_pen >= self.base_tardiness():
            return None  # more travel than all lateness there is to save: no timing needed
        if self._crossed(change):
            return None
        starts = sc.times(change, (), passes)
        if starts is None:
            return None
        total, worst = sc.tardiness(starts)
        new = self.current - self.base_tardiness() + total + worst + d_travel + d_pen
        return new, travel, starts

    def _crossed(self, change: Mapping[int, list[int]]) -> bool:
        """Whether two routes do two synchronised pairs in opposite orders (no schedule can)."""
        sc = self.sc
        at = {n: i for seq in change.values() for i, n in enumerate(seq)}
        moved = {n: r for r, seq in change.items() for n in seq}
        for seq in change.values():
            last: dict[int, int] = {}
            for n in seq:
                for y in sc.sync[n]:
                    ry = moved.get(y, sc.route_of[y])
                    if ry < 0:
                        continue
                    py = at[y] if y in at else sc.seqs[ry].index(y)
                    if last.get(ry, -1) > py:
                        return True
                    last[ry] = py
        return False

    def apply(
        self,
        change: Mapping[int, list[int]],
        found: tuple[int, dict[int, int], dict[int, int]],
    ) -> None:
        """Make ``change`` the current solution (``found``: its :meth:`evaluate`)."""
        sc = self.sc
        new, travel, starts = found
        for r, seq in change.items():
            sc.seqs[r] = seq
            sc.travel[r] = travel[r]
            for n in seq:
                sc.route_of[n] = r
        for n, t in starts.items():
            sc.start[n] = t
        self.current = new
        self.last = list(change)
        self.sc.stale()

    def attempt(self, change: dict[int, list[int]]) -> bool:
        """Apply ``change`` (route -> new sequence) when it keeps every rule and costs less."""
        found = self.evaluate(change, improving=True)
        if found is None or found[0] >= self.current:
            return False
        self.apply(change, found)
        self.settle()
        self.moves += 1
        return True

    def settle(self) -> None:
        """Every start at its earliest and the objective recomputed (after applied moves)."""
        self.sc.retime()
        self.sc.stale()
        self.current = self.sc.cost()

    def base_tardiness(self) -> int:
        """Total + maximum lateness of the current solution."""
        total, worst = self.sc.tardiness({})
        return total + worst

    # ----------------------------------------------------------------- moves

    def _without(self, nodes: Iterable[int]) -> dict[int, list[int]]:
        sc = self.sc
        gone = set(nodes)
        change: dict[int, list[int]] = {}
        for n in gone:
            r = sc.route_of[n]
            if r not in change:
                change[r] = [x for x in sc.seqs[r] if x not in gone]
        return change

    def _places(self, n: int, gone: Iterable[int]) -> list[tuple[int, int, int]]:
        """(travel delta, route, anchor) for ``n`` next to its near visits; anchor < 0 = before."""
        sc = self.sc
        skip = set(gone) | {n}
        out: list[tuple[int, int, int]] = []
        for w in sc.near[n]:
            r = sc.route_of[w]
            if w in skip or r < 0 or r not in sc.allowed[n] or sc.const[w] != -_FAR:
                continue
            mat, ln, lw = sc.mat[r], sc.loc[n], sc.loc[w]
            out.append((mat[ln][lw] + mat[lw][ln], r, ~w))
            out.append((mat[lw][ln] + mat[ln][lw], r, w))
        return out

    def _put(self, change: dict[int, list[int]], n: int, r: int, anchor: int) -> None:
        seq = change[r] if r in change else list(self.sc.seqs[r])
        if anchor == _APPEND:
            seq.append(n)
            change[r] = seq
            return
        w = ~anchor if anchor < 0 else anchor
        i = seq.index(w)
        seq.insert(i if anchor < 0 else i + 1, n)
        change[r] = seq

    def relocate(self, n: int) -> bool:
        """``n`` to one of its cheapest estimated places (any route it may go on)."""
        places = [p for p in self._estimates(n) if p[2] != ~n][:_RELOCATE_TRIES]
        for _d, r, anchor in places:
            change = self._without([n])
            if r not in change:
                change[r] = list(self.sc.seqs[r])
            self._put(change, n, r, anchor)
            if change[r] == self.sc.seqs[r]:
                continue
            if self.attempt(change):
                return True
        return self.to_empty(n)

    def to_empty(self, n: int) -> bool:
        """``n`` alone on the first unused route it may go on (one per shift kind)."""
        sc = self.sc
        for r in sorted(sc.allowed[n]):
            if not any(sc.vis[x] >= 0 for x in sc.seqs[r]):
                change = self._without([n])
                change[r] = [*sc.seqs[r], n]
                return self.attempt(change)
        return False

    def exchange(self, n: int) -> bool:
        sc = self.sc
        rn = sc.route_of[n]
        for w in sc.near[n]:
            rw = sc.route_of[w]
            if rw < 0 or rw == rn or sc.const[w] != -_FAR:
                continue
            if rw not in sc.allowed[n] or rn not in sc.allowed[w]:
                continue
            a, b = list(sc.seqs[rn]), list(sc.seqs[rw])
            a[a.index(n)], b[b.index(w)] = w, n
            if self.attempt({rn: a, rw: b}):
                return True
        return False

    def two_opt(self, n: int) -> bool:
        """Tails swapped: ``n``, then ``w`` and its tail; ``w``'s head, then ``n``'s tail."""
        sc = self.sc
        rn = sc.route_of[n]
        for w in sc.near[n]:
            rw = sc.route_of[w]
            if rw < 0 or rw == rn or sc.const[w] != -_FAR:
                continue
            a, b = sc.seqs[rn], sc.seqs[rw]
            i, j = a.index(n) + 1, b.index(w)
            ta, tb = a[i:], b[j:]
            if any(sc.vis[x] < 0 for x in (*ta, *tb)):
                continue
            if any(rw not in sc.allowed[x] for x in tb) or any(rn not in sc.allowed[x] for x in ta):
                continue
            if self.attempt({rn: a[:i] + tb, rw: b[:j] + ta}):
                return True
        return False

    def _pair_places(self, x: int, y: int) -> list[tuple[int, int, int]]:
        """Places for ``x`` while ``y`` moves too: the nearest, then the cheapest estimated."""
        own = {~x, ~y, x, y}
        near = sorted(self._places(x, [y]))[: _PAIR_PLACES // 2]
        cheap = [p for p in self._estimates(x) if p[2] not in own and p not in near]
        return near + cheap[: _PAIR_PLACES - len(near)]

    def pair(self, n: int) -> bool:
        """``n`` and one linked partner moved together (near places and cheap ones)."""
        sc = self.sc
        for p in sc.partners[n]:
            if sc.const[p] != -_FAR or sc.vis[p] < 0:
                continue
            pn = self._pair_places(n, p)
            pp = self._pair_places(p, n)
            for _dn, rn, an in pn:
                for _dp, rp, ap in pp:
                    if rn == rp and p in sc.apart[n]:
                        continue
                    change = self._without([n, p])
                    self._put(change, n, rn, an)
                    self._put(change, p, rp, ap)
                    if self.attempt(change):
                        return True
        return False

    def reorder(self, n: int) -> bool:
        """``n`` moved to every other place of its own route, or swapped with any stop there."""
        sc = self.sc
        r = sc.route_of[n]
        seq = sc.seqs[r]
        i = seq.index(n)
        rest = [x for x in seq if x != n]
        for k in range(len(rest) + 1):
            if k != i and self.attempt({r: [*rest[:k], n, *rest[k:]]}):
                return True
        for k, x in enumerate(seq):
            if k != i and sc.vis[x] >= 0:
                new = list(seq)
                new[i], new[k] = x, n
                if self.attempt({r: new}):
                    return True
        return False

    def local_search(self, nodes: Sequence[int]) -> None:
        """First-improvement descent from ``nodes`` until no move improves or time runs out."""
        queue = list(nodes)
        queued = set(queue)
        while queue:
            if self.out_of_time():
                return
            n = queue.pop(0)
            queued.discard(n)
            if (
                self.reorder(n)
                or self.relocate(n)
                or self.exchange(n)
                or self.two_opt(n)
                or self.pair(n)
            ):
                touched = {
                    x
                    for r in self.last
                    for x in self.sc.seqs[r]
                    if self.sc.vis[x] >= 0 and self.sc.const[x] == -_FAR
                }
                for x in sorted(touched | {n}):
                    if x not in queued:
                        queue.append(x)
                        queued.add(x)

    # ----------------------------------------------------------------- perturbation

    def _estimates(self, x: int) -> list[tuple[int, int, int]]:
        """(estimated cost, route, anchor) of every place of ``x`` on its allowed routes.

        The estimate is the added travel, ``x``'s own lateness and the delay it pushes onto the
        next stop (times the stops after it); links to planned partners bound ``x``'s start.
        """
        sc = self.sc
        lx, wx, dx, due = sc.loc[x], sc.wins[x], sc.dur[x], sc.due[x]
        lo = -_FAR
        for y, a in sc.inc[x]:
            if sc.route_of[y] != _OUT and sc.start[y] + a > lo:
                lo = sc.start[y] + a
        out: list[tuple[int, int, int]] = []
        for r in sc.allowed[x]:
            seq = sc.seqs[r]
            if any(sc.route_of[y] == r for y in sc.apart[x]):
                continue
            mat = sc.mat[r]
            here, free = sc.start_node[r], sc.t0[r]
            m = len(seq)
            for i in range(m + 1):
                b = seq[i] if i < m else -1
                nxt = sc.end_node[r] if b < 0 or sc.vis[b] < 0 else sc.loc[b]
                if b >= 0 and sc.vis[b] < 0:
                    nxt = here
                go = mat[here][lx]
                s = _earliest(wx, max(free + go, lo))
                if s < _FAR:
                    cost = go + mat[lx][nxt] - mat[here][nxt] + max(0, s - due)
                    if b >= 0:
                        push = s + dx + mat[lx][nxt] - sc.start[b]
                        if push > 0:
                            cost += push * (m - i)
                    out.append((cost, r, ~b if b >= 0 else _APPEND))
                if b >= 0:
                    if sc.vis[b] >= 0:
                        here = sc.loc[b]
                    free = sc.start[b] + sc.dur[b]
        out.sort()
        return out

    def _best_insert(self, x: int, keep: int) -> list[tuple[int, dict[int, list[int]], Any]]:
        """The ``keep`` best exact insertions of ``x`` among its cheapest estimated places."""
        found: list[tuple[int, dict[int, list[int]], Any]] = []
        for _c, r, anchor in self._estimates(x)[:_RECREATE_TRIES]:
            change: dict[int, list[int]] = {}
            self._put(change, x, r, anchor)
            ev = self.evaluate(change)
            if ev is not None:
                found.append((ev[0], change, ev))
        found.sort(key=lambda f: f[0])
        return found[:keep]

    def take_out(self, nodes: Sequence[int]) -> bool:
        """Remove ``nodes`` from their routes (re-timing what is left); False if the re-timing
        did not settle (the caller restores its snapshot)."""
        change = self._without(nodes)
        for n in nodes:
            self.sc.route_of[n] = _OUT
        self.sc.stale()
        ev = self.evaluate(change, _MAX_PASSES)
        if ev is None:
            return False
        self.apply(change, ev)
        return True

    def put_back(self, group: Sequence[int]) -> bool:
        """Insert ``group`` (a visit, or a linked pair) at its cheapest exact places."""
        if len(group) == 1:
            best = self._best_insert(group[0], 1)
            if not best:
                return False
            self.apply(best[0][1], best[0][2])
            return True
        x, y = group[0], group[1]
        snap = self.snapshot()
        options: list[tuple[int, dict[int, list[int]], Any, dict[int, list[int]], Any]] = []
        for _c, change, ev in self._best_insert(x, 2):
            self.apply(change, ev)
            for c2, change2, ev2 in self._best_insert(y, 1):
                options.append((c2, change, ev, change2, ev2))
            self.restore(snap)
        if not options:
            return False
        _c, change, ev, change2, ev2 = min(options, key=lambda o: o[0])
        self.apply(change, ev)
        self.apply(change2, ev2)
        return True

    def snapshot(self) -> tuple[list[list[int]], list[int], list[int | None], list[int], int]:
        """The current solution, for :meth:`restore`."""
        sc = self.sc
        return (
            [list(s) for s in sc.seqs],
            list(sc.start),
            list(sc.travel),
            list(sc.route_of),
            self.current,
        )

    def restore(
        self, snap: tuple[list[list[int]], list[int], list[int | None], list[int], int]
    ) -> None:
        """Go back to a :meth:`snapshot`."""
        sc = self.sc
        seqs, start, travel, where, cur = snap
        sc.seqs = [list(s) for s in seqs]
        sc.start, sc.travel, sc.route_of = list(start), list(travel), list(where)
        sc.flag_late()
        self.current = cur
        self.sc.stale()

    def ruin_recreate(self, size: int) -> bool:
        """Take out ``size`` related visits with their partners and put them back one group at
        a time (latest-due first is tried last) where the exact objective grows least."""
        sc = self.sc
        if self.rng.random() < 0.5:
            seed = self.rng.choice(sc.movable)
        else:
            late = sorted(sc.movable, key=lambda n: sc.due[n] - sc.start[n])[:5]
            seed = self.rng.choice(late)
        picked: list[int] = []
        for n in [seed, *sc.near[seed]]:
            for x in (n, *sc.partners[n]):
                if x not in picked and sc.const[x] == -_FAR and sc.vis[x] >= 0:
                    picked.append(x)
            if len(picked) >= size:
                break
        groups: list[list[int]] = []
        seen: set[int] = set()
        for n in picked:
            if n in seen:
                continue
            g = [n, *(p for p in sc.partners[n] if p in picked and p not in seen)]
            seen.update(g)
            if len(g) > 2:
                return False
            groups.append(g)
        if not self.take_out(picked):
            return False
        if self.rng.random() < 0.5:
            groups.sort(key=lambda g: min(sc.due[x] for x in g))
        else:
            self.rng.shuffle(groups)
        if not all(self.put_back(g) for g in groups):
            return False
        self.settle()
        return True


def improve_coupled(
    problem: Problem,
    routes: Sequence[Route],
    time_limit_s: float,
    *,
    continuity_penalty_s: int = 0,
    stability_penalty_s: int = 0,
    seed: int = 0,
) -> CoupledResult:
    """Improve routes with linked visits and soft windows by a coupled local search.

    Parameters
    ----------
    problem
        The problem the routes solve.
    routes
        Valid routes (as :func:`app.scheduling.solve` builds them).
    time_limit_s
        Wall-clock budget. The search stops earlier when no move improves and
        :data:`_MAX_STALE` ruin-and-recreate rounds in a row found nothing better.
    continuity_penalty_s, stability_penalty_s
        The penalties the objective charges, as in :class:`app.scheduling.model.SolveOptions`.
    seed
        Seed of the random choices.

    Returns
    -------
    CoupledResult
        The improved routes (routes left without visits are dropped, shifts not used before
        may appear), or the input routes when nothing better that keeps every rule was found.
    """
    deadline = time.perf_counter() + max(time_limit_s, 0.0)
    sc = _Schedule(problem, routes, continuity_penalty_s, stability_penalty_s)
    if not sc.ok or not sc.movable or time_limit_s <= 0:
        return CoupledResult(tuple(routes), 0, 0, 0)
    rng = random.Random(seed)
    st = _Search(sc, rng, deadline)
    before = st.current
    order = list(sc.movable)
    rng.shuffle(order)
    st.local_search(order)
    best_cost = st.current
    best = st.snapshot()
    start = time.perf_counter()
    span = max(deadline - start, 1e-9)
    stale = 0
    while not st.out_of_time() and stale < _MAX_STALE:
        size = rng.randint(4, max(4, min(16, len(sc.movable) // 3)))
        snap = st.snapshot()
        if not st.ruin_recreate(size):
            st.restore(snap)
            stale += 1
            continue
        left = 1.0 - (time.perf_counter() - start) / span
        if st.current < best_cost:
            best_cost, best, stale = st.current, st.snapshot(), 0
            st.moves += 1
        elif st.current > snap[4] and st.current > best_cost * (1.0 + 0.02 * max(left, 0.0)):
            st.restore(snap)
            stale += 1
        else:
            stale += 1
    st.restore(best)
    if best_cost >= before:
        return CoupledResult(tuple(routes), before, before, st.moves)
    timed = sc.routes()
    out: list[Route] = []
    by_origin = {sc.origin[r]: r for r in range(len(sc.seqs)) if sc.origin[r] >= 0}
    for k, route in enumerate(routes):
        at = by_origin.get(k)
        if at is None:
            out.append(route)
        elif (t := timed[at]) is not None:
            out.append(t)
    out.extend(t for r, t in enumerate(timed) if sc.origin[r] < 0 and t is not None)
    found = validate(problem, pending_plan(problem, out))
    old = validate(problem, pending_plan(problem, routes))
    hard = [f for f in found if f.kind is not ViolationKind.PRIORITY]
    if hard or len(found) > len(old):
        return CoupledResult(tuple(routes), before, before, st.moves)
    return CoupledResult(tuple(out), before, best_cost, st.moves)


__all__ = ["CoupledResult", "improve_coupled"]
