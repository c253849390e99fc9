"""Events that break a plan during the day, as frozen dataclasses with a discriminating ``kind``.

Times are integer seconds since midnight of the plan date, like everywhere in the core. Every event
checks its own fields on construction and raises :class:`~app.replan.errors.InvalidEventError`
naming the field; whether the ids exist in a plan is checked when the events are applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

from app.replan.errors import InvalidEventError
from app.scheduling.model import Visit

#: Latest time an event may name: two days, so night shifts past midnight still fit.
MAX_TIME_S = 2 * 24 * 3600


def _check_id(field: str, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        msg = f"{field} must be a non-empty string, got {value!r}"
        raise InvalidEventError(field, msg)


def _check_time(field: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"{field} must be integer seconds since midnight, got {value!r}"
        raise InvalidEventError(field, msg)
    if not 0 <= value <= MAX_TIME_S:
        msg = f"{field} must lie in [0, {MAX_TIME_S}] seconds, got {value}"
        raise InvalidEventError(field, msg)


def _check_order(start_field: str, start: int, end_field: str, end: int) -> None:
    if end <= start:
        msg = f"{end_field} ({end}) must be after {start_field} ({start})"
        raise InvalidEventError(end_field, msg)


@dataclass(frozen=True, slots=True)
class CarerAbsent:
    """A carer cannot work from ``from_time`` until ``until_time`` (None: the rest of the day)."""

    staff_id: str
    from_time: int
    until_time: int | None = None
    kind: Literal["carer_absent"] = "carer_absent"

    def __post_init__(self) -> None:
        _check_id("staff_id", self.staff_id)
        _check_time("from_time", self.from_time)
        if self.until_time is not None:
            _check_time("until_time", self.until_time)
            _check_order("from_time", self.from_time, "until_time", self.until_time)


@dataclass(frozen=True, slots=True)
class CarerAvailable:
    """A carer can work from ``from_time`` to ``until_time`` (back early, extra hours)."""

    staff_id: str
    from_time: int
    until_time: int
    kind: Literal["carer_available"] = "carer_available"

    def __post_init__(self) -> None:
        _check_id("staff_id", self.staff_id)
        _check_time("from_time", self.from_time)
        _check_time("until_time", self.until_time)
        _check_order("from_time", self.from_time, "until_time", self.until_time)


@dataclass(frozen=True, slots=True)
class VisitCancelled:
    """A visit will not take place (client admitted to hospital, visit called off)."""

    visit_id: str
    kind: Literal["visit_cancelled"] = "visit_cancelled"

    def __post_init__(self) -> None:
        _check_id("visit_id", self.visit_id)


@dataclass(frozen=True, slots=True)
class UrgentVisitAdded:
    """A new visit to place today, with its own windows and competences."""

    visit: Visit
    kind: Literal["urgent_visit_added"] = "urgent_visit_added"

    def __post_init__(self) -> None:
        if not isinstance(self.visit, Visit):
            msg = f"visit must be a Visit, got {type(self.visit).__name__}"
            raise InvalidEventError("visit", msg)
        _check_id("visit.id", self.visit.id)
        _check_id("visit.client_id", self.visit.client_id)
        if self.visit.duration <= 0:
            msg = f"visit.duration must be positive seconds, got {self.visit.duration}"
            raise InvalidEventError("visit.duration", msg)
        if not self.visit.windows:
            msg = "visit.windows must hold at least one time window"
            raise InvalidEventError("visit.windows", msg)
        if self.visit.location < 0:
            msg = f"visit.location must be a location index >= 0, got {self.visit.location}"
            raise InvalidEventError("visit.location", msg)


def _check_actuals(actual_start: int, actual_end: int | None) -> None:
    _check_time("actual_start", actual_start)
    if actual_end is not None:
        _check_time("actual_end", actual_end)
        _check_order("actual_start", actual_start, "actual_end", actual_end)


@dataclass(frozen=True, slots=True)
class VisitDelayed:
    """A planner reports that a visit started (or will end) at other times than planned.

    ``actual_end`` may lie in the future: it is then the expected end of an overrunning visit.
    None means "started, end not known yet" (the planned duration is assumed).
    """

    visit_id: str
    actual_start: int
    actual_end: int | None = None
    kind: Literal["visit_delayed"] = "visit_delayed"

    def __post_init__(self) -> None:
        _check_id("visit_id", self.visit_id)
        _check_actuals(self.actual_start, self.actual_end)


@dataclass(frozen=True, slots=True)
class ActualTimesReported:
    """A carer's phone reports when a visit really started and (optionally) ended.

    Same meaning as :class:`VisitDelayed`; a separate kind so the event log says who knew it.
    """

    visit_id: str
    actual_start: int
    actual_end: int | None = None
    kind: Literal["actual_times_reported"] = "actual_times_reported"

    def __post_init__(self) -> None:
        _check_id("visit_id", self.visit_id)
        _check_actuals(self.actual_start, self.actual_end)


@dataclass(frozen=True, slots=True)
class ClientUnavailable:
    """A client cannot be visited between ``from_time`` and ``until_time`` (out, at the doctor)."""

    client_id: str
    from_time: int
    until_time: int
    kind: Literal["client_unavailable"] = "client_unavailable"

    def __post_init__(self) -> None:
        _check_id("client_id", self.client_id)
        _check_time("from_time", self.from_time)
        _check_time("until_time", self.until_time)
        _check_order("from_time", self.from_time, "until_time", self.until_time)


@dataclass(frozen=True, slots=True)
class CarerPositionReported:
    """A carer's phone reports being at location index ``location`` at ``at_time``.

    Used as the carer's resume point when it is newer than their last frozen stop.
    """

    staff_id: str
    location: int
    at_time: int
    kind: Literal["carer_position_reported"] = "carer_position_reported"

    def __post_init__(self) -> None:
        _check_id("staff_id", self.staff_id)
        if isinstance(self.location, bool) or not isinstance(self.location, int):
            msg = f"location must be a location index, got {self.location!r}"
            raise InvalidEventError("location", msg)
        if self.location < 0:
            msg = f"location must be a location index >= 0, got {self.location}"
            raise InvalidEventError("location", msg)
        _check_time("at_time", self.at_time)


Event: TypeAlias = (
    CarerAbsent
    | CarerAvailable
    | VisitCancelled
    | UrgentVisitAdded
    | VisitDelayed
    | ActualTimesReported
    | ClientUnavailable
    | CarerPositionReported
)


def event_to_dict(event: Event) -> dict[str, object]:
    """Serialise an event to plain JSON-ready values (for the event log).

    Parameters
    ----------
    event
        Any re-planning event.

    Returns
    -------
    dict
        ``kind`` plus the event's fields; an urgent visit is given by its id, client, location,
        duration, windows and competences.
    """
    if isinstance(event, UrgentVisitAdded):
        v = event.visit
        return {
            "kind": event.kind,
            "visit": {
                "id": v.id,
                "client_id": v.client_id,
                "location": v.location,
                "duration": v.duration,
                "windows": [[w.start, w.end] for w in v.windows],
                "competences": sorted(v.competences),
                "priority": v.priority.value,
                "carers_required": v.carers_required,
            },
        }
    out: dict[str, object] = {"kind": event.kind}
    for name in event.__slots__:
        if name != "kind":
            out[name] = getattr(event, name)
    return out
