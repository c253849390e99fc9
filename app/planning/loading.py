"""Load a district's day from the store into a :class:`PlanInput` (reads only, tenant-scoped)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import NotFound
from app.planning.day_facts import apply_facts, district_carer, extra_shift_id, load_facts
from app.planning.inputs import (
    BreakIn,
    ClientIn,
    DependencyIn,
    FixedIn,
    PlanInput,
    ShiftIn,
    StaffIn,
    VisitIn,
)
from app.planning.versions import current_plan
from app.store.models import (
    Client,
    ClientPreferredStaff,
    DayFactKind,
    District,
    Shift,
    Staff,
    Team,
    Visit,
    VisitStatus,
)


def district_by_external_id(session: Session, org_id: int, external_id: str) -> District:
    """The organisation's district ``external_id``; :class:`NotFound` otherwise."""
    district = session.scalar(
        select(District).where(District.org_id == org_id, District.external_id == external_id)
    )
    if district is None:
        msg = f"no district with external_id {external_id!r}"
        raise NotFound(msg)
    return district


def load_plan_input(
    session: Session,
    org_id: int,
    district_id: int,
    day: dt.date,
    *,
    now_s: int = 0,
    freeze_s: int = 0,
) -> PlanInput:
    """Everything needed to plan ``district_id`` on ``day``.

    Parameters
    ----------
    session
        A session (only read).
    org_id
        The tenant; every query filters by it.
    district_id
        Internal id of the district.
    day
        The plan date.
    now_s, freeze_s
        Seconds since midnight the plan is made at (0: before the day starts), and the freeze:
        visits the current published version starts before ``now_s + freeze_s`` (and visits
        with reported times) keep their carers and times in the new plan.

    Returns
    -------
    PlanInput
        Visits of the district's clients on ``day`` that are not cancelled (urgent visits added
        by events included, started or done ones with their reported times as fixed stops), the
        shifts of the district's active staff on ``day`` after the day's stored absences and
        extra hours, visit windows without the hours a client is unavailable
        (:mod:`app.planning.day_facts`), the clients with coordinates, preferred carers and
        allowed-team members, pinned carers and dependencies (by external id).
    """
    district = session.scalar(
        select(District).where(District.org_id == org_id, District.id == district_id)
    )
    if district is None:
        msg = f"no district {district_id}"
        raise NotFound(msg)
    shift_rows = session.execute(
        select(Shift, Staff)
        .join(Staff, Shift.staff_id == Staff.id)
        .where(
            Shift.org_id == org_id,
            Staff.district_id == district_id,
            Staff.active.is_(True),
            Shift.date == day,
        )
        .order_by(Staff.external_id, Shift.start_s, Shift.external_id)
    ).all()
    team_ext = dict(
        session.execute(select(Team.id, Team.external_id).where(Team.org_id == org_id)).all()
    )
    staff: dict[int, StaffIn] = {}
    shifts: list[ShiftIn] = []
    for sh, st in shift_rows:
        staff.setdefault(st.id, _staff_in(st, team_ext))
        shifts.append(
            ShiftIn(
                external_id=sh.external_id,
                staff=st.external_id,
                start_s=sh.start_s,
                end_s=sh.end_s,
                breaks=tuple(
                    BreakIn(
                        tuple((int(a), int(b)) for a, b in br["windows"]), int(br["duration_s"])
                    )
                    for br in sh.breaks
                ),
            )
        )

    visit_rows = session.execute(
        select(Visit, Client)
        .join(Client, Visit.client_id == Client.id)
        .where(
            Visit.org_id == org_id,
            Client.district_id == district_id,
            Visit.date == day,
            Visit.status != VisitStatus.CANCELLED,
        )
        .order_by(Visit.external_id)
    ).all()
    visit_ext = {v.id: v.external_id for v, _ in visit_rows}
    held = _current_stops(session, org_id, district_id, day)
    frozen_before = now_s + freeze_s if now_s > 0 else None
    clients = {c.id: c for _, c in visit_rows}
    staff_ext = dict(
        session.execute(select(Staff.id, Staff.external_id).where(Staff.org_id == org_id)).all()
    )
    preferred: dict[int, list[str]] = defaultdict(list)
    if clients:
        for cid, sid in session.execute(
            select(ClientPreferredStaff.client_id, ClientPreferredStaff.staff_id)
            .where(ClientPreferredStaff.client_id.in_(list(clients)))
            .order_by(ClientPreferredStaff.client_id, ClientPreferredStaff.rank)
        ):
            if sid in staff_ext:
                preferred[cid].append(staff_ext[sid])
    team_members: dict[int, list[str]] = defaultdict(list)
    teams = {c.allowed_team_id for c in clients.values() if c.allowed_team_id is not None}
    if teams:
        for tid, ext in session.execute(
            select(Staff.team_id, Staff.external_id).where(
                Staff.org_id == org_id, Staff.team_id.in_(list(teams))
            )
        ):
            if tid is not None:
                team_members[tid].append(ext)

    visits = tuple(
        VisitIn(
            external_id=v.external_id,
            client=c.external_id,
            windows=tuple((int(a), int(b)) for a, b in v.windows),
            duration_s=v.duration_s,
            competences=tuple(sorted(v.competences)),
            priority=v.priority.value,
            carers_required=v.carers_required,
            pinned_staff=staff_ext.get(v.pinned_staff_id) if v.pinned_staff_id else None,
            # A dependency on a visit outside this plan (cancelled, other day) cannot be kept or
            # broken here: the visit is planned on its own windows.
            depends_on=DependencyIn(
                visit_ext[v.depends_on_visit_id],
                v.dependency_min_gap_s or 0,
                v.dependency_max_gap_s,
            )
            if v.depends_on_visit_id in visit_ext
            else None,
            fixed=_fixed(v, staff_ext, held.get(v.external_id, []), frozen_before),
        )
        for v, c in visit_rows
    )
    facts = load_facts(session, org_id, district_id, day)
    # Extra hours given to a carer with no shift that day are her shift (the re-plan made one).
    rostered = {sh.staff for sh in shifts}
    for f in facts:
        if f.kind is not DayFactKind.CARER_AVAILABLE or f.subject in rostered:
            continue
        carer = district_carer(session, org_id, district_id, f.subject)
        if carer is None or f.until_s is None:
            continue
        staff.setdefault(carer.id, _staff_in(carer, team_ext))
        shifts.append(ShiftIn(extra_shift_id(f.subject, day), f.subject, f.from_s, f.until_s))
        rostered.add(f.subject)
    shifts_after, visits = apply_facts(shifts, visits, facts)
    client_in = tuple(
        ClientIn(
            external_id=c.external_id,
            lat=c.lat,
            lon=c.lon,
            preferred_staff=tuple(preferred.get(c.id, ())),
            allowed_staff=None
            if c.allowed_team_id is None
            else tuple(sorted(team_members.get(c.allowed_team_id, ()))),
        )
        for c in sorted(clients.values(), key=lambda c: c.external_id)
    )
    return PlanInput(
        org_id=org_id,
        district_id=district_id,
        district=district.external_id,
        date=day,
        clients=client_in,
        staff=tuple(staff.values()),
        shifts=shifts_after,
        visits=visits,
        now_s=now_s,
    )


def _staff_in(st: Staff, team_ext: dict[int, str]) -> StaffIn:
    return StaffIn(
        external_id=st.external_id,
        competences=tuple(sorted(st.competences)),
        mode=st.travel_mode.value,
        start=(st.start_lat, st.start_lon),
        end=(st.end_lat, st.end_lon),
        team=team_ext.get(st.team_id) if st.team_id is not None else None,
    )


def _current_stops(
    session: Session, org_id: int, district_id: int, day: dt.date
) -> dict[str, list[tuple[str, int, int]]]:
    """Visit -> (staff, start, end) of each of its stops in the day's published version."""
    current = current_plan(session, org_id, district_id, day)
    out: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
    for r in current.routes if current is not None else []:
        for s in r["stops"]:
            if s["kind"] == "visit" and s.get("visit"):
                out[str(s["visit"])].append((str(r["staff"]), int(s["start"]), int(s["end"])))
    return out


def _fixed(
    visit: Visit,
    staff_ext: dict[int, str],
    held: list[tuple[str, int, int]],
    frozen_before: int | None,
) -> tuple[FixedIn, ...]:
    """The stops of a started or done visit that a new plan of the day must keep.

    Reported visits and visits the current version starts before ``frozen_before`` keep the
    current version's stops (which already carry reported times); a reported visit the version
    does not hold keeps its reported carer and times (no end yet: the planned duration).
    """
    reported = visit.actual_start_s is not None
    begun = frozen_before is not None and any(start < frozen_before for _, start, _ in held)
    if held and (reported or begun):
        return tuple(FixedIn(staff, start, end) for staff, start, end in held)
    if visit.actual_start_s is None or visit.actual_staff_id not in staff_ext:
        return ()
    start = visit.actual_start_s
    end = visit.actual_end_s if visit.actual_end_s is not None else start + visit.duration_s
    return (FixedIn(staff_ext[visit.actual_staff_id], start, end),)
