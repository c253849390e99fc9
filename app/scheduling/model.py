"""The planning problem and the plan, as plain frozen dataclasses.

This is the contract between the adapters (API, store, benchmarks) and the pure core
(:mod:`app.scheduling`, :mod:`app.replan`). All times are integer seconds since midnight of the
plan's local date; all durations integer seconds; distances integer metres. Locations are indices
into ``Problem.locations`` and into every matrix in ``Problem.matrices``.

Time-window semantics: a visit must *start and end* inside one of its windows
(``window.start <= start`` and ``start + duration <= window.end``). A shift's ``start``/``end``
bound the whole working day including travel from the start location and back to the end location.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from app.domain import LatLon, TravelMatrix


class Priority(StrEnum):
    """Whether a visit must happen today or may move."""

    MANDATORY = "mandatory"
    OPTIONAL = "optional"


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """A closed interval ``[start, end]`` in seconds since midnight."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.end < self.start:
            msg = f"time window ends ({self.end}) before it starts ({self.start})"
            raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class Dependency:
    """This visit starts between ``min_gap`` and ``max_gap`` seconds after ``visit_id`` starts."""

    visit_id: str
    min_gap: int = 0
    max_gap: int | None = None
    #: Both or neither: when this visit cannot be planned, the visit it depends on is left out
    #: too (a double visit whose two carers need different competences or durations: two
    #: visits, gap ``[0, 0]`` for simultaneous, ``[min, max]`` for a sequence).
    together: bool = False


@dataclass(frozen=True, slots=True)
class Visit:
    """One visit to a client's home on the plan date."""

    id: str
    client_id: str
    location: int
    duration: int
    windows: tuple[TimeWindow, ...]
    competences: frozenset[str] = frozenset()
    priority: Priority = Priority.MANDATORY
    carers_required: int = 1
    pinned_staff: str | None = None
    #: Hard continuity: only these staff may do it (None = anyone qualified).
    allowed_staff: frozenset[str] | None = None
    #: Soft continuity: staff the client knows; others pay the continuity penalty.
    preferred_staff: frozenset[str] = frozenset()
    depends_on: Dependency | None = None
    #: Units of capacity used (0 in home care; the VRPTW benchmarks use it).
    demand: int = 0
    #: False when the client has no usable coordinates; the visit is then unassigned with a reason.
    geocoded: bool = True
    #: Soft window: the latest *preferred* start (seconds). Starting later is allowed inside the
    #: hard ``windows`` but is lateness ("tardiness", ``start - due``), which the solver avoids
    #: and the KPIs report. None = no preference beyond the hard windows.
    due: int | None = None


@dataclass(frozen=True, slots=True)
class Break:
    """A break of ``duration`` seconds to be taken inside one of ``windows``."""

    id: str
    windows: tuple[TimeWindow, ...]
    duration: int


@dataclass(frozen=True, slots=True)
class Shift:
    """One staff member's working day: the "vehicle" of the routing problem."""

    id: str
    staff_id: str
    start: int
    end: int
    profile: str = "drive"
    competences: frozenset[str] = frozenset()
    start_location: int | None = None
    end_location: int | None = None
    breaks: tuple[Break, ...] = ()
    max_visits: int | None = None
    max_travel_time: int | None = None
    capacity: int | None = None
    team: str | None = None


@dataclass(frozen=True, slots=True)
class FixedStop:
    """A stop that re-planning must keep exactly as it is (completed, in progress or frozen)."""

    visit_id: str
    shift_id: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class SolveOptions:
    """Solver knobs; the defaults are the documented product defaults."""

    time_limit_s: float = 10.0
    exploration_level: int = 5
    threads: int = 2
    #: Seconds of travel a non-preferred carer "costs" extra per visit (0 disables continuity).
    continuity_penalty_s: int = 900
    #: Seconds of travel moving a visit away from its current carer "costs" (re-plan stability).
    stability_penalty_s: int = 0
    #: Solve rounds used to synchronise double-staffed visits and keep dependency gaps (>= 1).
    coupling_rounds: int = 4
    #: Seconds of post-optimisation (app.scheduling.improve) after VROOM; 0 = off.
    improve_s: float = 1.5


@dataclass(frozen=True, slots=True)
class Problem:
    """Everything the solver needs for one district and date."""

    visits: tuple[Visit, ...]
    shifts: tuple[Shift, ...]
    #: One matrix per travel-mode profile used by the shifts ("drive", "bike", "walk", ...).
    matrices: Mapping[str, TravelMatrix]
    locations: tuple[LatLon | None, ...] = ()
    #: Re-planning: visit id -> shift id it is currently assigned to (stability preference).
    current_assignment: Mapping[str, str] = field(default_factory=dict)
    #: Re-planning: stops that must not move.
    fixed: tuple[FixedStop, ...] = ()
    #: Re-planning warm start: shift id -> visit ids in the order of the current plan. VROOM
    #: starts its search from these routes (visits that no longer fit are left out first).
    initial_routes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Re-planning: visits the current plan left unassigned. They rank just below the planned
    #: visits of the same priority, so a re-plan places them only where they fit without
    #: pushing out a visit that is planned now.
    previously_unassigned: frozenset[str] = frozenset()
    #: Re-planning: visits whose carer dropped out. They rank one below planned visits of the
    #: same priority (so placing one never pushes a planned visit out one-for-one) and one
    #: above previously unassigned visits.
    orphaned: frozenset[str] = frozenset()
    #: Re-planning: shift id -> (start, end) intervals in which its carer is absent, as reported
    #: by events. A stored day keeps them so that a later re-plan honours them, also where an
    #: absence left no gap in the shift to show it (it began before the carer's resume point).
    absences: Mapping[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)


class StopKind(StrEnum):
    """What happens at a stop of a route."""

    START = "start"
    VISIT = "visit"
    BREAK = "break"
    END = "end"


@dataclass(frozen=True, slots=True)
class Stop:
    """One step of a route with its planned times."""

    kind: StopKind
    arrival: int
    start: int
    end: int
    location: int | None = None
    visit_id: str | None = None
    break_id: str | None = None
    #: Travel from the previous stop (seconds / metres) and waiting before ``start``.
    travel_time: int = 0
    distance: int = 0
    waiting: int = 0


@dataclass(frozen=True, slots=True)
class Route:
    """One shift's ordered stops."""

    shift_id: str
    staff_id: str
    profile: str
    stops: tuple[Stop, ...]

    @property
    def visit_ids(self) -> tuple[str, ...]:
        """Visit ids in route order."""
        return tuple(s.visit_id for s in self.stops if s.kind is StopKind.VISIT and s.visit_id)


class UnassignedReason(StrEnum):
    """Why a visit could not be planned; found by checking, never guessed."""

    NOT_GEOCODED = "not_geocoded"
    NO_QUALIFIED_STAFF = "no_qualified_staff"
    PINNED_STAFF_UNAVAILABLE = "pinned_staff_unavailable"
    NOT_IN_ALLOWED_TEAM = "no_allowed_staff_on_shift"
    UNREACHABLE = "unreachable"
    WINDOW_UNREACHABLE = "window_unreachable"
    OUTSIDE_SHIFTS = "outside_shifts"
    CAPACITY = "shift_capacity_exhausted"
    #: Every qualified route is busy around the visit's windows (time, not a capacity limit).
    ROUTES_FULL = "no_room_in_routes"
    SECOND_CARER_UNAVAILABLE = "second_carer_unavailable"
    DEPENDENCY_UNSATISFIED = "dependency_unsatisfied"
    CANCELLED = "cancelled"
    OTHER = "solver_could_not_place"


@dataclass(frozen=True, slots=True)
class Unassigned:
    """A visit that is not in any route, with a machine-readable reason and a human sentence."""

    visit_id: str
    reason: UnassignedReason
    detail: str


@dataclass(frozen=True, slots=True)
class Plan:
    """A solved plan: routes, unassigned visits with reasons, and figures."""

    routes: tuple[Route, ...]
    unassigned: tuple[Unassigned, ...]
    #: Key figures (see app.scheduling.kpis); plain numbers so they serialise as they are.
    kpis: Mapping[str, float | int] = field(default_factory=dict)
    solve_time_s: float = 0.0


def pending_plan(problem: Problem, routes: Sequence[Route]) -> Plan:
    """``routes`` as a plan in which every visit not on them counts as unassigned (for checks)."""
    assigned = {vid for r in routes for vid in r.visit_ids}
    rest = tuple(
        Unassigned(v.id, UnassignedReason.OTHER, "") for v in problem.visits if v.id not in assigned
    )
    return Plan(tuple(routes), rest)
