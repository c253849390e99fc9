"""Tenant-scoped reads and deletes. Every query filters by the organisation given at construction.

Handlers never write SQL; they build a :class:`TenantRepository` for ``principal.org_id`` and ask
it. Methods return ORM rows plus the external ids of what the rows refer to, so the API can answer
in the vendor's ids without lazy loads (relationships are ``lazy="raise"``).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, aliased

from app.errors import Conflict, NotFound
from app.store.models import (
    Base,
    Client,
    ClientPreferredStaff,
    District,
    Plan,
    PlanStatus,
    Shift,
    Staff,
    Team,
    Visit,
    VisitStatus,
    VisitTemplate,
)

T = TypeVar("T")
#: Any SELECT, whatever its columns.
AnySelect = Select[*tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of results and the total number of matches."""

    items: list[T]
    total: int


@dataclass(frozen=True, slots=True)
class Row:
    """A stored row and the external ids it refers to (``{"district": "vaduz", ...}``)."""

    obj: Any
    refs: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DateFilter:
    """An exact date or an inclusive range; all None means any date."""

    on: dt.date | None = None
    start: dt.date | None = None
    end: dt.date | None = None


class TenantRepository:
    """Queries for one organisation."""

    def __init__(
        self, session: Session, org_id: int, *, districts: frozenset[int] | None = None
    ) -> None:
        self.session = session
        self.org_id = org_id
        #: When set, every query sees only rows of these districts (a planner's reach).
        self.district_scope = districts

    def _within(self, stmt: AnySelect, district_column: Any) -> AnySelect:
        if self.district_scope is None:
            return stmt
        return stmt.where(district_column.in_(sorted(self.district_scope)))

    # -- helpers ---------------------------------------------------------------------------

    def _page(self, stmt: AnySelect, order: Any, limit: int, offset: int) -> Page[Any]:
        total = self.session.scalar(
            select(func.count()).select_from(stmt.order_by(None).subquery())
        )
        orders = order if isinstance(order, tuple) else (order,)
        rows = self.session.execute(stmt.order_by(*orders).limit(limit).offset(offset)).all()
        return Page(items=list(rows), total=int(total or 0))

    def _district_id(self, external_id: str | None) -> int | None:
        if external_id is None:
            return None
        did = self.session.scalar(
            select(District.id).where(
                District.org_id == self.org_id, District.external_id == external_id
            )
        )
        # An unknown district filters to nothing rather than failing: it may simply be empty.
        return -1 if did is None else did

    @staticmethod
    def _dates(stmt: AnySelect, column: Any, dates: DateFilter) -> AnySelect:
        if dates.on is not None:
            stmt = stmt.where(column == dates.on)
        if dates.start is not None:
            stmt = stmt.where(column >= dates.start)
        if dates.end is not None:
            stmt = stmt.where(column <= dates.end)
        return stmt

    def _one(self, page: Page[Row], what: str, external_id: str) -> Row:
        if not page.items:
            msg = f"no {what} with external_id {external_id!r}"
            raise NotFound(msg)
        return page.items[0]

    # -- districts and teams ---------------------------------------------------------------

    def districts(self, *, limit: int, offset: int, external_id: str | None = None) -> Page[Row]:
        """Districts by external id."""
        stmt = self._within(select(District).where(District.org_id == self.org_id), District.id)
        if external_id is not None:
            stmt = stmt.where(District.external_id == external_id)
        page = self._page(stmt, District.external_id, limit, offset)
        return Page([Row(r[0], {}) for r in page.items], page.total)

    def teams(
        self,
        *,
        limit: int,
        offset: int,
        district: str | None = None,
        external_id: str | None = None,
    ) -> Page[Row]:
        """Teams, optionally of one district."""
        stmt = (
            select(Team, District.external_id)
            .join(District, Team.district_id == District.id)
            .where(Team.org_id == self.org_id)
        )
        stmt = self._within(stmt, Team.district_id)
        if district is not None:
            stmt = stmt.where(Team.district_id == self._district_id(district))
        if external_id is not None:
            stmt = stmt.where(Team.external_id == external_id)
        page = self._page(stmt, Team.external_id, limit, offset)
        return Page([Row(t, {"district": d}) for t, d in page.items], page.total)

    # -- staff -----------------------------------------------------------------------------

    def staff(
        self,
        *,
        limit: int,
        offset: int,
        district: str | None = None,
        team: str | None = None,
        external_id: str | None = None,
    ) -> Page[Row]:
        """Staff, optionally of one district or team."""
        stmt = (
            select(Staff, District.external_id, Team.external_id)
            .join(District, Staff.district_id == District.id)
            .outerjoin(Team, Staff.team_id == Team.id)
            .where(Staff.org_id == self.org_id)
        )
        stmt = self._within(stmt, Staff.district_id)
        if district is not None:
            stmt = stmt.where(Staff.district_id == self._district_id(district))
        if team is not None:
            stmt = stmt.where(Team.external_id == team)
        if external_id is not None:
            stmt = stmt.where(Staff.external_id == external_id)
        page = self._page(stmt, Staff.external_id, limit, offset)
        return Page([Row(s, {"district": d, "team": t}) for s, d, t in page.items], page.total)

    # -- clients ---------------------------------------------------------------------------

    def clients(
        self,
        *,
        limit: int,
        offset: int,
        district: str | None = None,
        external_id: str | None = None,
    ) -> Page[Row]:
        """Clients with their district, allowed team and preferred carers (external ids)."""
        stmt = (
            select(Client, District.external_id, Team.external_id)
            .join(District, Client.district_id == District.id)
            .outerjoin(Team, Client.allowed_team_id == Team.id)
            .where(Client.org_id == self.org_id)
        )
        stmt = self._within(stmt, Client.district_id)
        if district is not None:
            stmt = stmt.where(Client.district_id == self._district_id(district))
        if external_id is not None:
            stmt = stmt.where(Client.external_id == external_id)
        page = self._page(stmt, Client.external_id, limit, offset)
        preferred = self.preferred_carers([c.id for c, _, _ in page.items])
        return Page(
            [
                Row(c, {"district": d, "allowed_team": t, "preferred_carers": preferred[c.id]})
                for c, d, t in page.items
            ],
            page.total,
        )

    def preferred_carers(self, client_ids: Sequence[int]) -> dict[int, list[str]]:
        """Client id -> external ids of the preferred carers, in order."""
        out: dict[int, list[str]] = defaultdict(list)
        if not client_ids:
            return out
        stmt = (
            select(ClientPreferredStaff.client_id, Staff.external_id)
            .join(Staff, ClientPreferredStaff.staff_id == Staff.id)
            .where(ClientPreferredStaff.client_id.in_(client_ids), Staff.org_id == self.org_id)
            .order_by(ClientPreferredStaff.client_id, ClientPreferredStaff.rank)
        )
        for cid, ext in self.session.execute(stmt):
            out[cid].append(ext)
        return out

    # -- shifts ----------------------------------------------------------------------------

    def shifts(
        self,
        *,
        limit: int,
        offset: int,
        district: str | None = None,
        staff: str | None = None,
        dates: DateFilter = DateFilter(),
        external_id: str | None = None,
    ) -> Page[Row]:
        """Shifts, filtered by the staff member's district, the staff member and dates."""
        stmt = (
            select(Shift, Staff.external_id)
            .join(Staff, Shift.staff_id == Staff.id)
            .where(Shift.org_id == self.org_id)
        )
        stmt = self._within(stmt, Staff.district_id)
        if district is not None:
            stmt = stmt.where(Staff.district_id == self._district_id(district))
        if staff is not None:
            stmt = stmt.where(Staff.external_id == staff)
        if external_id is not None:
            stmt = stmt.where(Shift.external_id == external_id)
        stmt = self._dates(stmt, Shift.date, dates)
        page = self._page(stmt, (Shift.date, Shift.start_s, Shift.external_id), limit, offset)
        return Page([Row(s, {"staff": st}) for s, st in page.items], page.total)

    # -- visits and templates ---------------------------------------------------------------

    def visits(
        self,
        *,
        limit: int,
        offset: int,
        district: str | None = None,
        client: str | None = None,
        status: VisitStatus | None = None,
        dates: DateFilter = DateFilter(),
        external_id: str | None = None,
    ) -> Page[Row]:
        """Visits with the external ids of client, pinned carer, dependency, template and the
        carer who reported the visit's actual times."""
        dep = aliased(Visit)
        actual = aliased(Staff)
        stmt = (
            select(
                Visit,
                Client.external_id,
                Staff.external_id,
                dep.external_id,
                VisitTemplate.external_id,
                actual.external_id,
            )
            .join(Client, Visit.client_id == Client.id)
            .outerjoin(Staff, Visit.pinned_staff_id == Staff.id)
            .outerjoin(actual, Visit.actual_staff_id == actual.id)
            .outerjoin(dep, Visit.depends_on_visit_id == dep.id)
            .outerjoin(VisitTemplate, Visit.template_id == VisitTemplate.id)
            .where(Visit.org_id == self.org_id)
        )
        stmt = self._within(stmt, Client.district_id)
        if district is not None:
            stmt = stmt.where(Client.district_id == self._district_id(district))
        if client is not None:
            stmt = stmt.where(Client.external_id == client)
        if status is not None:
            stmt = stmt.where(Visit.status == status)
        if external_id is not None:
            stmt = stmt.where(Visit.external_id == external_id)
        stmt = self._dates(stmt, Visit.date, dates)
        page = self._page(stmt, (Visit.date, Visit.external_id), limit, offset)
        return Page(
            [
                Row(
                    v,
                    {
                        "client": c,
                        "pinned_carer": p,
                        "depends_on": d,
                        "template": t,
                        "actual_carer": a,
                    },
                )
                for v, c, p, d, t, a in page.items
            ],
            page.total,
        )

    def templates(
        self,
        *,
        limit: int,
        offset: int,
        district: str | None = None,
        client: str | None = None,
        external_id: str | None = None,
    ) -> Page[Row]:
        """Visit templates with their client's external id."""
        stmt = (
            select(VisitTemplate, Client.external_id)
            .join(Client, VisitTemplate.client_id == Client.id)
            .where(VisitTemplate.org_id == self.org_id)
        )
        stmt = self._within(stmt, Client.district_id)
        if district is not None:
            stmt = stmt.where(Client.district_id == self._district_id(district))
        if client is not None:
            stmt = stmt.where(Client.external_id == client)
        if external_id is not None:
            stmt = stmt.where(VisitTemplate.external_id == external_id)
        page = self._page(stmt, VisitTemplate.external_id, limit, offset)
        return Page([Row(t, {"client": c}) for t, c in page.items], page.total)

    # -- plans -----------------------------------------------------------------------------

    def plans(
        self,
        *,
        limit: int,
        offset: int,
        district: str | None = None,
        status: PlanStatus | None = None,
        dates: DateFilter = DateFilter(),
        plan_id: int | None = None,
    ) -> Page[Row]:
        """Plan versions, newest first within a district and date."""
        stmt = (
            select(Plan, District.external_id)
            .join(District, Plan.district_id == District.id)
            .where(Plan.org_id == self.org_id)
        )
        stmt = self._within(stmt, Plan.district_id)
        if district is not None:
            stmt = stmt.where(Plan.district_id == self._district_id(district))
        if status is not None:
            stmt = stmt.where(Plan.status == status)
        if plan_id is not None:
            stmt = stmt.where(Plan.id == plan_id)
        stmt = self._dates(stmt, Plan.date, dates)
        order = (Plan.date.desc(), District.external_id, Plan.version.desc())
        page = self._page(stmt, order, limit, offset)
        return Page([Row(p, {"district": d}) for p, d in page.items], page.total)

    def plan(self, plan_id: int) -> Row:
        """One plan of this organisation; :class:`NotFound` otherwise (also for other tenants)."""
        page = self.plans(limit=1, offset=0, plan_id=plan_id)
        if not page.items:
            msg = f"no plan {plan_id}"
            raise NotFound(msg)
        return page.items[0]

    # -- single rows and deletion ------------------------------------------------------------

    def get(self, what: str, external_id: str) -> Row:
        """One row of ``what`` (``clients``, ``staff``...) by external id, or NotFound."""
        page: Page[Row] = getattr(self, what)(limit=1, offset=0, external_id=external_id)
        return self._one(page, what.rstrip("s") if what != "staff" else what, external_id)

    def delete(self, what: str, external_id: str) -> None:
        """Delete a row; :class:`Conflict` when other rows still refer to it."""
        row = self.get(what, external_id)
        obj: Base = row.obj
        try:
            with self.session.begin_nested():
                self.session.delete(obj)
                self.session.flush()
        except IntegrityError as exc:
            msg = (
                f"{what} {external_id!r} is still referred to by other rows "
                "(deactivate it, or delete those first)"
            )
            raise Conflict(msg) from exc
