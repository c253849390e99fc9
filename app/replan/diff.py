"""What changed between two versions of a plan, per carer and in total.

Definitions (see docs/decisions/replan-freeze-and-stability.md):

- **resource change**: a visit planned in both versions whose set of carers differs;
- **start moved**: a visit planned in both whose start moved by more than ``start_threshold_s``;
- **order change**: among the visits a carer keeps (on that carer's route in both versions), the
  fewest visits that must be taken out so the rest keep their relative order: the visits outside a
  longest common subsequence of the old and new order. Moving one visit from first to last counts
  1 (not one per visit it jumps over); swapping two neighbours counts 1;
- **added** / **removed**: planned only in the new / only in the old version (urgent visits placed,
  visits cancelled or left unassigned);
- **mutation** (the operating-room planning literature's term): a visit with a resource change, a
  start moved by more than the threshold, or an order change; each visit counts at most once.

A carer is **affected** when their list of stops differs in any field (times included); a route of
only start and end stops equals no route. The API changes exactly the affected carers' route ETags.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from app.replan.errors import InvalidArgumentError
from app.scheduling.model import Plan, Stop, StopKind

#: Default threshold above which a moved start counts as a mutation: one hour.
DEFAULT_START_THRESHOLD_S = 3600


@dataclass(frozen=True, slots=True)
class CarerDiff:
    """Changes seen by one carer (staff member).

    ``mutations`` counts distinct mutated visits on this carer's old or new route, so a visit
    moved from carer A to carer B counts for both and per-carer figures may sum above the total.
    """

    staff_id: str
    affected: bool
    moved_in: tuple[str, ...]
    moved_out: tuple[str, ...]
    start_moved: tuple[str, ...]
    order_changed: tuple[str, ...]
    added: tuple[str, ...]
    removed: tuple[str, ...]
    mutations: int

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dictionary."""
        return {
            "staff_id": self.staff_id,
            "affected": self.affected,
            "moved_in": list(self.moved_in),
            "moved_out": list(self.moved_out),
            "start_moved": list(self.start_moved),
            "order_changed": list(self.order_changed),
            "added": list(self.added),
            "removed": list(self.removed),
            "mutations": self.mutations,
        }


@dataclass(frozen=True, slots=True)
class PlanDiff:
    """All changes between two plan versions."""

    carers: tuple[CarerDiff, ...]
    resource_changed: tuple[str, ...]
    start_moved: tuple[str, ...]
    order_changed: tuple[str, ...]
    added: tuple[str, ...]
    removed: tuple[str, ...]
    #: Visits with at least one mutation, sorted.
    mutated: tuple[str, ...]
    start_threshold_s: int

    @property
    def mutations(self) -> int:
        """Number of mutated visits (each counted once)."""
        return len(self.mutated)

    @property
    def affected_staff(self) -> tuple[str, ...]:
        """Staff whose stops changed in any way, sorted (their route ETag changes)."""
        return tuple(c.staff_id for c in self.carers if c.affected)

    def carer(self, staff_id: str) -> CarerDiff | None:
        """The diff for one staff member, or None if they appear in neither version."""
        return next((c for c in self.carers if c.staff_id == staff_id), None)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dictionary."""
        return {
            "mutations": self.mutations,
            "mutated": list(self.mutated),
            "resource_changed": list(self.resource_changed),
            "start_moved": list(self.start_moved),
            "order_changed": list(self.order_changed),
            "added": list(self.added),
            "removed": list(self.removed),
            "affected_staff": list(self.affected_staff),
            "start_threshold_s": self.start_threshold_s,
            "carers": [c.to_dict() for c in self.carers],
        }


def diff_plans(
    old: Plan, new: Plan, *, start_threshold_s: int = DEFAULT_START_THRESHOLD_S
) -> PlanDiff:
    """Compare two plan versions.

    Parameters
    ----------
    old
        The previous version.
    new
        The new version.
    start_threshold_s
        A start moved by strictly more than this many seconds is a mutation (default 1 hour).

    Returns
    -------
    PlanDiff
        Per-carer and total changes, the mutation count and the affected carers.
    """
    if start_threshold_s < 0:
        msg = f"start_threshold_s must be >= 0, got {start_threshold_s}"
        raise InvalidArgumentError(msg)
    old_staff, old_start, old_order = _index(old)
    new_staff, new_start, new_order = _index(new)
    common = old_staff.keys() & new_staff.keys()
    resource = {v for v in common if old_staff[v] != new_staff[v]}
    start = {v for v in common if abs(new_start[v] - old_start[v]) > start_threshold_s}
    added = set(new_staff) - set(old_staff)
    removed = set(old_staff) - set(new_staff)

    staff_ids = sorted(old_order.keys() | new_order.keys() | _route_staff(old) | _route_staff(new))
    order: set[str] = set()
    order_by_staff: dict[str, set[str]] = {}
    for sid in staff_ids:
        before, after = old_order.get(sid, ()), new_order.get(sid, ())
        kept = set(before) & set(after)
        moved = _out_of_order([v for v in before if v in kept], [v for v in after if v in kept])
        order_by_staff[sid] = moved
        order |= moved
    mutated = resource | start | order

    old_stops, new_stops = _stops_by_staff(old), _stops_by_staff(new)
    carers = []
    for sid in staff_ids:
        was, now = set(old_order.get(sid, ())), set(new_order.get(sid, ()))
        touched = was | now
        carers.append(
            CarerDiff(
                staff_id=sid,
                affected=old_stops.get(sid, ()) != new_stops.get(sid, ()),
                moved_in=_sorted(v for v in now - was if v in common),
                moved_out=_sorted(v for v in was - now if v in common),
                start_moved=_sorted(touched & start),
                order_changed=_sorted(order_by_staff[sid]),
                added=_sorted(now & added),
                removed=_sorted(was & removed),
                mutations=len(touched & mutated),
            )
        )
    return PlanDiff(
        carers=tuple(carers),
        resource_changed=_sorted(resource),
        start_moved=_sorted(start),
        order_changed=_sorted(order),
        added=_sorted(added),
        removed=_sorted(removed),
        mutated=_sorted(mutated),
        start_threshold_s=start_threshold_s,
    )


def _sorted(ids: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(ids))


def _route_staff(plan: Plan) -> set[str]:
    return {r.staff_id for r in plan.routes}


def _index(
    plan: Plan,
) -> tuple[dict[str, frozenset[str]], dict[str, int], dict[str, tuple[str, ...]]]:
    """Visit -> carers, visit -> first start, staff -> visit order (shifts of one staff joined)."""
    staff: dict[str, set[str]] = defaultdict(set)
    start: dict[str, int] = {}
    order: dict[str, list[str]] = defaultdict(list)
    for route in sorted(plan.routes, key=lambda r: (r.staff_id, _first_time(r.stops))):
        for stop in route.stops:
            if stop.kind is StopKind.VISIT and stop.visit_id is not None:
                staff[stop.visit_id].add(route.staff_id)
                start[stop.visit_id] = min(start.get(stop.visit_id, stop.start), stop.start)
                order[route.staff_id].append(stop.visit_id)
    return (
        {v: frozenset(s) for v, s in staff.items()},
        start,
        {s: tuple(o) for s, o in order.items()},
    )


def _first_time(stops: Sequence[Stop]) -> int:
    return stops[0].start if stops else 0


def _stops_by_staff(plan: Plan) -> Mapping[str, tuple[tuple[str, tuple[Stop, ...]], ...]]:
    """Staff -> their non-empty routes' stops (a start-and-end-only route counts as none)."""
    out: dict[str, list[tuple[str, tuple[Stop, ...]]]] = defaultdict(list)
    for route in plan.routes:
        if any(s.kind in (StopKind.VISIT, StopKind.BREAK) for s in route.stops):
            out[route.staff_id].append((route.shift_id, route.stops))
    return {sid: tuple(sorted(routes, key=lambda r: r[0])) for sid, routes in out.items()}


def _out_of_order(before: Sequence[str], after: Sequence[str]) -> set[str]:
    """Visits of ``after`` outside one longest common subsequence with ``before``.

    Both hold the same distinct ids, so the LCS is a longest increasing subsequence of the old
    positions read in new order (patience sorting, O(n log n)).
    """
    pos = {v: i for i, v in enumerate(before)}
    seq = [pos[v] for v in after]
    tails: list[int] = []  # tails[k] = index in seq of the smallest tail of an LIS of length k+1
    tail_values: list[int] = []
    prev = [-1] * len(seq)
    for i, p in enumerate(seq):
        k = bisect_left(tail_values, p)
        if k > 0:
            prev[i] = tails[k - 1]
        if k == len(tails):
            tails.append(i)
            tail_values.append(p)
        else:
            tails[k] = i
            tail_values[k] = p
    keep: set[int] = set()
    i = tails[-1] if tails else -1
    while i >= 0:
        keep.add(i)
        i = prev[i]
    return {v for i, v in enumerate(after) if i not in keep}
