"""Dependencies every handler uses: settings, the request's session, the caller (``Principal``).

The request owns the transaction: :func:`get_session` commits when the handler returns normally
and rolls back when it raises, before the response is sent. Repositories and services only flush.
Authentication and tenant scoping happen here and only here: every handler that touches tenant
data takes a :data:`CurrentPrincipal` (or a scoped alias) and passes ``principal.org_id`` down.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer, SecurityScopes
from sqlalchemy.orm import Session, sessionmaker

from app.errors import Forbidden, Unauthenticated
from app.settings import Settings
from app.store import tenants
from app.store.models import Role


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
    admins); planners get their districts and nurses their ``staff_id`` once user sign-in exists.
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
        """Whether this principal holds ``scope`` (admins hold every scope)."""
        return self.role is Role.ADMIN or scope in self.scopes


_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <API key>`")
_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="The API key (alternative to Bearer)."
)


def current_principal(
    security_scopes: SecurityScopes,
    session: SessionDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key_header)],
) -> Principal:
    """Resolve the API key of the request to a :class:`Principal` holding the required scopes."""
    plaintext = bearer.credentials if bearer is not None else api_key
    if not plaintext:
        msg = "missing credentials: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
        raise Unauthenticated(msg)
    key = tenants.find_active_key(session, plaintext)
    if key is None:
        msg = "unknown or revoked API key"
        raise Unauthenticated(msg)
    principal = Principal(
        org_id=key.org_id,
        role=key.role,
        scopes=frozenset(key.scopes),
        actor=f"api_key:{key.prefix}",
        api_key_id=key.id,
    )
    missing = [s for s in security_scopes.scopes if not principal.allows(s)]
    if missing:
        msg = f"this credential lacks the scope(s): {', '.join(missing)}"
        raise Forbidden(msg)
    return principal


CurrentPrincipal = Annotated[Principal, Security(current_principal)]
Reader = Annotated[Principal, Security(current_principal, scopes=["read"])]
Writer = Annotated[Principal, Security(current_principal, scopes=["write"])]
Planner = Annotated[Principal, Security(current_principal, scopes=["plan"])]
Admin = Annotated[Principal, Security(current_principal, scopes=["admin"])]
