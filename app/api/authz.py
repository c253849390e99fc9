"""Authorisation rules by role, in one place; every handler calls these instead of reasoning alone.

Tenant isolation itself is done by the repositories (every query filters by ``principal.org_id``).
These checks add the role rules on top:

- **admin** and organisation-wide API keys: every district of their organisation;
- **planner**: only the districts in ``principal.district_ids``;
- **nurse**: only their own route (``principal.staff_id``), and the actual times or delays of
  their own visits (:func:`ensure_plan_events`), nothing else (the dependency in
  :mod:`app.api.deps` already refuses nurses on every endpoint not marked ``OWN_ROUTE``).

Reads go through :func:`repository`, which scopes every query to the organisation and, for a
planner, to their districts, so a list can never include another district's rows. Care data
(clients, staff, shifts, visits, templates) is owned by the care record and written by
organisation-wide credentials only (:func:`ensure_org_wide`); planners change plans.

A resource outside the caller's reach answers 404, not 403, so its existence does not leak; a
caller whose *role* can never do an action gets 403.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.orm import Session

from app.api.deps import Principal
from app.errors import Forbidden, NotFound
from app.store.models import Plan, Role, Staff
from app.store.repositories import TenantRepository


def visible_districts(principal: Principal) -> frozenset[int] | None:
    """District ids the caller may see, or None for "all of the organisation"."""
    if principal.role is Role.NURSE:
        return frozenset()
    return principal.district_ids


def ensure_district(principal: Principal, district_id: int, *, what: str = "district") -> None:
    """Raise :class:`NotFound` unless the caller may see data of ``district_id``."""
    allowed = visible_districts(principal)
    if allowed is not None and district_id not in allowed:
        msg = f"{what} not found"
        raise NotFound(msg)


def ensure_not_nurse(principal: Principal) -> None:
    """Nurses read their own route only; anything else is forbidden for the role."""
    if principal.role is Role.NURSE:
        msg = "a nurse credential may only read its own route"
        raise Forbidden(msg)


def ensure_staff_route(principal: Principal, *, staff_id: int, district_id: int) -> None:
    """Raise unless the caller may read the route of staff member ``staff_id``.

    A nurse may read exactly their own route; planners the routes of their districts; admins and
    organisation-wide keys any route of the organisation.
    """
    if principal.role is Role.NURSE:
        if principal.staff_id != staff_id:
            msg = "route not found"
            raise NotFound(msg)
        return
    ensure_district(principal, district_id, what="route")


#: Events a nurse's phone may report on a plan, for visits on the nurse's own route only.
NURSE_EVENT_KINDS = frozenset({"actual_times_reported", "visit_delayed", "carer_position_reported"})


def ensure_event_kinds(principal: Principal, kinds: Iterable[str]) -> None:
    """Raise :class:`Forbidden` when a nurse reports an event their role may never report."""
    if principal.role is Role.NURSE and not set(kinds) <= NURSE_EVENT_KINDS:
        msg = (
            "a nurse credential may only report actual times or delays of their own visits "
            "and their own position"
        )
        raise Forbidden(msg)


def ensure_plan_events(
    session: Session,
    principal: Principal,
    plan: Plan,
    visits: Iterable[str],
    staff_ids: Iterable[str] = (),
) -> None:
    """Raise unless the caller may post events naming ``visits`` and ``staff_ids`` on ``plan``.

    Planners: the plan's district must be theirs. Nurses (after :func:`ensure_event_kinds`): the
    plan is of their own district, every visit is a stop of their own route in this version and
    every carer named (a position report) is themselves; otherwise 404, so neither the plan nor
    another carer's visit or whereabouts is revealed.
    """
    if principal.role is not Role.NURSE:
        ensure_district(principal, plan.district_id, what="plan")
        return
    staff = session.get(Staff, principal.staff_id) if principal.staff_id is not None else None
    if staff is None or staff.org_id != principal.org_id or staff.district_id != plan.district_id:
        msg = "plan not found"
        raise NotFound(msg)
    own = {
        stop.get("visit")
        for route in plan.routes
        if route.get("staff") == staff.external_id
        for stop in route.get("stops", [])
        if stop.get("kind") == "visit"
    }
    for visit in visits:
        if visit not in own:
            msg = f"visit {visit} not found on your route"
            raise NotFound(msg)
    for other in staff_ids:
        if other != staff.external_id:
            msg = "staff member not found"
            raise NotFound(msg)


def repository(session: Session, principal: Principal) -> TenantRepository:
    """The caller's view of the data: their organisation, and a planner's districts only."""
    return TenantRepository(session, principal.org_id, districts=visible_districts(principal))


def ensure_org_wide(principal: Principal) -> None:
    """Raise :class:`Forbidden` unless the caller acts for the whole organisation.

    Care-data writes (imports, upserts, deletions, template expansion) may touch any district, so
    they need an admin or an organisation-wide API key, not a planner limited to some districts.
    """
    ensure_not_nurse(principal)
    if principal.district_ids is not None:
        msg = "this change needs an organisation-wide credential (admin or API key)"
        raise Forbidden(msg)


#: How far each role reaches; a credential never grants a role ranked above its own.
ROLE_RANK: dict[Role, int] = {Role.NURSE: 0, Role.PLANNER: 1, Role.ADMIN: 2}


def ensure_may_grant(
    principal: Principal,
    *,
    role: Role,
    scopes: Iterable[str],
    district_ids: frozenset[int] | None,
    what: str,
) -> None:
    """Raise :class:`Forbidden` unless ``principal`` may hand out a credential this strong.

    A credential (API key or signed-in person) never creates or re-enables a credential, or
    widens a user, beyond itself: the new role ranks no higher than the caller's, the new scopes
    are a subset of the caller's, and the new reach (``district_ids``; None = the whole
    organisation) lies within the caller's districts.

    Parameters
    ----------
    principal
        The caller.
    role, scopes
        The new credential's role and the scopes it will hold (a user's are their role's).
    district_ids
        The districts the new credential reaches; None for organisation-wide.
    what
        What is being granted, for the message (``"API key"``, ``"user"``).
    """
    problems = []
    if ROLE_RANK[role] > ROLE_RANK[principal.role]:
        problems.append(f"role {role.value} ranks above the caller's ({principal.role.value})")
    extra = sorted(set(scopes) - principal.scopes)
    if extra:
        problems.append(f"scope(s) {', '.join(extra)} the caller does not hold")
    reach = principal.district_ids
    if reach is not None and (district_ids is None or not district_ids <= reach):
        problems.append("districts outside the caller's")
    if problems:
        msg = f"a credential cannot grant more than it holds: this {what} would have " + "; ".join(
            problems
        )
        raise Forbidden(msg)
