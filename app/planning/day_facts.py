"""Events are data: what a day's events said, stored so that every later plan of the day keeps it.

A re-plan works from the stored problem of the version it starts from, so it already carries the
day's earlier events. A fresh ``POST /v1/plans`` loads the day from the tables instead; without
the facts stored there it would bring back a cancelled visit, lose an urgent one and give a sick
carer a full day (issue 9). So each event post also writes, in the transaction of its new version:

- ``visit_cancelled``: the visit row's status becomes ``cancelled``;
- ``urgent_visit_added``: a visit row (``origin = "urgent"``) the care record can read;
- ``carer_absent`` / ``carer_available`` / ``client_unavailable``: a :class:`DayFact` row;
- ``actual_times_reported`` / ``visit_delayed``: the visit's actual start (and end), the carer
  who holds it, and status ``in_progress`` or ``completed``.

:func:`apply_facts` is the other half: it turns the stored facts into the loaded day
(:mod:`app.planning.loading`). Shifts are cut by absences and grown by extra hours in the order
the facts were recorded (the same rule as :mod:`app.replan.apply`), a client's blocked hours are
cut out of its visits' windows, and started or done visits come back as fixed stops.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from itertools import pairwise
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import ErrorDetail, InvalidInput
from app.planning.inputs import BreakIn, ShiftIn, VisitIn
from app.replan.events import (
    ActualTimesReported,
    CarerAbsent,
    CarerAvailable,
    ClientUnavailable,
    Event,
    UrgentVisitAdded,
    VisitCancelled,
    VisitDelayed,
)
from app.replan.intervals import Interval, subtract, subtract_all, union
from app.store.models import (
    Client,
    DayFact,
    DayFactKind,
    Priority,
    Staff,
    Visit,
    VisitStatus,
)

#: "To the end of the day" for an absence without an end (beyond any shift).
OPEN_END = 10**9

#: Origin of a visit row added by an ``urgent_visit_added`` event.
URGENT = "urgent"


def extra_shift_id(staff: str, day: dt.date) -> str:
    """Id of the shift made for a carer with no shift that day who was given hours by an event.

    The re-plan (:mod:`app.planning.replan`) and a fresh plan (:mod:`app.planning.loading`)
    name it alike, so later versions of the day keep the carer's route under one shift.
    """
    return f"extra-{staff}@{day.isoformat()}"


def district_carer(session: Session, org_id: int, district_id: int, staff: str) -> Staff | None:
    """The district's active staff member ``staff`` (external id), or None."""
    return session.scalar(
        select(Staff).where(
            Staff.org_id == org_id,
            Staff.district_id == district_id,
            Staff.external_id == staff,
            Staff.active.is_(True),
        )
    )


# --------------------------------------------------------------------------------------------
# Writing: an event post's facts, in the transaction of its new version
# --------------------------------------------------------------------------------------------


def record_event_facts(
    session: Session,
    *,
    org_id: int,
    district_id: int,
    day: dt.date,
    now_s: int,
    events: Sequence[Event],
    new_routes: Sequence[Mapping[str, Any]],
    plan_id: int,
    actor: str,
) -> None:
    """Store what ``events`` said about the day (flushes; the caller owns the transaction).

    Parameters
    ----------
    session
        The session that also stores the new plan version: all or nothing.
    org_id, district_id, day
        The plan's organisation, district and date.
    now_s
        The re-plan's time of day: a reported end at or before it makes the visit completed.
    events
        The core events of the post, in order (references already checked).
    new_routes
        The new version's route documents: who holds a visit with reported times.
    plan_id
        The new version's row id (recorded with each fact).
    actor
        Who posted the events (no personal data).

    Raises
    ------
    InvalidInput
        An urgent visit's id is already used by another visit row of the organisation.
    """
    holder = _holders(new_routes)
    staff_ids = _ids(session, Staff, org_id, _refs(events, "staff_id"))
    client_ids = _ids(session, Client, org_id, _refs(events, "client_id"))
    for i, ev in enumerate(events):
        if isinstance(ev, VisitCancelled):
            row = _visit_row(session, org_id, ev.visit_id)
            if row is not None:
                row.status = VisitStatus.CANCELLED
        elif isinstance(ev, UrgentVisitAdded):
            _add_urgent(session, org_id, day, ev, client_ids, index=i)
        elif isinstance(ev, VisitDelayed | ActualTimesReported):
            row = _visit_row(session, org_id, ev.visit_id)
            if row is not None:
                row.actual_start_s = ev.actual_start
                row.actual_end_s = ev.actual_end
                done = ev.actual_end is not None and ev.actual_end <= now_s
                row.status = VisitStatus.COMPLETED if done else VisitStatus.IN_PROGRESS
                staff = holder.get(ev.visit_id)
                if staff is not None and staff not in staff_ids:
                    staff_ids.update(_ids(session, Staff, org_id, {staff}))
                row.actual_staff_id = None if staff is None else staff_ids.get(staff)
        elif isinstance(ev, CarerAbsent | CarerAvailable | ClientUnavailable):
            session.add(_fact(org_id, district_id, day, ev, staff_ids, client_ids, plan_id, actor))
    session.flush()


def _refs(events: Sequence[Event], name: str) -> set[str]:
    """External ids the events name in field ``name`` (urgent visits name their client)."""
    out = {str(getattr(ev, name)) for ev in events if hasattr(ev, name)}
    if name == "client_id":
        out |= {ev.visit.client_id for ev in events if isinstance(ev, UrgentVisitAdded)}
    return out


def _ids(
    session: Session, model: type[Staff] | type[Client], org_id: int, ext: set[str]
) -> dict[str, int]:
    """External id -> row id of the organisation's ``model`` rows named in ``ext``."""
    if not ext:
        return {}
    rows = session.execute(
        select(model.external_id, model.id).where(
            model.org_id == org_id, model.external_id.in_(sorted(ext))
        )
    ).all()
    return {str(e): int(i) for e, i in rows}


def _holders(routes: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Visit id -> staff id of the first route that holds it."""
    out: dict[str, str] = {}
    for r in routes:
        for s in r["stops"]:
            if s.get("visit"):
                out.setdefault(str(s["visit"]), str(r["staff"]))
    return out


def _visit_row(session: Session, org_id: int, external_id: str) -> Visit | None:
    return session.scalar(
        select(Visit).where(Visit.org_id == org_id, Visit.external_id == external_id)
    )


def _add_urgent(
    session: Session,
    org_id: int,
    day: dt.date,
    ev: UrgentVisitAdded,
    client_ids: Mapping[str, int],
    *,
    index: int,
) -> None:
    v = ev.visit
    if _visit_row(session, org_id, v.id) is not None:
        detail = ErrorDetail(
            ("events", index, "visit"),
            "duplicate_visit",
            f"visit {v.id!r} already exists in the organisation (another day or cancelled)",
        )
        msg = "an urgent visit reuses the id of a stored visit; nothing was stored"
        raise InvalidInput(msg, [detail])
    session.add(
        Visit(
            org_id=org_id,
            client_id=client_ids[v.client_id],
            external_id=v.id,
            date=day,
            windows=[[w.start, w.end] for w in v.windows],
            duration_s=v.duration,
            competences=sorted(v.competences),
            priority=Priority(v.priority.value),
            carers_required=v.carers_required,
            status=VisitStatus.PLANNED,
            origin=URGENT,
        )
    )


def _fact(
    org_id: int,
    district_id: int,
    day: dt.date,
    ev: CarerAbsent | CarerAvailable | ClientUnavailable,
    staff_ids: Mapping[str, int],
    client_ids: Mapping[str, int],
    plan_id: int,
    actor: str,
) -> DayFact:
    if isinstance(ev, ClientUnavailable):
        kind, staff, client = DayFactKind.CLIENT_UNAVAILABLE, None, client_ids[ev.client_id]
    else:
        staff, client = staff_ids[ev.staff_id], None
        absent = isinstance(ev, CarerAbsent)
        kind = DayFactKind.CARER_ABSENT if absent else DayFactKind.CARER_AVAILABLE
    return DayFact(
        org_id=org_id,
        district_id=district_id,
        date=day,
        kind=kind,
        staff_id=staff,
        client_id=client,
        from_s=ev.from_time,
        until_s=ev.until_time,
        plan_id=plan_id,
        actor=actor,
    )


# --------------------------------------------------------------------------------------------
# Reading: the stored facts applied to a loaded day
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredFact:
    """One stored fact by external id, in recording order."""

    kind: DayFactKind
    subject: str
    from_s: int
    until_s: int | None


def load_facts(
    session: Session, org_id: int, district_id: int, day: dt.date
) -> tuple[StoredFact, ...]:
    """The district's stored facts of ``day`` in the order they were recorded."""
    staff = select(Staff.external_id).where(Staff.id == DayFact.staff_id).scalar_subquery()
    client = select(Client.external_id).where(Client.id == DayFact.client_id).scalar_subquery()
    rows = session.execute(
        select(DayFact.kind, staff, client, DayFact.from_s, DayFact.until_s)
        .where(DayFact.org_id == org_id, DayFact.district_id == district_id, DayFact.date == day)
        .order_by(DayFact.id)
    ).all()
    return tuple(StoredFact(k, str(s if s is not None else c), a, b) for k, s, c, a, b in rows)


def shift_availability(
    shifts: Sequence[ShiftIn], facts: Sequence[StoredFact]
) -> dict[str, list[Interval]]:
    """Shift id -> the intervals its carer can work after the facts, applied in order.

    An absence is taken out of every shift of the carer; extra hours join the carer's shift that
    overlaps them or lies closest (as :mod:`app.replan.apply` does for the events themselves).
    """
    avail = {sh.external_id: [(sh.start_s, sh.end_s)] for sh in shifts}
    by_staff: dict[str, list[ShiftIn]] = defaultdict(list)
    for sh in shifts:
        by_staff[sh.staff].append(sh)
    for f in facts:
        own = by_staff.get(f.subject)
        if not own or f.kind is DayFactKind.CLIENT_UNAVAILABLE:
            continue
        until = OPEN_END if f.until_s is None else f.until_s
        if f.kind is DayFactKind.CARER_ABSENT:
            for sh in own:
                avail[sh.external_id] = subtract(avail[sh.external_id], f.from_s, until)
        else:
            near = nearest_shift(own, f.from_s, until)
            avail[near.external_id] = union(avail[near.external_id], f.from_s, until)
    return avail


def nearest_shift(shifts: Sequence[ShiftIn], start: int, end: int) -> ShiftIn:
    """The shift whose span overlaps ``[start, end]`` or lies closest to it (first on a tie)."""
    return min(shifts, key=lambda s: max(0, s.start_s - end, start - s.end_s))


def cut_shift(shift: ShiftIn, intervals: Sequence[Interval]) -> ShiftIn | None:
    """``shift`` limited to ``intervals``: gaps become fixed breaks; None when nothing is left.

    The shift's own breaks keep only the parts of their windows inside the intervals (a break
    with no window left is not owed any more).
    """
    live = [(a, b) for a, b in intervals if b > a]
    if not live:
        return None
    breaks: list[BreakIn] = []
    for br in shift.breaks:
        windows = tuple(
            (max(ws, a), min(we, b))
            for ws, we in br.windows
            for a, b in live
            if min(we, b) - max(ws, a) >= br.duration_s
        )
        if windows:
            breaks.append(BreakIn(windows, br.duration_s))
    breaks += [
        BreakIn(((end, start),), start - end, absence=True)
        for (_, end), (start, _) in pairwise(live)
    ]
    # VROOM refuses a vehicle whose breaks are not in time order ("Inconsistent breaks").
    breaks.sort(key=lambda b: (b.windows[0][0], b.windows[-1][1]))
    return replace(shift, start_s=live[0][0], end_s=live[-1][1], breaks=tuple(breaks))


def _no_time(shift: ShiftIn) -> ShiftIn:
    return replace(shift, end_s=shift.start_s, breaks=())


def cut_windows(
    windows: Iterable[Interval], blocks: Iterable[Interval], duration_s: int
) -> tuple[Interval, ...]:
    """``windows`` minus the blocked ranges, keeping the pieces a visit of ``duration_s`` fits."""
    pieces = subtract_all(windows, blocks)
    return tuple((s, e) for s, e in pieces if e - s >= duration_s)


def apply_facts(
    shifts: Sequence[ShiftIn],
    visits: Sequence[VisitIn],
    facts: Sequence[StoredFact],
) -> tuple[tuple[ShiftIn, ...], tuple[VisitIn, ...]]:
    """The day's shifts and visits after the stored facts.

    Parameters
    ----------
    shifts
        Shifts as the roster has them.
    visits
        Visits not cancelled, each with its reported times (``VisitIn.fixed``) if any.
    facts
        Stored facts in recording order (:func:`load_facts`).

    Returns
    -------
    tuple
        Shifts cut by absences and grown by extra hours (a carer absent all day keeps a shift
        without time; a shift still covers every started or done visit of its carer), and
        visits whose windows
        lost the hours their client is unavailable (``VisitIn.blocked`` when none is left).
    """
    avail = shift_availability(shifts, facts)
    by_staff: dict[str, list[ShiftIn]] = defaultdict(list)
    for sh in shifts:
        by_staff[sh.staff].append(sh)
    for fixed in (f for v in visits for f in v.fixed):
        own = by_staff.get(fixed.staff, [])
        if own:
            a, b = fixed.start_s, fixed.end_s
            home = nearest_shift(own, a, b)
            avail[home.external_id] = union(avail[home.external_id], a, b)
    # A carer absent all day keeps her shift without time (no vehicle hours, no breaks), so that
    # a later ``carer_available`` on a version planned afresh can give hours back.
    kept = [cut_shift(sh, avail[sh.external_id]) or _no_time(sh) for sh in shifts]
    blocks: dict[str, list[Interval]] = defaultdict(list)
    for f in facts:
        if f.kind is DayFactKind.CLIENT_UNAVAILABLE:
            blocks[f.subject].append((f.from_s, OPEN_END if f.until_s is None else f.until_s))
    out: list[VisitIn] = []
    for v in visits:
        if not v.fixed and v.client in blocks:
            windows = cut_windows(v.windows, blocks[v.client], v.duration_s)
            v = replace(v, windows=windows) if windows else replace(v, blocked=True)
        out.append(v)
    return tuple(kept), tuple(out)


__all__ = [
    "OPEN_END",
    "URGENT",
    "StoredFact",
    "apply_facts",
    "cut_shift",
    "cut_windows",
    "district_carer",
    "extra_shift_id",
    "load_facts",
    "nearest_shift",
    "record_event_facts",
    "shift_availability",
]
