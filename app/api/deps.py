"""Dependencies every handler uses: settings, the request's session, the caller (``Principal``).

The request owns the transaction: :func:`get_session` commits when the handler returns normally
and rolls back when it raises, before the response is sent. Repositories and services only flush.
Authentication and tenant scoping happen here and only here: every handler that touches tenant
data takes a :data:`CurrentPrincipal` (or a scoped alias) and passes ``principal.org_id`` down
(through :func:`app.api.authz.repository`, which also narrows a planner to their districts).

A credential is an API key (integrations; ``X-API-Key`` or ``Authorization: Bearer hc_...``) or a
person's sign-in token (``Authorization: Bearer <JWT>`` from ``POST /v1/auth/token``). Nurses
are refused by the dependency itself everywhere except endpoints marked :data:`OWN_ROUTE`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
from sqlalchemy.orm import Session, sessionmaker

from app.api import ratelimit, security
from app.errors import Forbidden, Unauthenticated
from app.settings import Settings
from app.store import tenants, users
from app.store.models import Role, utcnow


def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


def get_session(request: Request) -> Iterator[Session]:
    """One session per request; commit on success, roll back on error."""
    factory: sessionmaker[Session] = request.app.state.sessionmaker
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


SettingsDep = Annotated[Settings, Depends(get_settings)]
#: ``scope="function"`` makes the commit happen before the response is sent, so a failed commit
#: becomes an error response instead of a 200 for data that was never stored.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling, for which organisation, allowed to do what.

    ``district_ids`` is None when the caller may see every district of the organisation (API keys,
    admins); planner users get the districts assigned to them, nurse users their ``staff_id``.
    """

    org_id: int
    role: Role
    scopes: frozenset[str]
    #: Stable, non-personal label for audit logs, e.g. ``api_key:hc_AbC123``.
    actor: str
    api_key_id: int | None = None
    user_id: int | None = None
    staff_id: int | None = None
    district_ids: frozenset[int] | None = None

    def allows(self, scope: str) -> bool:
        """Whether this principal holds ``scope``.

        Scopes are enforced for every role: an admin-role API key created with ``["read"]`` only
        reads. People (sign-in tokens) get the default scopes of their role.
        """
        return scope in self.scopes


_bearer = HTTPBearer(
    auto_error=False,
    description="`Authorization: Bearer <API key or sign-in token from POST /v1/auth/token>`",
)
_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="The API key (alternative to Bearer)."
)

#: A marker, not a scope: endpoints that require it are open to nurses (for their own route, which
#: the handler checks with :func:`app.api.authz.ensure_staff_route`). Every other endpoint refuses
#: nurse credentials here, before the handler runs.
OWN_ROUTE = "own_route"
#: Record an API key's ``last_used_at`` at most this often (a write per request would be costly).
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


def _api_key_principal(session: Session, plaintext: str) -> Principal:
    key = tenants.find_active_key(session, plaintext)
    if key is None:
        msg = "unknown or revoked API key"
        raise Unauthenticated(msg)
    now = utcnow()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        key.last_used_at = now
        session.flush()
    return Principal(
        org_id=key.org_id,
        role=key.role,
        scopes=frozenset(key.scopes),
        actor=f"api_key:{key.prefix}",
        api_key_id=key.id,
    )


def _token_principal(session: Session, settings: Settings, token: str) -> Principal:
    claims = security.decode_token(settings, token)
    user = users.active_user(session, claims.user_id, claims.org_id)
    if user is None or user.role is not claims.role:
        # Disabled, deleted, moved or re-roled since sign-in: the token no longer speaks for them.
        msg = "the token's user is disabled or changed; sign in again"
        raise Unauthenticated(msg)
    return Principal(
        org_id=user.org_id,
        role=user.role,
        scopes=frozenset(tenants.DEFAULT_SCOPES_BY_ROLE[user.role]),
        actor=f"user:{user.id}",
        user_id=user.id,
        staff_id=user.staff_id if user.role is Role.NURSE else None,
        district_ids=users.district_ids(session, user.id) if user.role is Role.PLANNER else None,
    )


def authenticate(
    session: Session, settings: Settings, bearer: str | None, api_key: str | None
) -> Principal:
    """The principal of an API key (``X-API-Key`` or Bearer) or a sign-in token (Bearer)."""
    credential = bearer or api_key
    if not credential:
        msg = "missing credentials: send 'Authorization: Bearer <key or token>' or 'X-API-Key'"
        raise Unauthenticated(msg)
    if bearer and security.looks_like_jwt(bearer):
        return _token_principal(session, settings, bearer)
    return _api_key_principal(session, credential)


def current_principal(
    security_scopes: SecurityScopes,
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key_header)],
) -> Principal:
    """Authenticate, rate-limit and check scopes and role; the one gate of every handler.

    401 without a valid credential; 429 over the caller's rate limit; 403 when a scope is missing
    or a nurse calls anything but an :data:`OWN_ROUTE` endpoint.
    """
    principal = authenticate(
        session, settings, bearer.credentials if bearer is not None else None, api_key
    )
    # Seen by the access log (org and a non-personal actor label only).
    request.state.principal = principal
    ratelimit.enforce(
        request.app.state.rate_limiter,
        principal.actor,
        rate=settings.rate_limit_per_s,
        burst=settings.rate_limit_burst,
    )
    required = [s for s in security_scopes.scopes if s != OWN_ROUTE]
    missing = [s for s in required if not principal.allows(s)]
    if missing:
        msg = f"this credential lacks the scope(s): {', '.join(missing)}"
        raise Forbidden(msg)
    if principal.role is Role.NURSE and OWN_ROUTE not in security_scopes.scopes:
        msg = "a nurse credential may only read its own route"
        raise Forbidden(msg)
    return principal


#: Any role, nurses included (e.g. "who am I"); handlers must still apply the role rules.
AnyRole = Annotated[Principal, Security(current_principal, scopes=[OWN_ROUTE])]
#: Nurses' own route (and planners'/admins' reads of routes): handler calls ensure_staff_route.
RouteReader = Annotated[Principal, Security(current_principal, scopes=["read", OWN_ROUTE])]
CurrentPrincipal = Annotated[Principal, Security(current_principal)]
Reader = Annotated[Principal, Security(current_principal, scopes=["read"])]
Writer = Annotated[Principal, Security(current_principal, scopes=["write"])]
Planner = Annotated[Principal, Security(current_principal, scopes=["plan"])]
Admin = Annotated[Principal, Security(current_principal, scopes=["admin"])]
