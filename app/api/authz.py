"""Authorisation rules by role, in one place; every handler calls these instead of reasoning alone.

Tenant isolation itself is done by the repositories (every query filters by ``principal.org_id``).
These checks add the role rules on top:

- **admin** and organisation-wide API keys: every district of their organisation;
- **planner**: only the districts in ``principal.district_ids``;
- **nurse**: only their own route (``principal.staff_id``), nothing else.

A resource outside the caller's reach answers 404, not 403, so its existence does not leak; a
caller whose *role* can never do an action gets 403.
"""

from __future__ import annotations

from app.api.deps import Principal
from app.errors import Forbidden, NotFound
from app.store.models import Role


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
