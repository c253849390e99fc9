"""Post-optimisation of solved routes: a time-budgeted local search on the travel objective.

VROOM stops in a local optimum of its own neighbourhoods. This module takes the decoded routes
and runs, in pure Python on the problem's matrices:

- a *local search* over granular neighbourhoods (each visit and its nearest visits): relocate
  of a visit or of a chain of 2-3 visits (or-opt, inside a route or to another route), exchange
  of two visits between routes and 2-opt* (swap the tails of two routes);
- an *iterated* phase until the time budget is spent: remove a cluster of nearby visits (ruin),
  put them back one by one at their cheapest feasible place (recreate), repair with the local
  search, keep the result under a threshold that shrinks to zero (record-to-record acceptance).

The objective is VROOM's own: travel time of every route plus the continuity / stability penalty
of each visit on its shift (see :mod:`app.scheduling._build`). Time windows (several per visit),
shift bounds, capacity, max visits and max travel time are checked on every move: an O(1) test on
cached earliest / latest starts filters candidates, and a full recomputation of the changed routes
decides. Routes holding breaks, double-staffed visits or fixed stops are left as they are, and
their visits never move. A visit linked by a dependency stays on its route at its start (so the
gap holds); the other visits of its route move around it. Lateness past a soft window
(``Visit.due``) is charged one for one with travel. The set of planned visits never changes.

The result is checked by the independent validator; it is returned only when it keeps every rule
and costs strictly less than the input, so the caller never gets a worse plan.
"""

from __future__ import annotations

import random
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from app.scheduling._timing import travel
from app.scheduling.model import (
    Plan,
    Problem,
    Route,
    Stop,
    StopKind,
    Visit,
    pending_plan,
)
from app.scheduling.validate import ViolationKind, validate

_FAR = 2**62
#: Nearest visits examined around each visit by the local search.
NEIGHBOURS = 20


@dataclass(frozen=True, slots=True)
class ImproveResult:
    """What :func:`improve_routes` did.

    Attributes
    ----------
    routes
        The routes to use: improved, or the input routes unchanged.
    cost_before, cost_after
        Objective (travel seconds plus penalties) of the input and of ``routes``.
    iterations
        Ruin-and-recreate rounds run.
    """

    routes: tuple[Route, ...]
    cost_before: int
    cost_after: int
    iterations: int


def visit_penalty(
    problem: Problem, visit: Visit, shift_index: int, continuity_s: int, stability_s: int
) -> int:
    """Penalty VROOM's cost matrices charge for doing ``visit`` on a shift.

    Parameters
    ----------
    problem
        The problem (shifts and current assignment).
    visit
        The visit.
    shift_index
        Index of the shift in ``problem.shifts``.
    continuity_s, stability_s
        The penalties of :class:`app.scheduling.model.SolveOptions`.

    Returns
    -------
    int
        ``continuity_s`` when the visit has preferred carers and this one is not among them,
        plus ``stability_s`` when re-planning moves the visit off its current shift.
    """
    shift = problem.shifts[shift_index]
    pen = 0
    if continuity_s and visit.preferred_staff and shift.staff_id not in visit.preferred_staff:
        pen += continuity_s
    cur = problem.current_assignment.get(visit.id) if stability_s else None
    if cur is not None and cur != shift.id:
        pen += stability_s
    return pen


def _earliest(wins: Sequence[tuple[int, int]], arrival: int) -> int:
    """Earliest start at or after ``arrival`` inside sorted start windows; ``_FAR`` if none."""
    for a, b in wins:
        if arrival <= b:
            return arrival if arrival > a else a
    return _FAR


def _latest(wins: Sequence[tuple[int, int]], bound: int) -> int:
    """Latest start at or before ``bound`` inside start windows; ``-_FAR`` if none."""
    best = -_FAR
    for a, b in wins:
        if a <= bound:
            s = b if b < bound else bound
            if s > best:
                best = s
    return best


class _Search:
    """Mutable search state over the movable part of a plan."""

    def __init__(
        self,
        problem: Problem,
        routes: Sequence[Route],
        continuity_s: int,
        stability_s: int,
        rng: random.Random,
    ) -> None:
        self.problem = problem
        self.rng = rng
        shift_pos = {s.id: i for i, s in enumerate(problem.shifts)}
        vindex = {v.id: i for i, v in enumerate(problem.visits)}
        fixed_ids = {f.visit_id for f in problem.fixed}
        needed = {v.depends_on.visit_id for v in problem.visits if v.depends_on is not None}

        def simple(vi: int) -> bool:
            v = problem.visits[vi]
            return (
                v.carers_required == 1
                and v.depends_on is None
                and v.id not in needed
                and v.id not in fixed_ids
                and v.geocoded
            )

        def linked(vi: int) -> bool:
            """A dependency partner: it stays on its route at its start (pinned below)."""
            v = problem.visits[vi]
            return (
                v.carers_required == 1
                and (v.depends_on is not None or v.id in needed)
                and v.id not in fixed_ids
                and v.geocoded
            )

        #: visit index -> (route, start) of dependency partners; they keep both.
        self.pinned: dict[int, tuple[int, int]] = {}

        #: Search routes: shift index, and the position of the input route (-1 = unused shift).
        self.shift: list[int] = []
        self.origin: list[int] = []
        self.seqs: list[list[int]] = []
        used: set[str] = set()
        nv = len(problem.visits)
        #: Breaks as route items: index ``nv + k`` -> (break id, duration, start windows). A
        #: break stays on its route; it is taken where the carer is (no travel in or out).
        self.breaks: list[tuple[str, int, list[tuple[int, int]]]] = []
        break_route: list[int] = []
        for k, route in enumerate(routes):
            used.add(route.shift_id)
            si = shift_pos.get(route.shift_id)
            if si is None:
                continue
            shift = problem.shifts[si]
            by_break = {b.id: b for b in shift.breaks}
            taken = [s.break_id for s in route.stops if s.kind is StopKind.BREAK]
            if sorted(taken, key=str) != sorted(by_break, key=str):
                continue
            ids = [vindex.get(vid, -1) for vid in route.visit_ids]
            if any(vi < 0 or not (simple(vi) or linked(vi)) for vi in ids):
                continue
            for stop in route.stops:
                vi = vindex.get(stop.visit_id or "", -1)
                if vi >= 0 and linked(vi):
                    self.pinned[vi] = (len(self.seqs), stop.start)
            seq: list[int] = []
            for stop in route.stops[1:-1]:
                if stop.kind is StopKind.BREAK and stop.break_id in by_break:
                    b = by_break[stop.break_id]
                    wins = sorted(
                        (w.start, w.end - b.duration)
                        for w in b.windows
                        if w.end - b.duration >= w.start
                    )
                    seq.append(nv + len(self.breaks))
                    self.breaks.append((b.id, b.duration, wins))
                    break_route.append(len(self.seqs))
                elif stop.visit_id is not None:
                    seq.append(vindex[stop.visit_id])
            self.shift.append(si)
            self.origin.append(k)
            self.seqs.append(seq)
        for si, s in enumerate(problem.shifts):
            if s.id not in used and not s.breaks:
                self.shift.append(si)
                self.origin.append(-1)
                self.seqs.append([])
        self.movable = [vi for seq in self.seqs for vi in seq if vi < nv]
        self.init_seqs = [list(seq) for seq in self.seqs]

        # Compact locations: movable visits and the depots of the search routes; one zero
        # node stands for a missing start / end location (no travel, as in the decoder).
        locs: list[int] = []
        cindex: dict[int, int] = {}

        def cid(loc: int | None) -> int:
            if loc is None:
                return -1
            if loc not in cindex:
                cindex[loc] = len(locs)
                locs.append(loc)
            return cindex[loc]

        self.nv = nv
        n_all = nv + len(self.breaks)
        self.isb = [False] * nv + [True] * len(self.breaks)
        self.loc = [0] * n_all
        self.dur = [0] * n_all
        self.dem = [0] * n_all
        self.wins: list[list[tuple[int, int]]] = [[] for _ in range(n_all)]
        #: Soft windows: latest preferred start per visit (lateness is charged one for one).
        self.due: list[int | None] = [None] * n_all
        for k, (_bid, bdur, bwins) in enumerate(self.breaks):
            self.dur[nv + k] = bdur
            self.wins[nv + k] = bwins or [(_FAR, _FAR)]
        for vi in self.movable:
            v = problem.visits[vi]
            self.loc[vi] = cid(v.location)
            self.dur[vi] = v.duration
            self.dem[vi] = v.demand
            self.due[vi] = v.due
            if vi in self.pinned:
                t = self.pinned[vi][1]
                self.wins[vi] = [(t, t)]
            elif v.windows:
                self.wins[vi] = sorted(
                    (w.start, w.end - v.duration)
                    for w in v.windows
                    if w.end - v.duration >= w.start
                )
            else:
                self.wins[vi] = [(-_FAR, _FAR)]
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
        self.t0 = [problem.shifts[si].start for si in self.shift]
        self.t1 = [problem.shifts[si].end for si in self.shift]
        total = sum(self.dem)
        self.cap = [_cap(problem.shifts[si].capacity, total) for si in self.shift]
        n_breaks = [0] * len(self.shift)
        for r in break_route:
            n_breaks[r] += 1
        self.maxv = [
            _cap(problem.shifts[si].max_visits, nv) + n_breaks[r] for r, si in enumerate(self.shift)
        ]
        self.maxtt = [_cap(problem.shifts[si].max_travel_time, _FAR) for si in self.shift]

        from app.scheduling.explain import qualified_shifts

        route_of_shift: dict[int, list[int]] = {}
        for r, si in enumerate(self.shift):
            route_of_shift.setdefault(si, []).append(r)
        self.allowed: list[frozenset[int]] = [frozenset()] * n_all
        for k, r in enumerate(break_route):
            self.allowed[nv + k] = frozenset({r})
        self.pen: list[dict[int, int]] = [{} for _ in range(n_all)]
        for vi in self.movable:
            v = problem.visits[vi]
            rs = [
                r
                for s in qualified_shifts(problem, v)
                for r in route_of_shift.get(shift_pos[s.id], [])
            ]
            self.allowed[vi] = frozenset(rs)
            if vi in self.pinned:
                self.allowed[vi] = frozenset({self.pinned[vi][0]})
            for r in rs:
                p = visit_penalty(problem, v, self.shift[r], continuity_s, stability_s)
                if p:
                    self.pen[vi][r] = p
        self.has_pen = any(self.pen[vi] for vi in self.movable)

        # Granular neighbourhoods on the first matrix (travel both ways).
        self.near: list[list[int]] = [[] for _ in range(n_all)]
        if self.movable and self.mat:
            m = np.asarray(self.mat[0], dtype=np.float64)
            mv = np.asarray(self.movable, dtype=np.intp)
            ci = np.asarray([self.loc[vi] for vi in self.movable], dtype=np.intp)
            d = m[np.ix_(ci, ci)] + m[np.ix_(ci, ci)].T
            np.fill_diagonal(d, np.inf)
            k = min(NEIGHBOURS, len(self.movable) - 1)
            if k > 0:
                order = np.argsort(d, axis=1, kind="stable")[:, :k]
                for row, vi in enumerate(self.movable):
                    self.near[vi] = [int(x) for x in mv[order[row]]]

        self.route_of = [-1] * n_all
        self.pos = [0] * n_all
        n_routes = len(self.seqs)
        self.cost = [0] * n_routes
        self.travel_sum = [0] * n_routes
        self.load = [0] * n_routes
        self.E: list[list[int]] = [[] for _ in range(n_routes)]
        self.L: list[list[int]] = [[] for _ in range(n_routes)]
        self.nodes: list[list[int]] = [[] for _ in range(n_routes)]
        for r in range(n_routes):
            self.refresh(r)

    # ----------------------------------------------------------------- evaluation

    def evaluate(self, r: int, seq: Sequence[int]) -> int | None:
        """Exact cost of route ``r`` running ``seq``, or None when it breaks a rule."""
        mat = self.mat[r]
        prev = self.start_node[r]
        t = self.t0[r]
        d = 0
        tt = 0
        load = 0
        pen = 0
        allowed, wins, loc, dur = self.allowed, self.wins, self.loc, self.dur
        for v in seq:
            if r not in allowed[v]:
                return None
            c = prev if self.isb[v] else loc[v]
            step = mat[prev][c]
            tt += step
            t = _earliest(wins[v], t + d + step)
            if t >= _FAR:
                return None
            d = dur[v]
            prev = c
            load += self.dem[v]
            pen += self.pen[v].get(r, 0)
            due = self.due[v]
            if due is not None and t > due:
                pen += t - due
        step = mat[prev][self.end_node[r]]
        tt += step
        if t + d + step > self.t1[r]:
            return None
        if load > self.cap[r] or len(seq) > self.maxv[r] or tt > self.maxtt[r]:
            return None
        return tt + pen

    def refresh(self, r: int) -> None:
        """Recompute the caches of route ``r`` (nodes, earliest / latest starts, load, cost)."""
        seq = self.seqs[r]
        mat = self.mat[r]
        nodes = [self.start_node[r]]
        for v in seq:
            nodes.append(nodes[-1] if self.isb[v] else self.loc[v])
        nodes.append(self.end_node[r])
        durs = [0, *(self.dur[v] for v in seq), 0]
        m = len(seq)
        e = [self.t0[r]] * (m + 2)
        tt = 0
        for i in range(1, m + 1):
            step = mat[nodes[i - 1]][nodes[i]]
            tt += step
            e[i] = _earliest(self.wins[seq[i - 1]], e[i - 1] + durs[i - 1] + step)
        step = mat[nodes[m]][nodes[m + 1]]
        tt += step
        e[m + 1] = e[m] + durs[m] + step
        lt = [self.t1[r]] * (m + 2)
        for i in range(m, 0, -1):
            bound = lt[i + 1] - mat[nodes[i]][nodes[i + 1]] - durs[i]
            lt[i] = _latest(self.wins[seq[i - 1]], bound)
        lt[0] = lt[1] - mat[nodes[0]][nodes[1]] if m else self.t1[r] - mat[nodes[0]][nodes[1]]
        self.nodes[r] = nodes
        self.E[r] = e
        self.L[r] = lt
        self.travel_sum[r] = tt
        self.load[r] = sum(self.dem[v] for v in seq)
        late = 0
        for i, v in enumerate(seq):
            due = self.due[v]
            if due is not None and e[i + 1] > due:
                late += e[i + 1] - due
        self.cost[r] = tt + sum(self.pen[v].get(r, 0) for v in seq) + late
        for i, v in enumerate(seq):
            self.route_of[v] = r
            self.pos[v] = i

    def total(self) -> int:
        """Objective of the current solution."""
        return sum(self.cost)

    def _fits_between(self, r: int, p: int, v: int) -> int | None:
        """Travel delta of ``v`` inserted after node position ``p`` of route ``r`` if it fits."""
        if r not in self.allowed[v]:
            return None
        nodes, mat = self.nodes[r], self.mat[r]
        a, b, c = nodes[p], self.loc[v], nodes[p + 1]
        dur_p = self.dur[self.seqs[r][p - 1]] if p > 0 else 0
        s = _earliest(self.wins[v], self.E[r][p] + dur_p + mat[a][b])
        if s >= _FAR:
            return None
        arr = s + self.dur[v] + mat[b][c]
        m = len(self.seqs[r])
        if p + 1 == m + 1:
            if arr > self.t1[r]:
                return None
        elif _earliest(self.wins[self.seqs[r][p]], arr) > self.L[r][p + 1]:
            return None
        delta = mat[a][b] + mat[b][c] - mat[a][c]
        if self.travel_sum[r] + delta > self.maxtt[r]:
            return None
        return delta

    def _joins(self, r: int, t: int, d: int, c: int, chain: Sequence[int], rb: int, q: int) -> bool:
        """Whether leaving node ``c`` of route ``r`` at ``t + d``, doing ``chain`` and then joining
        route ``rb`` at node position ``q`` keeps its time windows (O(len(chain)) test).

        The latest starts of ``rb`` are only valid for ``r`` when both have the same matrix and
        end; otherwise the test passes and the exact evaluation decides.
        """
        mat = self.mat[r]
        for v in chain:
            cv = self.loc[v]
            t = _earliest(self.wins[v], t + d + mat[c][cv])
            if t >= _FAR:
                return False
            d, c = self.dur[v], cv
        if rb != r and (
            self.mat[rb] is not mat
            or self.end_node[rb] != self.end_node[r]
            or self.t1[rb] != self.t1[r]
        ):
            return True
        nodes = self.nodes[rb]
        arr = t + d + mat[c][nodes[q]]
        if q == len(nodes) - 1:
            return arr <= self.t1[rb]
        return _earliest(self.wins[self.seqs[rb][q - 1]], arr) <= self.L[rb][q]

    def _node_start(self, r: int, q: int) -> tuple[int, int]:
        """Earliest start and duration of node position ``q`` of route ``r``."""
        return self.E[r][q], (self.dur[self.seqs[r][q - 1]] if 0 < q <= len(self.seqs[r]) else 0)

    def apply(self, changes: dict[int, list[int]]) -> bool:
        """Replace the given routes' sequences if they are feasible and cost less in total."""
        new_cost = 0
        for r, seq in changes.items():
            c = self.evaluate(r, seq)
            if c is None:
                return False
            new_cost += c
        if new_cost >= sum(self.cost[r] for r in changes):
            return False
        for r, seq in changes.items():
            self.seqs[r] = seq
            self.refresh(r)
        return True

    # ----------------------------------------------------------------- local search

    def _try_visit(self, u: int) -> tuple[list[int], int] | None:
        """First improving move around ``u``: the changed routes and the partner, or None."""
        if self.isb[u]:
            return None
        ra = self.route_of[u]
        i = self.pos[u]
        a = self.seqs[ra]
        na, ma = self.nodes[ra], self.mat[ra]
        p_u, n_u = na[i], na[i + 2]
        cu = self.loc[u]
        pen_u = self.pen[u].get(ra, 0) if self.has_pen else 0
        gain_u = ma[p_u][cu] + ma[cu][n_u] - ma[p_u][n_u] + pen_u
        for v in self.near[u]:
            rb = self.route_of[v]
            if rb < 0:
                continue
            j = self.pos[v]
            b = self.seqs[rb]
            nb, mb = self.nodes[rb], self.mat[rb]
            cv = self.loc[v]
            pen_ub = self.pen[u].get(rb, 0) if self.has_pen else 0
            # Relocate u after v, then before v.
            for p in (j + 1, j):
                if ra == rb and p in (i, i + 1):
                    continue
                q, s = nb[p], nb[p + 1]
                delta = mb[q][cu] + mb[cu][s] - mb[q][s] + pen_ub - gain_u
                if delta >= 0:
                    continue
                if ra == rb:
                    seq = a[:i] + a[i + 1 :]
                    k = p if p < i + 1 else p - 1
                    seq.insert(k, u)
                    if self.apply({ra: seq}):
                        return [ra], v
                    continue
                if (
                    self.load[rb] + self.dem[u] > self.cap[rb]
                    or len(b) + 1 > self.maxv[rb]
                    or self._fits_between(rb, p, u) is None
                ):
                    continue
                if self.apply({ra: a[:i] + a[i + 1 :], rb: [*b[:p], u, *b[p:]]}):
                    return [ra, rb], v
            if ra == rb:
                # Or-opt: move the chain u.. (2 or 3 visits) after or before v.
                for ln in (2, 3):
                    if i + ln > len(a) or i <= j < i + ln:
                        continue
                    chain = a[i : i + ln]
                    last = self.loc[chain[-1]]
                    nxt = na[i + ln + 1]
                    rem = ma[p_u][cu] + ma[last][nxt] - ma[p_u][nxt]
                    rest = a[:i] + a[i + ln :]
                    for p in (j + 1, j):
                        q, s = na[p], na[p + 1]
                        if q in (cu,) or p in (i, i + ln):
                            continue
                        delta = ma[q][cu] + ma[last][s] - ma[q][s] - rem
                        if delta >= 0:
                            continue
                        k = p if p <= i else p - ln
                        seq = rest[:k] + chain + rest[k:]
                        if self.apply({ra: seq}):
                            return [ra], v
                continue
            # Exchange u and v.
            p_v, n_v = nb[j], nb[j + 2]
            pen_va = self.pen[v].get(ra, 0) if self.has_pen else 0
            pen_vb = self.pen[v].get(rb, 0) if self.has_pen else 0
            delta = (
                ma[p_u][cv] + ma[cv][n_u] - ma[p_u][cu] - ma[cu][n_u]
                + mb[p_v][cu] + mb[cu][n_v] - mb[p_v][cv] - mb[cv][n_v]
                + pen_ub + pen_va - pen_u - pen_vb
            )  # fmt: skip
            if (
                delta < 0
                and self._joins(ra, *self._node_start(ra, i), p_u, [v], ra, i + 2)
                and self._joins(rb, *self._node_start(rb, j), p_v, [u], rb, j + 2)
            ):
                sa, sb = list(a), list(b)
                sa[i], sb[j] = v, u
                if self.apply({ra: sa, rb: sb}):
                    return [ra, rb], v
            # 2-opt*: u -> v (tails swapped), and v -> u.
            delta = ma[cu][cv] + mb[p_v][n_u] - ma[cu][n_u] - mb[p_v][cv]
            if (
                delta < 0
                and self._joins(ra, *self._node_start(ra, i + 1), cu, [], rb, j + 1)
                and self._joins(rb, *self._node_start(rb, j), p_v, [], ra, i + 2)
                and self.apply({ra: a[: i + 1] + b[j:], rb: b[:j] + a[i + 1 :]})
            ):
                return [ra, rb], v
            delta = mb[cv][cu] + ma[p_u][n_v] - mb[cv][n_v] - ma[p_u][cu]
            if (
                delta < 0
                and self._joins(rb, *self._node_start(rb, j + 1), cv, [], ra, i + 1)
                and self._joins(ra, *self._node_start(ra, i), p_u, [], rb, j + 2)
                and self.apply({rb: b[: j + 1] + a[i:], ra: a[:i] + b[j + 1 :]})
            ):
                return [ra, rb], v
            # Or-opt between routes: chain u.. after / before v.
            for ln in (2, 3):
                if i + ln > len(a):
                    break
                chain = a[i : i + ln]
                last = self.loc[chain[-1]]
                nxt = na[i + ln + 1]
                rem = ma[p_u][cu] + ma[last][nxt] - ma[p_u][nxt]
                for p in (j + 1, j):
                    q, s = nb[p], nb[p + 1]
                    delta = mb[q][cu] + mb[last][s] - mb[q][s] - rem
                    if (
                        delta < 0
                        and self._joins(rb, *self._node_start(rb, p), q, chain, rb, p + 1)
                        and self.apply({ra: a[:i] + a[i + ln :], rb: b[:p] + chain + b[p:]})
                    ):
                        return [ra, rb], v
        return None

    def local_search(self, todo: Sequence[int], deadline: float) -> None:
        """Apply first-improvement moves around the visits in ``todo`` until none is left."""
        queue = deque(todo)
        queued = set(todo)
        steps = 0
        while queue:
            steps += 1
            if steps % 32 == 0 and time.perf_counter() > deadline:
                return
            u = queue.popleft()
            queued.discard(u)
            found = self._try_visit(u)
            if found is None:
                continue
            changed, v = found
            moved = {u, v}
            # Requeue the visits whose surroundings changed: the moved ones and their new
            # neighbours in route order (whole routes would make each repair quadratic).
            for r in changed:
                seq = self.seqs[r]
                for k, w in enumerate(seq):
                    if w in queued:
                        continue
                    if any(0 <= k + o < len(seq) and seq[k + o] in moved for o in (-1, 0, 1)):
                        queued.add(w)
                        queue.append(w)

    # ----------------------------------------------------------------- ruin and recreate

    def ruin_recreate(self, size: int) -> list[int] | None:
        """Remove ``size`` visits around a random one, re-insert each at its cheapest place.

        Returns the removed visits, or None (state unchanged) when one cannot be re-inserted.
        """
        seed = self.rng.choice(self.movable)
        removed = [seed, *[w for w in self.near[seed] if self.route_of[w] >= 0][: size - 1]]
        touched = sorted({self.route_of[w] for w in removed})
        saved = {r: list(self.seqs[r]) for r in touched}
        gone = set(removed)
        for r in touched:
            self.seqs[r] = [w for w in self.seqs[r] if w not in gone]
            self.refresh(r)
        order = list(removed)
        self.rng.shuffle(order)
        if self.rng.random() < 0.5:
            order.sort(key=lambda w: self.wins[w][0][1] - self.wins[w][0][0])
        changed: set[int] = set(touched)
        placed: set[int] = set()
        empty = [r for r in range(len(self.seqs)) if not self.seqs[r]]
        for w in order:
            best: tuple[int, int, int] | None = None
            # Granular: routes of the nearest planned visits and one empty route; all if none fit.
            close = {self.route_of[x] for x in self.near[w] if x not in gone or x in placed}
            close.update(r for r in empty[:1] if not self.seqs[r])
            best = self._cheapest(w, close & self.allowed[w])
            if best is None:
                best = self._cheapest(w, self.allowed[w])
            if best is None:
                for r, seq in saved.items():
                    self.seqs[r] = seq
                for r in changed:
                    if r not in saved:
                        self.seqs[r] = [x for x in self.seqs[r] if x not in gone]
                for r in changed:
                    self.refresh(r)
                return None
            _, r, p = best
            self.seqs[r].insert(p, w)
            self.refresh(r)
            placed.add(w)
            changed.add(r)
        return removed

    def _cheapest(self, w: int, routes: Iterable[int]) -> tuple[int, int, int] | None:
        """Cheapest feasible insertion (delta, route, position) of ``w`` into ``routes``."""
        best: tuple[int, int, int] | None = None
        for r in routes:
            if self.load[r] + self.dem[w] > self.cap[r] or len(self.seqs[r]) >= self.maxv[r]:
                continue
            pen = self.pen[w].get(r, 0) if self.has_pen else 0
            for p in range(len(self.seqs[r]) + 1):
                if self.rng.random() < 0.01:
                    continue
                delta = self._fits_between(r, p, w)
                if delta is not None and (best is None or delta + pen < best[0]):
                    best = (delta + pen, r, p)
        return best

    def snapshot(self) -> list[list[int]]:
        """A copy of every route's sequence."""
        return [list(s) for s in self.seqs]

    def restore(self, seqs: Sequence[Sequence[int]]) -> None:
        """Go back to a snapshot."""
        for r, s in enumerate(seqs):
            if self.seqs[r] != list(s):
                self.seqs[r] = list(s)
                self.refresh(r)


def _cap(value: int | None, default: int) -> int:
    return default if value is None else value


def timed_route(
    problem: Problem,
    si: int,
    seq: Sequence[int],
    wins: Sequence[Sequence[tuple[int, int]]] | None = None,
    breaks: Sequence[tuple[str, int, Sequence[tuple[int, int]]]] = (),
) -> Route:
    """Route of shift ``si`` doing visits ``seq`` (indices into ``problem.visits``) in order.

    Each visit starts as early as it can (arrival, or the opening of its first window that
    still fits); the carer leaves as late as that allows. No rule is checked here.

    Parameters
    ----------
    problem
        The problem.
    si
        Index of the shift in ``problem.shifts``.
    seq
        Visit indices in route order.
    wins
        Start windows per visit index to use instead of the visits' own (the search pins
        dependency partners to their start this way).
    breaks
        Items ``len(problem.visits) + k`` of ``seq`` are breaks ``breaks[k]`` (id, duration,
        start windows), taken where the carer is, then the carer travels on.

    Returns
    -------
    Route
        START, one VISIT stop per visit, END, with travel and distance from the matrices.
    """
    shift = problem.shifts[si]
    nv = len(problem.visits)

    def own(vi: int) -> Sequence[tuple[int, int]]:
        if vi >= nv:
            return breaks[vi - nv][2]
        return wins[vi] if wins is not None else _start_windows(problem.visits[vi])

    depart = shift.start
    if seq and seq[0] < nv:
        t, _ = travel(problem, shift, shift.start_location, problem.visits[seq[0]].location)
        first = _earliest(own(seq[0]), shift.start + t)
        depart = max(shift.start, first - t)
    stops = [Stop(StopKind.START, depart, depart, depart, location=shift.start_location)]
    now, loc = depart, shift.start_location
    for vi in seq:
        if vi >= nv:
            bid, bdur, _w = breaks[vi - nv]
            begin = _earliest(own(vi), now)
            stops.append(
                Stop(
                    StopKind.BREAK,
                    now,
                    begin,
                    begin + bdur,
                    location=loc,
                    break_id=bid,
                    waiting=begin - now,
                )
            )
            now = begin + bdur
            continue
        v = problem.visits[vi]
        t, d = travel(problem, shift, loc, v.location)
        arrival = now + t
        begin = _earliest(own(vi), arrival)
        stops.append(
            Stop(
                StopKind.VISIT,
                arrival,
                begin,
                begin + v.duration,
                location=v.location,
                visit_id=v.id,
                travel_time=t,
                distance=d,
                waiting=begin - arrival,
            )
        )
        now, loc = begin + v.duration, v.location
    t, d = travel(problem, shift, loc, shift.end_location)
    end_loc = shift.end_location if shift.end_location is not None else loc
    stops.append(
        Stop(StopKind.END, now + t, now + t, now + t, location=end_loc, travel_time=t, distance=d)
    )
    return Route(shift.id, shift.staff_id, shift.profile, tuple(stops))


def _start_windows(v: Visit) -> list[tuple[int, int]]:
    if not v.windows:
        return [(-_FAR, _FAR)]
    return sorted((w.start, w.end - v.duration) for w in v.windows if w.end - v.duration >= w.start)


def improve_routes(
    problem: Problem,
    routes: Sequence[Route],
    time_limit_s: float,
    *,
    continuity_penalty_s: int = 0,
    stability_penalty_s: int = 0,
    seed: int = 0,
) -> ImproveResult:
    """Shorten solved routes by local search and ruin-and-recreate within a time budget.

    Parameters
    ----------
    problem
        The problem the routes solve.
    routes
        Decoded, valid routes (as :func:`app.scheduling.solve` builds them).
    time_limit_s
        Wall-clock budget; the local search alone always runs to its first local optimum
        unless this budget runs out first.
    continuity_penalty_s, stability_penalty_s
        The penalties the objective charges, as in :class:`app.scheduling.model.SolveOptions`.
    seed
        Seed of the random choices (the search is deterministic for a given seed and budget
        only when it ends by itself, since the budget is wall-clock).

    Returns
    -------
    ImproveResult
        The improved routes (routes of shifts left empty are dropped, shifts not used before may
        appear), or the input routes when nothing better that keeps every rule was found.
    """
    deadline = time.perf_counter() + max(time_limit_s, 0.0)
    rng = random.Random(seed)
    st = _Search(problem, routes, continuity_penalty_s, stability_penalty_s, rng)
    before = st.total()
    if not st.movable or time_limit_s <= 0:
        return ImproveResult(tuple(routes), before, before, 0)
    order = list(st.movable)
    rng.shuffle(order)
    st.local_search(order, deadline)
    best, best_cost = st.snapshot(), st.total()
    current = best_cost
    iterations = 0
    start = time.perf_counter()
    span = max(deadline - start, 1e-9)
    while time.perf_counter() < deadline:
        iterations += 1
        snap = st.snapshot()
        size = rng.randint(5, min(20, max(5, len(st.movable) // 5)))
        removed = st.ruin_recreate(size)
        if removed is None:
            continue
        todo = {w for x in removed for w in (x, *st.near[x][:5]) if st.route_of[w] >= 0}
        st.local_search(sorted(todo), deadline)
        cost = st.total()
        left = 1.0 - (time.perf_counter() - start) / span
        if cost < best_cost:
            best, best_cost, current = st.snapshot(), cost, cost
        elif cost <= current or cost <= best_cost * (1.0 + 0.01 * max(left, 0.0)):
            current = cost
        else:
            st.restore(snap)
    if best_cost >= before:
        return ImproveResult(tuple(routes), before, before, iterations)
    st.restore(best)
    out: list[Route] = []
    by_origin = {st.origin[r]: r for r in range(len(st.seqs)) if st.origin[r] >= 0}
    for k, route in enumerate(routes):
        r = by_origin.get(k)
        if r is None or st.seqs[r] == st.init_seqs[r]:
            out.append(route)
        elif any(v < st.nv for v in st.seqs[r]):
            out.append(timed_route(problem, st.shift[r], st.seqs[r], st.wins, st.breaks))
    for r, o in enumerate(st.origin):
        if o < 0 and st.seqs[r]:
            out.append(timed_route(problem, st.shift[r], st.seqs[r], st.wins, st.breaks))
    found = validate(problem, pending_plan(problem, out))
    old = validate(problem, pending_plan(problem, routes))
    hard = [f for f in found if f.kind is not ViolationKind.PRIORITY]
    if hard or len(found) > len(old):
        return ImproveResult(tuple(routes), before, before, iterations)
    return ImproveResult(tuple(out), before, best_cost, iterations)


def improve_plan(
    problem: Problem,
    plan: Plan,
    time_limit_s: float,
    *,
    continuity_penalty_s: int = 0,
    stability_penalty_s: int = 0,
    seed: int = 0,
) -> Plan:
    """:func:`improve_routes` on a plan's routes; unassigned visits and times are kept as they are.

    Parameters
    ----------
    problem
        The problem the plan solves.
    plan
        A valid plan.
    time_limit_s, continuity_penalty_s, stability_penalty_s, seed
        As in :func:`improve_routes`.

    Returns
    -------
    Plan
        The plan with improved routes (KPIs are not recomputed), or ``plan`` itself.
    """
    res = improve_routes(
        problem,
        plan.routes,
        time_limit_s,
        continuity_penalty_s=continuity_penalty_s,
        stability_penalty_s=stability_penalty_s,
        seed=seed,
    )
    if res.cost_after >= res.cost_before:
        return plan
    return Plan(res.routes, plan.unassigned, plan.kpis, plan.solve_time_s)


__all__ = ["ImproveResult", "improve_plan", "improve_routes", "timed_route", "visit_penalty"]
