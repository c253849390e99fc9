"""The plain, picklable input of one plan computation, as loaded from the store.

Everything a worker process needs to build a :class:`app.scheduling.model.Problem` and nothing
more: ids are the vendor's external ids, coordinates are plain floats, no names, addresses or
notes ever leave the database in it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ClientIn:
    """A client's place (None when the address has no coordinates yet)."""

    external_id: str
    lat: float | None
    lon: float | None
    preferred_staff: tuple[str, ...] = ()
    #: Hard continuity: external ids of the staff of the client's allowed team (None = anyone).
    allowed_staff: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class StaffIn:
    """A carer on shift: competences, travel mode, where the day starts and ends."""

    external_id: str
    competences: tuple[str, ...]
    mode: str
    start: tuple[float, float]
    end: tuple[float, float]
    team: str | None = None


@dataclass(frozen=True, slots=True)
class BreakIn:
    """A break to take inside one of ``windows`` (``absence``: a reported absence's gap)."""

    windows: tuple[tuple[int, int], ...]
    duration_s: int
    absence: bool = False


@dataclass(frozen=True, slots=True)
class ShiftIn:
    """One shift of the day."""

    external_id: str
    staff: str
    start_s: int
    end_s: int
    breaks: tuple[BreakIn, ...] = ()


@dataclass(frozen=True, slots=True)
class DependencyIn:
    """This visit starts ``min_gap_s``..``max_gap_s`` after ``visit`` starts."""

    visit: str
    min_gap_s: int
    max_gap_s: int | None


@dataclass(frozen=True, slots=True)
class FixedIn:
    """A started or done visit: its carer and reported times stay as they are in every plan."""

    staff: str
    start_s: int
    end_s: int


@dataclass(frozen=True, slots=True)
class VisitIn:
    """One visit of the day."""

    external_id: str
    client: str
    windows: tuple[tuple[int, int], ...]
    duration_s: int
    competences: tuple[str, ...]
    priority: str
    carers_required: int = 1
    pinned_staff: str | None = None
    depends_on: DependencyIn | None = None
    #: A started or done visit (reported, or begun in the current version by the plan's
    #: ``now``): per carer, the stop that stays as it is.
    fixed: tuple[FixedIn, ...] = ()
    #: The client is unavailable during every window long enough for the visit.
    blocked: bool = False


@dataclass(frozen=True, slots=True)
class PlanInput:
    """A district's day: what :func:`app.planning.compute.compute_plan` turns into a plan."""

    org_id: int
    district_id: int
    district: str
    date: dt.date
    clients: tuple[ClientIn, ...]
    staff: tuple[StaffIn, ...]
    shifts: tuple[ShiftIn, ...]
    visits: tuple[VisitIn, ...]
    #: Seconds since midnight the plan is made at (0: before the day): nothing new is planned
    #: before it, and begun visits (``VisitIn.fixed``) are each carer's frozen past.
    now_s: int = 0


@dataclass(frozen=True, slots=True)
class PlanOptions:
    """Solver knobs of one plan computation (from the settings, optionally overridden)."""

    time_limit_s: float
    exploration_level: int
    threads: int
    continuity_penalty_s: int
    #: Compute road geometry per route (for maps and GeoJSON).
    geometry: bool = True
